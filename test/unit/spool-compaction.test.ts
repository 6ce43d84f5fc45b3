/**
 * Space reclaim: finished segments are deleted, and a few long-lived entries in the oldest
 * segment do not pin the spool (compaction re-appends them with their current state), while
 * concurrent updates and removes are never lost to a rewrite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Spool, SpoolCommit } from '../../src/spool/types';
import { dumpSpool } from '../../src/spool/inspect';
import { bytes, openRecovered, options, removeDir, segmentFiles, tempDir } from './spool-helpers';

const SEGMENT = 16 * 1024;

function tx(n: number, size: number, entries = 1): SpoolCommit {
  return {
    id: randomUUID(),
    meta: { n },
    bodies: [bytes(size, n)],
    entries: Array.from({ length: entries }, (_, i) => ({ queue: i + 1, meta: { v: 0 } })),
  };
}

/** Wait (bounded) until the spool has shrunk to at most `max` segments. */
async function settle(spool: Spool, max: number): Promise<number> {
  for (let i = 0; i < 60 && spool.stats().segments > max; i++) await new Promise((r) => setTimeout(r, 100));
  return spool.stats().segments;
}

test('one long-lived entry does not pin old segments; it survives with its latest state', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir, { segmentSize: SEGMENT }));
  const long = tx(1, 1500, 2);
  await spool.commit(long);
  const firstSegment = (await segmentFiles(dir))[0];
  let previous: SpoolCommit | null = null;
  for (let i = 0; i < 120; i++) {
    const c = tx(100 + i, 2000);
    await spool.commit(c);
    if (previous) await spool.remove(previous.id, 1);
    previous = c;
    if (i % 10 === 0) await spool.update(long.id, 1, { v: i });
    if (i === 60) await spool.remove(long.id, 2);
  }
  await spool.remove(previous!.id, 1);
  await spool.update(long.id, 1, { v: 'final' });
  assert.ok(spool.stats().bytes < 120 * 2000, 'space was reclaimed while running');
  const left = await settle(spool, 2);
  assert.ok(left <= 2, `${left} segments left`);
  assert.equal((await segmentFiles(dir)).includes(firstSegment), false, 'the first segment is gone');
  assert.deepEqual(await dumpSpool(dir), [{ id: long.id, meta: { n: 1 }, bodySizes: [1500], entries: [{ queue: 1, meta: { v: 'final' } }] }]);
  await spool.close();

  const { spool: again, txs } = await openRecovered(options(dir, { segmentSize: SEGMENT }));
  t.after(() => again.close());
  assert.deepEqual([...txs.values()], [{ id: long.id, meta: { n: 1 }, bodySizes: [1500], entries: [{ queue: 1, meta: { v: 'final' } }] }]);
  assert.ok((await again.readBody(long.id, 0)).equals(long.bodies[0]));
});

test('updates and removes racing with compaction are never lost', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir, { segmentSize: SEGMENT, fsync: false }));
  const keepers = Array.from({ length: 8 }, (_, i) => tx(i, 300, 3));
  await Promise.all(keepers.map((k) => spool.commit(k)));
  const expected = new Map<string, Map<number, unknown>>(keepers.map((k) => [k.id, new Map([[1, { v: 0 }], [2, { v: 0 }], [3, { v: 0 }]])]));
  const churn: Promise<void>[] = [];
  for (let i = 0; i < 150; i++) {
    const c = tx(1000 + i, 1500);
    churn.push(spool.commit(c).then(() => spool.remove(c.id, 1)));
    // Keep changing the long-lived ones while segments roll and get compacted.
    const k = keepers[i % keepers.length];
    const q = 1 + (i % 3);
    const state = expected.get(k.id)!;
    if (i % 37 === 0 && state.has(q)) {
      state.delete(q);
      churn.push(spool.remove(k.id, q));
    } else if (state.has(q)) {
      state.set(q, { v: i });
      churn.push(spool.update(k.id, q, { v: i }));
    }
    if (i % 10 === 0) await Promise.all(churn.splice(0));
  }
  await Promise.all(churn);
  await settle(spool, 3);
  await spool.close();
  const { spool: again, txs } = await openRecovered(options(dir, { segmentSize: SEGMENT, fsync: false }));
  await again.close();
  assert.equal(txs.size, keepers.length);
  for (const k of keepers) {
    const want = [...expected.get(k.id)!.entries()].map(([queue, meta]) => ({ queue, meta }));
    assert.deepEqual(txs.get(k.id)?.entries, want, k.id);
  }
  assert.ok((await segmentFiles(dir)).length <= 4);
});
