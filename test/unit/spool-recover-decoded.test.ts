/**
 * Recovery with an entry decoder (RecoverOptions: what the daemon uses at start-up): the same
 * transactions, entries and order as plain recovery, each entry's latest state decoded at most
 * once per TX record and once at the end for an UPDATE, rewrites and removes applied, metadata
 * left out on request; the index it leaves behind takes updates, removes, commits and body
 * reads like any other; and through the ingress a bad entry is reported and left in the spool.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { encode, type SpoolRecord } from '../../src/spool/record';
import { segmentName } from '../../src/spool/segment-file';
import { openSpool } from '../../src/spool/journal';
import type { RecoveredTransaction, SpoolOptions } from '../../src/spool/types';
import { SpoolIngress } from '../../src/daemon/ingress';
import { QueueStore } from '../../src/queue/store';
import { encodeEntry } from '../../src/queue/codec';
import { newQueueEntry } from '../../src/model/types';
import { createLogger } from '../../src/util/log';
import { dumpSpool } from '../../src/spool/inspect';
import { openRecovered, options, removeDir, tempDir } from './spool-helpers';

const [A, B, C, D, E]: string[] = Array.from({ length: 5 }, () => randomUUID());

function txRec(id: string, entries: Array<[number, object]>, body = `body of ${id}\r\n`): SpoolRecord {
  return { type: 'tx', id, meta: JSON.stringify({ id }), entries: entries.map(([queue, m]) => ({ queue, meta: JSON.stringify(m) })), bodies: [Buffer.from(body)] };
}

/** Two segments written record by record, exercising every replay rule. */
async function writeSpool(dir: string): Promise<void> {
  const first: SpoolRecord[] = [
    txRec(A, [[1, { s: 'a1' }], [2, { s: 'a2' }], [3, { s: 'a3' }]]),
    txRec(B, [[1, { s: 'b1' }]]),
    txRec(C, [[1, { s: 'c1' }], [2, { s: 'c2' }]]),
    { type: 'update', id: A, queue: 2, meta: JSON.stringify({ s: 'a2 second' }) },
    { type: 'remove', id: A, queue: 3 },
    { type: 'update', id: A, queue: 3, meta: JSON.stringify({ s: 'a3 after its remove: ignored' }) },
    { type: 'update', id: randomUUID(), queue: 1, meta: JSON.stringify({ s: 'unknown transaction' }) },
  ];
  const second: SpoolRecord[] = [
    { type: 'update', id: A, queue: 2, meta: JSON.stringify({ s: 'a2 third' }) },
    // A compaction rewrite of B: replaces it whole, keeps its place in commit order.
    txRec(B, [[1, { s: 'b1 rewritten' }]], 'B again\r\n'),
    { type: 'remove', id: C, queue: 1 },
    { type: 'remove', id: C, queue: 2 },
    // A repeated queue number: first position, later state.
    txRec(D, [[1, { s: 'd1' }], [2, { s: 'd2' }], [1, { s: 'd1 later' }]]),
    { type: 'remove', id: D, queue: 2 },
    txRec(E, [[7, { s: 'e7' }]]),
    { type: 'update', id: E, queue: 7, meta: JSON.stringify({ s: 'e7 updated' }) },
  ];
  await fsp.writeFile(path.join(dir, segmentName(1)), Buffer.concat(first.map((r) => encode(r))));
  await fsp.writeFile(path.join(dir, segmentName(2)), Buffer.concat(second.map((r) => encode(r))));
}

interface Decoded {
  decoded: unknown;
}

test('recover with a decoder loads what plain recovery loads, decoding each state at most once per record', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  await writeSpool(dir);
  // What plain recovery loads, read without opening the spool (opening may compact it).
  const expected = await dumpSpool(dir);
  assert.deepEqual(expected.map((x) => [x.id, x.entries]), [
    [A, [{ queue: 1, meta: { s: 'a1' } }, { queue: 2, meta: { s: 'a2 third' } }]],
    [B, [{ queue: 1, meta: { s: 'b1 rewritten' } }]],
    [D, [{ queue: 1, meta: { s: 'd1 later' } }]],
    [E, [{ queue: 7, meta: { s: 'e7 updated' } }]],
  ]);

  const calls: string[] = [];
  const spool = await openSpool(options(dir));
  const got: RecoveredTransaction<Decoded>[] = [];
  const report = await spool.recover<Decoded>((tx) => got.push(tx), {
    entry: (transaction, queue, text) => {
      const value = JSON.parse(text.toString('utf8')) as { s: string };
      calls.push(`${'ABCDE'[[A, B, C, D, E].indexOf(transaction)]}${queue}:${value.s}`);
      return { decoded: value };
    },
    meta: false,
  });
  t.after(() => spool.close());
  assert.deepEqual(got, expected.map((x) => ({ ...x, meta: null, entries: x.entries.map((e) => ({ queue: e.queue, meta: { decoded: e.meta } })) })));
  assert.equal(report.transactions, 4);
  assert.equal(report.entries, 5);
  // TX entries as read (superseded ones included); an UPDATE's state once, at the end.
  assert.deepEqual(calls.sort(), ['A1:a1', 'A2:a2', 'A2:a2 third', 'A3:a3', 'B1:b1', 'B1:b1 rewritten', 'C1:c1', 'C2:c2', 'D1:d1', 'D1:d1 later', 'D2:d2', 'E7:e7', 'E7:e7 updated'].sort());

  // The index left behind works like any other.
  assert.equal((await spool.readBody(B, 0)).toString(), 'B again\r\n');
  assert.equal((await spool.readBody(A, 0)).toString(), `body of ${A}\r\n`);
  await spool.remove(A, 1);
  await spool.update(A, 2, { s: 'a2 fourth' });
  await assert.rejects(spool.update(A, 1, { s: 'removed' }), /no live entry/);
  await spool.remove(D, 1);
  await spool.commit({ id: C, meta: {}, bodies: [Buffer.from('C anew\r\n')], entries: [{ queue: 1, meta: { s: 'c anew' } }] });
  await assert.rejects(spool.commit({ id: E, meta: {}, bodies: [], entries: [{ queue: 1, meta: {} }] }), /already exists/);
  await spool.close();

  const after = await openRecovered(options(dir));
  t.after(() => after.spool.close());
  // Compaction may have moved transactions meanwhile: compare by id.
  const byId = (list: Array<[string, unknown]>) => list.sort((x, y) => x[0].localeCompare(y[0]));
  assert.deepEqual(byId([...after.txs.values()].map((x) => [x.id, x.entries])), byId([
    [A, [{ queue: 2, meta: { s: 'a2 fourth' } }]],
    [B, [{ queue: 1, meta: { s: 'b1 rewritten' } }]],
    [E, [{ queue: 7, meta: { s: 'e7 updated' } }]],
    [C, [{ queue: 1, meta: { s: 'c anew' } }]],
  ]));
});

test('start-up through the ingress: every entry queued, a bad one reported and kept in the spool', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const opts: SpoolOptions = options(dir, { fsync: false });
  const good = (tx: string, queue: number, recipient: string) =>
    encodeEntry(newQueueEntry({ id: { transaction: tx, queue }, ts: 1_700_000_000_000, serverid: 'default', sender: 's@example.com', recipient, transportid: 'mx', size: 10, state: 'DEFER', retryts: 1_700_000_600_000 }));
  const first = await openRecovered(opts);
  const ids = [randomUUID(), randomUUID()];
  await first.spool.commit({ id: ids[0], meta: {}, bodies: [Buffer.from('x')], entries: [{ queue: 1, meta: good(ids[0], 1, 'a@one.example') }, { queue: 2, meta: { state: 'BOGUS' } }] });
  await first.spool.commit({ id: ids[1], meta: {}, bodies: [Buffer.from('y')], entries: [{ queue: 1, meta: good(ids[1], 1, 'b@two.example') }] });
  await first.spool.close();

  const errors: object[] = [];
  const log = createLogger({ level: 'error', destination: { write: (line: string) => errors.push(JSON.parse(line) as object) } });
  const spool = await openSpool(opts);
  const store = new QueueStore();
  const loaded = await new SpoolIngress(spool, store, log).recover();
  t.after(() => spool.close());
  assert.equal(loaded.entries, 2);
  assert.equal(loaded.corrupt, 1);
  assert.equal(store.size, 2);
  assert.equal(store.count('DEFER'), 2);
  assert.deepEqual(store.transaction(ids[0]).map((e) => e.recipient), ['a@one.example']);
  assert.equal(errors.length, 1);
  assert.match(JSON.stringify(errors[0]), /spool entry unreadable/);
  // The queue's field indexes come in the background; a query before that still sees all.
  assert.equal(store.indexing, true);
  assert.deepEqual(store.select('recipientdomain', 'two.example').map((e) => e.recipient), ['b@two.example']);
  // The bad entry is still in the spool (for an operator to look at), not queued.
  await spool.close();
  const again = await openRecovered(opts);
  t.after(() => again.spool.close());
  assert.deepEqual(again.txs.get(ids[0])?.entries.map((e) => e.queue), [1, 2]);
});
