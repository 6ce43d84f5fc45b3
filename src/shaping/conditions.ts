/**
 * Dynamic policy conditions (halon-core.md §4.4 "Dynamic policies", §5.5 `queue_policy`):
 * limits for the counter keys of one policy whose fields equal given values, for a TTL.
 *
 * Inputs: the counter's fields, the `if` values (a subset of those fields, exact), the limits,
 * TTL seconds (0 = none) and options; lower-cased facts (match.ts) for lookups.
 * Outputs: the condition that applies to a key — the most recently added live one among those
 * whose values all equal the facts — and listings.
 * Invariants: conditions are indexed per counter field set, then by their own `if` fields and
 * values (`ExactIndex`), so a lookup costs one Map lookup per distinct `if` field set of that
 * counter. A condition's `source` object is replaced, never changed, when it is updated, so a
 * ticket that took a counter under the old limits still gives back exactly what it took.
 * Same fields and same values as an existing condition → that one is updated (limits, TTL)
 * unless `update: false`.
 * Errors: `ShapingError` for an `if` field outside the fields, or an id already taken by another
 * condition. Whether a policy with these fields exists is the engine's check.
 */
import { randomUUID } from 'node:crypto';
import { ExactIndex } from './exact-index';
import { ExpiryQueue, type Expiring } from './expiry';
import { exactKey, flat, maskOf, valuesOfKey } from './match';
import { ShapingError, type ConditionOptions, type DynamicLimits, type FieldValues, type ShapingField } from './types';

/** Limits as resolved for a counter key, from a file condition, a default or a dynamic condition. */
export interface LimitSource {
  readonly limits: DynamicLimits;
  /** Has a limit to count against (concurrency, rate, connectinterval, stop). */
  readonly counted: boolean;
  /** Dynamic condition id. */
  readonly id?: string;
  /** Unix ms the dynamic condition ends; 0 = no end. */
  readonly expires: number;
}

export function limitSource(limits: DynamicLimits, id?: string, expires = 0): LimitSource {
  const counted = limits.concurrency !== undefined || limits.rate !== undefined || limits.connectinterval !== undefined || limits.stop === true;
  return Object.freeze(id === undefined ? { limits, counted, expires } : { limits, counted, id, expires });
}

export interface Condition extends Expiring {
  readonly id: string;
  /** The counter (policy fields) as a mask, and as the caller named them. */
  readonly fieldsMask: number;
  readonly fields: ShapingField[];
  readonly ifMask: number;
  readonly key: string;
  /** Order of addition: the most recent applies first. */
  readonly seq: number;
  source: LimitSource;
}

export class ConditionStore {
  private readonly byId = new Map<string, Condition>();
  private readonly perCounter = new Map<number, ExactIndex<Condition>>();
  private readonly ttl = new ExpiryQueue<Condition>();
  private seq = 0;

  get size(): number {
    return this.byId.size;
  }

  /** Union of the fields the conditions' counters name. */
  get fieldMask(): number {
    let m = 0;
    for (const c of this.perCounter.keys()) m |= c;
    return m;
  }

  add(fields: ShapingField[], values: FieldValues, limits: DynamicLimits, ttl: number, opts: ConditionOptions, now: number): string {
    const fieldsMask = maskOf(fields);
    const { mask: ifMask, key } = exactKey(values);
    if ((ifMask & fieldsMask) !== ifMask) {
      const extra = Object.keys(values).filter((f) => !fields.includes(f as ShapingField));
      throw new ShapingError(`the condition names ${extra.join(', ')}, which is not among the fields [${fields.join(', ')}]`);
    }
    const expires = ttl > 0 ? now + ttl * 1000 : 0;
    const index = this.perCounter.get(fieldsMask);
    const same = opts.update === false ? undefined : index?.at(ifMask, key).at(-1);
    if (same) {
      same.source = limitSource(limits, same.id, expires);
      this.setExpiry(same, expires);
      return same.id;
    }
    const id = flat(opts.id ?? randomUUID());
    if (this.byId.has(id)) throw new ShapingError(`a policy condition with id ${id} already exists with other fields or values`);
    const c: Condition = { id, fieldsMask, fields: [...fields], ifMask, key: flat(key), seq: ++this.seq, source: limitSource(limits, id, expires), expires, heapAt: 0, live: true };
    this.byId.set(id, c);
    let idx = index;
    if (!idx) this.perCounter.set(fieldsMask, (idx = new ExactIndex()));
    idx.add(ifMask, key, c);
    this.ttl.schedule(c);
    return id;
  }

  update(id: string, change: { limits?: DynamicLimits; ttl?: number }, now: number): boolean {
    const c = this.get(id, now);
    if (!c) return false;
    const expires = change.ttl === undefined ? c.expires : change.ttl > 0 ? now + change.ttl * 1000 : 0;
    c.source = limitSource(change.limits ?? c.source.limits, id, expires);
    this.setExpiry(c, expires);
    return true;
  }

  delete(id: string): boolean {
    const c = this.byId.get(id);
    if (!c) return false;
    this.unlink(c);
    this.ttl.forget(c);
    return true;
  }

  /** The most recently added live condition of counter `fieldsMask` matching the facts. */
  lookup(fieldsMask: number, lower: readonly string[], now: number): Condition | undefined {
    const index = this.perCounter.get(fieldsMask);
    if (!index) return undefined;
    let best: Condition | undefined;
    index.visit(lower, (c) => {
      if (this.alive(c, now) && (best === undefined || c.seq > best.seq)) best = c;
      return false;
    });
    return best;
  }

  expire(now: number): number {
    const due = this.ttl.due(now);
    for (const c of due) this.unlink(c);
    return due.length;
  }

  next(): number | undefined {
    return this.ttl.next();
  }

  get(id: string, now: number): Condition | undefined {
    const c = this.byId.get(id);
    return c && this.alive(c, now) ? c : undefined;
  }

  /** Live conditions, oldest first. */
  live(now: number): Condition[] {
    return [...this.byId.values()].filter((c) => this.alive(c, now)).sort((a, b) => a.seq - b.seq);
  }

  static ifOf(c: Condition): FieldValues {
    return valuesOfKey(c.ifMask, c.key);
  }

  private alive(c: Condition, now: number): boolean {
    return c.live && (c.expires === 0 || c.expires > now);
  }

  private setExpiry(c: Condition, expires: number): void {
    c.expires = expires;
    this.ttl.schedule(c);
  }

  private unlink(c: Condition): void {
    if (this.byId.get(c.id) !== c) return;
    this.byId.delete(c.id);
    const index = this.perCounter.get(c.fieldsMask);
    index?.remove(c.ifMask, c.key, c);
    if (index && index.size === 0) this.perCounter.delete(c.fieldsMask);
  }
}
