/**
 * Model check: a random mix of commits, updates and removes (many in flight at once), with small
 * segments so rotation, deletion and compaction happen all the time, and restarts in between.
 * After every restart the recovered spool must equal a plain in-memory model, bodies included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Json, Spool } from '../../src/spool/types';
import { bytes, openRecovered, options, prng, removeDir, tempDir } from './spool-helpers';

interface ModelTx {
  body: Buffer;
  entries: Map<number, Json>;
}

test('random operations with restarts always recover exactly the model', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const opts = options(dir, { fsync: false, segmentSize: 8 * 1024 });
  const model = new Map<string, ModelTx>();
  const rnd = prng(77);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  let { spool } = await openRecovered(opts);

  const step = (s: Spool, n: number): Promise<void> => {
    const ids = [...model.keys()];
    const roll = rnd();
    if (roll < 0.35 || ids.length === 0) {
      const id = randomUUID();
      const count = 1 + Math.floor(rnd() * 3);
      const entry: ModelTx = { body: bytes(100 + Math.floor(rnd() * 1500), n), entries: new Map() };
      for (let q = 1; q <= count; q++) entry.entries.set(q, { n, q });
      model.set(id, entry);
      const entries = [...entry.entries].map(([queue, meta]) => ({ queue, meta }));
      return s.commit({ id, meta: { n }, bodies: [entry.body], entries });
    }
    const id = pick(ids);
    const tx = model.get(id)!;
    const queue = pick([...tx.entries.keys()]);
    if (roll < 0.7) {
      tx.entries.set(queue, { n, updated: true });
      return s.update(id, queue, { n, updated: true });
    }
    tx.entries.delete(queue);
    if (tx.entries.size === 0) model.delete(id);
    return s.remove(id, queue);
  };

  for (let round = 0; round < 4; round++) {
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < 250; i++) {
      inFlight.push(step(spool, round * 1000 + i));
      if (rnd() < 0.2) await Promise.all(inFlight.splice(0));
    }
    await Promise.all(inFlight);
    await spool.close();
    const opened = await openRecovered(opts);
    spool = opened.spool;
    assert.equal(opened.txs.size, model.size, `round ${round}`);
    for (const [id, m] of model) {
      const got = opened.txs.get(id);
      assert.ok(got, `round ${round}: ${id} missing`);
      assert.deepEqual(got.entries, [...m.entries].map(([queue, meta]) => ({ queue, meta })));
      assert.ok((await spool.readBody(id, 0)).equals(m.body));
    }
  }
  // Space stays bounded by the live data (compaction's "bloat" bound: 2 × live + 2 segments).
  let live = 0;
  for (const m of model.values()) live += m.body.length + 200;
  const used = spool.stats().bytes;
  assert.ok(used < 2.5 * live + 3 * 8 * 1024, `${used} bytes on disk for about ${live} live`);
  await spool.close();
});
