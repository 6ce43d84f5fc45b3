/**
 * Suspends in the shaping engine: static ones from smtpd-suspend.yaml (every field must match,
 * `{}` holds everything, plain strings and patterns), dynamic ones with TTL, update semantics,
 * ids, wake-ups, expiry, and listings with their filters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShapingError } from '../../src/shaping/types';
import { T0, engineWith, facts, policies, suspends, ticketOf } from './shaping-helpers';

test('a static suspend holds only when every field it names matches', () => {
  const { engine } = engineWith({ suspends: suspends([{ match: { transportid: 'customer1', recipientdomain: 'gmail.com' }, tag: 'c1' }]) });
  const v = engine.admit(facts({ transportid: 'customer1', recipientdomain: 'gmail.com' }), T0);
  assert.deepEqual(v, { ok: false, reason: 'suspend', tag: 'c1' });
  assert.equal(engine.admit(facts({ transportid: 'Customer1', recipientdomain: 'GMAIL.com' }), T0).ok, false, 'plain strings compare case-insensitively');
  assert.equal(engine.admit(facts({ transportid: 'customer2', recipientdomain: 'gmail.com' }), T0).ok, true);
  assert.equal(engine.admit(facts({ transportid: 'customer1', recipientdomain: 'yahoo.com' }), T0).ok, true);
});

test('static suspends with patterns, lists and IP networks', () => {
  const { engine } = engineWith({
    suspends: suspends([
      { match: { remotemx: '*.outlook.com' } },
      { match: { recipientdomain: ['a.example', 'b.example'], jobid: '/^spring-/' } },
      { match: { localip: '192.0.2.0/28', recipientdomain: 'gmail.com' } },
      { match: { transportid: ['bulk', 'Promo'], tenantid: 't1' } },
    ]),
  });
  assert.equal(engine.admit(facts({ transportid: 'promo', tenantid: 'T1' }), T0).ok, false, 'a list of plain strings: any of them');
  assert.equal(engine.admit(facts({ transportid: 'bulk', tenantid: 't2' }), T0).ok, true);
  assert.equal(engine.admit(facts({ remotemx: 'mx1.eur.outlook.com' }), T0).ok, false);
  assert.equal(engine.admit(facts({ remotemx: 'outlook.com' }), T0).ok, true, 'a wildcard is below the name, not the name');
  assert.equal(engine.admit(facts({ recipientdomain: 'b.example', jobid: 'spring-1' }), T0).ok, false);
  assert.equal(engine.admit(facts({ recipientdomain: 'b.example', jobid: 'summer-1' }), T0).ok, true);
  assert.equal(engine.admit(facts({ localip: '192.0.2.3', recipientdomain: 'gmail.com' }), T0).ok, false);
  assert.equal(engine.admit(facts({ localip: '192.0.2.30', recipientdomain: 'gmail.com' }), T0).ok, true);
});

test('an empty static suspend holds everything; removing it by reload wakes everyone', () => {
  const { engine, wakes } = engineWith({ suspends: suspends([{ match: {}, tag: 'nonworkhours', properties: { reason: 'maintenance' } }]) });
  assert.deepEqual(engine.admit(facts({ recipientdomain: 'anything.example' }), T0), { ok: false, reason: 'suspend', tag: 'nonworkhours' });
  engine.setSuspends(suspends([]));
  assert.deepEqual(wakes, ['all']);
  assert.equal(engine.admit(facts(), T0).ok, true);
});

test('a dynamic suspend with a TTL says until when, and ends then even before expire runs', () => {
  const { engine, wakes } = engineWith();
  const id = engine.addSuspend({ recipientdomain: 'Example.com' }, 60, { tag: 'backoff' }, T0);
  const v = engine.admit(facts(), T0 + 1000);
  assert.deepEqual(v, { ok: false, reason: 'suspend', until: T0 + 60_000, tag: 'backoff' });
  assert.equal(engine.admit(facts({ recipientdomain: 'other.example' }), T0).ok, true);
  assert.equal(engine.nextExpiry(), T0 + 60_000);
  assert.equal(engine.admit(facts(), T0 + 60_000).ok, true, 'past its TTL it holds nothing');
  assert.equal(engine.expire(T0 + 59_999), false);
  assert.equal(wakes.length, 0);
  assert.equal(engine.expire(T0 + 60_000), true);
  assert.deepEqual(wakes, ['all']);
  assert.equal(engine.nextExpiry(), undefined);
  assert.equal(engine.deleteSuspend(id), 0, 'gone');
});

test('a dynamic suspend without TTL holds until deleted; deleting it wakes everyone', () => {
  const { engine, wakes } = engineWith();
  const id = engine.addSuspend({ transportid: 'bulk', localip: '192.0.2.10' }, 0, {}, T0);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.deepEqual(engine.admit(facts({ transportid: 'bulk' }), T0), { ok: false, reason: 'suspend' });
  assert.equal(engine.admit(facts({ transportid: 'bulk', localip: '192.0.2.11' }), T0).ok, true);
  assert.equal(engine.deleteSuspend(id), 1);
  assert.deepEqual(wakes, ['all']);
  assert.equal(engine.admit(facts({ transportid: 'bulk' }), T0).ok, true);
});

test('several dynamic suspends on the same facts: the one without TTL wins, else the latest end', () => {
  const { engine } = engineWith();
  engine.addSuspend({ recipientdomain: 'example.com' }, 30, {}, T0);
  engine.addSuspend({ transportid: 'outbound' }, 90, {}, T0);
  const v = engine.admit(facts(), T0);
  assert.ok(!v.ok && v.until === T0 + 90_000);
  engine.addSuspend({ localip: '192.0.2.10' }, 0, { tag: 'manual' }, T0);
  assert.deepEqual(engine.admit(facts(), T0), { ok: false, reason: 'suspend', tag: 'manual' });
});

test('an identical suspend refreshes TTL and tag and keeps its id; update:false adds another', () => {
  const { engine, wakes } = engineWith();
  const id = engine.addSuspend({ recipientdomain: 'example.com', localip: '192.0.2.10' }, 60, { tag: 'a' }, T0);
  const again = engine.addSuspend({ localip: '192.0.2.10', recipientdomain: 'EXAMPLE.COM' }, 600, { tag: 'b' }, T0 + 10_000);
  assert.equal(again, id, 'same fields and values in another order and case');
  assert.equal(wakes.length, 0, 'a longer TTL admits nothing more');
  const [item] = engine.listSuspends(T0 + 10_000, { id });
  assert.equal(item.ttl, 600);
  assert.equal(item.tag, 'b');
  engine.addSuspend({ recipientdomain: 'example.com', localip: '192.0.2.10' }, 5, {}, T0 + 10_000);
  assert.deepEqual(wakes, ['all'], 'an earlier end may admit sooner than waiters were told');
  const other = engine.addSuspend({ recipientdomain: 'example.com', localip: '192.0.2.10' }, 0, { update: false }, T0);
  assert.notEqual(other, id);
  assert.equal(engine.listSuspends(T0, { match: { recipientdomain: 'example.com' } }).length, 2);
});

test('a given id is kept; an id taken by another suspend is refused', () => {
  const { engine } = engineWith();
  assert.equal(engine.addSuspend({ jobid: 'j1' }, 0, { id: 'pause-j1' }, T0), 'pause-j1');
  assert.equal(engine.addSuspend({ jobid: 'j1' }, 10, { id: 'pause-j1' }, T0), 'pause-j1');
  assert.throws(() => engine.addSuspend({ jobid: 'j2' }, 0, { id: 'pause-j1' }, T0), ShapingError);
});

test('updateSuspend changes TTL and tag and wakes everyone; unknown ids affect nothing', () => {
  const { engine, wakes } = engineWith();
  const id = engine.addSuspend({ jobid: 'j1' }, 0, {}, T0);
  assert.equal(engine.updateSuspend(id, { ttl: 30, tag: 'later' }, T0), 1);
  assert.deepEqual(wakes, ['all']);
  assert.deepEqual(engine.admit(facts({ jobid: 'j1' }), T0), { ok: false, reason: 'suspend', until: T0 + 30_000, tag: 'later' });
  assert.equal(engine.updateSuspend('nope', { ttl: 1 }, T0), 0);
  assert.equal(engine.deleteSuspend('static:0'), 0, 'static suspends are changed in their file');
});

test('listSuspends: static, dynamic and counters that refuse, with filters and a limit', () => {
  const { engine } = engineWith({
    suspends: suspends([{ match: { recipientdomain: ['a.example', 'b.example'] }, tag: 'files' }]),
    policies: policies([
      { fields: ['recipientdomain'], conditions: [], default: { concurrency: 1 } },
      { fields: ['localip'], conditions: [], default: { rate: { messages: 1, seconds: 60 } } },
    ]),
  });
  const dyn = engine.addSuspend({ recipientdomain: 'c.example', jobid: 'J' }, 120, { tag: 'hook' }, T0);
  ticketOf(engine.admit(facts(), T0));
  const all = engine.listSuspends(T0 + 20_000);
  assert.deepEqual(all, [
    { source: 'STATIC', id: 'static:0', match: { recipientdomain: 'a.example,b.example' }, ttl: 0, tag: 'files' },
    { source: 'DYNAMIC', id: dyn, match: { jobid: 'j', recipientdomain: 'c.example' }, ttl: 100, tag: 'hook' },
    { source: 'CONCURRENCY', id: 'recipientdomain=example.com', match: { recipientdomain: 'example.com' }, ttl: 0 },
    { source: 'RATE', id: 'localip=192.0.2.10', match: { localip: '192.0.2.10' }, ttl: 40 },
  ]);
  assert.deepEqual(engine.listSuspends(T0, { id: dyn }).map((i) => i.id), [dyn]);
  assert.deepEqual(engine.listSuspends(T0, { id: 'recipientdomain=example.com' }).map((i) => i.source), ['CONCURRENCY']);
  assert.deepEqual(engine.listSuspends(T0, { tag: 'hook' }).map((i) => i.id), [dyn]);
  assert.deepEqual(engine.listSuspends(T0, { match: { recipientdomain: 'C.EXAMPLE' } }).map((i) => i.id), [dyn]);
  assert.equal(engine.listSuspends(T0, { limit: 2 }).length, 2);
  const stats = engine.stats(T0 + 20_000);
  assert.deepEqual(stats, {
    concurrency: { counters: 1, suspends: 1 },
    rate: { buckets: 1, suspends: 1 },
    dynamic: { suspends: 1, conditions: 0 },
    static: { suspends: 1, policies: 2 },
  });
});

test('a suspend checked before policies: a suspended attempt takes no token', () => {
  const { engine } = engineWith({ policies: policies([{ fields: [], conditions: [], default: { rate: { messages: 1, seconds: 60 } } }]) });
  const id = engine.addSuspend({}, 0, {}, T0);
  for (let i = 0; i < 5; i++) assert.equal(engine.admit(facts(), T0).ok, false);
  engine.deleteSuspend(id);
  assert.equal(engine.admit(facts(), T0).ok, true);
});

test('expiring suspends and refreshing them keeps the TTL bookkeeping small and right', () => {
  const { engine } = engineWith();
  // The same suspend refreshed many times, then many short-lived ones.
  for (let i = 0; i < 5000; i++) engine.addSuspend({ recipientdomain: 'example.com' }, 60, {}, T0 + i);
  for (let i = 0; i < 2000; i++) engine.deleteSuspend(engine.addSuspend({ jobid: `j${i}` }, 3600, {}, T0));
  assert.equal(engine.nextExpiry(), T0 + 4999 + 60_000, 'the refreshed end, not the first one');
  assert.equal(engine.expire(T0 + 60_000), false, 'the first end passed but the suspend was refreshed');
  assert.equal(engine.admit(facts(), T0 + 64_998).ok, false);
  assert.equal(engine.expire(T0 + 64_999), true);
  assert.equal(engine.stats(T0 + 64_999).dynamic.suspends, 0);
});
