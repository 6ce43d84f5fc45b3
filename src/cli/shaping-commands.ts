/**
 * halyardctl's traffic-shaping subcommands (halon-api.md §9): `queue suspend
 * list|add|update|delete` (s t O u) and `queue policy list|add|update|delete|refill`
 * (v w P x B). The `… reload` subcommands stay in subcommands.ts.
 *
 * Inputs: parsed arguments. The tuple flags (`--transportid`, `--localip`, `--remoteip`,
 * `--remotemx`, `--recipientdomain`, `--jobid`, `--grouping`) name exact values, as the
 * engine compares them; `--ttl` takes seconds or a duration (`15m`, `1h30m`); `--rate` takes
 * `N/S` or `N` (per second), as smtpd-policy.yaml does.
 * Outputs: the request message; for the reply an aligned table (list), the new id (add), or
 * "N suspends affected"-style lines — `--json` is handled by main.ts.
 * Invariants: request building is pure (`--json-request` never touches the network).
 * Safety: `queue suspend add` and `queue policy refill` without any tuple flag would act on
 * every destination, so they need `--all`, as `queue update` does.
 * Errors: `UsageError` (exit 2) for unknown fields, bad numbers, durations or rates, missing
 * `--id`, conflicting options. The daemon's refusals (exit 1) come back through main.ts.
 * This module imports only types from subcommands.ts (which imports this one).
 */
import type * as M from '../control/messages';
import { decodeMessage } from '../control/schema';
import { parseDuration, parseRate } from '../config/syntax';
import { single, UsageError, type OptionSpec, type ParsedArgs } from './options';
import { table } from './queue-commands';
import type { Subcommand } from './subcommands';

type WireField = keyof M.TupleFields;
const WIRE_FIELDS: readonly WireField[] = ['transportid', 'localip', 'remoteip', 'remotemx', 'recipientdomain', 'jobid', 'grouping'];

const FIELD_HELP: Readonly<Record<WireField, string>> = {
  transportid: 'transport id',
  localip: 'local (source) IP address',
  remoteip: 'remote IP address',
  remotemx: 'remote MX host name',
  recipientdomain: 'recipient domain',
  jobid: 'job id',
  grouping: 'grouping, e.g. &google',
};

function tupleOptions(repeatLocalip = false): OptionSpec[] {
  return WIRE_FIELDS.map((f) => ({ name: f, value: 'VALUE', help: FIELD_HELP[f], ...(repeatLocalip && f === 'localip' ? { repeat: true } : {}) }));
}

/** The tuple flags given, as StringValues. */
function tupleOf(args: ParsedArgs): M.TupleValues {
  const out: M.TupleValues = {};
  for (const f of WIRE_FIELDS) {
    const v = single(args, f);
    if (v === undefined) continue;
    if (v === '') throw new UsageError(`--${f} needs a value; leave the option out to match any`);
    out[f] = { value: v };
  }
  return out;
}

function hasTuple(args: ParsedArgs): boolean {
  return WIRE_FIELDS.some((f) => args.values.has(f));
}

function noPositionals(args: ParsedArgs): void {
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
}

function requireId(args: ParsedArgs): string {
  const id = single(args, 'id');
  if (!id) throw new UsageError('--id ID is required');
  return id;
}

function ttl(args: ParsedArgs): number | undefined {
  const v = single(args, 'ttl');
  if (v === undefined) return undefined;
  try {
    return parseDuration(v);
  } catch {
    throw new UsageError(`--ttl takes seconds or a duration such as 15m or 1h30m; got ${JSON.stringify(v)}`);
  }
}

function positiveInt(args: ParsedArgs, name: string): number | undefined {
  const v = single(args, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) === 0) throw new UsageError(`--${name} takes a whole number above 0`);
  return Number(v);
}

function tag(args: ParsedArgs, max?: number): M.StringValue | undefined {
  const v = single(args, 'tag');
  if (v === undefined) return undefined;
  if (max !== undefined && v.length > max) throw new UsageError(`--tag takes at most ${max} characters; got ${v.length}`);
  return { value: v };
}

/** Seconds as `?d?h?m?s` (the config syntax), rounded up; '-' for none. */
export function formatTtl(seconds: number | undefined): string {
  if (!seconds || seconds <= 0) return '-';
  let s = Math.ceil(seconds);
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return parts.join('');
}

function matchText(values: M.TupleValues | undefined): string {
  const parts = WIRE_FIELDS.filter((f) => values?.[f]).map((f) => `${f}=${values?.[f]?.value ?? ''}`);
  return parts.length ? parts.join(' ') : '*';
}

function plural(n: number | undefined, one: string, many: string): string {
  const k = n ?? 0;
  return `${k} ${k === 1 ? one : many}`;
}

/** A reply `{affected}` as one line, e.g. "2 suspends deleted". */
function affected(type: string, one: string, many: string, verb: string): Subcommand['render'] {
  return (payload, _args, io) => {
    const res = decodeMessage<{ affected?: number }>(type, payload);
    io.out(`${plural(res.affected, one, many)} ${verb}\n`);
    return 0;
  };
}

function printId(type: string): Subcommand['render'] {
  return (payload, _args, io) => {
    io.out(`${decodeMessage<{ id?: string }>(type, payload).id ?? ''}\n`);
    return 0;
  };
}

const TTL_OPTION: OptionSpec = { name: 'ttl', value: 'DURATION', help: 'expire after DURATION (seconds, or e.g. 15m, 1h30m); default never' };

// ---- queue suspend ---------------------------------------------------------------------------

export const suspendList: Subcommand = {
  words: ['queue', 'suspend', 'list'],
  summary: 'list suspends (static and dynamic; --pickup adds those of pickup policies at their limit)',
  args: [],
  options: [
    { name: 'id', value: 'ID', help: 'only the suspend with this id' },
    ...tupleOptions(true),
    { name: 'tag', value: 'TAG', help: 'only suspends with this tag' },
    { name: 'pickup', help: 'also list the suspends of pickup policies (concurrency and rate counters at their limit)' },
    { name: 'limit', value: 'N', help: 'show at most N suspends' },
  ],
  command: 'suspendList',
  request: (args) => {
    noPositionals(args);
    const limit = positiveInt(args, 'limit');
    const req: M.SuspendRequest = {};
    const id = single(args, 'id');
    if (id !== undefined) {
      if (hasTuple(args) || args.values.has('tag') || args.flags.has('pickup')) throw new UsageError('--id lists one suspend; give it without other filters');
      req.id = id;
    } else {
      const { localip: _ignored, ...rest } = tupleOf(args);
      const cond: NonNullable<M.SuspendRequest['condition']> = { ...rest };
      const localips = args.values.get('localip');
      if (localips) cond.localips = localips;
      const t = tag(args);
      if (t) cond.tag = t;
      if (args.flags.has('pickup')) cond.pickup = true;
      if (Object.keys(cond).length > 0) req.condition = cond;
    }
    if (limit !== undefined) req.paging = { limit };
    return req;
  },
  render: (payload, _args, io) => {
    const res = decodeMessage<M.SuspendResponse>('SuspendResponse', payload);
    const items = res.items ?? [];
    const rows = items.map((i) => [i.source ?? 'STATIC', i.id ?? '', matchText(i), formatTtl(i.ttl), i.tag?.value ?? '']);
    io.out(table(['source', 'id', 'match', 'ttl', 'tag'], rows));
    io.out(`${plural(items.length, 'suspend', 'suspends')}\n`);
    return 0;
  },
};

export const suspendAdd: Subcommand = {
  words: ['queue', 'suspend', 'add'],
  summary: 'suspend delivery to the destinations matching every field flag given; prints the id',
  args: [],
  options: [
    ...tupleOptions(),
    TTL_OPTION,
    { name: 'tag', value: 'TAG', help: 'a label of at most 32 characters' },
    { name: 'id', value: 'ID', help: 'the id to give it (default: one is made up)' },
    { name: 'all', help: 'allow a suspend without field flags (suspends every delivery)' },
  ],
  command: 'suspendAdd',
  request: (args) => {
    noPositionals(args);
    if (!hasTuple(args) && !args.flags.has('all')) throw new UsageError('give field flags (e.g. --recipientdomain example.com), or --all to suspend every delivery');
    const req: M.SuspendAddRequest = tupleOf(args);
    const t = ttl(args);
    if (t !== undefined) req.ttl = t;
    const tg = tag(args, 32);
    if (tg) req.tag = tg;
    const id = single(args, 'id');
    if (id) req.id = id;
    return req;
  },
  render: printId('SuspendAddResponse'),
};

export const suspendUpdate: Subcommand = {
  words: ['queue', 'suspend', 'update'],
  summary: 'change the TTL or tag of a dynamic suspend; prints "N suspends affected"',
  args: [],
  options: [
    { name: 'id', value: 'ID', help: 'the suspend (required)' },
    { name: 'ttl', value: 'DURATION', help: 'expire DURATION from now (seconds, or e.g. 15m)' },
    { name: 'tag', value: 'TAG', help: 'the new tag (at most 32 characters; "" removes it)' },
  ],
  command: 'suspendUpdate',
  request: (args) => {
    noPositionals(args);
    const req: M.SuspendUpdateRequest = { id: requireId(args) };
    const t = ttl(args);
    if (t !== undefined) {
      if (t <= 0) throw new UsageError('--ttl takes a duration above 0');
      req.ttl = t;
    }
    const tg = tag(args, 32);
    if (tg) req.tag = tg;
    if (req.ttl === undefined && !req.tag) throw new UsageError('nothing to update: give --ttl or --tag');
    return req;
  },
  render: affected('SuspendUpdateResponse', 'suspend', 'suspends', 'affected'),
};

export const suspendDelete: Subcommand = {
  words: ['queue', 'suspend', 'delete'],
  summary: 'delete a dynamic suspend; prints "N suspends deleted"',
  args: [],
  options: [{ name: 'id', value: 'ID', help: 'the suspend (required)' }],
  command: 'suspendDelete',
  request: (args) => {
    noPositionals(args);
    return { id: requireId(args) } satisfies M.SuspendDeleteRequest;
  },
  render: affected('SuspendDeleteResponse', 'suspend', 'suspends', 'deleted'),
};

// ---- queue policy ----------------------------------------------------------------------------

/** `--fields a,b` (repeatable); default: the fields given as tuple flags. */
function fieldsOf(args: ParsedArgs): M.TupleFields {
  const given = (args.values.get('fields') ?? []).flatMap((v) => v.split(',')).map((f) => f.trim()).filter((f) => f !== '');
  const names = given.length ? given : WIRE_FIELDS.filter((f) => args.values.has(f));
  if (names.length === 0) throw new UsageError('give the policy fields with --fields (e.g. --fields localip,grouping) or field flags with values');
  const out: M.TupleFields = {};
  for (const n of names) {
    if (!(WIRE_FIELDS as readonly string[]).includes(n)) throw new UsageError(`--fields takes ${WIRE_FIELDS.join(', ')}; got ${JSON.stringify(n)}`);
    out[n as WireField] = true;
  }
  return out;
}

function rate(args: ParsedArgs): M.PolicyThen['rate'] | undefined {
  const v = single(args, 'rate');
  if (v === undefined) return undefined;
  try {
    const r = parseRate(v);
    return { count: r.messages, interval: r.seconds };
  } catch {
    throw new UsageError(`--rate takes MESSAGES/SECONDS (e.g. 10/60) or messages per second; got ${JSON.stringify(v)}`);
  }
}

function properties(args: ParsedArgs): Record<string, string> | undefined {
  const list = args.values.get('property');
  if (!list) return undefined;
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`--property takes KEY=VALUE; got ${JSON.stringify(kv)}`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

/** The limits given; `withProperties` for add (the update message has none). */
function thenOf(args: ParsedArgs, withProperties: boolean): M.PolicyThen | undefined {
  const then: M.PolicyThen = {};
  const r = rate(args);
  if (r) then.rate = r;
  const c = positiveInt(args, 'concurrency');
  if (c !== undefined) then.concurrency = c;
  const tg = tag(args);
  if (tg) then.tag = tg;
  if (args.flags.has('stop')) then.stop = true;
  const p = withProperties ? properties(args) : undefined;
  if (p) then.properties = p;
  return Object.keys(then).length ? then : undefined;
}

const LIMIT_OPTIONS: OptionSpec[] = [
  { name: 'concurrency', value: 'N', help: 'at most N deliveries at once per counter key' },
  { name: 'rate', value: 'N/S', help: 'at most N deliveries per S seconds (N alone = per second)' },
  { name: 'tag', value: 'TAG', help: 'a tag, seen by the post-delivery hook' },
  { name: 'stop', help: 'pick nothing of the matching keys while the condition holds' },
];

function thenText(t: M.PolicyThen | undefined): string {
  const parts: string[] = [];
  if (t?.concurrency) parts.push(`concurrency=${t.concurrency}`);
  if (t?.rate) parts.push(`rate=${t.rate.count ?? 0}/${t.rate.interval ?? 0}`);
  if (t?.tag?.value) parts.push(`tag=${t.tag.value}`);
  if (t?.stop) parts.push('stop');
  const props = Object.entries(t?.properties ?? {});
  if (props.length) parts.push(`properties=${props.map(([k, v]) => `${k}=${v}`).join(',')}`);
  return parts.join(' ') || '-';
}

export const policyList: Subcommand = {
  words: ['queue', 'policy', 'list'],
  summary: 'list the dynamic policy conditions',
  args: [],
  options: [],
  command: 'policyList',
  request: (args) => {
    noPositionals(args);
    return undefined;
  },
  render: (payload, _args, io) => {
    const res = decodeMessage<M.PolicyConditionResponse>('PolicyConditionResponse', payload);
    const items = res.items ?? [];
    const rows = items.map((i) => [i.id ?? '', WIRE_FIELDS.filter((f) => i.fields?.[f]).join(','), matchText(i.if), thenText(i.then), formatTtl(i.ttl)]);
    io.out(table(['id', 'fields', 'if', 'then', 'ttl'], rows));
    io.out(`${plural(items.length, 'condition', 'conditions')}\n`);
    return 0;
  },
};

export const policyAdd: Subcommand = {
  words: ['queue', 'policy', 'add'],
  summary: 'add a dynamic condition to the policy with --fields: limits for the keys matching the field flags; prints the id',
  args: [],
  options: [
    { name: 'fields', value: 'F1,F2', repeat: true, help: `the policy's fields (${WIRE_FIELDS.join(', ')}); default the field flags given` },
    ...tupleOptions(),
    ...LIMIT_OPTIONS,
    { name: 'property', value: 'KEY=VALUE', repeat: true, help: 'a property, seen by the post-delivery hook' },
    TTL_OPTION,
    { name: 'id', value: 'ID', help: 'the id to give it (default: one is made up)' },
  ],
  command: 'policyAdd',
  request: (args) => {
    noPositionals(args);
    const then = thenOf(args, true);
    if (!then) throw new UsageError('give at least one of --concurrency, --rate, --tag, --stop, --property');
    const req: M.PolicyConditionAddRequest = { fields: fieldsOf(args), if: tupleOf(args), then };
    const t = ttl(args);
    if (t !== undefined) req.ttl = t;
    const id = single(args, 'id');
    if (id) req.id = id;
    return req;
  },
  render: printId('PolicyConditionAddResponse'),
};

export const policyUpdate: Subcommand = {
  words: ['queue', 'policy', 'update'],
  summary: 'replace the limits (and/or TTL) of a dynamic condition; prints "N conditions affected"',
  args: [],
  options: [{ name: 'id', value: 'ID', help: 'the condition (required)' }, ...LIMIT_OPTIONS, { name: 'ttl', value: 'DURATION', help: 'expire DURATION from now (seconds, or e.g. 15m)' }],
  command: 'policyUpdate',
  request: (args) => {
    noPositionals(args);
    const req: M.PolicyConditionUpdateRequest = { id: requireId(args) };
    const then = thenOf(args, false);
    if (then) req.then = then;
    const t = ttl(args);
    if (t !== undefined) {
      if (t <= 0) throw new UsageError('--ttl takes a duration above 0');
      req.ttl = t;
    }
    if (!req.then && req.ttl === undefined) throw new UsageError('nothing to update: give limits (--concurrency, --rate, --tag, --stop) or --ttl');
    return req;
  },
  render: affected('PolicyConditionUpdateResponse', 'condition', 'conditions', 'affected'),
};

export const policyDelete: Subcommand = {
  words: ['queue', 'policy', 'delete'],
  summary: 'delete a dynamic condition; prints "N conditions deleted"',
  args: [],
  options: [{ name: 'id', value: 'ID', help: 'the condition (required)' }],
  command: 'policyDelete',
  request: (args) => {
    noPositionals(args);
    return { id: requireId(args) } satisfies M.PolicyConditionDeleteRequest;
  },
  render: affected('PolicyConditionDeleteResponse', 'condition', 'conditions', 'deleted'),
};

export const policyRefill: Subcommand = {
  words: ['queue', 'policy', 'refill'],
  summary: 'add tokens to the rate buckets whose key has every field flag given; prints "N rate buckets refilled"',
  args: [],
  options: [
    ...tupleOptions(),
    { name: 'tokens', value: 'N', help: 'tokens (messages) to add to each bucket (required)' },
    { name: 'all', help: 'allow a refill without field flags (every bucket)' },
  ],
  command: 'rateRefill',
  request: (args) => {
    noPositionals(args);
    const v = single(args, 'tokens');
    if (v === undefined) throw new UsageError('--tokens N is required');
    const tokens = Number(v);
    if (!/^\d+(\.\d+)?$/.test(v) || tokens <= 0) throw new UsageError(`--tokens takes a number above 0; got ${JSON.stringify(v)}`);
    if (!hasTuple(args) && !args.flags.has('all')) throw new UsageError('give field flags (e.g. --recipientdomain example.com), or --all to refill every bucket');
    return { ...tupleOf(args), tokens } satisfies M.PolicyRateRefillRequest;
  },
  render: affected('PolicyRateRefillResponse', 'rate bucket', 'rate buckets', 'refilled'),
};

export const SHAPING_SUBCOMMANDS: readonly Subcommand[] = [
  suspendList,
  suspendAdd,
  suspendUpdate,
  suspendDelete,
  policyList,
  policyAdd,
  policyUpdate,
  policyDelete,
  policyRefill,
];
