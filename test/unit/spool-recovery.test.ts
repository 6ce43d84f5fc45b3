/**
 * Recovery after damage: a segment cut anywhere loads exactly the transactions whose TX record
 * is whole; the three spool.corrupt modes do what they say; damage in one segment does not hide
 * later segments; the read-only inspector shows what recovery would load and changes nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { scanSegment } from '../../src/spool/segment-file';
import { dumpSpool, inspectSpool, readSpoolBody } from '../../src/spool/inspect';
import type { SpoolCommit, SpoolOptions } from '../../src/spool/types';
import { bytes, openRecovered, options, prng, removeDir, segmentFiles, tempDir } from './spool-helpers';

function tx(n: number, size: number): SpoolCommit {
  return { id: randomUUID(), meta: { n }, bodies: [bytes(size, n)], entries: [{ queue: 1, meta: { n, state: 'ACTIVE' } }] };
}

interface Laid {
  id: string;
  type: string;
  off: number;
  end: number;
}

/** The records of one segment file, in order. */
async function layout(file: string): Promise<Laid[]> {
  const out: Laid[] = [];
  await scanSegment(file, (rec, off, len) => out.push({ id: rec.id, type: rec.type, off, end: off + len }));
  return out;
}

/** A spool with `n` transactions committed one after another into a single segment. */
async function build(dir: string, n: number): Promise<{ commits: SpoolCommit[]; file: string }> {
  const { spool } = await openRecovered(options(dir, { fsync: false }));
  const commits: SpoolCommit[] = [];
  for (let i = 0; i < n; i++) {
    const c = tx(i, 200 + ((i * 997) % 3000));
    await spool.commit(c);
    commits.push(c);
  }
  await spool.close();
  const segs = await segmentFiles(dir);
  return { commits, file: path.join(dir, segs[segs.length - 1]) };
}

function logger(): { warns: object[]; log: NonNullable<SpoolOptions['log']> } {
  const warns: object[] = [];
  return { warns, log: { info() {}, warn: (o) => warns.push(o), error() {} } };
}

test('a segment cut at 50 random offsets loads exactly the whole TX records, never a half one', async (t) => {
  const src = await tempDir();
  const work = await tempDir();
  t.after(() => Promise.all([removeDir(src), removeDir(work)]));
  const { file } = await build(src, 30);
  const image = await fsp.readFile(file);
  const records = await layout(file);
  const rnd = prng(2024);
  const cuts = Array.from({ length: 50 }, (_, i) => (i < 5 ? records[i * 5].end : Math.floor(rnd() * image.length)));
  for (const cut of cuts) {
    await removeDir(work);
    await fsp.mkdir(work);
    const seg = path.join(work, path.basename(file));
    await fsp.writeFile(seg, image.subarray(0, cut));
    const { spool, txs, report } = await openRecovered(options(work, { fsync: false }));
    await spool.close();
    const whole = records.filter((r) => r.end <= cut);
    assert.deepEqual([...txs.keys()], whole.map((r) => r.id), `cut at ${cut}`);
    const boundary = whole.length ? whole[whole.length - 1].end : 0;
    assert.equal(report.corrupt.length, cut === boundary ? 0 : 1, `cut at ${cut}`);
    if (cut !== boundary) assert.deepEqual(report.corrupt[0], { file: seg, offset: boundary, reason: 'torn record: the file ends inside it', action: 'unlink' });
    if (whole.length > 0) assert.equal((await fsp.stat(seg)).size, boundary, 'torn tail truncated away');
    else assert.equal((await segmentFiles(work)).includes(path.basename(seg)), false, 'a segment left with nothing is reclaimed');
  }
});

test('a cut through an UPDATE or REMOVE record loses only that change', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir, { fsync: false }));
  const a: SpoolCommit = { id: randomUUID(), meta: {}, bodies: [Buffer.from('x')], entries: [{ queue: 1, meta: 'v0' }, { queue: 2, meta: 'v0' }] };
  await spool.commit(a);
  await spool.update(a.id, 1, 'v1');
  await spool.remove(a.id, 2);
  await spool.close();
  const file = path.join(dir, (await segmentFiles(dir))[0]);
  const [, update, remove] = await layout(file);
  assert.deepEqual([update.type, remove.type], ['update', 'remove']);
  const image = await fsp.readFile(file);

  const expectations: Array<[number, unknown]> = [
    [remove.end - 1, [{ queue: 1, meta: 'v1' }, { queue: 2, meta: 'v0' }]],
    [update.end - 3, [{ queue: 1, meta: 'v0' }, { queue: 2, meta: 'v0' }]],
    [remove.end, [{ queue: 1, meta: 'v1' }]],
  ];
  for (const [cut, entries] of expectations) {
    for (const f of await fsp.readdir(dir)) if (f !== 'lock') await fsp.unlink(path.join(dir, f));
    await fsp.writeFile(file, image.subarray(0, cut));
    const { spool: s, txs } = await openRecovered(options(dir, { fsync: false }));
    await s.close();
    assert.deepEqual(txs.get(a.id)?.entries, entries, `cut at ${cut}`);
  }
});

/** Flip one byte inside the payload of the record at `index`; returns that record's offset. */
async function damage(file: string, index: number): Promise<number> {
  const rec = (await layout(file))[index];
  const fh = await fsp.open(file, 'r+');
  const at = rec.off + 20;
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, at);
  b[0] ^= 0x40;
  await fh.write(b, 0, 1, at);
  await fh.close();
  return rec.off;
}

test('spool.corrupt: unlink truncates at the last good record', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { commits, file } = await build(dir, 10);
  const offset = await damage(file, 4);
  const { warns, log } = logger();
  const { spool, txs, report } = await openRecovered(options(dir, { corrupt: 'unlink', log }));
  assert.deepEqual([...txs.keys()], commits.slice(0, 4).map((c) => c.id));
  assert.deepEqual(report.corrupt, [{ file, offset, reason: 'checksum mismatch', action: 'unlink' }]);
  assert.equal(warns.length, 1);
  assert.equal((await fsp.stat(file)).size, offset);
  assert.deepEqual((await fsp.readdir(dir)).filter((f) => f.includes('.corrupt-')), []);
  const later = tx(99, 100);
  await spool.commit(later);
  await spool.close();
  const { spool: again, txs: all, report: clean } = await openRecovered(options(dir));
  await again.close();
  assert.deepEqual(clean.corrupt, []);
  assert.deepEqual([...all.keys()], [...commits.slice(0, 4).map((c) => c.id), later.id]);
});

test('spool.corrupt: rename keeps the bad tail as <segment>.corrupt-<offset>, then truncates', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { commits, file } = await build(dir, 10);
  const offset = await damage(file, 6);
  const image = await fsp.readFile(file);
  const { spool, txs, report } = await openRecovered(options(dir, { corrupt: 'rename' }));
  await spool.close();
  assert.deepEqual([...txs.keys()], commits.slice(0, 6).map((c) => c.id));
  assert.equal(report.corrupt[0].action, 'rename');
  assert.equal((await fsp.stat(file)).size, offset);
  assert.ok((await fsp.readFile(`${file}.corrupt-${offset}`)).equals(image.subarray(offset)));
});

test('spool.corrupt: ignore leaves the file as is, never loads the bad bytes, writes elsewhere', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { commits, file } = await build(dir, 10);
  // Damage near the end, so the segment stays mostly live and is not compacted away.
  const offset = await damage(file, 8);
  const image = await fsp.readFile(file);
  const { spool, txs, report } = await openRecovered(options(dir, { corrupt: 'ignore' }));
  assert.deepEqual([...txs.keys()], commits.slice(0, 8).map((c) => c.id));
  assert.deepEqual(report.corrupt, [{ file, offset, reason: 'checksum mismatch', action: 'ignore' }]);
  const later = tx(98, 100);
  await spool.commit(later);
  await spool.close();
  assert.ok((await fsp.readFile(file)).equals(image), 'damaged segment untouched');
  const { spool: again, txs: all, report: still } = await openRecovered(options(dir, { corrupt: 'ignore' }));
  await again.close();
  assert.equal(still.corrupt.length, 1, 'reported again on every start');
  assert.deepEqual([...all.keys()], [...commits.slice(0, 8).map((c) => c.id), later.id]);
});

test('damage in one segment does not hide the segments after it', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir, { fsync: false, segmentSize: 16 * 1024 }));
  const commits: SpoolCommit[] = [];
  for (let i = 0; i < 24; i++) {
    commits.push(tx(i, 3000));
    await spool.commit(commits[i]);
  }
  await spool.close();
  const segs = await segmentFiles(dir);
  assert.ok(segs.length >= 4, `${segs.length} segments`);
  const victim = path.join(dir, segs[1]);
  const lostFrom = (await layout(victim))[1].id;
  await damage(victim, 1);
  const wholeBefore = (await layout(victim)).length;
  const { spool: again, txs, report } = await openRecovered(options(dir, { corrupt: 'unlink' }));
  await again.close();
  assert.equal(report.corrupt.length, 1);
  assert.equal(wholeBefore, 1, 'only the record before the damage is readable');
  assert.equal(txs.has(lostFrom), false);
  assert.ok(txs.has(commits[commits.length - 1].id), 'transactions in later segments are loaded');
  const firstOfSeg3 = (await layout(path.join(dir, segs[2])))[0].id;
  assert.ok(txs.has(firstOfSeg3));
});

test('the inspector lists what recovery would load, without a lock and without changing a byte', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const { spool } = await openRecovered(options(dir));
  const a: SpoolCommit = { id: randomUUID(), meta: { m: 1 }, bodies: [Buffer.from('body-a')], entries: [{ queue: 1, meta: 'x' }, { queue: 2, meta: 'y' }] };
  const b = tx(3, 10);
  await spool.commit(a);
  await spool.commit(b);
  await spool.update(a.id, 2, 'y2');
  await spool.remove(b.id, 1);
  // While the spool is open (locked), with a torn record appended at the end.
  const seg = path.join(dir, (await segmentFiles(dir)).at(-1)!);
  await fsp.appendFile(seg, Buffer.from('HJR1\x01\xff\xff'));
  const before = await fsp.readFile(seg);
  const dump = await dumpSpool(dir);
  assert.deepEqual(dump, [{ id: a.id, meta: { m: 1 }, bodySizes: [6], entries: [{ queue: 1, meta: 'x' }, { queue: 2, meta: 'y2' }] }]);
  const seen = await inspectSpool(dir);
  assert.equal(seen.problems.length, 1);
  assert.ok((await readSpoolBody(dir, a.id, 0))?.equals(Buffer.from('body-a')));
  assert.equal(await readSpoolBody(dir, b.id, 0), null);
  assert.ok((await fsp.readFile(seg)).equals(before), 'inspector changed nothing');
  await spool.close();
});
