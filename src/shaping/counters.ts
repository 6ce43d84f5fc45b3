/**
 * Policy counters (halon-core.md §4.4): per counter key, the attempts in flight (concurrency),
 * the rate state (token bucket or fixed window) and the time of the last admission
 * (connectinterval).
 *
 * Inputs: the `LimitSource` that applies to the key, the rate algorithm of smtpd-policy.yaml,
 * `now` (Unix ms).
 * Outputs: `check` says whether one more attempt fits and, if not, until when or on what;
 * `take` counts an admission; `release` ends one; `idle` says whether a counter holds nothing
 * worth keeping.
 * Rules:
 * - concurrency n: at most n attempts in flight; a refusal waits on the counter's key.
 * - rate m/s, tokenbucket: a bucket of capacity m, full when new, refilled continuously at m
 *   per s seconds; an admission takes one token; refused until the next whole token.
 * - rate m/s, fixedwindow: at most m admissions per window of s seconds, windows aligned on
 *   multiples of s since the Unix epoch (every node and every key agrees on the boundaries);
 *   refused until the next window starts.
 * - connectinterval s: at least s seconds between two admissions of the key.
 * - stop (dynamic only): refused while the condition holds (until its TTL ends, if any).
 * - A rate of 0 messages refuses until the configuration changes (no time helps).
 * Invariants: state is plain numbers on a fixed-shape object (one per key); in-flight counts
 * are never negative.
 * Errors: none.
 */
import type { Rate } from '../config/syntax';
import type { LimitSource } from './conditions';
import type { WaitReason } from './types';

export type Algorithm = 'tokenbucket' | 'fixedwindow';

/** Floating-point slack when comparing token levels. */
const EPS = 1e-9;

export class Counter {
  /** Generation of the configuration `source` was resolved under. */
  gen = -1;
  source: LimitSource | null = null;
  inflight = 0;
  /** tokenbucket: tokens at `stamp` (NaN = full); fixedwindow: admissions in window `stamp` (NaN = none). */
  level = Number.NaN;
  stamp = 0;
  /** Time of the last admission (connectinterval). */
  last = Number.NEGATIVE_INFINITY;

  constructor(
    /** The key's values (match.ts `keyOf`) of the policy fields `mask`. */
    readonly values: string,
    readonly mask: number,
  ) {}

  /** Stable text of the counter key, `<mask>:<values>`: the `waitKey` of its refusals and wake-ups. */
  get key(): string {
    return `${this.mask}:${this.values}`;
  }
}

export interface Refusal {
  reason: WaitReason;
  until?: number;
  waitKey?: string;
  tag?: string;
}

/** Why `c` cannot take one more attempt now, or undefined when it can. */
export function check(c: Counter, src: LimitSource, algorithm: Algorithm, now: number): Refusal | undefined {
  const l = src.limits;
  const tag = l.tag;
  if (l.stop) return withTag({ reason: 'stop', ...(src.expires !== 0 ? { until: src.expires } : {}) }, tag);
  if (l.concurrency !== undefined && c.inflight >= l.concurrency) return withTag({ reason: 'concurrency', waitKey: c.key }, tag);
  if (l.rate !== undefined) {
    const r = rateCheck(c, l.rate, algorithm, now);
    if (r !== 0) return withTag(r === Infinity ? { reason: 'rate' } : { reason: 'rate', until: r }, tag);
  }
  if (l.connectinterval !== undefined && l.connectinterval > 0) {
    const next = c.last + l.connectinterval * 1000;
    if (now < next) return withTag({ reason: 'connectinterval', until: Math.ceil(next) }, tag);
  }
  return undefined;
}

function withTag(r: Refusal, tag: string | undefined): Refusal {
  if (tag !== undefined) r.tag = tag;
  return r;
}

/** Count one admission (after `check` passed for every counter). */
export function take(c: Counter, src: LimitSource, algorithm: Algorithm, now: number): void {
  c.inflight++;
  const l = src.limits;
  if (l.rate !== undefined) {
    if (algorithm === 'tokenbucket') {
      c.level = bucketLevel(c, l.rate, now) - 1;
      c.stamp = now;
    } else {
      const w = windowOf(l.rate, now);
      c.level = windowUsed(c, w) + 1;
      c.stamp = w;
    }
  }
  if (l.connectinterval !== undefined) c.last = now;
}

/** End one attempt; true when the counter was at its concurrency limit (someone may be waiting). */
export function release(c: Counter): boolean {
  const limit = c.source?.limits.concurrency;
  const wasFull = limit !== undefined && c.inflight >= limit;
  if (c.inflight > 0) c.inflight--;
  return wasFull;
}

/** Add tokens (tokenbucket, capped at the capacity) or give back admissions of the current window. */
export function refill(c: Counter, rate: Rate, algorithm: Algorithm, tokens: number, now: number): void {
  if (algorithm === 'tokenbucket') {
    c.level = Math.min(rate.messages, bucketLevel(c, rate, now) + tokens);
    c.stamp = now;
  } else {
    const w = windowOf(rate, now);
    c.level = Math.max(0, windowUsed(c, w) - tokens);
    c.stamp = w;
  }
}

/** 0 when a token is there; else when the next comes (Infinity = never). */
export function rateCheck(c: Counter, rate: Rate, algorithm: Algorithm, now: number): number {
  if (rate.messages <= 0) return Infinity;
  const period = rate.seconds * 1000;
  if (algorithm === 'tokenbucket') {
    const level = bucketLevel(c, rate, now);
    if (level >= 1 - EPS) return 0;
    return now + Math.max(1, Math.ceil(((1 - level) * period) / rate.messages - 1e-6));
  }
  const w = windowOf(rate, now);
  if (windowUsed(c, w) < rate.messages) return 0;
  return Math.ceil((w + 1) * period);
}

function bucketLevel(c: Counter, rate: Rate, now: number): number {
  if (Number.isNaN(c.level)) return rate.messages;
  const elapsed = Math.max(0, now - c.stamp);
  return Math.min(rate.messages, c.level + (elapsed * rate.messages) / (rate.seconds * 1000));
}

function windowOf(rate: Rate, now: number): number {
  return Math.floor(now / (rate.seconds * 1000));
}

function windowUsed(c: Counter, w: number): number {
  return Number.isNaN(c.level) || c.stamp !== w ? 0 : c.level;
}

/** Nothing in flight, bucket full (or window over), interval passed: forgetting it changes nothing. */
export function idle(c: Counter, algorithm: Algorithm, now: number): boolean {
  if (c.inflight > 0) return false;
  const l = c.source?.limits;
  if (!l) return true;
  if (l.rate !== undefined && !Number.isNaN(c.level)) {
    if (algorithm === 'tokenbucket' ? bucketLevel(c, l.rate, now) < l.rate.messages - EPS : c.stamp === windowOf(l.rate, now) && c.level > 0) return false;
  }
  if (l.connectinterval !== undefined && now < c.last + l.connectinterval * 1000) return false;
  return true;
}

/** Forget the rate state (the algorithm changed: the numbers mean something else). */
export function resetRate(c: Counter): void {
  c.level = Number.NaN;
  c.stamp = 0;
}
