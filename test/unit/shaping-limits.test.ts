/**
 * Pickup policies of the shaping engine over simulated time: rate (token bucket and fixed
 * window) held over 20 s, concurrency with its wake-ups, connect interval, no partial takes
 * across policies, keys without limits, and what a refusal says about when to come back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { T0, admitOver, engineWith, facts, policies, ticketOf } from './shaping-helpers';

test('tokenbucket 10/5: a full bucket of 10 at once, then 2 per second, held over 20 s', () => {
  const { engine } = engineWith({ policies: policies([{ fields: ['recipientdomain'], conditions: [], default: { rate: { messages: 10, seconds: 5 } } }]) });
  const times = admitOver(engine, facts(), T0, 20_000, 10);
  assert.equal(times.filter((t) => t === T0).length, 10, 'the burst is the capacity');
  // 10 at once + one token every 500 ms for 20 s (the token at exactly 20 s is outside).
  assert.equal(times.length, 10 + 39);
  for (let i = 11; i < times.length; i++) assert.equal(times[i] - times[i - 1], 500);
});

test('tokenbucket: a refusal says when the next token comes, and that time admits', () => {
  const { engine } = engineWith({ policies: policies([{ fields: [], conditions: [], default: { rate: { messages: 3, seconds: 60 } } }]) });
  for (let i = 0; i < 3; i++) ticketOf(engine.admit(facts(), T0));
  const v = engine.admit(facts(), T0 + 1000);
  assert.equal(v.ok, false);
  assert.ok(!v.ok && v.reason === 'rate' && v.until === T0 + 20_000, JSON.stringify(v));
  assert.equal(engine.admit(facts(), T0 + 19_999).ok, false);
  assert.equal(engine.admit(facts(), T0 + 20_000).ok, true);
});

test('fixedwindow 10/5: 10 per 5-second window aligned on the window start, held over 20 s', () => {
  const { engine } = engineWith({ policies: policies([{ fields: ['recipientdomain'], conditions: [], default: { rate: { messages: 10, seconds: 5 } } }], 'fixedwindow') });
  const start = T0 + 2500; // mid-window: the first window has 2.5 s left
  const times = admitOver(engine, facts(), start, 20_000, 10);
  const perWindow = new Map<number, number>();
  for (const t of times) perWindow.set(Math.floor(t / 5000), (perWindow.get(Math.floor(t / 5000)) ?? 0) + 1);
  assert.deepEqual([...perWindow.values()], [10, 10, 10, 10, 10]);
  const v = engine.admit(facts(), start + 19_995);
  assert.ok(!v.ok && v.reason === 'rate' && v.until === T0 + 25_000, 'refused until the next window starts');
});

test('concurrency 2: a third attempt waits on the counter; the release that frees a slot wakes it', () => {
  const { engine, wakes } = engineWith({ policies: policies([{ fields: ['recipientdomain'], conditions: [], default: { concurrency: 2 } }]) });
  const a = ticketOf(engine.admit(facts(), T0));
  const b = ticketOf(engine.admit(facts(), T0));
  const refused = engine.admit(facts(), T0);
  assert.ok(!refused.ok && refused.reason === 'concurrency' && refused.until === undefined && typeof refused.waitKey === 'string');
  // Another domain has its own counter.
  const other = ticketOf(engine.admit(facts({ recipientdomain: 'other.example' }), T0));
  wakes.length = 0;
  engine.release(a, T0 + 1);
  assert.deepEqual(wakes, [{ key: !refused.ok ? refused.waitKey : '' }], 'the counter was full: its waiters are woken');
  engine.release(a, T0 + 1);
  assert.equal(wakes.length, 1, 'a second release of the same ticket gives nothing back');
  engine.release(other, T0 + 1);
  assert.equal(wakes.length, 1, 'a counter below its limit wakes no one');
  ticketOf(engine.admit(facts(), T0 + 2));
  assert.equal(engine.admit(facts(), T0 + 2).ok, false);
  engine.release(b, T0 + 3);
});

test('connectinterval 2 s: admissions of a key at least 2 s apart; the refusal says when', () => {
  const { engine } = engineWith({ policies: policies([{ fields: ['remoteip'], conditions: [], default: { connectinterval: 2 } }]) });
  const f = facts({ remoteip: '198.51.100.7' });
  const times = admitOver(engine, f, T0, 20_000, 100);
  assert.deepEqual(times, Array.from({ length: 10 }, (_, i) => T0 + i * 2000));
  ticketOf(engine.admit(f, T0 + 20_500));
  const v = engine.admit(f, T0 + 21_000);
  assert.ok(!v.ok && v.reason === 'connectinterval' && v.until === T0 + 22_500);
  assert.equal(engine.admit(facts({ remoteip: '198.51.100.8' }), T0 + 20_500).ok, true, 'another address is another key');
});

test('nothing is taken when one policy refuses: the other counters keep their tokens and slots', () => {
  const { engine } = engineWith({
    policies: policies([
      { fields: ['recipientdomain'], conditions: [], default: { rate: { messages: 5, seconds: 60 }, concurrency: 10 } },
      { fields: ['localip'], conditions: [], default: { concurrency: 1 } },
    ]),
  });
  const held = ticketOf(engine.admit(facts(), T0));
  for (let i = 0; i < 10; i++) assert.equal(engine.admit(facts(), T0).ok, false, 'localip is full');
  engine.release(held, T0);
  // 1 token used so far: 4 left, whatever the refusals did.
  let n = 0;
  for (let i = 0; i < 10; i++) {
    const v = engine.admit(facts(), T0);
    if (v.ok) {
      n++;
      engine.release(v.ticket, T0);
    }
  }
  assert.equal(n, 4);
  const stats = engine.stats(T0);
  assert.equal(stats.rate.suspends, 1);
});

test('refusals by several time limits report the latest time, so one wake-up suffices', () => {
  const { engine } = engineWith({
    policies: policies([
      { fields: ['recipientdomain'], conditions: [], default: { connectinterval: 30 } },
      { fields: ['localip'], conditions: [], default: { rate: { messages: 1, seconds: 10 } } },
    ]),
  });
  ticketOf(engine.admit(facts(), T0));
  const v = engine.admit(facts(), T0 + 1);
  assert.ok(!v.ok && v.until === T0 + 30_000 && v.reason === 'connectinterval', JSON.stringify(v));
});

test('a key with no limits is not counted and gets an empty ticket', () => {
  const { engine } = engineWith({
    policies: policies([{ fields: ['jobid'], conditions: [{ if: { jobid: 'bulk' }, then: { concurrency: 1 } }] }]),
  });
  for (let i = 0; i < 5; i++) assert.deepEqual(ticketOf(engine.admit(facts({ jobid: 'transactional' }), T0)).policies, []);
  ticketOf(engine.admit(facts({ jobid: 'bulk' }), T0));
  assert.equal(engine.admit(facts({ jobid: 'BULK' }), T0).ok, true, 'counter keys keep their case: BULK is another key (its condition also matches)');
  assert.equal(engine.admit(facts({ jobid: 'bulk' }), T0).ok, false);
  assert.equal(engine.stats(T0).concurrency.counters, 2);
});

test('the ticket lists the policies applied, with the key, limits, tag and properties', () => {
  const { engine } = engineWith({
    policies: policies([
      { fields: [], conditions: [], default: { rate: { messages: 1000, seconds: 60 } } },
      { fields: ['localip', 'recipientdomain'], conditions: [{ if: { recipientdomain: 'example.com' }, then: { concurrency: 20, tag: 'big', properties: { 'backoff-rate': '100/60' } } }], default: { concurrency: 2 } },
    ]),
  });
  const t = ticketOf(engine.admit(facts(), T0));
  assert.deepEqual(t.policies, [
    { fields: [], condition: {}, rate: { messages: 1000, seconds: 60 } },
    { fields: ['localip', 'recipientdomain'], condition: { localip: '192.0.2.10', recipientdomain: 'example.com' }, tag: 'big', properties: { 'backoff-rate': '100/60' }, concurrency: 20 },
  ]);
  assert.deepEqual(t.tags, ['big']);
  assert.deepEqual(JSON.parse(JSON.stringify(t)), { policies: JSON.parse(JSON.stringify(t.policies)), tags: ['big'] }, 'JSON shows only policies and tags');
});

test('peek answers like admit but takes nothing', () => {
  const { engine } = engineWith({ policies: policies([{ fields: [], conditions: [], default: { concurrency: 1 } }]) });
  for (let i = 0; i < 3; i++) assert.equal(engine.peek(facts(), T0).ok, true);
  const t = ticketOf(engine.admit(facts(), T0));
  assert.equal(engine.peek(facts(), T0).ok, false);
  engine.release(t, T0);
  assert.equal(engine.peek(facts(), T0).ok, true);
});

test('a rate of 0 refuses until the configuration changes (no time, no key to wait on)', () => {
  const { engine } = engineWith({ policies: policies([{ fields: [], conditions: [], default: { rate: { messages: 0, seconds: 1 } } }]) });
  const v = engine.admit(facts(), T0);
  assert.ok(!v.ok && v.reason === 'rate' && v.until === undefined && v.waitKey === undefined);
});
