/**
 * The functions hooks call on the running daemon, with Halon's names and argument shapes
 * (halon-core.md §4.4, §4.5, §4.7, §5.5): `queue_suspend`, `queue_policy`,
 * `queue_policy_delete`, `queue_quota`, and the shared memory `memory_*`.
 *
 * A hook imports them from the package: `import { queue_suspend } from 'halyard'` (the hook
 * loader maps 'halyard' to this process's own package, so these are the daemon's functions,
 * not a copy). The daemon binds them to its traffic-shaping engine, queue and memory with
 * `bindHookServices` at start; the control socket changes the same engine and memory, so
 * what a hook adds, `halyardctl queue suspend list` shows.
 *
 * Errors: a call before the daemon bound its services (e.g. a hook module's top level run by
 * `--test-config`) throws an Error saying so; bad arguments throw a TypeError (the hook's
 * error handling applies: the phase's error action, and a log line).
 */
import type { MemoryStore, JsonValue } from './memory';
import type { Properties } from '../config/queue-files';
import { parseRate, type Rate } from '../config/syntax';
import { QUEUE_FIELDS } from '../config/queue-files';
import type { DynamicLimits, FieldValues, ShapingEngine, ShapingField } from '../shaping/types';

export interface HookServices {
  shaping: ShapingEngine;
  quota(name: string): { count: number; bytes: number };
  memory: MemoryStore;
  now?: () => number;
}

let bound: HookServices | undefined;

/** Bind (or, with undefined, unbind) the daemon's services. */
export function bindHookServices(services: HookServices | undefined): void {
  bound = services;
}

function services(fn: string): HookServices {
  if (!bound) throw new Error(`${fn}() is only available in a running daemon`);
  return bound;
}

function now(s: HookServices): number {
  return (s.now ?? Date.now)();
}

export interface QueueSuspendOptions {
  id?: string;
  tag?: string;
  update?: boolean;
  properties?: Properties;
}

/**
 * Suspend delivery of the entries whose fields equal these values, for `ttl` seconds (0 = until
 * removed). An identical suspend gets its TTL (and tag) refreshed unless `update: false`.
 * Returns the suspend's id.
 */
export function queue_suspend(fields: FieldValues, ttl: number, options: QueueSuspendOptions = {}): string {
  const s = services('queue_suspend');
  checkTtl('queue_suspend', ttl);
  if (options.tag !== undefined && (typeof options.tag !== 'string' || options.tag.length > 32)) throw new TypeError('queue_suspend(): tag must be a string of at most 32 characters');
  return s.shaping.addSuspend(fieldValues('queue_suspend', fields), ttl, options, now(s));
}

/** Halon's policy map: `rate` as `[messages, seconds]`, `{messages, seconds}` or `"n/s"`. */
export interface QueuePolicyLimits {
  concurrency?: number;
  rate?: [number, number] | Rate | string;
  connectinterval?: number;
  tag?: string;
  properties?: Properties;
  stop?: boolean;
}

/**
 * Add a dynamic condition to the policy whose counter is `fields` (it must exist in
 * smtpd-policy.yaml): the entries whose fields equal `condition` get these limits for `ttl`
 * seconds. An existing condition with the same fields and values is updated unless
 * `update: false`. Returns its id.
 */
export function queue_policy(fields: ShapingField[], condition: FieldValues, policy: QueuePolicyLimits, ttl: number, options: { id?: string; update?: boolean } = {}): string {
  const s = services('queue_policy');
  checkTtl('queue_policy', ttl);
  if (!Array.isArray(fields) || fields.some((f) => !(QUEUE_FIELDS as readonly string[]).includes(f))) {
    throw new TypeError(`queue_policy(): fields must be a list of ${QUEUE_FIELDS.join(', ')}`);
  }
  return s.shaping.addCondition(fields, fieldValues('queue_policy', condition), limits(policy), ttl, options, now(s));
}

/** Remove a dynamic policy condition by id; true when one was removed. */
export function queue_policy_delete(id: string): boolean {
  return services('queue_policy_delete').shaping.deleteCondition(String(id)) > 0;
}

/** Entries queued with this quota name (`queue()` option `quotas`) and their bytes. */
export function queue_quota(name: string): { count: number; bytes: number } {
  return services('queue_quota').quota(String(name));
}

export function memory_store(key: string, value: JsonValue): JsonValue | undefined {
  return services('memory_store').memory.store(key, value);
}
export function memory_fetch(key: string): JsonValue | undefined {
  return services('memory_fetch').memory.fetch(key);
}
export function memory_exists(key: string): boolean {
  return services('memory_exists').memory.exists(key);
}
export function memory_delete(key: string): JsonValue | undefined {
  return services('memory_delete').memory.delete(key);
}
export function memory_inc(key: string, by?: number): number {
  return services('memory_inc').memory.inc(key, by);
}
export function memory_dec(key: string, by?: number): number {
  return services('memory_dec').memory.dec(key, by);
}

// ---------------------------------------------------------------------------------------------

function checkTtl(fn: string, ttl: number): void {
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) throw new TypeError(`${fn}(): ttl must be a number of seconds, 0 or more`);
}

function fieldValues(fn: string, v: FieldValues): FieldValues {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TypeError(`${fn}(): fields must be an object such as { recipientdomain: "example.com" }`);
  const out: FieldValues = {};
  for (const [k, val] of Object.entries(v)) {
    if (!(QUEUE_FIELDS as readonly string[]).includes(k)) throw new TypeError(`${fn}(): unknown field "${k}" (fields: ${QUEUE_FIELDS.join(', ')})`);
    if (typeof val !== 'string') throw new TypeError(`${fn}(): the value of ${k} must be a string`);
    out[k as ShapingField] = val;
  }
  return out;
}

function limits(p: QueuePolicyLimits): DynamicLimits {
  if (p === null || typeof p !== 'object') throw new TypeError('queue_policy(): policy must be an object such as { rate: [10, 60] }');
  const out: DynamicLimits = {};
  if (p.concurrency !== undefined) out.concurrency = positive('concurrency', p.concurrency);
  if (p.rate !== undefined) out.rate = rate(p.rate);
  if (p.connectinterval !== undefined) out.connectinterval = positive('connectinterval', p.connectinterval);
  if (p.tag !== undefined) out.tag = String(p.tag);
  if (p.properties !== undefined) out.properties = p.properties;
  if (p.stop !== undefined) out.stop = Boolean(p.stop);
  return out;
}

function positive(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TypeError(`queue_policy(): ${name} must be a number, 0 or more`);
  return v;
}

function rate(r: QueuePolicyLimits['rate']): Rate {
  if (Array.isArray(r) && r.length === 2) return { messages: positive('rate', r[0]), seconds: positive('rate', r[1]) };
  if (typeof r === 'string') {
    try {
      return parseRate(r);
    } catch (err) {
      throw new TypeError(`queue_policy(): ${(err as Error).message}`);
    }
  }
  if (r && typeof r === 'object' && 'messages' in r) return { messages: positive('rate', r.messages), seconds: positive('rate', r.seconds) };
  throw new TypeError('queue_policy(): rate must be [messages, seconds], {messages, seconds} or "messages/seconds"');
}
