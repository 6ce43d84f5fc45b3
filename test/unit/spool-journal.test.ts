/**
 * The journal's contract as its users see it: what commit/update/remove acknowledged is what
 * recovery gives back (last state wins, removed entries gone, bodies byte-exact); commits are
 * grouped under few fsyncs; minfree and ENOSPC refuse new mail without leaving half records;
 * the directory lock keeps a second opener out; misuse fails with stable codes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { openSpool, SpoolFullError, SpoolLockedError } from '../../src/spool/journal';
import type { SpoolCommit } from '../../src/spool/types';
import { bytes, openRecovered, options, removeDir, segmentFiles, tempDir } from './spool-helpers';

function tx(n: number, entries = 2, body = bytes(5000, n)): SpoolCommit {
  return {
    id: randomUUID(),
    meta: { sender: `s${n}@example.com`, n, note: 'ünïcødé ✉' },
    bodies: [body],
    entries: Array.from({ length: entries }, (_, i) => ({ queue: i + 1, meta: { rcpt: `r${i}@example.org`, state: 'ACTIVE' } })),
  };
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await segmentFiles(dir)) total += (await fsp.stat(path.join(dir, f))).size;
  return total;
}

test('commit, update and remove survive a restart: last state wins, removed entries are gone', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir));
  const a = tx(1, 3);
  const b = tx(2, 1);
  const c = tx(3, 2);
  c.bodies.push(Buffer.from([0, 255, 13, 10, 46, 13, 10]), Buffer.alloc(0));
  await Promise.all([spool.commit(a), spool.commit(b), spool.commit(c)]);
  await spool.update(a.id, 1, { state: 'DEFER', retry: 1 });
  await spool.update(a.id, 1, { state: 'DEFER', retry: 2 });
  await spool.update(a.id, 3, { state: 'HOLD' });
  await spool.remove(a.id, 2);
  await spool.remove(b.id, 1);
  await spool.update(c.id, 2, { state: 'DEFER', retry: 7 });
  await spool.close();

  const { spool: again, txs, report } = await openRecovered(options(dir));
  t.after(() => again.close());
  assert.equal(report.transactions, 2);
  assert.equal(report.entries, 4);
  assert.deepEqual(report.corrupt, []);
  assert.equal(txs.has(b.id), false, 'fully removed transaction is not recovered');
  assert.deepEqual(txs.get(a.id), {
    id: a.id,
    meta: a.meta,
    bodySizes: [5000],
    entries: [
      { queue: 1, meta: { state: 'DEFER', retry: 2 } },
      { queue: 3, meta: { state: 'HOLD' } },
    ],
  });
  assert.deepEqual(txs.get(c.id)?.entries, [
    { queue: 1, meta: c.entries[0].meta },
    { queue: 2, meta: { state: 'DEFER', retry: 7 } },
  ]);
  assert.deepEqual(txs.get(c.id)?.bodySizes, [5000, 7, 0]);
  for (let i = 0; i < 3; i++) assert.deepEqual(await again.readBody(c.id, i), c.bodies[i]);
  assert.deepEqual(await again.readBody(a.id, 0), a.bodies[0]);
});

test('updateMany writes its entries in one batch; entries that are not live are refused, the rest kept', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir));
  const a = tx(1, 3);
  const b = tx(2, 1);
  await Promise.all([spool.commit(a), spool.commit(b)]);
  await spool.remove(b.id, 1);
  const fsyncs = spool.stats().fsyncs;
  const refused = await spool.updateMany([
    { transaction: a.id, queue: 1, meta: { state: 'HOLD', n: 1 } },
    { transaction: b.id, queue: 1, meta: { state: 'HOLD' } },
    { transaction: a.id, queue: 3, meta: { state: 'DEFER', note: 'ünïcødé' } },
    { transaction: 'no-such', queue: 1, meta: {} },
  ]);
  assert.equal(spool.stats().fsyncs, fsyncs + 1, 'one write, one fsync');
  assert.deepEqual(refused.map((e) => (e as { code?: string } | undefined)?.code), [undefined, 'SPOOL_NOT_FOUND', undefined, 'SPOOL_NOT_FOUND']);
  await spool.update(a.id, 1, { state: 'ACTIVE', n: 2 });
  await spool.close();

  const { spool: again, txs } = await openRecovered(options(dir));
  t.after(() => again.close());
  assert.deepEqual(txs.get(a.id)?.entries, [
    { queue: 1, meta: { state: 'ACTIVE', n: 2 } },
    { queue: 2, meta: a.entries[1].meta },
    { queue: 3, meta: { state: 'DEFER', note: 'ünïcødé' } },
  ]);
  assert.equal(txs.has(b.id), false);
});

test('updateMany: a failed write rejects and no entry of the batch is recorded', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir));
  const a = tx(1, 2);
  await spool.commit(a);
  const probe = await fsp.open(path.join(dir, 'lock'), 'r');
  const proto = Object.getPrototypeOf(probe) as { writev: (bufs: Buffer[], pos: number) => Promise<unknown> };
  await probe.close();
  const original = proto.writev;
  proto.writev = async function () {
    proto.writev = original;
    throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
  };
  t.after(() => {
    proto.writev = original;
  });
  await assert.rejects(spool.updateMany([{ transaction: a.id, queue: 1, meta: { state: 'HOLD' } }, { transaction: a.id, queue: 2, meta: { state: 'HOLD' } }]));
  // The entries are still live and writable afterwards.
  assert.deepEqual(await spool.updateMany([{ transaction: a.id, queue: 2, meta: { state: 'DEFER' } }]), [undefined]);
  await spool.close();
  const { spool: again, txs } = await openRecovered(options(dir));
  t.after(() => again.close());
  assert.deepEqual(txs.get(a.id)?.entries, [
    { queue: 1, meta: a.entries[0].meta },
    { queue: 2, meta: { state: 'DEFER' } },
  ]);
});

test('an update queued before its commit resolved is kept (log order)', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir));
  const a = tx(4, 1);
  await Promise.all([spool.commit(a), spool.update(a.id, 1, { state: 'SENDING' })]);
  await spool.close();
  const { spool: again, txs } = await openRecovered(options(dir));
  await again.close();
  assert.deepEqual(txs.get(a.id)?.entries, [{ queue: 1, meta: { state: 'SENDING' } }]);
});

test('a 10 MiB binary body is read back byte-exact, before and after a restart', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const big = bytes(10 * 1024 * 1024, 42);
  const { spool } = await openRecovered(options(dir));
  const a = tx(5, 1, big);
  await spool.commit(a);
  assert.ok((await spool.readBody(a.id, 0)).equals(big));
  await spool.close();
  const { spool: again, txs } = await openRecovered(options(dir));
  t.after(() => again.close());
  assert.deepEqual(txs.get(a.id)?.bodySizes, [big.length]);
  assert.ok((await again.readBody(a.id, 0)).equals(big));
});

test('bodies can be read while the segment is being appended to', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir));
  t.after(() => spool.close());
  const first = tx(6, 1);
  await spool.commit(first);
  const writes: Promise<void>[] = [];
  const reads: Promise<Buffer>[] = [];
  for (let i = 0; i < 50; i++) {
    writes.push(spool.commit(tx(100 + i, 1)));
    reads.push(spool.readBody(first.id, 0));
  }
  await Promise.all(writes);
  for (const r of await Promise.all(reads)) assert.ok(r.equals(first.bodies[0]));
});

test('group commit: 200 concurrent commits all resolve under far fewer fsyncs', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir));
  const commits = Array.from({ length: 200 }, (_, i) => tx(1000 + i, 1));
  await Promise.all(commits.map((c) => spool.commit(c)));
  const stats = spool.stats();
  assert.ok(stats.fsyncs >= 1, 'fsync is on: at least one sync');
  assert.ok(stats.fsyncs < commits.length / 2, `${stats.fsyncs} fsyncs for ${commits.length} commits`);
  assert.equal(stats.liveTransactions, 200);
  assert.ok(stats.fsyncMaxMs >= stats.fsyncMeanMs && stats.fsyncMeanMs > 0);
  await spool.close();
  const { spool: again, txs } = await openRecovered(options(dir));
  await again.close();
  assert.equal(txs.size, 200);
  for (const c of commits) assert.ok(txs.has(c.id));
});

test('fsync: false still writes before resolving, without any fsync', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir, { fsync: false }));
  const a = tx(7, 1);
  await spool.commit(a);
  assert.equal(spool.stats().fsyncs, 0);
  assert.ok((await dirBytes(dir)) > 5000, 'record is in the file when commit resolves');
  await spool.close();
  const { spool: again, txs } = await openRecovered(options(dir, { fsync: false }));
  await again.close();
  assert.ok(txs.has(a.id));
});

test('minfree reached: commit rejects with SpoolFullError before writing; update/remove still work', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir));
  const a = tx(8, 2);
  await spool.commit(a);
  await spool.close();

  const full = options(dir, { minfree: { bytes: Number.MAX_SAFE_INTEGER, inodes: 0 } });
  const { spool: s2, txs } = await openRecovered(full);
  assert.ok(txs.has(a.id));
  assert.equal(s2.hasSpace(), false);
  const before = await dirBytes(dir);
  await assert.rejects(s2.commit(tx(9, 1)), (err: unknown) => err instanceof SpoolFullError && err.code === 'SPOOL_FULL');
  assert.equal(await dirBytes(dir), before, 'nothing written for the refused commit');
  await s2.update(a.id, 1, { state: 'DEFER' });
  await s2.remove(a.id, 2);
  await s2.close();

  const { spool: s3, txs: after } = await openRecovered(options(dir, { minfree: { bytes: 0, inodes: Number.MAX_SAFE_INTEGER } }));
  await s3.close();
  assert.deepEqual(after.get(a.id)?.entries, [{ queue: 1, meta: { state: 'DEFER' } }]);
  assert.equal(after.size, 1);
});

test('ENOSPC during a write: the batch rejects with SpoolFullError and no half record remains', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir));
  const ok1 = tx(10, 1);
  await spool.commit(ok1);
  const sizeBefore = await dirBytes(dir);

  // Fault injection: the next writev writes half its bytes, then fails as a full disk would.
  const probe = await fsp.open(path.join(dir, 'lock'), 'r');
  const proto = Object.getPrototypeOf(probe) as { writev: (bufs: Buffer[], pos: number) => Promise<unknown> };
  await probe.close();
  const original = proto.writev;
  proto.writev = async function (this: unknown, bufs: Buffer[], pos: number) {
    proto.writev = original;
    const all = Buffer.concat(bufs);
    await original.call(this, [all.subarray(0, all.length >> 1)], pos);
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  };
  t.after(() => {
    proto.writev = original;
  });
  const lost = [tx(11, 1), tx(12, 1)];
  const results = await Promise.allSettled(lost.map((c) => spool.commit(c)));
  for (const r of results) assert.ok(r.status === 'rejected' && r.reason instanceof SpoolFullError);
  assert.equal(await dirBytes(dir), sizeBefore, 'segment cut back to its last good record');
  assert.equal(spool.hasSpace(), false, 'full until statfs says otherwise');

  for (let i = 0; i < 40 && !spool.hasSpace(); i++) await new Promise((r) => setTimeout(r, 100));
  const ok2 = tx(13, 1);
  await spool.commit(ok2);
  await spool.close();
  const { spool: again, txs, report } = await openRecovered(options(dir));
  await again.close();
  assert.deepEqual(report.corrupt, []);
  assert.deepEqual([...txs.keys()].sort(), [ok1.id, ok2.id].sort());
});

test('a second open of the same spool is refused while the first holds it', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const first = await openSpool(options(dir));
  await assert.rejects(openSpool(options(dir)), (err: unknown) => err instanceof SpoolLockedError && /already open/.test(err.message));
  await first.close();
  const second = await openSpool(options(dir));
  await second.close();
});

test('a lock held by another live process is refused; a stale one (dead pid) is taken over', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  await fsp.writeFile(path.join(dir, 'lock'), `${process.ppid}\n`);
  await assert.rejects(openSpool(options(dir)), (err: unknown) =>
    err instanceof SpoolLockedError && err.code === 'SPOOL_LOCKED' && err.message.includes(String(process.ppid)));

  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  await fsp.writeFile(path.join(dir, 'lock'), `${gone.stdout}\n`);
  const spool = await openSpool(options(dir));
  assert.equal((await fsp.readFile(path.join(dir, 'lock'), 'utf8')).trim(), String(process.pid));
  await spool.close();
  await assert.rejects(fsp.stat(path.join(dir, 'lock')), /ENOENT/, 'close releases the lock');
});

test('misuse fails with stable codes', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const spool = await openSpool(options(dir));
  await assert.rejects(spool.commit(tx(20, 1)), { code: 'SPOOL_NOT_RECOVERED' });
  await spool.recover(() => undefined);
  await assert.rejects(spool.recover(() => undefined), { code: 'SPOOL_INVALID' });
  const a = tx(21, 1);
  await spool.commit(a);
  await assert.rejects(spool.commit({ ...a }), { code: 'SPOOL_DUPLICATE' });
  await assert.rejects(spool.update(a.id, 2, {}), { code: 'SPOOL_NOT_FOUND' });
  await assert.rejects(spool.update(randomUUID(), 1, {}), { code: 'SPOOL_NOT_FOUND' });
  await assert.rejects(spool.readBody(a.id, 1), { code: 'SPOOL_NOT_FOUND' });
  await assert.rejects(spool.commit({ ...tx(22, 1), entries: [{ queue: 0, meta: {} }] }), { code: 'SPOOL_INVALID' });
  await spool.remove(a.id, 1);
  await spool.remove(a.id, 1); // idempotent
  await assert.rejects(spool.update(a.id, 1, {}), { code: 'SPOOL_NOT_FOUND' }, 'a removed entry cannot be revived');
  await spool.close();
  await assert.rejects(spool.commit(tx(23, 1)), { code: 'SPOOL_CLOSED' });
});

test('a body just committed is read back from memory, byte-exact, and from disk once pushed out or after a restart', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  // 12,000 bytes kept; bodies of 2,900 (at most a quarter of the budget is kept per transaction).
  const { spool } = await openRecovered({ ...options(dir), bodyCacheBytes: 12_000 });
  const commits = Array.from({ length: 5 }, (_, i) => tx(i + 1, 1, bytes(2900, i + 1)));
  const [a, b] = commits;
  await spool.commit(a);
  assert.equal(await spool.readBody(a.id, 0), a.bodies[0], 'the committed buffer itself: no disk read');
  for (const c of commits.slice(1)) await spool.commit(c); // 14,500 bytes: a is pushed out
  const again = await spool.readBody(a.id, 0);
  assert.notEqual(again, a.bodies[0]);
  assert.deepEqual(again, a.bodies[0]);
  assert.equal(await spool.readBody(b.id, 0), b.bodies[0]);
  const big = tx(9, 1, bytes(3100, 9));
  await spool.commit(big);
  assert.notEqual(await spool.readBody(big.id, 0), big.bodies[0], 'over a quarter of the budget: not kept');
  // A finished transaction is gone from memory as from the index.
  await spool.remove(b.id, 1);
  await assert.rejects(spool.readBody(b.id, 0), /no transaction/);
  await spool.close();
  const { spool: reopened } = await openRecovered(options(dir));
  t.after(() => reopened.close());
  assert.deepEqual(await reopened.readBody(commits[4].id, 0), commits[4].bodies[0]);
});
