/**
 * Dynamic policy conditions and reloads in the shaping engine: which limits apply to a key
 * (dynamic before file conditions before default, most recent dynamic first), stop, TTL,
 * update semantics, refusals, refill, and counters that survive a reload with their in-flight
 * attempts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShapingError } from '../../src/shaping/types';
import { T0, engineWith, facts, policies, ticketOf } from './shaping-helpers';

const DOMAIN_POLICY = policies([
  {
    fields: ['localip', 'recipientdomain'],
    conditions: [{ if: { recipientdomain: '*.example' }, then: { concurrency: 5 } }],
    default: { concurrency: 2 },
  },
]);

function inflightLimit(engine: ReturnType<typeof engineWith>['engine'], f = facts(), now = T0): number {
  const tickets = [];
  for (let i = 0; i < 100; i++) {
    const v = engine.admit(f, now);
    if (!v.ok) break;
    tickets.push(v.ticket);
  }
  for (const t of tickets) engine.release(t, now);
  return tickets.length;
}

test('file conditions: the first matching if, else default', () => {
  const { engine } = engineWith({ policies: DOMAIN_POLICY });
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'a.example' })), 5);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'example.org' })), 2);
});

test('a dynamic condition overrides the file for its key only; the most recent one wins', () => {
  const { engine, wakes } = engineWith({ policies: DOMAIN_POLICY });
  const id1 = engine.addCondition(['recipientdomain', 'localip'], { recipientdomain: 'a.example' }, { concurrency: 1, tag: 'backoff' }, 0, {}, T0);
  assert.deepEqual(wakes, ['all']);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'a.example' })), 1);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'b.example' })), 5);
  const id2 = engine.addCondition(['localip', 'recipientdomain'], { localip: '192.0.2.10' }, { concurrency: 3 }, 0, {}, T0);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'a.example' })), 3, 'added later, on other fields of the same counter');
  const t = ticketOf(engine.admit(facts({ recipientdomain: 'a.example' }), T0));
  assert.deepEqual(t.policies.map((p) => p.id), [id2]);
  engine.deleteCondition(id2);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'a.example' })), 0, 'back to 1, and the ticket above still holds it');
  engine.release(t, T0);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'a.example' })), 1);
  assert.deepEqual(engine.listConditions(T0).map((c) => [c.id, c.fields, c.if, c.then, c.ttl]), [[id1, ['recipientdomain', 'localip'], { recipientdomain: 'a.example' }, { concurrency: 1, tag: 'backoff' }, 0]]);
});

test('a condition on a counter the policy file lacks, or naming another field, is refused', () => {
  const { engine } = engineWith({ policies: DOMAIN_POLICY });
  assert.throws(() => engine.addCondition(['recipientdomain'], { recipientdomain: 'a.example' }, { concurrency: 1 }, 0, {}, T0), (e: unknown) => e instanceof ShapingError && /no policy .*smtpd-policy\.yaml has the fields \[recipientdomain\]/.test(e.message));
  assert.throws(() => engine.addCondition(['localip', 'recipientdomain'], { jobid: 'x' }, { concurrency: 1 }, 0, {}, T0), (e: unknown) => e instanceof ShapingError && /jobid/.test(e.message));
  assert.equal(engine.listConditions(T0).length, 0);
});

test('same fields and values update the existing condition (limits and TTL); update:false adds one', () => {
  const { engine } = engineWith({ policies: DOMAIN_POLICY });
  const cond = { recipientdomain: 'a.example' };
  const id = engine.addCondition(['localip', 'recipientdomain'], cond, { concurrency: 1 }, 60, { id: 'backoff-a' }, T0);
  assert.equal(id, 'backoff-a');
  assert.equal(engine.addCondition(['recipientdomain', 'localip'], { recipientdomain: 'A.EXAMPLE' }, { concurrency: 4 }, 120, {}, T0), id);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'a.example' })), 4);
  assert.equal(engine.listConditions(T0)[0].ttl, 120);
  const other = engine.addCondition(['localip', 'recipientdomain'], cond, { concurrency: 2 }, 0, { update: false }, T0);
  assert.notEqual(other, id);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'a.example' })), 2, 'the newer one applies');
  assert.throws(() => engine.addCondition(['localip', 'recipientdomain'], { recipientdomain: 'z.example' }, { concurrency: 2 }, 0, { id }, T0), ShapingError);
});

test('a condition with a TTL applies until then; after it the file limits are back', () => {
  const { engine, wakes } = engineWith({ policies: DOMAIN_POLICY });
  engine.addCondition(['localip', 'recipientdomain'], { recipientdomain: 'a.example' }, { concurrency: 1 }, 30, {}, T0);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'a.example' }), T0 + 29_999), 1);
  assert.equal(engine.nextExpiry(), T0 + 30_000);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'a.example' }), T0 + 30_000), 5, 'past the TTL, before expire runs');
  wakes.length = 0;
  assert.equal(engine.expire(T0 + 30_000), true);
  assert.deepEqual(wakes, ['all']);
  assert.deepEqual(engine.listConditions(T0 + 30_000), []);
});

test('updateCondition replaces the limits and wakes everyone; stop refuses while it holds', () => {
  const { engine, wakes } = engineWith({ policies: DOMAIN_POLICY });
  const id = engine.addCondition(['localip', 'recipientdomain'], { recipientdomain: 'a.example' }, { stop: true, tag: 'blocked' }, 0, {}, T0);
  assert.deepEqual(engine.admit(facts({ recipientdomain: 'a.example' }), T0), { ok: false, reason: 'stop', tag: 'blocked' });
  wakes.length = 0;
  assert.equal(engine.updateCondition(id, { limits: { stop: true }, ttl: 10 }, T0), 1);
  assert.deepEqual(wakes, ['all']);
  assert.deepEqual(engine.admit(facts({ recipientdomain: 'a.example' }), T0), { ok: false, reason: 'stop', until: T0 + 10_000 });
  assert.equal(engine.updateCondition(id, { limits: { concurrency: 3 } }, T0), 1);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'a.example' })), 3);
  assert.equal(engine.updateCondition('unknown', { ttl: 1 }, T0), 0);
  assert.equal(engine.deleteCondition('unknown'), 0);
});

test('refill adds tokens to matching buckets, up to their capacity, and wakes everyone', () => {
  const { engine, wakes } = engineWith({ policies: policies([{ fields: ['recipientdomain'], conditions: [], default: { rate: { messages: 3, seconds: 3600 } } }]) });
  for (const d of ['a.example', 'b.example']) for (let i = 0; i < 3; i++) ticketOf(engine.admit(facts({ recipientdomain: d }), T0));
  assert.equal(engine.admit(facts({ recipientdomain: 'a.example' }), T0).ok, false);
  wakes.length = 0;
  assert.equal(engine.refill({ recipientdomain: 'A.example' }, 100, T0), 1);
  assert.deepEqual(wakes, ['all']);
  assert.equal(inflightLimit(engine, facts({ recipientdomain: 'a.example' })), 3, 'capped at the capacity');
  assert.equal(engine.admit(facts({ recipientdomain: 'b.example' }), T0).ok, false, 'other keys unchanged');
  assert.equal(engine.refill({ jobid: 'x' }, 1, T0), 0, 'a field the counter lacks matches nothing');
  assert.equal(engine.refill({}, 1, T0), 2);
});

test('fixedwindow refill gives admissions of the current window back', () => {
  const { engine } = engineWith({ policies: policies([{ fields: [], conditions: [], default: { rate: { messages: 2, seconds: 60 } } }], 'fixedwindow') });
  ticketOf(engine.admit(facts(), T0));
  ticketOf(engine.admit(facts(), T0));
  assert.equal(engine.admit(facts(), T0).ok, false);
  engine.refill({}, 1, T0);
  assert.equal(inflightLimit(engine), 1);
});

test('a reload keeps the counters of a surviving policy, in-flight attempts included', () => {
  const { engine, wakes } = engineWith({ policies: policies([{ fields: ['recipientdomain', 'localip'], conditions: [], default: { concurrency: 3, rate: { messages: 5, seconds: 3600 } } }]) });
  const held = [0, 1, 2].map(() => ticketOf(engine.admit(facts(), T0)));
  wakes.length = 0;
  // Same counter, fields in another order, new limits.
  engine.setPolicies(policies([{ fields: ['localip', 'recipientdomain'], conditions: [], default: { concurrency: 4, rate: { messages: 5, seconds: 3600 } } }]));
  assert.deepEqual(wakes, ['all']);
  ticketOf(engine.admit(facts(), T0));
  assert.equal(engine.admit(facts(), T0).ok, false, '3 in flight + 1 = the new limit of 4');
  for (const t of held) engine.release(t, T0);
  // 4 tokens taken of 5: one left, whatever the reload.
  const v1 = engine.admit(facts(), T0);
  assert.equal(v1.ok, true);
  const v2 = engine.admit(facts(), T0);
  assert.ok(!v2.ok && v2.reason === 'rate');
});

test('an attempt admitted before a reload that removed its policy is released correctly', () => {
  const first = policies([{ fields: ['recipientdomain'], conditions: [], default: { concurrency: 1 } }]);
  const { engine } = engineWith({ policies: first });
  const t = ticketOf(engine.admit(facts(), T0));
  engine.setPolicies(policies([]));
  assert.equal(engine.admit(facts(), T0).ok, true, 'no policy, no limit');
  engine.setPolicies(first);
  assert.equal(engine.admit(facts(), T0).ok, false, 'the policy is back: the attempt is still in flight');
  engine.release(t, T0);
  assert.equal(engine.admit(facts(), T0).ok, true);
});

test('a policy removed while attempts run: release still frees the slot and sweep forgets the counter', () => {
  const { engine } = engineWith({ policies: policies([{ fields: ['recipientdomain'], conditions: [], default: { concurrency: 1 } }]) });
  const t = ticketOf(engine.admit(facts(), T0));
  engine.setPolicies(policies([]));
  engine.sweep(T0);
  engine.release(t, T0);
  engine.sweep(T0);
  engine.setPolicies(policies([{ fields: ['recipientdomain'], conditions: [], default: { concurrency: 1 } }]));
  assert.equal(engine.stats(T0).concurrency.counters, 0, 'swept');
  assert.equal(engine.admit(facts(), T0).ok, true);
});

test('sweep forgets idle counters only: a bucket still refilling is kept', () => {
  const { engine } = engineWith({ policies: policies([{ fields: ['recipientdomain'], conditions: [], default: { rate: { messages: 1, seconds: 10 } } }]) });
  for (let i = 0; i < 3000; i++) engine.release(ticketOf(engine.admit(facts({ recipientdomain: `d${i}.example` }), T0)), T0);
  engine.sweep(T0 + 5000);
  engine.sweep(T0 + 5000);
  assert.equal(engine.stats(T0 + 5000).rate.buckets, 3000, 'half-full buckets are kept');
  engine.sweep(T0 + 10_000);
  assert.equal(engine.stats(T0 + 10_000).rate.buckets, 1000, 'one call looks at a bounded number of counters');
  engine.sweep(T0 + 10_000);
  assert.equal(engine.stats(T0 + 10_000).rate.buckets, 0);
});

test('changing the rate algorithm starts the rate state afresh', () => {
  const rate = { fields: [], conditions: [], default: { rate: { messages: 1, seconds: 3600 } } };
  const { engine } = engineWith({ policies: policies([rate]) });
  ticketOf(engine.admit(facts(), T0));
  assert.equal(engine.admit(facts(), T0).ok, false);
  engine.setPolicies(policies([rate], 'fixedwindow'));
  assert.equal(engine.admit(facts(), T0).ok, true);
});
