/**
 * The in-memory queue: pickup order (priority lanes, FIFO), DEFER ordered by next-retry time,
 * HOLD never offered for pickup, counts and the field index kept right through every change,
 * and what spool recovery loads (SENDING comes back ACTIVE).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QueueStore, QUEUE_FIELDS, type QueueField } from '../../src/queue/store';
import { MinHeap } from '../../src/queue/heap';
import { decodeEntry, encodeEntry } from '../../src/queue/codec';
import type { QueueEntry, QueueState } from '../../src/model/types';

let seq = 0;
function entry(over: Partial<QueueEntry> & { tx?: string; q?: number } = {}): QueueEntry {
  const { tx, q, ...rest } = over;
  seq++;
  return {
    id: { transaction: tx ?? `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`, queue: q ?? 1 },
    ts: 1_700_000_000_000,
    serverid: 'mx',
    sender: 'a@example.com',
    senderaddress: { localpart: 'a', domain: 'example.com' },
    recipient: `r${seq}@example.org`,
    recipientaddress: { localpart: `r${seq}`, domain: 'Example.org' },
    transportid: 'out',
    tenantid: '',
    jobid: '',
    priority: 0,
    metadata: {},
    quotas: [],
    tags: [],
    dsn: {},
    state: 'ACTIVE',
    retry: 0,
    retryts: 0,
    body: 0,
    size: 100,
    ...rest,
  };
}

function counts(s: QueueStore): Record<QueueState, number> {
  return { ACTIVE: s.count('ACTIVE'), DEFER: s.count('DEFER'), HOLD: s.count('HOLD'), SENDING: s.count('SENDING'), UPDATE: s.count('UPDATE') };
}

test('ACTIVE is picked priority 1 first, each lane oldest first; HOLD and DEFER are not offered', () => {
  const s = new QueueStore();
  const a = entry();
  const b = entry({ priority: 1 });
  const c = entry();
  const h = entry({ state: 'HOLD' });
  const d = entry({ state: 'DEFER', retryts: 5 });
  const e = entry({ priority: 1 });
  for (const x of [a, b, c, h, d, e]) s.add(x);
  assert.deepEqual([...s.active()], [b, e, a, c]);
  assert.deepEqual(counts(s), { ACTIVE: 4, DEFER: 1, HOLD: 1, SENDING: 0, UPDATE: 0 });
  assert.equal(s.size, 6);
});

test('moving entries while walking ACTIVE is safe, and SENDING entries leave the pickup order', () => {
  const s = new QueueStore();
  const xs = [entry(), entry(), entry()];
  for (const x of xs) s.add(x);
  const walked: QueueEntry[] = [];
  for (const x of s.active()) {
    walked.push(x);
    s.setState(x, 'SENDING');
  }
  assert.deepEqual(walked, xs);
  assert.deepEqual([...s.active()], []);
  assert.equal(s.count('SENDING'), 3);
  s.update(xs[1], { state: 'ACTIVE' });
  assert.deepEqual([...s.active()], [xs[1]], 'back to ACTIVE goes to the end of its lane');
});

test('DEFER: promoteDue moves exactly the due entries, earliest first; re-deferring drops the stale time', () => {
  const s = new QueueStore();
  const late = entry({ state: 'DEFER', retryts: 300 });
  const early = entry({ state: 'DEFER', retryts: 100 });
  const mid = entry({ state: 'DEFER', retryts: 200 });
  for (const x of [late, early, mid]) s.add(x);
  assert.equal(s.nextRetryTs(), 100);
  s.update(early, { retryts: 250 });
  assert.equal(s.nextRetryTs(), 200, 'the old time of a re-scheduled entry no longer counts');
  assert.equal(s.promoteDue(199), 0);
  assert.equal(s.promoteDue(260, 0), 0, 'a limit of 0 moves nothing');
  assert.equal(s.promoteDue(260, 1), 1, 'at most the limit');
  assert.deepEqual([...s.active()], [mid], 'earliest first');
  assert.equal(s.promoteDue(260), 1);
  assert.deepEqual([...s.active()], [mid, early]);
  assert.equal(s.nextRetryTs(), 300);
  s.update(late, { state: 'HOLD' });
  assert.equal(s.nextRetryTs(), undefined, 'an entry moved to HOLD is no longer due');
  assert.equal(s.promoteDue(10_000), 0);
  assert.deepEqual(counts(s), { ACTIVE: 2, DEFER: 0, HOLD: 1, SENDING: 0, UPDATE: 0 });
});

test('events: active() when entries become ACTIVE, deferred(retryts) when they enter DEFER', () => {
  const s = new QueueStore();
  const seen: string[] = [];
  s.subscribe({ active: () => seen.push('active'), deferred: (ts) => seen.push(`deferred ${ts}`) });
  const x = entry();
  s.add(x);
  s.update(x, { state: 'DEFER', retryts: 42 });
  s.promoteDue(42);
  assert.deepEqual(seen, ['active', 'deferred 42', 'active']);
});

test('by transaction and id; delete keeps every structure and count right', () => {
  const s = new QueueStore();
  const tx = '11111111-1111-4111-8111-111111111111';
  const one = entry({ tx, q: 1 });
  const two = entry({ tx, q: 2, state: 'DEFER', retryts: 10 });
  s.add(one);
  s.add(two);
  assert.equal(s.get(`${tx}:2`), two);
  assert.deepEqual(s.transaction(tx), [one, two]);
  assert.ok(s.delete(`${tx}:2`));
  assert.equal(s.nextRetryTs(), undefined);
  assert.ok(s.delete(one));
  assert.equal(s.delete(one), false);
  assert.deepEqual(s.transaction(tx), []);
  assert.deepEqual(counts(s), { ACTIVE: 0, DEFER: 0, HOLD: 0, SENDING: 0, UPDATE: 0 });
  assert.equal(s.size, 0);
});

test('adding an entry with a known id replaces it', () => {
  const s = new QueueStore();
  const tx = '22222222-2222-4222-8222-222222222222';
  s.add(entry({ tx, q: 1 }));
  const again = entry({ tx, q: 1, state: 'HOLD' });
  s.add(again);
  assert.equal(s.size, 1);
  assert.deepEqual(counts(s), { ACTIVE: 0, DEFER: 0, HOLD: 1, SENDING: 0, UPDATE: 0 });
  assert.equal(s.get(`${tx}:1`), again);
});

test('field index: select and group-by follow transport changes; empty job ids are not indexed', () => {
  const s = new QueueStore();
  const a = entry({ jobid: 'j1' });
  const b = entry({ jobid: 'j1', transportid: 'other' });
  const c = entry();
  for (const x of [a, b, c]) s.add(x);
  assert.deepEqual([...s.select('jobid', 'j1')], [a, b]);
  assert.deepEqual([...s.select('recipientdomain', 'EXAMPLE.ORG')].length, 3, 'domains compare case-insensitively');
  assert.deepEqual(Object.fromEntries(s.groupBy('transportid')), { out: 2, other: 1 });
  s.update(a, { transportid: 'other' });
  assert.deepEqual(Object.fromEntries(s.groupBy('transportid')), { out: 1, other: 2 });
  assert.deepEqual(s.select('jobid', ''), [c], 'an empty value selects the entries without one (by a scan)');
  s.delete(b);
  assert.deepEqual([...s.select('jobid', 'j1')], [a]);
});

test('many entries leaving DEFER early do not leave the heap growing without bound', () => {
  const s = new QueueStore();
  const xs = Array.from({ length: 5000 }, (_, i) => entry({ state: 'DEFER', retryts: 1000 + i }));
  for (const x of xs) s.add(x);
  for (const x of xs) s.update(x, { state: 'HOLD' });
  assert.equal(s.count('DEFER'), 0);
  assert.equal(s.nextRetryTs(), undefined);
  assert.equal((s as unknown as { defer: MinHeap<QueueEntry> }).defer.length <= 1024 + 1, true);
});

test('MinHeap yields times in order', () => {
  const h = new MinHeap<number>();
  const times = [5, 3, 9, 1, 1, 7, 2, 8, 6, 4];
  times.forEach((t, i) => h.push(t, i));
  const out: number[] = [];
  while (h.length) {
    out.push(h.peekTime()!);
    h.pop();
  }
  assert.deepEqual(out, [...times].sort((a, b) => a - b));
});

test('codec: an entry round-trips; SENDING and UPDATE load as ACTIVE (the attempt is made again)', () => {
  const e = entry({ metadata: { k: 'v' }, dsn: { notify: ['FAILURE'], envid: 'x' }, retry: 3, retryts: 99, state: 'DEFER' });
  const back = decodeEntry(e.id.transaction, 1, JSON.parse(JSON.stringify(encodeEntry(e))));
  assert.deepEqual(back, e);
  for (const state of ['SENDING', 'UPDATE'] as const) {
    assert.equal(decodeEntry(e.id.transaction, 1, JSON.parse(JSON.stringify(encodeEntry({ ...e, state })))).state, 'ACTIVE');
  }
  assert.throws(() => decodeEntry(e.id.transaction, 1, { state: 'BOGUS', recipient: 'x', transportid: 't' }), /bad state/);
});

test('codec: the last attempt\'s hop fields round-trip; a record without them loads without them', () => {
  const e = entry({ state: 'DEFER', retry: 1, retryts: 5, localip: '192.0.2.1', remotemx: 'mx.example.org', remoteip: '198.51.100.7', grouping: 'example.org' });
  assert.deepEqual(decodeEntry(e.id.transaction, 1, JSON.parse(JSON.stringify(encodeEntry(e)))), e);
  assert.equal('remoteip' in decodeEntry(e.id.transaction, 1, { state: 'ACTIVE', recipient: 'x@y', transportid: 't' }), false);
});

test('update: hop fields move the entry between index values; select pages with offset and limit', () => {
  const s = new QueueStore();
  const xs = Array.from({ length: 5 }, () => entry());
  for (const x of xs) s.add(x);
  s.update(xs[0], { state: 'DEFER', retryts: 10, remotemx: 'MX1.example.org', remoteip: '198.51.100.1', localip: '192.0.2.1', grouping: 'g' });
  assert.deepEqual(s.select('remotemx', 'mx1.EXAMPLE.org'), [xs[0]], 'MX names compare case-insensitively');
  s.update(xs[0], { remotemx: 'mx2.example.org' });
  assert.deepEqual(s.select('remotemx', 'mx1.example.org'), []);
  assert.deepEqual(Object.fromEntries(s.groupBy('remotemx')), { 'mx2.example.org': 1 });
  assert.deepEqual(s.select('localip', '192.0.2.1'), [xs[0]], 'a scanned field answers too');
  assert.deepEqual(s.select('state', 'DEFER'), [xs[0]]);
  assert.deepEqual(s.select('recipientdomain', 'example.org', { offset: 1, limit: 2 }), [xs[1], xs[2]]);
  assert.deepEqual(s.scan((e) => e.state === 'ACTIVE', { offset: 3 }), [xs[4]]);
  assert.deepEqual(s.scan(() => true, { limit: 0 }), []);
});

/** A small seeded PRNG (mulberry32) so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FOLDED: ReadonlySet<QueueField> = new Set<QueueField>(['senderdomain', 'recipientdomain', 'remotemx']);

/** The field's value computed independently of the store (domains lower-case). */
function brute(e: QueueEntry, f: QueueField): string {
  const table: Record<QueueField, () => string> = {
    transportid: () => e.transportid, tenantid: () => e.tenantid, jobid: () => e.jobid, serverid: () => e.serverid,
    sender: () => e.sender, senderdomain: () => e.senderaddress.domain.toLowerCase(), senderlocalpart: () => e.senderaddress.localpart,
    recipient: () => e.recipient, recipientdomain: () => e.recipientaddress.domain.toLowerCase(), recipientlocalpart: () => e.recipientaddress.localpart,
    localip: () => e.localip ?? '', grouping: () => e.grouping ?? '', remotemx: () => (e.remotemx ?? '').toLowerCase(), remoteip: () => e.remoteip ?? '',
    state: () => e.state, priority: () => String(e.priority),
  };
  return table[f]();
}

for (const [name, indexed] of [['default indexes', undefined], ['every field indexed', QUEUE_FIELDS]] as const) test(`select, groupBy and scan agree with a brute-force pass after many random operations (${name})`, () => {
  const next = rng(20240601);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)];
  const domains = ['a.example', 'B.example', 'c.EXAMPLE', 'ä.example'];
  const states: QueueState[] = ['ACTIVE', 'DEFER', 'HOLD', 'SENDING', 'UPDATE'];
  const s = new QueueStore(indexed ? { indexed } : {});
  const live: QueueEntry[] = [];
  let now = 0;
  const check = () => {
    const all = [...s.values()];
    assert.equal(all.length, live.length);
    for (const f of QUEUE_FIELDS) {
      const expected = new Map<string, number>();
      for (const e of all) {
        const v = brute(e, f);
        if (v !== '') expected.set(v, (expected.get(v) ?? 0) + 1);
      }
      assert.deepEqual(new Map([...s.groupBy(f)].sort()), new Map([...expected].sort()), `groupBy ${f}`);
      for (const q of [...expected.keys(), '', 'nothing'].flatMap((v) => [v, v.toUpperCase()])) {
        const want = all.filter((e) => brute(e, f) === (FOLDED.has(f) ? q.toLowerCase() : q));
        const got = s.select(f, q);
        assert.deepEqual(new Set(got), new Set(want), `select ${f}=${q}`);
        assert.equal(got.length, want.length, `select ${f}=${q}: no duplicates`);
      }
    }
    const big = (e: QueueEntry) => e.size > 500 && e.metadata.k === 'v';
    assert.deepEqual(s.scan(big, { offset: 2, limit: 5 }), all.filter(big).slice(2, 7));
    for (const st of states) assert.equal(s.count(st), all.filter((e) => e.state === st).length);
  };
  for (let op = 1; op <= 3000; op++) {
    const r = next();
    if (r < 0.35 || live.length === 0) {
      const state = pick(states);
      const x = entry({
        recipientaddress: { localpart: `r${op}`, domain: pick(domains) },
        senderaddress: { localpart: pick(['s', 't']), domain: pick(domains) },
        serverid: pick(['in', 'sub']), jobid: pick(['', '', 'j1', 'j2']), tenantid: pick(['', 't1']),
        transportid: pick(['out', 'other']), priority: next() < 0.5 ? 0 : 1, state, retryts: state === 'DEFER' ? now + Math.floor(next() * 50) : 0,
        size: Math.floor(next() * 1000), metadata: next() < 0.5 ? { k: 'v' } : {},
      });
      s.add(x);
      live.push(x);
    } else if (r < 0.5) {
      const x = live.splice(Math.floor(next() * live.length), 1)[0];
      assert.ok(s.delete(next() < 0.5 ? x : `${x.id.transaction}:${x.id.queue}`));
    } else if (r < 0.65) {
      s.setState(pick(live), pick(states));
    } else if (r < 0.9) {
      const state = pick(states);
      s.update(pick(live), {
        state, retryts: now + Math.floor(next() * 50), transportid: pick(['out', 'other']), priority: next() < 0.5 ? 0 : 1,
        ...(next() < 0.5 ? { remotemx: pick(['MX.a.example', 'mx.a.example', 'mx.b.example', '']), remoteip: pick(['198.51.100.1', '198.51.100.2']), localip: pick(['192.0.2.1', '']), grouping: pick(['g1', 'g2']) } : {}),
      });
    } else {
      now += 10;
      s.promoteDue(now);
    }
    if (op % 300 === 0) check();
  }
});

test('oldest reception time per state: exact in one call when small, in slices that let the loop run when large', async () => {
  const store = new QueueStore();
  const states: QueueState[] = ['ACTIVE', 'DEFER', 'HOLD'];
  // ts falls as i grows: the oldest of each state is its last entry (i = 999, 997, 998).
  for (let i = 0; i < 1000; i++) store.add(entry({ tx: `t${i}`, ts: 10_000 - i, state: states[i % 3], retryts: 1 }));
  const want = { ACTIVE: 9_001, DEFER: 9_003, HOLD: 9_002 };
  assert.deepEqual(await store.oldestByState(), want);
  // 1,000 entries in slices of 100: the answer comes only after other turns of the loop.
  const [a, b] = [store.oldestByState(100), store.oldestByState(100)];
  assert.equal(a, b, 'concurrent callers share one pass');
  let done = false;
  void a.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 'not answered within the first turn');
  assert.deepEqual(await a, want);
  assert.deepEqual(await new QueueStore().oldestByState(), {});
});
