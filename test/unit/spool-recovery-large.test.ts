/**
 * Recovery of a spool whose queue metadata is larger than one block of the recovery's text
 * store (replay.ts keeps JSON text in 16 MiB off-heap chunks): every transaction comes back
 * with its exact metadata, entries updated later come back in their latest state, removed
 * ones do not come back, non-ASCII text survives, and one entry whose metadata alone is larger
 * than a chunk is recovered whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Json, SpoolCommit } from '../../src/spool/types';
import { openRecovered, options, removeDir, tempDir } from './spool-helpers';

const CHUNK = 16 * 1024 * 1024;

function commitOf(n: number, note: string): SpoolCommit {
  return {
    id: randomUUID(),
    meta: { n, sender: `sender${n}@example.com` },
    bodies: [Buffer.from(`message ${n}\r\n`)],
    entries: [
      { queue: 1, meta: { n, state: 'ACTIVE', note } },
      { queue: 2, meta: { n, state: 'DEFER', note: `${note}-2` } },
    ],
  };
}

test('a spool with more queue metadata than one recovery text chunk recovers every entry exactly', async () => {
  const dir = await tempDir();
  try {
    const { spool } = await openRecovered(options(dir, { fsync: false }));
    // About 2 × 1,200 bytes of entry JSON per transaction: 15,000 of them pass 2 chunks.
    const filler = 'x'.repeat(1150);
    const commits: SpoolCommit[] = [];
    for (let i = 0; i < 15_000; i += 500) {
      const batch = Array.from({ length: 500 }, (_, k) => commitOf(i + k, `${filler}-${i + k}-é✓`));
      commits.push(...batch);
      await Promise.all(batch.map((c) => spool.commit(c)));
    }
    const big = { n: -1, state: 'HOLD', note: 'y'.repeat(CHUNK + 1000) } as Json;
    const bigTx: SpoolCommit = { id: randomUUID(), meta: { n: -1 }, bodies: [Buffer.from('big\r\n')], entries: [{ queue: 1, meta: big }] };
    await spool.commit(bigTx);
    // Later records: an update of one entry and a remove of another, far from their TX records.
    await spool.update(commits[3].id, 2, { n: 3, state: 'HOLD', note: 'updated' });
    await spool.remove(commits[14_999].id, 1);
    await spool.close();

    const again = await openRecovered(options(dir));
    try {
      assert.equal(again.txs.size, commits.length + 1);
      assert.equal(again.report.entries, 2 * commits.length + 1 - 1);
      for (const [i, c] of commits.entries()) {
        const got = again.txs.get(c.id);
        assert.ok(got, `transaction ${i} recovered`);
        assert.deepEqual(got.meta, c.meta);
        const expected = c.entries
          .filter((e) => !(i === 14_999 && e.queue === 1))
          .map((e) => (i === 3 && e.queue === 2 ? { queue: 2, meta: { n: 3, state: 'HOLD', note: 'updated' } } : e));
        assert.deepEqual(got.entries, expected, `entries of transaction ${i}`);
      }
      assert.deepEqual(again.txs.get(bigTx.id)?.entries, [{ queue: 1, meta: big }]);
    } finally {
      await again.spool.close();
    }
  } finally {
    await removeDir(dir);
  }
});
