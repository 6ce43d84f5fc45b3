/**
 * Retry and expiry arithmetic, default actions and the dispositions of Queue() options, and the
 * DSN status chosen for each kind of failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expiresAt, isExpired, nextRetry, type RetryPolicy } from '../../src/queue/retry';
import { defaultAction, dispose, queueDisposition } from '../../src/scheduler/outcome';
import { statusOf } from '../../src/scheduler/bounce';
import type { QueueEntry } from '../../src/model/types';

const policy: RetryPolicy = {
  count: 4,
  during: 3600,
  intervals: [{ interval: 60, notify: false }, { interval: 900, notify: true }, { interval: 3600, notify: false }],
};
const NOW = 1_700_000_000_000;

test('the n-th failure waits intervals[n-1]; the last interval repeats', () => {
  const delays = [0, 1, 2, 3, 4, 5].map((r) => nextRetry(policy, r, NOW).delay);
  assert.deepEqual(delays, [60, 900, 3600, 3600, 3600, 3600]);
  const n = nextRetry(policy, 0, NOW);
  assert.equal(n.retry, 1);
  assert.equal(n.retryts, NOW + 60_000);
});

test('a notify interval asks for one delayed DSN when first reached, not on repetitions', () => {
  assert.deepEqual([0, 1, 2, 3].map((r) => nextRetry(policy, r, NOW).notify), [false, true, false, false]);
  const last: RetryPolicy = { ...policy, intervals: [{ interval: 1, notify: false }, { interval: 2, notify: true }] };
  assert.deepEqual([0, 1, 2, 3].map((r) => nextRetry(last, r, NOW).notify), [false, true, false, false]);
});

test('no intervals: a fixed fallback delay', () => {
  assert.equal(nextRetry({ ...policy, intervals: [] }, 7, NOW).delay, 60);
});

test('expiry: by retry count (count 0 = no retries) and by age', () => {
  assert.equal(isExpired(policy, { retry: 3, ts: NOW }, NOW), false);
  assert.equal(isExpired(policy, { retry: 4, ts: NOW }, NOW), true);
  assert.equal(isExpired({ ...policy, count: 0 }, { retry: 0, ts: NOW }, NOW), true);
  assert.equal(isExpired(policy, { retry: 0, ts: NOW - 3_599_000 }, NOW), false);
  assert.equal(isExpired(policy, { retry: 0, ts: NOW - 3_600_000 }, NOW), true);
  assert.equal(expiresAt(policy, NOW), NOW + 3_600_000);
});

test('default actions: success none, temporary QUEUE (BOUNCE when expired), permanent BOUNCE', () => {
  assert.equal(defaultAction('delivered', false), undefined);
  assert.equal(defaultAction('temporary', false), 'QUEUE');
  assert.equal(defaultAction('temporary', true), 'BOUNCE');
  assert.equal(defaultAction('permanent', false), 'BOUNCE');
  assert.equal(defaultAction('bounce', false), 'BOUNCE');
  assert.equal(defaultAction('delete', false), 'DELETE');
});

function e(over: Partial<QueueEntry> = {}): QueueEntry {
  return { retry: 1, transportid: 'out', ts: NOW, ...over } as QueueEntry;
}

test('Queue() options: delay, hold, increment_retry, reset_retry, transportid', () => {
  assert.deepEqual(queueDisposition(e(), {}, policy, NOW), { kind: 'queue', state: 'DEFER', retry: 2, retryts: NOW + 900_000, transportid: 'out', notify: true });
  assert.deepEqual(queueDisposition(e(), { delay: 5, increment_retry: false }, policy, NOW), { kind: 'queue', state: 'DEFER', retry: 1, retryts: NOW + 5000, transportid: 'out', notify: false });
  assert.deepEqual(queueDisposition(e(), { hold: true, reason: 'q' }, policy, NOW), { kind: 'queue', state: 'HOLD', retry: 2, retryts: 0, transportid: 'out', notify: false, reason: 'q' });
  assert.equal((queueDisposition(e({ retry: 9 }), { reset_retry: true }, policy, NOW) as { retry: number }).retry, 0);
  assert.equal((queueDisposition(e(), { transportid: 'alt' }, policy, NOW) as { transportid: string }).transportid, 'alt');
});

test('dispose: Default takes the default action; a hook action replaces it', () => {
  assert.deepEqual(dispose(e(), undefined, { action: 'Default' }, policy, NOW), { kind: 'delivered' });
  assert.deepEqual(dispose(e(), 'BOUNCE', { action: 'Default' }, policy, NOW), { kind: 'bounce' });
  assert.deepEqual(dispose(e(), 'BOUNCE', { action: 'Delete', options: { reason: 'r' } }, policy, NOW), { kind: 'delete', reason: 'r' });
  assert.equal(dispose(e(), 'BOUNCE', { action: 'Queue', options: { hold: true } }, policy, NOW).kind, 'queue');
  assert.equal(dispose(e(), 'QUEUE', { action: 'Bounce', options: {} }, policy, NOW).kind, 'bounce');
});

test('DSN status: the remote enhanced code with the action class; by error type otherwise; 5.4.7 on expiry', () => {
  const reply = { code: 450, enhanced: [4, 2, 2] as [number, number, number], reason: ['full'], state: 'RCPT' as const };
  assert.equal(statusOf({ result: reply }, 'delayed'), '4.2.2');
  assert.equal(statusOf({ result: reply }, 'failed'), '5.2.2');
  assert.equal(statusOf({ result: reply }, 'failed', true), '5.4.7');
  assert.equal(statusOf({ result: { ...reply, code: 550, enhanced: null } }, 'failed'), '5.0.0');
  assert.equal(statusOf({ error: { temporary: false, type: 'dns', dns: 'nullmx', message: '' } }, 'failed'), '5.1.10');
  assert.equal(statusOf({ error: { temporary: false, type: 'dns', dns: 'nxdomain', message: '' } }, 'failed'), '5.1.2');
  assert.equal(statusOf({ error: { temporary: true, type: 'network', message: '' } }, 'delayed'), '4.4.1');
  assert.equal(statusOf({ error: { temporary: true, type: 'tls', message: '' } }, 'delayed'), '4.7.10');
  assert.equal(statusOf({ error: { temporary: false, type: 'smtp', message: '', enhanced: [5, 3, 4] } }, 'failed'), '5.3.4');
});
