/**
 * Contract of the traffic-shaping engine (halon-core.md §4.4–§4.7): pickup policies, static
 * and dynamic suspends, dynamic policy conditions, groupings and delivery settings.
 *
 * The engine is pure bookkeeping: no timers, no I/O; every call that depends on time takes
 * `now` (Unix ms). The queue manager owns the timers and asks the engine; the control socket,
 * hooks and the reload path change it.
 *
 * Facts: the values of the eight shaping fields for one prospective delivery attempt. Fields
 * that are not known are '' (e.g. remotemx/remoteip when no rule needs DNS and none was done).
 *
 * Admission (`admit`): static suspends, dynamic suspends, then every policy whose counter key
 * the facts give, in file order (dynamic conditions before the file's conditions, then the
 * policy's default). A rule that refuses yields a `Wait` saying until when (rate,
 * connectinterval, a suspend with a TTL) or on which counter (`waitKey`, concurrency) the
 * refusal holds; `until` and `waitKey` both absent = until the configuration changes. On
 * admission every counter is taken at once (concurrency +1, one rate token, connect time);
 * `release` gives back the concurrency slots when the attempt ends.
 *
 * Changes that may admit what was refused are announced through `onWake`: `{ key }` when a
 * concurrency slot of that counter was released, `'all'` after a reload, a suspend or
 * condition removal/update, or a refill.
 */
import type { DeliveryConfig, DeliverySettings, PolicyConfig, Properties, QueueField, SuspendConfig } from '../config/queue-files';
import type { QueuesConfig } from '../config/types';
import type { Rate } from '../config/syntax';

export type ShapingField = QueueField;
export type Facts = Readonly<Record<ShapingField, string>>;
/** Exact values per field (what dynamic suspends, dynamic conditions and refills name). */
export type FieldValues = Partial<Record<ShapingField, string>>;

export interface DynamicLimits {
  concurrency?: number;
  rate?: Rate;
  /** Seconds. */
  connectinterval?: number;
  tag?: string;
  properties?: Properties;
  /** Halon's `stop`: the entries of this key are not picked at all while the condition holds. */
  stop?: boolean;
}

/** One policy applied to an admitted attempt (postdelivery `arguments.policy.policies[]`). */
export interface AppliedPolicy {
  /** The counter: the policy's fields. */
  fields: ShapingField[];
  /** The counter key: the facts' value of each field. */
  condition: FieldValues;
  /** Dynamic condition id, when a dynamic condition gave the limits. */
  id?: string;
  tag?: string;
  properties?: Properties;
  concurrency?: number;
  rate?: Rate;
  connectinterval?: number;
}

/** What an admitted attempt holds; give it back with `release` when the attempt ends. */
export interface Ticket {
  readonly policies: readonly AppliedPolicy[];
  /** Tags of the policies applied (postdelivery `arguments.policy.tags`). */
  readonly tags: readonly string[];
}

export type WaitReason = 'suspend' | 'stop' | 'concurrency' | 'rate' | 'connectinterval';

export type Verdict =
  | { ok: true; ticket: Ticket }
  | { ok: false; reason: WaitReason; until?: number; waitKey?: string; tag?: string };

export interface SuspendOptions {
  id?: string;
  tag?: string;
  properties?: Properties;
  /** When a suspend with the same fields exists: true = update it (TTL, tag), the default. */
  update?: boolean;
}

export interface ConditionOptions {
  id?: string;
  /** When a condition with the same fields and values exists: true = update it (default). */
  update?: boolean;
}

export type SuspendSource = 'STATIC' | 'CONCURRENCY' | 'RATE' | 'DYNAMIC';

export interface SuspendItem {
  source: SuspendSource;
  /** Dynamic: its id; static: `static:<index>`; counters: the counter key text. */
  id: string;
  match: FieldValues;
  /** Seconds left; 0 = no TTL. */
  ttl: number;
  tag?: string;
}

export interface ConditionItem {
  id: string;
  fields: ShapingField[];
  if: FieldValues;
  then: DynamicLimits;
  /** Seconds left; 0 = no TTL. */
  ttl: number;
}

export interface ShapingStats {
  concurrency: { counters: number; suspends: number };
  rate: { buckets: number; suspends: number };
  dynamic: { suspends: number; conditions: number };
  static: { suspends: number; policies: number };
}

export type WakeScope = 'all' | { key: string };

export interface ShapingEngine {
  // ---- configuration (reload): valid configs only; counters of surviving policies are kept
  setPolicies(config: PolicyConfig): void;
  setSuspends(config: SuspendConfig): void;
  setDelivery(config: DeliveryConfig): void;
  /** `queues.grouping` of the running configuration (groupings[] and default). */
  setGrouping(grouping: QueuesConfig['grouping']): void;

  /**
   * True when some rule (static or dynamic, any file) or the grouping needs remotemx, remoteip
   * or a grouping computed from them: the manager then resolves next hops before `admit`.
   */
  needsRouting(): boolean;
  /** The `grouping` value for a destination: `&id` of the first matching groupings[] item, else per `default`. */
  groupingOf(recipientdomain: string, remotemx: string, remoteip: string): string;

  // ---- pickup
  admit(facts: Facts, now: number): Verdict;
  /** Check without taking anything (control socket listing, tests). */
  peek(facts: Facts, now: number): Verdict;
  release(ticket: Ticket, now: number): void;
  /** Delivery settings for an attempt: the first matching condition's `then` over `default`. */
  deliverySettings(facts: Facts): DeliverySettings;

  // ---- dynamic suspends (queue_suspend, control s t u O)
  addSuspend(match: FieldValues, ttl: number, opts: SuspendOptions, now: number): string;
  updateSuspend(id: string, change: { ttl?: number; tag?: string }, now: number): number;
  deleteSuspend(id: string): number;
  listSuspends(now: number, filter?: { id?: string; match?: FieldValues; tag?: string; limit?: number }): SuspendItem[];

  // ---- dynamic policy conditions (queue_policy, queue_policy_delete, control v w x P)
  /** Throws ShapingError when no policy of the file has exactly these fields. */
  addCondition(fields: ShapingField[], condition: FieldValues, limits: DynamicLimits, ttl: number, opts: ConditionOptions, now: number): string;
  updateCondition(id: string, change: { limits?: DynamicLimits; ttl?: number }, now: number): number;
  deleteCondition(id: string): number;
  listConditions(now: number): ConditionItem[];

  /** Control B: add `tokens` to the rate buckets whose key matches `match` (all given fields equal). */
  refill(match: FieldValues, tokens: number, now: number): number;

  // ---- time
  /** Drop expired dynamic suspends/conditions; true when something expired (then wake 'all'). */
  expire(now: number): boolean;
  /** Earliest TTL end of a dynamic suspend or condition. */
  nextExpiry(): number | undefined;
  /** Forget idle counters (nothing in flight, bucket full, interval passed); bounded work. */
  sweep(now: number): void;

  onWake(listener: (scope: WakeScope) => void): void;
  stats(now: number): ShapingStats;
}

/** A refusal meant for the caller (hook author, control-socket client). */
export class ShapingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShapingError';
  }
}
