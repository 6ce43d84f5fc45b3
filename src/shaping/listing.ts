/**
 * How the engine's state reads to an operator (control socket `s`, `v`, `q`): suspends of
 * every source as `SuspendItem`s, counters that refuse, and counts for `stats`.
 *
 * Inputs: static and dynamic suspends, counters, the rate algorithm, `now` (Unix ms).
 * Outputs: `SuspendItem`s; the counter part of `ShapingStats`; value comparisons for filters.
 * Invariants: a counter is listed as CONCURRENCY when its in-flight attempts reached the limit,
 * as RATE when its rate or its connect interval refuses now (with the seconds until it
 * admits), and not at all otherwise. Counters are named `field=value,…` in field order, `*` for
 * the global one. TTLs are seconds left, 0 = none.
 * Errors: none.
 */
import { check, rateCheck, type Algorithm, type Counter } from './counters';
import { exactKey, fieldsOf, valuesOfKey } from './match';
import { DynamicSuspends, StaticSuspends, type DynamicSuspend } from './suspends';
import type { FieldValues, ShapingStats, SuspendItem } from './types';

export function secondsLeft(end: number, now: number): number {
  return end === 0 ? 0 : Math.max(0, (end - now) / 1000);
}

function withTag(item: SuspendItem, tag: string | undefined): SuspendItem {
  if (tag !== undefined) item.tag = tag;
  return item;
}

export function staticItem(s: StaticSuspends['items'][number]): SuspendItem {
  return withTag({ source: 'STATIC', id: `static:${s.index}`, match: StaticSuspends.matchOf(s.source), ttl: 0 }, s.source.tag);
}

export function dynamicItem(s: DynamicSuspend, now: number): SuspendItem {
  return withTag({ source: 'DYNAMIC', id: s.id, match: DynamicSuspends.matchOf(s), ttl: secondsLeft(s.expires, now) }, s.tag);
}

/** A counter that refuses now, as a suspend; undefined when it admits (or refuses by stop). */
export function counterItem(c: Counter, algorithm: Algorithm, now: number): SuspendItem | undefined {
  const src = c.source;
  if (!src || !src.counted) return undefined;
  const l = src.limits;
  const base = { id: counterLabel(c), match: counterValues(c) };
  if (l.concurrency !== undefined && c.inflight >= l.concurrency) return withTag({ source: 'CONCURRENCY', ...base, ttl: 0 }, l.tag);
  const r = check(c, src, algorithm, now);
  if (!r || r.reason === 'stop') return undefined;
  return withTag({ source: 'RATE', ...base, ttl: r.until !== undefined ? secondsLeft(r.until, now) : 0 }, l.tag);
}

export function counterValues(c: Counter): FieldValues {
  return valuesOfKey(c.mask, c.values);
}

function counterLabel(c: Counter): string {
  const values = counterValues(c);
  const fields = fieldsOf(c.mask);
  return fields.length === 0 ? '*' : fields.map((f) => `${f}=${values[f]}`).join(',');
}

/** `values` names every field of `want` with an equal value (case-insensitive, IPv6 canonical). */
export function hasValues(values: FieldValues, want: { mask: number; key: string }): boolean {
  const picked: FieldValues = {};
  for (const f of fieldsOf(want.mask)) {
    if (values[f] === undefined) return false;
    picked[f] = values[f];
  }
  return exactKey(picked).key === want.key;
}

/** The counter part of `stats`. */
export function counterStats(counters: Iterable<Counter>, algorithm: Algorithm, now: number): Pick<ShapingStats, 'concurrency' | 'rate'> {
  const s = { concurrency: { counters: 0, suspends: 0 }, rate: { buckets: 0, suspends: 0 } };
  for (const c of counters) {
    const l = c.source?.limits;
    if (!l) continue;
    if (l.concurrency !== undefined) {
      s.concurrency.counters++;
      if (c.inflight >= l.concurrency) s.concurrency.suspends++;
    }
    if (l.rate !== undefined) {
      s.rate.buckets++;
      if (rateCheck(c, l.rate, algorithm, now) !== 0) s.rate.suspends++;
    }
  }
  return s;
}
