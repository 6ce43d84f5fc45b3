/**
 * Delivery settings of smtpd-delivery.yaml (halon-core.md §4.6): for an attempt, the `then` of
 * the first condition whose `if` matches, merged over `default`.
 *
 * Inputs: `DeliveryConfig`, the groupings, raw facts (match.ts).
 * Outputs: frozen `DeliverySettings` objects, one per condition plus the default, merged once
 * at load time, so a lookup allocates nothing.
 * Invariants: the merge is per key: `tls`, `pooling` and `retry` merge their own keys (a
 * condition's `retry.intervals` replaces the default's list), `timeout.connect` overrides and
 * `timeout.smtp` merges per SMTP state; a key the condition leaves out keeps the default's.
 * Errors: none beyond `compileMatch`'s.
 */
import type { DeliveryConfig, DeliverySettings } from '../config/queue-files';
import { compileFieldMatch, matches, type CompiledMatch, type GroupingTable } from './match';

export class DeliveryRules {
  private readonly rules: ReadonlyArray<{ match: CompiledMatch; settings: DeliverySettings }>;
  private readonly fallback: DeliverySettings;
  readonly fieldMask: number;

  constructor(config: DeliveryConfig, groupings: GroupingTable) {
    const base = config.default ?? {};
    this.fallback = deepFreeze(mergeSettings({}, base));
    this.rules = config.conditions.map((c) => ({ match: compileFieldMatch(c.if, groupings), settings: deepFreeze(mergeSettings(base, c.then)) }));
    this.fieldMask = this.rules.reduce((m, r) => m | r.match.mask, 0);
  }

  settings(raw: readonly string[]): DeliverySettings {
    for (const r of this.rules) if (matches(r.match, raw)) return r.settings;
    return this.fallback;
  }
}

/** `over` deep-merged over `base` (new objects; neither argument is changed). */
export function mergeSettings(base: DeliverySettings, over: DeliverySettings): DeliverySettings {
  const out: DeliverySettings = {};
  const tls = merged(base.tls, over.tls);
  if (tls) out.tls = tls;
  const pooling = merged(base.pooling, over.pooling);
  if (pooling) out.pooling = pooling;
  const timeout = mergeTimeout(base.timeout, over.timeout);
  if (timeout) out.timeout = timeout;
  const retry = merged(base.retry, over.retry);
  if (retry) out.retry = retry.intervals ? { ...retry, intervals: retry.intervals.map((i) => ({ ...i })) } : retry;
  return out;
}

function merged<T extends object>(a: T | undefined, b: T | undefined): T | undefined {
  return a === undefined && b === undefined ? undefined : { ...(a ?? {}), ...(b ?? {}) } as T;
}

function mergeTimeout(a: DeliverySettings['timeout'], b: DeliverySettings['timeout']): DeliverySettings['timeout'] {
  const t = merged(a, b);
  if (!t) return undefined;
  const smtp = merged(a?.smtp, b?.smtp);
  if (smtp) t.smtp = smtp;
  return t;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
