import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileCondition, narrowing } from '../../src/control/condition';
import { queueControl } from '../../src/control/queue';
import { buildCondition } from '../../src/cli/conditions';
import { ControlError } from '../../src/control/context';
import { decodeMessage, encodeMessage } from '../../src/control/schema';
import type * as M from '../../src/control/messages';
import { newQueueEntry, type QueueEntry } from '../../src/model/types';
import { QueueStore } from '../../src/queue/store';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
let n = 0;

function entry(f: Partial<QueueEntry> & { recipient: string; sender?: string }): QueueEntry {
  n++;
  return newQueueEntry({
    id: { transaction: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, queue: 1 },
    ts: NOW - 60_000,
    serverid: 'inbound',
    sender: 'alice@Sender.example',
    transportid: 'mx',
    size: 1000,
    ...f,
  });
}

const pick = (c: M.Condition, entries: QueueEntry[]) => entries.filter(compileCondition(c, NOW, () => 0.5)).map((e) => e.recipient);
/** Through the wire form, as the daemon sees it (zero values left out, oneofs named). */
const wire = (c: M.Condition) => decodeMessage<M.Condition>('Condition', encodeMessage('Condition', c));

const A = entry({ recipient: 'a@one.example', metadata: { qid: '1day', score: '7.5' }, tags: ['vip'], retry: 3 });
const B = entry({ recipient: 'b@TWO.example', state: 'DEFER', retryts: NOW + 3600_000, size: 50_000, priority: 1 });
const C = entry({ recipient: 'c@one.example', sender: '', state: 'HOLD', ts: NOW - 7200_000, transportid: 'out', jobid: 'job-7' });
const ALL = [A, B, C];

test('an empty condition matches everything', () => {
  assert.deepEqual(pick({}, ALL), ['a@one.example', 'b@TWO.example', 'c@one.example']);
});

test('OR within a field, AND across fields, exclude per item', () => {
  assert.deepEqual(pick({ recipients: [{ domain: { value: 'one.example' } }, { domain: { value: 'two.example' } }] }, ALL).length, 3);
  assert.deepEqual(pick({ recipients: [{ domain: { value: 'one.example' } }], queues: [{ queue: 'ACTIVE' }] }, ALL), ['a@one.example']);
  assert.deepEqual(pick({ recipients: [{ domain: { value: 'one.example' }, exclude: true }] }, ALL), ['b@TWO.example']);
  assert.deepEqual(pick({ transportids: [{ value: 'mx', exclude: true }] }, ALL), ['c@one.example']);
});

test('states: queue, freeze, working and hold; ACTIVE survives the wire as enum value 0', () => {
  assert.deepEqual(pick(wire({ queues: [{ queue: 'ACTIVE' }] }), ALL), ['a@one.example']);
  assert.deepEqual(pick({ queues: [{ queue: 'DEFER' }] }, ALL), ['b@TWO.example']);
  assert.deepEqual(pick(wire({ freezes: [{ freeze: 'HOLD' }] }), ALL), ['c@one.example']);
  assert.deepEqual(pick({ hold: { value: true } }, ALL), ['c@one.example']);
  assert.deepEqual(pick({ workings: [{ working: 'SENDING' }] }, ALL), []);
});

test('string matches: exact, regex, domains caseless, StringMatch partial and caseless, null sender', () => {
  assert.deepEqual(pick({ jobids: [{ value: 'job-\\d', type: 'REGEX' }] }, ALL), ['c@one.example']);
  assert.deepEqual(pick({ recipients: [{ domain: { value: 'two.EXAMPLE' } }] }, ALL), ['b@TWO.example']);
  assert.deepEqual(pick({ recipients: [{ domain: { value: '^TWO\\.', type: 'REGEX' } }] }, ALL), ['b@TWO.example']);
  assert.deepEqual(pick({ senders: [{ localpart: { value: 'ALI', type: 'PARTIAL', caseless: true } }] }, ALL), ['a@one.example', 'b@TWO.example']);
  assert.deepEqual(pick({ senders: [{ localpart: { value: 'ali', type: 'PARTIAL' } }] }, ALL), ['a@one.example', 'b@TWO.example']);
  assert.deepEqual(pick({ senders: [{ localpart: { value: 'ALICE' } }] }, ALL), []);
  assert.deepEqual(pick(wire(buildCondition([{ flag: 'sender', value: '<>' }])), ALL), ['c@one.example']);
  assert.throws(() => compileCondition({ jobids: [{ value: '(', type: 'REGEX' }] }, NOW), ControlError);
});

test('numbers: every comparator of one Compare must hold; sizes, retry counts, priorities', () => {
  assert.deepEqual(pick({ sizes: [{ gt: { value: 999 }, lt: { value: 1001 } }] }, ALL), ['a@one.example', 'c@one.example']);
  assert.deepEqual(pick({ retrycounts: [{ gte: { value: 3 } }] }, ALL), ['a@one.example']);
  assert.deepEqual(pick({ priorities: [{ eq: { value: 1 } }] }, ALL), ['b@TWO.example']);
  assert.deepEqual(pick({ sizes: [{ neq: { value: 1000 } }] }, ALL), ['b@TWO.example']);
  assert.throws(() => compileCondition({ sizes: [{}] }, NOW), /at least one of/);
});

test('times: relative to now and absolute, as the CLI builds them', () => {
  assert.deepEqual(pick(buildCondition([{ flag: 'age', value: '>1h' }]), ALL), ['c@one.example']);
  assert.deepEqual(pick({ tss: [{ gt: { absolute: (NOW - 3600_000) / 1000 } }] }, ALL), ['a@one.example', 'b@TWO.example']);
  // Next retry in more than 30 minutes: only the deferred one (ACTIVE entries are due now).
  assert.deepEqual(pick(buildCondition([{ flag: 'retrydelay', value: '>30m' }]), ALL), ['b@TWO.example']);
});

test('metadata: string and number matches per key, missing keys do not match; tags and quotas', () => {
  assert.deepEqual(pick(buildCondition([{ flag: 'metadata', value: 'qid=1day' }]), ALL), ['a@one.example']);
  assert.deepEqual(pick({ metadatas: [{ value: { score: { double: [{ gt: { value: 7 } }] } } }] }, ALL), ['a@one.example']);
  assert.deepEqual(pick({ metadatas: [{ value: { qid: { string: [{ value: '1day' }] } }, exclude: true }] }, ALL), ['b@TWO.example', 'c@one.example']);
  assert.deepEqual(pick({ tags: [{ value: 'vip' }] }, ALL), ['a@one.example']);
  assert.deepEqual(pick({ quotas: [{ value: 'q' }] }, ALL), []);
});

test('probability samples the matches with the random source', () => {
  let i = 0;
  const alternating = () => (i++ % 2 === 0 ? 0.1 : 0.9);
  assert.equal(ALL.filter(compileCondition({ probability: 0.5 }, NOW, alternating)).length, 2);
  assert.equal(ALL.filter(compileCondition({ probability: 1 }, NOW, () => 0.99)).length, 3);
});

test('narrowing picks an indexed exact field only when every match must have it', () => {
  assert.deepEqual(narrowing({ recipients: [{ domain: { value: 'one.example' } }] }), { field: 'recipientdomain', value: 'one.example' });
  assert.equal(narrowing({ recipients: [{ domain: { value: 'one.example' } }, { domain: { value: 'two.example' } }] }), undefined);
  assert.equal(narrowing({ recipients: [{ domain: { value: 'one.example' }, exclude: true }] }), undefined);
  assert.equal(narrowing({ recipients: [{ domain: { value: 'one', type: 'REGEX' } }] }), undefined);
  assert.deepEqual(narrowing({ jobids: [{ value: 'job-7' }] }), { field: 'jobid', value: 'job-7' });
});

test('update: the spool is written before the store changes, SENDING entries count as working', async () => {
  const store = new QueueStore();
  const entries = [entry({ recipient: 'x@d.example' }), entry({ recipient: 'y@d.example' }), entry({ recipient: 'z@d.example' })];
  for (const e of entries) store.add(e);
  store.setState(entries[2], 'SENDING');
  const writes: string[] = [];
  let woke = 0;
  const q = queueControl({
    store,
    spool: {
      update: async (_tx, _q, meta) => {
        const m = meta as { recipient: string; state: string };
        // At write time the store still holds the entry out of reach, not yet in HOLD.
        assert.equal(store.count('HOLD'), 0);
        writes.push(`${m.recipient}=${m.state}`);
      },
      updateMany: async (items) => {
        assert.equal(store.count('HOLD'), 0);
        for (const { meta } of items) writes.push(`${(meta as { recipient: string }).recipient}=${(meta as { state: string }).state}`);
        return items.map(() => undefined);
      },
      remove: async () => undefined,
      readBody: async () => Buffer.alloc(0),
    },
    ingress: { commit: async () => undefined, hasSpace: () => true },
    manager: { wake: () => void woke++ },
    config: () => ({ transportgroups: [] }) as never,
    hostname: 'mx.test',
    newId: () => 'id',
    log: { info: () => undefined, error: () => undefined },
    now: () => NOW,
  });
  await assert.rejects(async () => q.update({ conditions: { recipients: [{ domain: { value: 'd.example' } }] } }), /changes nothing/);
  assert.equal(writes.length, 0);
  const res = await q.update({ conditions: { recipients: [{ domain: { value: 'd.example' } }] }, move: { freeze: 'HOLD' } });
  assert.deepEqual(res, { affected: 2, working: 1 });
  assert.deepEqual(writes.sort(), ['x@d.example=HOLD', 'y@d.example=HOLD']);
  assert.equal(store.count('HOLD'), 2);
  assert.equal(entries[2].state, 'SENDING');
  const back = await q.update(decodeMessage<M.QueueUpdateRequest>('QueueUpdateRequest', encodeMessage('QueueUpdateRequest', { conditions: { freezes: [{ freeze: 'HOLD' }] }, move: { queue: 'ACTIVE' } })));
  assert.equal(back.affected, 2);
  assert.equal(store.count('ACTIVE'), 2);
  assert.equal(woke, 1);
  const deleted = await q.update(decodeMessage<M.QueueUpdateRequest>('QueueUpdateRequest', encodeMessage('QueueUpdateRequest', { conditions: { queues: [{ queue: 'ACTIVE' }] }, actiontype: 'DELETE' })));
  assert.equal(deleted.affected, 2, 'DELETE is enum value 0 and still understood');
  assert.equal(store.size, 1);
});

test('group-by: the store-index answer and the scanning answer agree, entries without a value form a group', async () => {
  const store = new QueueStore();
  for (const r of ['a@One.example', 'b@one.example', 'c@two.example']) store.add(entry({ recipient: r }));
  store.add(entry({ recipient: 'd@two.example', jobid: 'job-1' }));
  const q = queueControl({
    store,
    spool: { update: async () => undefined, updateMany: async (items) => items.map(() => undefined), remove: async () => undefined, readBody: async () => Buffer.alloc(0) },
    ingress: { commit: async () => undefined, hasSpace: () => true },
    manager: { wake: () => undefined },
    config: () => ({ transportgroups: [] }) as never,
    hostname: 'mx.test',
    newId: () => 'id',
    log: { info: () => undefined, error: () => undefined },
    now: () => NOW,
  });
  const everything = { sizes: [{ gte: { value: 0 } }] };
  for (const by of [{ recipientdomain: true }, { jobid: true }]) {
    const fast = await q.groupBy({ groupbys: [by] });
    const scanned = await q.groupBy({ groupbys: [by], conditions: everything });
    assert.deepEqual(fast, scanned);
  }
  const domains = await q.groupBy({ groupbys: [{ recipientdomain: true }] });
  assert.deepEqual(domains.items?.map((i) => [i.groupbys, i.total]), [[['one.example'], 2], [['two.example'], 2]]);
  const jobs = await q.groupBy({ groupbys: [{ jobid: true }] });
  assert.deepEqual(jobs.items?.map((i) => [i.groupbys, i.total]), [[[''], 3], [['job-1'], 1]]);
  const bytes = await q.groupBy({ groupbys: [{ transportid: true }], return: 'BYTES', counts: [{ queue: 'ACTIVE' }] });
  assert.deepEqual(bytes.items, [{ groupbys: ['mx'], counts: [4], total: 4000 }]);
});
