/**
 * Loading the queue at start-up (QueueStore.loadTransaction) and building the field indexes
 * after it (buildIndexes): entries are placed and counted at once; the indexes, built a slice
 * at a time while entries are added, moved and deleted, end up holding exactly the live
 * entries; a query during the build answers completely; a transaction loaded twice is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fieldValue, INDEXED_FIELDS, QueueStore, type QueueField } from '../../src/queue/store';
import type { QueueEntry, QueueState } from '../../src/model/types';

const STATES: QueueState[] = ['ACTIVE', 'DEFER', 'HOLD'];

let seq = 0;
function entry(tx: string, queue: number, n: number): QueueEntry {
  seq++;
  const state = STATES[n % 3];
  return {
    id: { transaction: tx, queue },
    ts: 1_700_000_000_000 + n,
    serverid: 'mx',
    sender: 's@example.com',
    senderaddress: { localpart: 's', domain: 'example.com' },
    recipient: `r${seq}@d${n % 7}.example`,
    recipientaddress: { localpart: `r${seq}`, domain: n % 11 === 0 ? `D${n % 7}.Example` : `d${n % 7}.example` },
    transportid: 'out',
    tenantid: n % 5 === 0 ? `t${n % 2}` : '',
    jobid: n % 4 === 0 ? 'job' : '',
    priority: 0,
    metadata: {},
    quotas: n % 6 === 0 ? ['q'] : [],
    tags: [],
    dsn: {},
    state,
    retry: 0,
    retryts: state === 'DEFER' ? 2_000_000_000_000 + n : 0,
    body: 0,
    size: 100 + n,
    ...(n % 9 === 0 ? { localip: '', remotemx: `mx${n % 3}.example`, remoteip: '192.0.2.1', grouping: '' } : {}),
  };
}

function transactions(count: number, prefix: string): QueueEntry[][] {
  return Array.from({ length: count }, (_, i) => {
    const tx = `${prefix}${String(i).padStart(8, '0')}`;
    return Array.from({ length: 1 + (i % 3) }, (_, q) => entry(tx, q + 1, i * 3 + q));
  });
}

/** Every indexed field answers select and groupBy exactly as a scan of the live entries would. */
function assertIndexesExact(store: QueueStore): void {
  const live = [...store.values()];
  for (const field of INDEXED_FIELDS as QueueField[]) {
    const expected = new Map<string, QueueEntry[]>();
    for (const e of live) {
      const raw = fieldValue(e, field);
      const v = field === 'recipientdomain' || field === 'remotemx' ? raw.toLowerCase() : raw;
      if (v === '') continue;
      expected.set(v, [...(expected.get(v) ?? []), e]);
    }
    const groups = store.groupBy(field);
    assert.deepEqual(new Map([...groups].sort()), new Map([...expected].map(([v, l]) => [v, l.length] as [string, number]).sort()), `groupBy ${field}`);
    for (const [v, list] of expected) {
      const got = store.select(field, v);
      assert.equal(got.length, list.length, `select ${field}=${v}`);
      assert.deepEqual(new Set(got), new Set(list), `select ${field}=${v}`);
    }
  }
}

test('loaded transactions are placed and counted at once; loading one twice is refused', () => {
  const store = new QueueStore();
  const txs = transactions(300, 'a');
  for (const list of txs) store.loadTransaction(list);
  const all = txs.flat();
  assert.equal(store.size, all.length);
  for (const st of STATES) assert.equal(store.count(st), all.filter((e) => e.state === st).length, st);
  assert.deepEqual([...store.active()].every((e) => e.state === 'ACTIVE'), true);
  assert.equal([...store.active()].length, store.count('ACTIVE'));
  assert.deepEqual(store.quota('q'), { count: all.filter((e) => e.quotas.length > 0).length, bytes: all.filter((e) => e.quotas.length > 0).reduce((n, e) => n + e.size, 0) });
  assert.deepEqual(store.transaction(txs[5][0].id.transaction), txs[5]);
  assert.equal(store.nextRetryTs(), Math.min(...all.filter((e) => e.state === 'DEFER').map((e) => e.retryts)));
  assert.throws(() => store.loadTransaction([entry(txs[7][0].id.transaction, 9, 1)]), /loaded twice/);
});

test('indexes built in slices while the queue changes hold exactly the live entries', async () => {
  const store = new QueueStore();
  const txs = transactions(2000, 'b');
  for (const list of txs) store.loadTransaction(list);
  assert.equal(store.indexing, true);
  const building = store.buildIndexes(97, 0);
  // While it runs: new entries, deletes of loaded entries (visited and not yet visited), moves.
  let turn = 0;
  const extra = transactions(200, 'c');
  while (store.indexing && turn < 10_000) {
    const i = turn++;
    if (i < extra.length) for (const e of extra[i]) store.add(e);
    const victim = txs[(i * 37) % txs.length][0];
    if (store.has(victim)) store.delete(victim);
    const mover = txs[(i * 53 + 11) % txs.length].at(-1)!;
    if (store.has(mover)) store.update(mover, { remotemx: `moved${i % 4}.example`, grouping: `g${i % 2}` });
    if (i % 5 === 0) store.delete(extra[Math.max(0, i - 3) % extra.length][0]);
    await new Promise((r) => setImmediate(r));
  }
  await building;
  assert.equal(store.indexing, false);
  assertIndexesExact(store);
});

test('a query during the build answers completely without waiting for it', async () => {
  const store = new QueueStore();
  const txs = transactions(500, 'd');
  for (const list of txs) store.loadTransaction(list);
  const building = store.buildIndexes(10, 0);
  assert.equal(store.indexing, true);
  const want = [...store.values()].filter((e) => e.recipientaddress.domain.toLowerCase() === 'd3.example');
  assert.ok(want.length > 0);
  assert.deepEqual(new Set(store.select('recipientdomain', 'D3.example')), new Set(want));
  const groups = store.groupBy('recipientdomain');
  assert.equal(groups.get('d3.example'), want.length);
  assert.equal([...groups.values()].reduce((a, b) => a + b, 0), store.size);
  assert.equal(store.indexing, true, 'the query scanned; the build goes on in the background');
  await building;
  assertIndexesExact(store);
  assert.deepEqual(new Set(store.select('recipientdomain', 'D3.example')), new Set(want));
  assert.deepEqual(store.groupBy('recipientdomain'), groups);
});
