/**
 * Retry and expiry arithmetic of the queue (halon-core.md §3.2, §4.8). PURE: the clock is an
 * argument.
 *
 * Inputs: a transport group's retry policy {count, intervals[{interval, notify}], during} and an
 * entry's retry count (temporary failures so far) and reception time.
 * Rules:
 * - After the n-th temporary failure (entry.retry = n - 1 before it), the next attempt waits
 *   `intervals[min(n - 1, last)]` seconds: the first failure uses the first interval, and the
 *   last interval repeats for every later one.
 * - A "delayed" DSN is due when a failure reaches an interval with `notify: true` for the first
 *   time; a repeating last interval does not notify again on each repetition (one delay notice
 *   per configured point, not one per retry).
 * - An entry is expired when a temporary failure finds it has already used its retries
 *   (retry >= count: count 0 means "one attempt, no retries") or when it is older than
 *   `during` seconds. Expired entries bounce instead of being deferred.
 * Errors: none; an empty interval list falls back to FALLBACK_INTERVAL.
 */
import type { RetryInterval } from '../config/types';

export interface RetryPolicy {
  count: number;
  intervals: readonly RetryInterval[];
  /** Maximum age in seconds. */
  during: number;
}

/** Seconds to wait when a group has no intervals at all (the schema allows an empty list). */
export const FALLBACK_INTERVAL = 60;

export interface NextRetry {
  /** The new retry count. */
  retry: number;
  /** Next attempt time, Unix ms. */
  retryts: number;
  /** Seconds waited. */
  delay: number;
  /** A "delayed" DSN is due now. */
  notify: boolean;
}

/** The schedule after one more temporary failure of an entry that failed `retry` times before. */
export function nextRetry(policy: RetryPolicy, retry: number, now: number): NextRetry {
  const n = policy.intervals.length;
  if (n === 0) return { retry: retry + 1, retryts: now + FALLBACK_INTERVAL * 1000, delay: FALLBACK_INTERVAL, notify: false };
  const index = Math.min(Math.max(0, retry), n - 1);
  const step = policy.intervals[index];
  const delay = step.interval;
  return { retry: retry + 1, retryts: now + Math.round(delay * 1000), delay, notify: step.notify && retry < n };
}

/** Whether a temporary failure now ends the entry's life (retries used up, or too old). */
export function isExpired(policy: RetryPolicy, entry: { retry: number; ts: number }, now: number): boolean {
  if (entry.retry >= policy.count) return true;
  return now - entry.ts >= policy.during * 1000;
}

/** The time after which the entry expires by age, Unix ms (DSN Will-Retry-Until). */
export function expiresAt(policy: RetryPolicy, ts: number): number {
  return ts + policy.during * 1000;
}
