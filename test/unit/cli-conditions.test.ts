import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCondition, ConditionError, parseComparison, parseQueueId, parseTimestamp } from '../../src/cli/conditions';
import { encodeMessage, normalise } from '../../src/control/schema';
import { protocDecode, protocSkip } from './control-helpers';

const cond = (...pairs: Array<[string, string]>) => buildCondition(pairs.map(([flag, value]) => ({ flag, value })));

test('operators, ranges and the default "="', () => {
  const n = Number;
  assert.deepEqual(parseComparison('>3', n), [['gt', 3]]);
  assert.deepEqual(parseComparison('>=3', n), [['gte', 3]]);
  assert.deepEqual(parseComparison('<3', n), [['lt', 3]]);
  assert.deepEqual(parseComparison('<=3', n), [['lte', 3]]);
  assert.deepEqual(parseComparison('=3', n), [['eq', 3]]);
  assert.deepEqual(parseComparison('!=3', n), [['neq', 3]]);
  assert.deepEqual(parseComparison('3', n), [['eq', 3]]);
  assert.deepEqual(parseComparison('10..20', n), [['gte', 10], ['lte', 20]]);
});

test('halonctl example: --age ">3600" --state DEFER', () => {
  assert.deepEqual(cond(['age', '>3600'], ['state', 'DEFER']), {
    tss: [{ lt: { relative: -3600 } }],
    queues: [{ queue: 'DEFER' }],
  });
});

test('an age range is a receive-time range in the past; durations are accepted', () => {
  assert.deepEqual(cond(['age', '1h..2h']), { tss: [{ lte: { relative: -3600 }, gte: { relative: -7200 } }] });
  assert.deepEqual(cond(['age', '<=90']), { tss: [{ gte: { relative: -90 } }] });
});

test('--retrydelay compares the next retry time from now', () => {
  assert.deepEqual(cond(['retrydelay', '<60']), { retrytss: [{ lt: { relative: 60 } }] });
});

test('--ts takes ISO-8601 or epoch seconds', () => {
  assert.deepEqual(cond(['ts', '>2020-01-01T01:02:03Z']), { tss: [{ gt: { absolute: 1577840523 } }] });
  assert.deepEqual(cond(['ts', '1577840523..1577840600']), { tss: [{ gte: { absolute: 1577840523 }, lte: { absolute: 1577840600 } }] });
  assert.throws(() => parseTimestamp('yesterday'), /not an ISO-8601 time/);
});

test('repeating a flag is OR (more entries); different flags are AND (more fields)', () => {
  assert.deepEqual(cond(['recipientdomain', 'example.com'], ['state', 'DEFER'], ['state', 'active']), {
    recipients: [{ domain: { value: 'example.com' } }],
    queues: [{ queue: 'DEFER' }, { queue: 'ACTIVE' }],
  });
  assert.deepEqual(cond(['retrycount', '>=3'], ['retrycount', '0']), { retrycounts: [{ gte: { value: 3 } }, { eq: { value: 0 } }] });
});

test('states go to the field of their kind', () => {
  assert.deepEqual(cond(['state', 'HOLD'], ['state', 'sending']), { freezes: [{ freeze: 'HOLD' }], workings: [{ working: 'SENDING' }] });
  assert.throws(() => cond(['state', 'frozen']), /states are ACTIVE, DEFER, HOLD, UPDATE, SENDING, UNKNOWN/);
});

test('halonctl example: --metadata qid=1day --state HOLD --age ">86400"', () => {
  assert.deepEqual(cond(['state', 'HOLD'], ['age', '>86400'], ['metadata', 'qid=1day']), {
    freezes: [{ freeze: 'HOLD' }],
    tss: [{ lt: { relative: -86400 } }],
    metadatas: [{ value: { qid: { string: [{ value: '1day' }] } } }],
  });
  assert.throws(() => cond(['metadata', 'novalue']), /write key=value/);
});

test('addresses: user@domain, local part alone, the null sender, exclusion', () => {
  assert.deepEqual(cond(['sender', 'bob@example.org']), { senders: [{ localpart: { value: 'bob' }, domain: { value: 'example.org' } }] });
  assert.deepEqual(cond(['recipient', 'postmaster']), { recipients: [{ localpart: { value: 'postmaster' } }] });
  assert.deepEqual(cond(['sender', '<>']), { senders: [{ localpart: { value: '' }, domain: { value: '' } }] });
  assert.deepEqual(cond(['recipientdomain', '!example.com']), { recipients: [{ domain: { value: 'example.com' }, exclude: true }] });
  assert.throws(() => cond(['sender', 'bob@']), /user@domain/);
});

test('regular expressions where the field takes one', () => {
  assert.deepEqual(cond(['transportid', '/^mx-/']), { transportids: [{ value: '^mx-', type: 'REGEX' }] });
  assert.deepEqual(cond(['subject', '/invoice/i']), { subjects: [{ value: 'invoice', type: 'REGEX', caseless: true }] });
  assert.throws(() => cond(['recipientdomain', '/example/i']), /no caseless match/);
  assert.throws(() => cond(['jobid', '/(/']), ConditionError);
});

test('queue ids: uuid or uuid:n', () => {
  assert.deepEqual(parseQueueId('44815E44-05D3-11EA-B388-06F091CEB4DC:1'), { transaction: '44815e44-05d3-11ea-b388-06f091ceb4dc', queue: 1 });
  assert.deepEqual(cond(['id', '44815e44-05d3-11ea-b388-06f091ceb4dc']), { ids: [{ transaction: '44815e44-05d3-11ea-b388-06f091ceb4dc' }] });
  assert.throws(() => parseQueueId('44815e44-05d3-11ea-b388-06f091ceb4dc:0'), /counts from 1/);
  assert.throws(() => cond(['id', 'abc']), /--id "abc": "abc" is not a queue id/);
});

test('sizes take units; numbers must be whole', () => {
  assert.deepEqual(cond(['size', '>10MiB']), { sizes: [{ gt: { value: 10485760 } }] });
  assert.throws(() => cond(['retrycount', '>x']), /--retrycount ">x": "x" is not a whole number/);
  assert.throws(() => cond(['priority', '1.5']), ConditionError);
});

test('probability is one number in (0, 1]', () => {
  assert.deepEqual(cond(['probability', '0.25']), { probability: 0.25 });
  assert.throws(() => cond(['probability', '0']), /above 0 and at most 1/);
  assert.throws(() => cond(['probability', '0.5'], ['probability', '0.5']), /once/);
});

test('every condition encodes with the schema (enum names, nested maps)', () => {
  const c = cond(['state', 'DEFER'], ['metadata', 'k=v'], ['age', '>1'], ['id', '44815e44-05d3-11ea-b388-06f091ceb4dc:2'], ['probability', '0.5']);
  assert.deepEqual(normalise('Condition', c, 'json'), {
    queues: [{ queue: 'DEFER' }],
    ids: [{ transaction: '44815e44-05d3-11ea-b388-06f091ceb4dc', queue: '2' }],
    tss: [{ lt: { relative: -1 } }],
    metadatas: [{ value: { k: { string: [{ value: 'v' }] } } }],
    probability: 0.5,
  });
});

test('the §3.3 example condition, built from flags, decodes with protoc as documented', { skip: protocSkip() }, () => {
  const bytes = encodeMessage('QueueListRequest', { conditions: cond(['senderdomain', 'example.org'], ['state', 'DEFER']), paging: { limit: 10 } });
  assert.equal(bytes.toString('hex'), '0a150a0208015a0f120d0a0b6578616d706c652e6f72671a02100a');
  const text = protocDecode('QueueListRequest', bytes);
  assert.match(text, /queues \{\n\s+queue: DEFER\n\s+\}/);
  assert.match(text, /domain \{\n\s+value: "example.org"/);
});
