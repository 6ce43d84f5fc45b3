/**
 * queueControl's update, unload and import over a real QueueStore with a recording spool:
 * what reaches the disk, what the post-delivery hook is told, what a queue file holds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { queueControl, type QueueControlOptions } from '../../src/control/queue';
import { decodeQueueFile, encodeQueueFile } from '../../src/control/queue-file';
import type { DeliveryHooks, PostDeliveryInput } from '../../src/hooks/delivery';
import { newQueueEntry, type AcceptedTransaction, type QueueEntry } from '../../src/model/types';
import { encodeEntry } from '../../src/queue/codec';
import { QueueStore } from '../../src/queue/store';
import type { Json } from '../../src/spool/types';

const TX = ['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222'];

function entry(tx: string, queue: number, recipient: string, extra: Partial<QueueEntry> = {}): QueueEntry {
  return newQueueEntry({ id: { transaction: tx, queue }, ts: 1_700_000_000_000, serverid: 'in', sender: 'a@s.example', recipient, transportid: 'mx', size: 10, ...extra });
}

function setup(extra: Partial<QueueControlOptions> = {}) {
  const store = new QueueStore();
  const writes: Array<{ id: string; meta: Json | null }> = [];
  const failRemove = new Set<string>();
  const committed: AcceptedTransaction[] = [];
  const opts: QueueControlOptions = {
    store,
    spool: {
      update: async (t, q, meta) => void writes.push({ id: `${t}:${q}`, meta: JSON.parse(JSON.stringify(meta)) as Json }),
      updateMany: async (items) => {
        for (const { transaction: t, queue: q, meta } of items) writes.push({ id: `${t}:${q}`, meta: JSON.parse(JSON.stringify(meta)) as Json });
        return items.map(() => undefined);
      },
      remove: async (t, q) => {
        if (failRemove.has(`${t}:${q}`)) throw new Error('disk on fire');
        writes.push({ id: `${t}:${q}`, meta: null });
      },
      readBody: async (_t, b) => Buffer.from(`Subject: body ${b}\r\n\r\nx\r\n`),
    },
    ingress: {
      commit: async (tx) => {
        committed.push(tx);
        for (const e of tx.entries) store.add(e);
      },
      hasSpace: () => true,
    },
    manager: { wake: () => undefined },
    config: () => ({ servers: [{ id: 'in', transport: 'mx' }], transportgroups: [{ id: 'g', transports: [{ id: 'mx' }] }] }) as never,
    hostname: 'mx.test',
    newId: () => '33333333-3333-4333-8333-333333333333',
    log: { info: () => undefined, error: () => undefined },
    ...extra,
  };
  return { store, writes, failRemove, committed, q: queueControl(opts) };
}

test('a hold writes for each entry exactly what the spool codec writes for the held entry', async () => {
  const { store, writes, q } = setup();
  const full = entry(TX[0], 1, 'r@d.example', { metadata: { k: 'v' }, quotas: ['q1'], tags: ['t'], dsn: { ret: 'FULL', notify: ['FAILURE'] }, retry: 2, priority: 1, state: 'DEFER', retryts: 1_700_000_900_000, localip: '192.0.2.1', remotemx: 'mx.d.example', remoteip: '192.0.2.9', grouping: '&g' });
  store.add(full);
  store.add(entry(TX[0], 2, 'r2@d.example'));
  const r = await q.update({ conditions: { recipients: [{ domain: { value: 'd.example' } }] }, move: { freeze: 'HOLD' } });
  assert.deepEqual(r, { affected: 2, working: 0 });
  const expected = JSON.parse(JSON.stringify(encodeEntry({ ...entry(TX[0], 1, 'r@d.example', { metadata: { k: 'v' }, quotas: ['q1'], tags: ['t'], dsn: { ret: 'FULL', notify: ['FAILURE'] }, retry: 2, priority: 1, retryts: 1_700_000_900_000, localip: '192.0.2.1', remotemx: 'mx.d.example', remoteip: '192.0.2.9', grouping: '&g' }), state: 'HOLD' })));
  assert.deepEqual(writes.find((w) => w.id === `${TX[0]}:1`)?.meta, expected);
  assert.equal(store.count('HOLD'), 2);
});

test('a defer with jitter gives each entry its own retry time within the window', async () => {
  let n = 0;
  const { store, writes, q } = setup({ now: () => 1_000_000, random: () => [0, 0.5, 0.999][n++ % 3] });
  for (let i = 1; i <= 3; i++) store.add(entry(TX[0], i, `r${i}@j.example`));
  await q.update({ conditions: {}, move: { queue: 'DEFER', retryts: { relative: 60 }, retrytsjitter: { value: 10 } } });
  const times = writes.map((w) => (w.meta as { retryts: number }).retryts).sort((a, b) => a - b);
  assert.deepEqual(times, [1_060_000, 1_065_000, 1_069_990]);
});

test('the postdelivery hook hears of every entry an update deleted or bounced, not of one whose removal failed', async () => {
  const calls: PostDeliveryInput[] = [];
  const hooks: DeliveryHooks = {
    postdelivery: async (input) => {
      calls.push(input);
      return { action: 'Default', options: {}, source: 'implicit' };
    },
  };
  const { store, failRemove, q } = setup({ deliveryHooks: () => hooks });
  store.add(entry(TX[0], 1, 'a@x.example', { retry: 4 }));
  store.add(entry(TX[0], 2, 'b@x.example'));
  store.add(entry(TX[1], 1, 'c@y.example', { sender: '' }));
  failRemove.add(`${TX[0]}:2`);
  const del = await q.update({ conditions: { recipients: [{ domain: { value: 'x.example' } }] }, action: { type: 'DELETE' } });
  assert.deepEqual(del, { affected: 1, working: 0 });
  assert.deepEqual(calls.map((c) => [c.message.recipient, c.arguments.action, c.arguments.retry, c.arguments.attempt, c.delivered]), [['a@x.example', 'DELETE', 4, undefined, false]]);
  assert.equal(store.find({ transaction: TX[0], queue: 2 })?.state, 'ACTIVE', 'the failed removal left the entry queued as it was');
  await q.update({ conditions: { recipients: [{ domain: { value: 'y.example' } }] }, action: { type: 'BOUNCE', dsn: { status: { class: 5, subject: 1, detail: 1 }, diagnosticcode: 'gone' } } });
  assert.deepEqual(calls[1].arguments.dsn, { action: 'failed', status: [5, 1, 1], diagnostictype: 'x-error', diagnosticcode: 'gone' });
  await q.update({ conditions: {}, move: { freeze: 'HOLD' } });
  assert.equal(calls.length, 2, 'a move runs no hook');
});

test('unload writes one queue file per transaction with the bodies its entries use, then removes them', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halyard-unload-'));
  try {
    const { store, writes, q } = setup({ unloadDir: dir });
    store.add(entry(TX[0], 1, 'a@u.example', { body: 1, state: 'DEFER', retryts: 5 }));
    store.add(entry(TX[0], 2, 'b@u.example'));
    store.add(entry(TX[1], 1, 'c@u.example'));
    store.add(entry(TX[1], 2, 'd@other.example'));
    const r = await q.unload({ conditions: { recipients: [{ domain: { value: 'u.example' } }] } });
    assert.deepEqual(r, { hqfpaths: [path.join(dir, `${TX[0]}.hqf`)], partial: 1, working: 0 });
    const f = decodeQueueFile(fs.readFileSync(r.hqfpaths![0]));
    assert.deepEqual(f.bodies.map(String), ['Subject: body 0\r\n\r\nx\r\n', 'Subject: body 1\r\n\r\nx\r\n']);
    assert.deepEqual(f.entries.map((e) => [e.recipient, e.state, e.body]), [['a@u.example', 'DEFER', 1], ['b@u.example', 'ACTIVE', 0]]);
    assert.deepEqual(writes.map((w) => [w.id, w.meta]), [[`${TX[0]}:1`, null], [`${TX[0]}:2`, null]]);
    assert.equal(store.size, 2);
    // Again, in part and frozen: the second file of that name gets a suffix only when taken.
    const p = await q.unload({ conditions: { recipients: [{ domain: { value: 'u.example' } }] }, partial: true, freeze: true });
    assert.deepEqual(p.hqfpaths, [path.join(dir, `${TX[1]}.hqf`)]);
    const g = decodeQueueFile(fs.readFileSync(p.hqfpaths![0]));
    assert.deepEqual([g.bodies.length, g.entries.map((e) => [e.recipient, e.state, e.body])], [1, [['c@u.example', 'HOLD', 0]]]);
    assert.deepEqual(fs.readdirSync(dir).sort(), [`${TX[0]}.hqf`, `${TX[1]}.hqf`], 'no temporary file left');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('import keeps the file ids unless reset, fills a missing transport, and refuses a queued id', async () => {
  const { store, committed, q } = setup({ now: () => 1_800_000_000_000 });
  const file = { transaction: TX[0], ts: 5, serverid: '', sender: 'a@s.example', bodies: [Buffer.from('Subject: x\n\nbare LF\n')], entries: [entry(TX[0], 4, 'z@i.example', { transportid: '', serverid: '', retry: 7, state: 'HOLD' })] };
  const r = await q.import({ data: { hqf: encodeQueueFile(file) } });
  assert.deepEqual(r, { transactionid: TX[0] });
  const e = store.find({ transaction: TX[0], queue: 4 })!;
  assert.deepEqual([e.transportid, e.serverid, e.state, e.retry, e.ts], ['mx', 'in', 'HOLD', 7, 1_700_000_000_000]);
  assert.equal(committed[0].bodies[0].toString(), 'Subject: x\r\n\r\nbare LF\r\n');
  assert.equal(e.size, committed[0].bodies[0].length);
  await assert.rejects(async () => q.import({ data: { hqf: encodeQueueFile(file) } }), /queued already/);
  const copy = await q.import({ data: { hqf: encodeQueueFile(file) }, reset: { transactionid: { value: true }, ts: { value: true }, retrycount: { value: true } } });
  const c = store.find({ transaction: copy.transactionid!, queue: 4 })!;
  assert.deepEqual([copy.transactionid, c.retry, c.ts], ['33333333-3333-4333-8333-333333333333', 0, 1_800_000_000_000]);
});
