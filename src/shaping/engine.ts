/**
 * The traffic-shaping engine (`ShapingEngine` of types.ts; halon-core.md §4.4–§4.6): static
 * and dynamic suspends, pickup policies with their counters and dynamic conditions, groupings
 * and delivery settings, behind one object the queue manager, the hooks and the control socket
 * share.
 *
 * Inputs: the three queue files and `queues.grouping` (set at start and on reload), facts of
 * prospective attempts, changes from hooks and the control socket; `now` (Unix ms) on every
 * call that depends on time — there are no timers here.
 * Outputs: verdicts with tickets, delivery settings, listings, statistics, wake-ups.
 * Invariants:
 * - `admit` checks every rule before it takes anything: either every applicable counter is
 *   taken or none is. A refusal by a time-based limit reports the latest time any of them
 *   holds until, so the caller is not woken only to be refused again.
 * - The limits of a counter key are cached on its counter with the configuration generation
 *   they were resolved under; any change to policies, groupings or dynamic conditions bumps
 *   the generation, and a cached dynamic condition past its TTL is resolved again.
 * - Counters are keyed by field set and values, not by policy position: a policy that survives
 *   a reload (same fields, any order) keeps its counters, in-flight counts included. Tickets
 *   hold their counters, so an attempt admitted before a reload that removed its policy still
 *   gives its slot back. Idle counters are forgotten by `sweep`, a bounded slice per call.
 * - Wake-ups: `{ key }` when a released slot was the last one of a full counter; `'all'` after
 *   a reload, a removal, an update, an expiry, a refill, or a suspend whose TTL got earlier.
 * Errors: `ShapingError` for a dynamic condition on a counter no policy has, an `if` outside
 * the fields, an id taken by another rule.
 */
import type { DeliveryConfig, DeliverySettings, PolicyConfig, SuspendConfig } from '../config/queue-files';
import type { QueuesConfig } from '../config/types';
import { ConditionStore } from './conditions';
import { CounterTable } from './counter-table';
import { Counter, check, idle, refill, release, resetRate, take, type Refusal } from './counters';
import { counterItem, counterStats, counterValues, dynamicItem, hasValues, secondsLeft, staticItem } from './listing';
import { DeliveryRules } from './delivery';
import { BIT_GROUPING, BIT_ROUTED, GroupingTable, exactKey, flat, keyOf, lowerValues, maskOf, rawValues } from './match';
import { PolicySet, type CompiledPolicy } from './policies';
import { DynamicSuspends, StaticSuspends, type SuspendHold } from './suspends';
import { ShapingTicket } from './ticket';
import {
  ShapingError,
  type ConditionItem,
  type ConditionOptions,
  type DynamicLimits,
  type Facts,
  type FieldValues,
  type ShapingEngine,
  type ShapingField,
  type ShapingStats,
  type SuspendItem,
  type SuspendOptions,
  type Ticket,
  type Verdict,
  type WakeScope,
} from './types';

/** Counters looked at per `sweep` call. */
const SWEEP_BATCH = 2000;

type Grouping = QueuesConfig['grouping'];
type SuspendFilter = { id?: string; match?: FieldValues; tag?: string; limit?: number };

const EMPTY_POLICIES: PolicyConfig = { file: '', rate: { algorithm: 'tokenbucket' }, policies: [] };
const EMPTY_SUSPENDS: SuspendConfig = { file: '', suspends: [] };
const EMPTY_DELIVERY: DeliveryConfig = { file: '', conditions: [] };

export function createShapingEngine(): ShapingEngine {
  return new Engine();
}

class Engine implements ShapingEngine {
  private gen = 0;
  private groupings = new GroupingTable(undefined);
  private policyConfig = EMPTY_POLICIES;
  private suspendConfig = EMPTY_SUSPENDS;
  private deliveryConfig = EMPTY_DELIVERY;
  private policies = new PolicySet(EMPTY_POLICIES, this.groupings);
  private statics = new StaticSuspends(EMPTY_SUSPENDS, this.groupings);
  private delivery = new DeliveryRules(EMPTY_DELIVERY, this.groupings);
  private readonly dynamic = new DynamicSuspends();
  private readonly conditions = new ConditionStore();
  private readonly counters = new CounterTable();
  /** The counter map of each policy, in policy order. */
  private policyCounters: Array<Map<string, Counter>> = [];
  private readonly listeners: Array<(scope: WakeScope) => void> = [];

  // ---- configuration -------------------------------------------------------------------------

  setPolicies(config: PolicyConfig): void {
    const next = new PolicySet(config, this.groupings);
    if (next.algorithm !== this.policies.algorithm) for (const c of this.counters.all()) resetRate(c);
    this.usePolicies(next);
    this.policyConfig = config;
    this.changed();
  }

  setSuspends(config: SuspendConfig): void {
    this.statics = new StaticSuspends(config, this.groupings);
    this.suspendConfig = config;
    this.emit('all');
  }

  setDelivery(config: DeliveryConfig): void {
    this.delivery = new DeliveryRules(config, this.groupings);
    this.deliveryConfig = config;
    this.emit('all');
  }

  setGrouping(grouping: Grouping): void {
    // `&id` in the three files means what the new groupings say: compile everything again.
    const groupings = new GroupingTable(grouping);
    const policies = new PolicySet(this.policyConfig, groupings);
    const statics = new StaticSuspends(this.suspendConfig, groupings);
    const delivery = new DeliveryRules(this.deliveryConfig, groupings);
    this.groupings = groupings;
    this.usePolicies(policies);
    this.statics = statics;
    this.delivery = delivery;
    this.changed();
  }

  private usePolicies(p: PolicySet): void {
    this.policies = p;
    this.policyCounters = p.policies.map((x) => this.counters.mapFor(x.mask));
  }

  needsRouting(): boolean {
    const mask = this.policies.fieldMask | this.statics.fieldMask | this.delivery.fieldMask | this.dynamic.fieldMask | this.conditions.fieldMask;
    return (mask & BIT_ROUTED) !== 0 || ((mask & BIT_GROUPING) !== 0 && this.groupings.needsRouting);
  }

  groupingOf(recipientdomain: string, remotemx: string, remoteip: string): string {
    return this.groupings.groupingOf(recipientdomain, remotemx, remoteip);
  }

  // ---- pickup --------------------------------------------------------------------------------

  admit(facts: Facts, now: number): Verdict {
    return this.decide(facts, now, true);
  }

  peek(facts: Facts, now: number): Verdict {
    return this.decide(facts, now, false);
  }

  release(ticket: Ticket, now: number): void {
    void now;
    if (!(ticket instanceof ShapingTicket)) return;
    for (const c of ticket.drain()) if (release(c)) this.emit({ key: c.key });
  }

  deliverySettings(facts: Facts): DeliverySettings {
    return this.delivery.settings(rawValues(facts));
  }

  private decide(facts: Facts, now: number, takeIt: boolean): Verdict {
    const raw = rawValues(facts);
    // Lower-cased values serve the exact-value indexes only: skip them when all are empty.
    const lower = this.statics.indexed || this.dynamic.size > 0 || this.conditions.size > 0 ? lowerValues(raw) : raw;
    const held = this.statics.check(raw, lower) ?? this.dynamic.check(lower, now);
    if (held) return suspended(held);
    const algorithm = this.policies.algorithm;
    const applied: Array<Counter | NonNullable<Counter['source']>> = [];
    let counted = false;
    let timed: Refusal | undefined;
    const list = this.policies.policies;
    for (let i = 0; i < list.length; i++) {
      const c = this.counterFor(list[i], this.policyCounters[i], raw, lower, now);
      const src = c?.source;
      if (!c || !src) continue;
      applied.push(c, src);
      if (!src.counted) continue;
      counted = true;
      const r = check(c, src, algorithm, now);
      if (!r) continue;
      if (r.until === undefined) return { ok: false, ...r };
      if (!timed || r.until > timed.until!) timed = r;
    }
    if (timed) return { ok: false, ...timed };
    if (takeIt && counted) {
      for (let i = 0; i < applied.length; i += 2) {
        const src = applied[i + 1] as NonNullable<Counter['source']>;
        if (src.counted) take(applied[i] as Counter, src, algorithm, now);
      }
    }
    return { ok: true, ticket: new ShapingTicket(applied, takeIt && counted) };
  }

  /** The counter of this policy for the facts, its limits current; none when the key has no limits. */
  private counterFor(p: CompiledPolicy, map: Map<string, Counter>, raw: readonly string[], lower: readonly string[], now: number): Counter | undefined {
    const key = keyOf(p.mask, raw);
    let c = map.get(key);
    if (c !== undefined && c.gen === this.gen && !(c.source !== null && c.source.expires !== 0 && c.source.expires <= now)) return c;
    const src = this.policies.resolve(p, raw, lower, this.conditions, now);
    if (c === undefined) {
      if (src === null) return undefined;
      c = new Counter(flat(key), p.mask);
      map.set(c.values, c);
    }
    c.source = src;
    c.gen = this.gen;
    return c;
  }

  // ---- dynamic suspends ----------------------------------------------------------------------

  addSuspend(match: FieldValues, ttl: number, opts: SuspendOptions, now: number): string {
    const { id, earlier } = this.dynamic.add(match, ttl, opts, now);
    if (earlier) this.emit('all');
    return id;
  }

  updateSuspend(id: string, change: { ttl?: number; tag?: string }, now: number): number {
    if (!this.dynamic.update(id, change, now)) return 0;
    this.emit('all');
    return 1;
  }

  deleteSuspend(id: string): number {
    if (!this.dynamic.delete(id)) return 0;
    this.emit('all');
    return 1;
  }

  listSuspends(now: number, filter: SuspendFilter = {}): SuspendItem[] {
    const out: SuspendItem[] = [];
    const limit = filter.limit !== undefined && filter.limit > 0 ? filter.limit : Infinity;
    const want = filter.match ? exactKey(filter.match) : undefined;
    for (const item of this.suspendItems(now, filter.id)) {
      if (filter.id !== undefined && item.id !== filter.id) continue;
      if (filter.tag !== undefined && (item.tag ?? '') !== filter.tag) continue;
      if (want && !hasValues(item.match, want)) continue;
      out.push(item);
      if (out.length >= limit) break;
    }
    return out;
  }

  private *suspendItems(now: number, id: string | undefined): IterableIterator<SuspendItem> {
    const one = id !== undefined ? this.dynamic.get(id, now) : undefined;
    for (const s of this.statics.items) yield staticItem(s);
    for (const s of one ? [one] : this.dynamic.live(now)) yield dynamicItem(s, now);
    if (one) return;
    const algorithm = this.policies.algorithm;
    for (const c of this.counters.all()) {
      const item = counterItem(c, algorithm, now);
      if (item) yield item;
    }
  }

  // ---- dynamic conditions --------------------------------------------------------------------

  addCondition(fields: ShapingField[], condition: FieldValues, limits: DynamicLimits, ttl: number, opts: ConditionOptions, now: number): string {
    if (!this.policies.hasCounter(maskOf(fields))) {
      const file = this.policyConfig.file || 'smtpd-policy.yaml';
      throw new ShapingError(`no policy in ${file} has the fields [${fields.join(', ')}]: a dynamic condition applies to a counter the policy file defines`);
    }
    const id = this.conditions.add(fields, condition, limits, ttl, opts, now);
    this.changed();
    return id;
  }

  updateCondition(id: string, change: { limits?: DynamicLimits; ttl?: number }, now: number): number {
    if (!this.conditions.update(id, change, now)) return 0;
    this.changed();
    return 1;
  }

  deleteCondition(id: string): number {
    if (!this.conditions.delete(id)) return 0;
    this.changed();
    return 1;
  }

  listConditions(now: number): ConditionItem[] {
    return this.conditions.live(now).map((c) => ({
      id: c.id,
      fields: [...c.fields],
      if: ConditionStore.ifOf(c),
      then: { ...c.source.limits },
      ttl: secondsLeft(c.expires, now),
    }));
  }

  refill(match: FieldValues, tokens: number, now: number): number {
    const want = exactKey(match);
    let affected = 0;
    for (const c of this.counters.all()) {
      const rate = c.source?.limits.rate;
      if (!rate || (c.mask & want.mask) !== want.mask || !hasValues(counterValues(c), want)) continue;
      refill(c, rate, this.policies.algorithm, tokens, now);
      affected++;
    }
    if (affected > 0) this.emit('all');
    return affected;
  }

  // ---- time ----------------------------------------------------------------------------------

  expire(now: number): boolean {
    const suspends = this.dynamic.expire(now);
    const conditions = this.conditions.expire(now);
    if (conditions > 0) this.gen++;
    if (suspends + conditions === 0) return false;
    this.emit('all');
    return true;
  }

  nextExpiry(): number | undefined {
    const a = this.dynamic.next();
    const b = this.conditions.next();
    return a === undefined ? b : b === undefined ? a : Math.min(a, b);
  }

  sweep(now: number): void {
    const algorithm = this.policies.algorithm;
    this.counters.sweep(SWEEP_BATCH, (c) => idle(c, algorithm, now), (mask) => this.policies.hasCounter(mask));
  }

  onWake(listener: (scope: WakeScope) => void): void {
    this.listeners.push(listener);
  }

  stats(now: number): ShapingStats {
    return {
      ...counterStats(this.counters.all(), this.policies.algorithm, now),
      dynamic: { suspends: this.dynamic.size, conditions: this.conditions.size },
      static: { suspends: this.statics.items.length, policies: this.policies.policies.length },
    };
  }

  // ---- helpers -------------------------------------------------------------------------------

  /** Limits may have changed: resolve them again, and let every waiter try. */
  private changed(): void {
    this.gen++;
    this.emit('all');
  }

  private emit(scope: WakeScope): void {
    for (const l of this.listeners) l(scope);
  }
}

function suspended(h: SuspendHold): Verdict {
  const v: Verdict = { ok: false, reason: 'suspend' };
  if (h.until !== undefined) v.until = h.until;
  if (h.tag !== undefined) v.tag = h.tag;
  return v;
}
