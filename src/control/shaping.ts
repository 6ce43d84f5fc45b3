/**
 * The control-socket commands of traffic shaping (halon-api.md §5.7, §5.8): suspends `s t u O`,
 * dynamic policy conditions `v w x P` and rate refill `B`, translated between the proto
 * messages (messages.ts, `internal` form) and the engine (src/shaping/types.ts).
 *
 * Inputs: decoded requests; the engine; a clock (Unix ms) for TTLs and listings.
 * Outputs: the response messages. The engine announces its own wake-ups (`onWake`) after a
 * change, so nothing here touches the queue.
 * Wire ↔ engine:
 * - the seven tuple fields of the proto (transportid, localip, remoteip, remotemx,
 *   recipientdomain, jobid, grouping) are the engine's fields of the same names; `tenantid`
 *   has no proto field, so a rule naming it is listed without it;
 * - a `StringValue` that is present names the field; TTLs are seconds (double), 0 = none;
 *   `then.rate {count, interval}` is the engine's `{messages, seconds}`.
 * Listing suspends (`s`): without a filter, or with a `condition` whose `pickup` is false,
 * the suspends an operator made (STATIC from smtpd-suspend.yaml, DYNAMIC from hooks and this
 * socket); `pickup: true` adds the suspends pickup policies hold on counters at their limit
 * (CONCURRENCY, RATE). A condition field lists the suspends whose own value of that field
 * equals the value given (compared as the engine compares exact values: case-insensitive,
 * IPv6 canonical; an element of a static suspend's list counts; a suspend that does not name
 * the field is not listed); several `localips` are alternatives; `tag` must be equal. `paging.limit` (0 = none) cuts the list after filtering, in the engine's order.
 * Updates (`O`, `P`): proto3 cannot tell an absent `ttl` from 0, so 0 leaves the TTL as it
 * is; `P`'s `then` replaces the condition's limits (rate, concurrency, tag, stop) and keeps
 * what the message cannot carry (properties, connectinterval).
 * Errors: `ControlError` (its text goes to the client) for bad input — an empty or missing id
 * where one is needed, an empty field value, an IP field that is not an IP address, a
 * negative or non-finite TTL, a tag over 32 characters, a condition without fields or whose
 * `if` names a field outside them, a `then` that sets nothing, a rate without a positive
 * interval, tokens not above 0, an update that changes nothing — and for every
 * `ShapingError` of the engine (e.g. no policy has these fields).
 */
import { isIP } from 'node:net';
import { ControlError, type ShapingControl } from './context';
import { normaliseValue } from '../shaping/match';
import type * as M from './messages';
import {
  ShapingError,
  type ConditionItem,
  type DynamicLimits,
  type FieldValues,
  type ShapingEngine,
  type ShapingField,
  type SuspendItem,
  type SuspendSource,
} from '../shaping/types';

/** The tuple fields the proto carries, in field-number order. */
export type WireField = keyof M.TupleFields;
export const WIRE_FIELDS: readonly WireField[] = ['transportid', 'localip', 'remoteip', 'remotemx', 'recipientdomain', 'jobid', 'grouping'];
/** halon-core.md §4.5: a suspend's tag is at most 32 characters. */
export const MAX_TAG_LENGTH = 32;

const IP_FIELDS: ReadonlySet<WireField> = new Set(['localip', 'remoteip']);
/** Sources listed when the client does not ask for pickup-policy suspends. */
const OPERATOR_SOURCES: ReadonlySet<SuspendSource> = new Set(['STATIC', 'DYNAMIC']);

export interface ShapingControlOptions {
  /** Unix ms; default `Date.now`. */
  now?: () => number;
}

export function shapingControl(engine: ShapingEngine, opts: ShapingControlOptions = {}): ShapingControl {
  const now = opts.now ?? Date.now;
  return {
    suspendList: (req) => guarded(() => suspendList(engine, req, now())),
    suspendAdd: (req) => guarded(() => suspendAdd(engine, req, now())),
    suspendUpdate: (req) => guarded(() => suspendUpdate(engine, req, now())),
    suspendDelete: (req) => guarded(() => ({ affected: engine.deleteSuspend(requireId(req.id, 'suspend')) })),
    policyList: () => guarded(() => ({ items: engine.listConditions(now()).map(conditionItem) })),
    policyAdd: (req) => guarded(() => policyAdd(engine, req, now())),
    policyUpdate: (req) => guarded(() => policyUpdate(engine, req, now())),
    policyDelete: (req) => guarded(() => ({ affected: engine.deleteCondition(requireId(req.id, 'policy condition')) })),
    rateRefill: (req) => guarded(() => rateRefill(engine, req, now())),
  };
}

/** The engine's refusals are meant for the client; anything else stays a bug (bland reply). */
function guarded<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ShapingError) throw new ControlError(err.message);
    throw err;
  }
}

// ---- values ----------------------------------------------------------------------------------

function requireId(id: string | undefined, what: string): string {
  if (!id) throw new ControlError(`the id of the ${what} is required`);
  return id;
}

function checkValue(field: WireField, value: string, where: string): string {
  if (value === '') throw new ControlError(`${where}${field} is empty; leave the field out to match any value`);
  if (IP_FIELDS.has(field) && isIP(value) === 0) throw new ControlError(`${where}${field} ${JSON.stringify(value)} is not an IP address`);
  return value;
}

/** The fields a tuple message names (present StringValues), checked. */
function tupleValues(t: M.TupleValues | undefined, where = ''): FieldValues {
  const out: FieldValues = {};
  for (const f of WIRE_FIELDS) {
    const v = t?.[f];
    if (v !== undefined && v !== null) out[f] = checkValue(f, v.value ?? '', where);
  }
  return out;
}

function wireValues(values: FieldValues): M.TupleValues {
  const out: M.TupleValues = {};
  for (const f of WIRE_FIELDS) {
    const v = values[f];
    if (v !== undefined) out[f] = { value: v };
  }
  return out;
}

/** TTL in seconds; 0 = none. */
function ttlOf(ttl: number | undefined): number {
  const s = ttl ?? 0;
  if (!Number.isFinite(s) || s < 0) throw new ControlError(`ttl must be a number of seconds >= 0 (0 = no expiry), not ${s}`);
  return s;
}

function suspendTag(tag: M.StringValue | undefined): string | undefined {
  const t = tag?.value;
  if (t && t.length > MAX_TAG_LENGTH) throw new ControlError(`tag is ${t.length} characters long; at most ${MAX_TAG_LENGTH} are allowed`);
  return t || undefined;
}

// ---- suspends --------------------------------------------------------------------------------

type SuspendFilter = (item: SuspendItem) => boolean;

/**
 * Whether a suspend's own value of a field is one of `wanted` (normalised). A static suspend
 * written with a list shows it comma-separated; each element counts on its own.
 */
function valueIn(item: SuspendItem, field: WireField, wanted: ReadonlySet<string>): boolean {
  const have = item.match[field];
  if (have === undefined) return false;
  if (wanted.has(normaliseValue(have))) return true;
  return item.source === 'STATIC' && have.includes(',') && have.split(',').some((v) => wanted.has(normaliseValue(v.trim())));
}

function conditionFilter(c: NonNullable<M.SuspendRequest['condition']>): SuspendFilter {
  const tests: SuspendFilter[] = [];
  if (!c.pickup) tests.push((i) => OPERATOR_SOURCES.has(i.source));
  for (const f of WIRE_FIELDS) {
    const given = f === 'localip' ? (c.localips ?? []) : optionalValue((c as M.TupleValues)[f]);
    if (given.length === 0) continue;
    const wanted = new Set(given.map(normaliseValue));
    tests.push((i) => valueIn(i, f, wanted));
  }
  if (c.tag !== undefined && c.tag !== null) {
    const tag = c.tag.value ?? '';
    tests.push((i) => (i.tag ?? '') === tag);
  }
  return (i) => tests.every((t) => t(i));
}

function optionalValue(v: M.StringValue | undefined | null): string[] {
  return v === undefined || v === null ? [] : [v.value ?? ''];
}

function suspendList(engine: ShapingEngine, req: M.SuspendRequest, now: number): M.SuspendResponse {
  const limit = req.paging?.limit || Infinity;
  const byId = req.filter === 'id' || (req.filter === undefined && req.id !== undefined);
  let items: SuspendItem[];
  if (byId) {
    items = engine.listSuspends(now, { id: req.id ?? '' }).filter((i) => i.id === req.id);
  } else {
    const keep = conditionFilter(req.condition ?? {});
    items = engine.listSuspends(now).filter(keep);
  }
  return { items: items.slice(0, limit).map(suspendItem) };
}

function suspendItem(i: SuspendItem): NonNullable<M.SuspendResponse['items']>[number] {
  return {
    source: i.source,
    id: i.id,
    ...wireValues(i.match),
    ...(i.ttl > 0 ? { ttl: i.ttl } : {}),
    ...(i.tag ? { tag: { value: i.tag } } : {}),
  };
}

function suspendAdd(engine: ShapingEngine, req: M.SuspendAddRequest, now: number): M.SuspendAddResponse {
  const match = tupleValues(req);
  const ttl = ttlOf(req.ttl);
  const tag = suspendTag(req.tag);
  const id = engine.addSuspend(match, ttl, { ...(req.id ? { id: req.id } : {}), ...(tag ? { tag } : {}) }, now);
  return { id };
}

function suspendUpdate(engine: ShapingEngine, req: M.SuspendUpdateRequest, now: number): M.SuspendUpdateResponse {
  const id = requireId(req.id, 'suspend');
  const change: { ttl?: number; tag?: string } = {};
  const ttl = ttlOf(req.ttl);
  if (ttl > 0) change.ttl = ttl;
  if (req.tag !== undefined && req.tag !== null) change.tag = suspendTag(req.tag) ?? '';
  if (change.ttl === undefined && change.tag === undefined) throw new ControlError('nothing to update: give ttl (seconds from now) or tag');
  return { affected: engine.updateSuspend(id, change, now) };
}

// ---- dynamic policy conditions ---------------------------------------------------------------

function fieldList(fields: M.TupleFields | undefined): ShapingField[] {
  const out = WIRE_FIELDS.filter((f) => fields?.[f] === true);
  if (out.length === 0) throw new ControlError(`fields is empty: name the fields of the policy (counter) the condition is for (${WIRE_FIELDS.join(', ')})`);
  return out;
}

function rateOf(rate: NonNullable<M.PolicyThen['rate']>): DynamicLimits['rate'] {
  const count = rate.count ?? 0;
  const interval = rate.interval ?? 0;
  if (!Number.isFinite(interval) || interval <= 0) throw new ControlError(`then.rate.interval must be a number of seconds > 0, not ${interval}`);
  if (!Number.isSafeInteger(count) || count < 0) throw new ControlError(`then.rate.count must be a whole number >= 0, not ${count}`);
  return { messages: count, seconds: interval };
}

/** The limits a `then` sets; proto3 zero values (concurrency 0, stop false) set nothing. */
function limitsOf(then: M.PolicyThen | undefined): DynamicLimits {
  const out: DynamicLimits = {};
  if (then?.rate) out.rate = rateOf(then.rate);
  if (then?.concurrency) out.concurrency = then.concurrency;
  if (then?.tag?.value) out.tag = then.tag.value;
  if (then?.stop) out.stop = true;
  if (then?.properties && Object.keys(then.properties).length > 0) out.properties = { ...then.properties };
  if (Object.keys(out).length === 0) throw new ControlError('then sets nothing: give rate, concurrency, tag, stop or properties');
  return out;
}

function policyAdd(engine: ShapingEngine, req: M.PolicyConditionAddRequest, now: number): M.PolicyConditionAddResponse {
  const fields = fieldList(req.fields);
  const condition = tupleValues(req.if, 'if.');
  for (const f of Object.keys(condition) as ShapingField[]) {
    if (!fields.includes(f)) throw new ControlError(`if.${f} is not one of the condition's fields (${fields.join(', ')})`);
  }
  const limits = limitsOf(req.then);
  const ttl = ttlOf(req.ttl);
  const id = engine.addCondition(fields, condition, limits, ttl, req.id ? { id: req.id } : {}, now);
  return { id };
}

function policyUpdate(engine: ShapingEngine, req: M.PolicyConditionUpdateRequest, now: number): M.PolicyConditionUpdateResponse {
  const id = requireId(req.id, 'policy condition');
  const change: { limits?: DynamicLimits; ttl?: number } = {};
  const ttl = ttlOf(req.ttl);
  if (ttl > 0) change.ttl = ttl;
  if (req.then) {
    const limits = limitsOf(req.then);
    const current = engine.listConditions(now).find((c) => c.id === id);
    if (!current) return { affected: 0 };
    // The update message has no properties or connectinterval: keep the condition's own.
    if (current.then.properties) limits.properties = current.then.properties;
    if (current.then.connectinterval !== undefined) limits.connectinterval = current.then.connectinterval;
    change.limits = limits;
  }
  if (change.ttl === undefined && change.limits === undefined) throw new ControlError('nothing to update: give then (the new limits) or ttl (seconds from now)');
  return { affected: engine.updateCondition(id, change, now) };
}

function conditionItem(c: ConditionItem): NonNullable<M.PolicyConditionResponse['items']>[number] {
  const fields: M.TupleFields = {};
  for (const f of WIRE_FIELDS) if (c.fields.includes(f)) fields[f] = true;
  const then: M.PolicyThen = {};
  if (c.then.rate) then.rate = { count: c.then.rate.messages, interval: c.then.rate.seconds };
  if (c.then.concurrency !== undefined) then.concurrency = c.then.concurrency;
  if (c.then.tag) then.tag = { value: c.then.tag };
  if (c.then.stop) then.stop = true;
  if (c.then.properties) then.properties = Object.fromEntries(Object.entries(c.then.properties).map(([k, v]) => [k, String(v)]));
  return { id: c.id, fields, if: wireValues(c.if), then, ...(c.ttl > 0 ? { ttl: c.ttl } : {}) };
}

// ---- rate refill -----------------------------------------------------------------------------

function rateRefill(engine: ShapingEngine, req: M.PolicyRateRefillRequest, now: number): M.PolicyRateRefillResponse {
  const match = tupleValues(req);
  const tokens = req.tokens ?? 0;
  if (!Number.isFinite(tokens) || tokens <= 0) throw new ControlError(`tokens must be a number above 0, not ${tokens}`);
  return { affected: engine.refill(match, tokens, now) };
}
