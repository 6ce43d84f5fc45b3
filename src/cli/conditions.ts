/**
 * halyardctl's condition flags (halon-api.md §6) → the `Condition` message of the control
 * socket (§5.4). Pure: no clock, no I/O.
 *
 * Inputs: the condition flags in the order given, as {flag, value} (flag without dashes).
 * Output: a `Condition` object ready for `encodeMessage('Condition', …)`.
 * Grammar (docs/cli.md):
 * - The same flag given again adds an alternative (OR); different fields must all hold (AND).
 *   `--sender` and `--senderdomain` (and the recipient pair) fill the same field, so they are
 *   alternatives of each other.
 * - Numbers and times take an operator prefix `>`, `>=`, `<`, `<=`, `=`, `!=` (none = `=`), or a
 *   range `a..b` (both ends included).
 * - `--age` and `--retrydelay` take seconds or a duration (`90`, `1h30m`, `2d`) and compare
 *   relative times: TimeValue.relative is seconds from now, negative in the past, so
 *   `--age '>1h'` is "received before now − 3600 s" (`tss: [{lt: {relative: -3600}}]`).
 *   `--ts` takes ISO-8601 (`2024-05-01T12:00:00Z`; without a zone, local time) or epoch seconds.
 * - Strings: `!` in front excludes (e.g. `--recipientdomain '!example.com'`); `/re/` is a
 *   regular expression for fields that accept one (and `/re/i` caseless where the field has a
 *   caseless switch); otherwise the match is exact.
 * - `--state` takes ACTIVE, DEFER (queue), HOLD, UPDATE (freeze), SENDING, UNKNOWN (working),
 *   any case; `--id` takes `<uuid>` (every recipient) or `<uuid>:<n>`; `--metadata key=value`.
 * Errors: `ConditionError` naming the flag and the value; nothing is guessed.
 */
import { parseDuration, parseSize } from '../config/syntax';
import type {
  Comparator,
  Compare,
  CompareTime,
  CompareUInt64,
  Condition,
  Condition_CompareStringRegexValue,
  Condition_CompareStringValue,
  Condition_MailAddress,
  Freeze,
  Queue,
  StringMatch,
  StringRegexValue,
  TimeValue,
  Working,
} from '../control/messages';

export class ConditionError extends Error {
  constructor(flag: string, value: string, reason: string) {
    super(`--${flag} ${JSON.stringify(value)}: ${reason}`);
    this.name = 'ConditionError';
  }
}

export interface ConditionFlag {
  flag: string;
  value: string;
}

type Builder = (c: Condition, value: string, flag: string) => void;

// ---------------------------------------------------------------------------------------------
// Value syntax

/** Operator prefixes, longest first so that `>=` is not read as `>`. */
const OPERATORS: ReadonlyArray<[string, Comparator]> = [
  ['>=', 'gte'],
  ['<=', 'lte'],
  ['!=', 'neq'],
  ['>', 'gt'],
  ['<', 'lt'],
  ['=', 'eq'],
];

/** `>=5` → [[gte, 5]]; `3..7` → [[gte, 3], [lte, 7]]; `5` → [[eq, 5]]. */
export function parseComparison<V>(raw: string, parse: (s: string) => V): Array<[Comparator, V]> {
  const s = raw.trim();
  const range = s.indexOf('..');
  if (range >= 0) {
    const lo = parse(s.slice(0, range).trim());
    const hi = parse(s.slice(range + 2).trim());
    return [
      ['gte', lo],
      ['lte', hi],
    ];
  }
  for (const [prefix, op] of OPERATORS) {
    if (s.startsWith(prefix)) return [[op, parse(s.slice(prefix.length).trim())]];
  }
  return [['eq', parse(s)]];
}

function compare<V>(pairs: Array<[Comparator, V]>): Compare<V> {
  const out: Compare<V> = {};
  for (const [op, v] of pairs) out[op] = v;
  return out;
}

/** Comparing an age is comparing the receive time the other way round. */
const MIRROR: Record<Comparator, Comparator> = { gt: 'lt', gte: 'lte', lt: 'gt', lte: 'gte', eq: 'eq', neq: 'neq' };

function wrapErrors<T>(flag: string, value: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConditionError) throw err;
    throw new ConditionError(flag, value, (err as Error).message);
  }
}

function unsigned(s: string): number {
  if (!/^\d+$/.test(s)) throw new Error(`"${s}" is not a whole number`);
  return Number(s);
}

function seconds(s: string): number {
  return parseDuration(s);
}

/** ISO-8601 or epoch seconds → epoch seconds. */
export function parseTimestamp(s: string): number {
  if (/^\d+(?:\.\d+)?$/.test(s)) return Number(s);
  if (!/^\d{4}-\d{2}-\d{2}/.test(s)) throw new Error(`"${s}" is not an ISO-8601 time (2024-05-01T12:00:00Z) or epoch seconds`);
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) throw new Error(`"${s}" is not a valid time`);
  return ms / 1000;
}

function uint64(flag: string, value: string, parse: (s: string) => number = unsigned): CompareUInt64 {
  return wrapErrors(flag, value, () => compare(parseComparison(value, parse).map(([op, v]) => [op, { value: v }])));
}

/** A regular expression written `/re/` or `/re/i`; undefined for a plain string. */
function regexLiteral(s: string): { source: string; caseless: boolean } | undefined {
  const m = /^\/(.*)\/(i?)$/s.exec(s);
  return m && m[1] !== '' ? { source: m[1], caseless: m[2] === 'i' } : undefined;
}

function checkRegex(flag: string, value: string, source: string): void {
  wrapErrors(flag, value, () => new RegExp(source, 'u'));
}

function excluded(s: string): { exclude: boolean; rest: string } {
  return s.startsWith('!') ? { exclude: true, rest: s.slice(1) } : { exclude: false, rest: s };
}

function stringMatch(flag: string, value: string, s: string): StringMatch {
  const re = regexLiteral(s);
  if (!re) return { value: s };
  checkRegex(flag, value, re.source);
  return { value: re.source, type: 'REGEX', ...(re.caseless ? { caseless: true } : {}) };
}

function regexValue(flag: string, value: string, s: string): StringRegexValue {
  const re = regexLiteral(s);
  if (!re) return { value: s };
  if (re.caseless) throw new ConditionError(flag, value, 'this field has no caseless match; write the pattern to match either case');
  checkRegex(flag, value, re.source);
  return { value: re.source, type: 'REGEX' };
}

// ---------------------------------------------------------------------------------------------
// Field builders

type Lists = { [K in keyof Condition]-?: NonNullable<Condition[K]> extends unknown[] ? K : never }[keyof Condition];
type Elem<K extends Lists> = NonNullable<Condition[K]> extends Array<infer E> ? E : never;
/** The repeated fields whose entries a `T` can be. */
type ListKey<T> = { [K in Lists]: T extends Elem<K> ? K : never }[Lists];

function push<K extends Lists>(c: Condition, key: K, item: Elem<K>): void {
  const list = ((c as Record<string, unknown>)[key] ??= []) as Array<Elem<K>>;
  list.push(item);
}

function plainString(key: ListKey<Condition_CompareStringValue>): Builder {
  return (c, value, flag) => {
    const { exclude, rest } = excluded(value);
    if (rest === '') throw new ConditionError(flag, value, 'a value is required');
    push(c, key, { value: rest, ...(exclude ? { exclude } : {}) });
  };
}

function regexString(key: ListKey<Condition_CompareStringRegexValue>): Builder {
  return (c, value, flag) => {
    const { exclude, rest } = excluded(value);
    if (rest === '') throw new ConditionError(flag, value, 'a value is required');
    const v = regexValue(flag, value, rest);
    push(c, key, { ...v, ...(exclude ? { exclude } : {}) });
  };
}

function matchString(key: ListKey<StringMatch>): Builder {
  return (c, value, flag) => {
    const { exclude, rest } = excluded(value);
    push(c, key, { ...stringMatch(flag, value, rest), ...(exclude ? { exclude } : {}) });
  };
}

function domain(key: 'senders' | 'recipients'): Builder {
  return (c, value, flag) => {
    const { exclude, rest } = excluded(value);
    if (rest === '') throw new ConditionError(flag, value, 'a domain is required');
    push(c, key, { domain: regexValue(flag, value, rest), ...(exclude ? { exclude } : {}) });
  };
}

/** `user@example.com`, `user` (any domain), or `''`/`<>` (the null sender). */
function address(key: 'senders' | 'recipients'): Builder {
  return (c, value, flag) => {
    const { exclude, rest } = excluded(value);
    const a = rest === '<>' ? '' : rest.replace(/^<(.*)>$/, '$1');
    const at = a.lastIndexOf('@');
    if (a !== '' && (at === 0 || at === a.length - 1)) throw new ConditionError(flag, value, 'write user@domain, a local part alone, or <> for the null sender');
    const entry: Condition_MailAddress =
      a === ''
        ? { localpart: { value: '' }, domain: { value: '' } }
        : at < 0
          ? { localpart: stringMatch(flag, value, a) }
          : { localpart: { value: a.slice(0, at) }, domain: { value: a.slice(at + 1) } };
    push(c, key, { ...entry, ...(exclude ? { exclude } : {}) });
  };
}

const QUEUES: Readonly<Record<string, Queue>> = { ACTIVE: 'ACTIVE', DEFER: 'DEFER' };
const FREEZES: Readonly<Record<string, Freeze>> = { HOLD: 'HOLD', UPDATE: 'UPDATE' };
const WORKINGS: Readonly<Record<string, Working>> = { SENDING: 'SENDING', UNKNOWN: 'UNKNOWN' };

const state: Builder = (c, value, flag) => {
  const s = value.trim().toUpperCase();
  if (QUEUES[s]) push(c, 'queues', { queue: QUEUES[s] });
  else if (FREEZES[s]) push(c, 'freezes', { freeze: FREEZES[s] });
  else if (WORKINGS[s]) push(c, 'workings', { working: WORKINGS[s] });
  else throw new ConditionError(flag, value, 'states are ACTIVE, DEFER, HOLD, UPDATE, SENDING, UNKNOWN');
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `<uuid>` or `<uuid>:<n>` (n ≥ 1); queue absent = every recipient of the transaction. */
export function parseQueueId(s: string): { transaction: string; queue?: number } {
  const [transaction, queue, extra] = s.split(':');
  if (!UUID.test(transaction) || extra !== undefined) throw new Error(`"${s}" is not a queue id (<uuid> or <uuid>:<n>)`);
  if (queue === undefined) return { transaction: transaction.toLowerCase() };
  if (!/^[1-9]\d*$/.test(queue)) throw new Error(`"${s}": the recipient number after ':' counts from 1`);
  return { transaction: transaction.toLowerCase(), queue: Number(queue) };
}

const id: Builder = (c, value, flag) => {
  const { exclude, rest } = excluded(value);
  push(c, 'ids', { ...wrapErrors(flag, value, () => parseQueueId(rest)), ...(exclude ? { exclude } : {}) });
};

function relativeTime(key: 'tss' | 'retrytss', mirror: boolean): Builder {
  return (c, value, flag) => {
    const pairs = wrapErrors(flag, value, () => parseComparison(value, seconds));
    const out: CompareTime = {};
    for (const [op, secs] of pairs) {
      const tv: TimeValue = { relative: mirror ? -secs : secs };
      out[mirror ? MIRROR[op] : op] = tv;
    }
    push(c, key, out);
  };
}

const absoluteTime: Builder = (c, value, flag) => {
  const pairs = wrapErrors(flag, value, () => parseComparison(value, parseTimestamp));
  push(c, 'tss', compare(pairs.map(([op, t]) => [op, { absolute: t } as TimeValue])));
};

const metadata: Builder = (c, value, flag) => {
  const { exclude, rest } = excluded(value);
  const eq = rest.indexOf('=');
  if (eq <= 0) throw new ConditionError(flag, value, 'write key=value');
  const key = rest.slice(0, eq);
  push(c, 'metadatas', { value: { [key]: { string: [stringMatch(flag, value, rest.slice(eq + 1))] } }, ...(exclude ? { exclude } : {}) });
};

const probability: Builder = (c, value, flag) => {
  const p = Number(value);
  if (value.trim() === '' || !Number.isFinite(p) || p <= 0 || p > 1) throw new ConditionError(flag, value, 'a probability is a number above 0 and at most 1');
  if (c.probability !== undefined) throw new ConditionError(flag, value, 'give --probability once');
  c.probability = p;
};

export interface ConditionFlagSpec {
  name: string;
  value: string;
  help: string;
  build: Builder;
}

/** Every condition flag, in the order help lists them. */
export const CONDITION_FLAGS: readonly ConditionFlagSpec[] = [
  { name: 'id', value: 'UUID[:N]', help: 'queue id; without :N every recipient of the transaction', build: id },
  { name: 'state', value: 'STATE', help: 'ACTIVE, DEFER, HOLD, UPDATE, SENDING or UNKNOWN', build: state },
  { name: 'transportid', value: 'ID', help: 'transport id (or /regex/)', build: regexString('transportids') },
  { name: 'jobid', value: 'ID', help: 'job id (or /regex/)', build: regexString('jobids') },
  { name: 'grouping', value: 'ID', help: 'grouping (or /regex/)', build: regexString('groupings') },
  { name: 'sender', value: 'ADDRESS', help: 'sender user@domain, local part, or <> for the null sender', build: address('senders') },
  { name: 'senderdomain', value: 'DOMAIN', help: 'sender domain (or /regex/)', build: domain('senders') },
  { name: 'recipient', value: 'ADDRESS', help: 'recipient user@domain or local part', build: address('recipients') },
  { name: 'recipientdomain', value: 'DOMAIN', help: 'recipient domain (or /regex/)', build: domain('recipients') },
  { name: 'age', value: 'SECONDS', help: 'time since received, e.g. ">3600", ">1h", "10..20"', build: relativeTime('tss', true) },
  { name: 'ts', value: 'TIME', help: 'time received, ISO-8601 or epoch seconds, e.g. ">2024-05-01T00:00:00Z"', build: absoluteTime },
  { name: 'retrydelay', value: 'SECONDS', help: 'time until the next retry, e.g. "<60"', build: relativeTime('retrytss', false) },
  { name: 'retrycount', value: 'N', help: 'failed attempts so far, e.g. ">=3"', build: (c, v, f) => push(c, 'retrycounts', uint64(f, v)) },
  { name: 'priority', value: 'N', help: 'priority, e.g. "=1"', build: (c, v, f) => push(c, 'priorities', uint64(f, v)) },
  { name: 'size', value: 'BYTES', help: 'message size, e.g. ">10MiB"', build: (c, v, f) => push(c, 'sizes', uint64(f, v, (s) => parseSize(s))) },
  { name: 'metadata', value: 'KEY=VALUE', help: 'metadata value (or KEY=/regex/)', build: metadata },
  { name: 'subject', value: 'TEXT', help: 'subject (or /regex/, /regex/i)', build: matchString('subjects') },
  { name: 'retryreason', value: 'TEXT', help: 'last retry reason (or /regex/, /regex/i)', build: matchString('retryreasons') },
  { name: 'serverid', value: 'ID', help: 'server that received the message', build: plainString('serverids') },
  { name: 'senderip', value: 'IP', help: 'client IP address', build: plainString('senderips') },
  { name: 'localip', value: 'IP', help: 'local IP used for delivery', build: plainString('localips') },
  { name: 'remoteip', value: 'IP', help: 'remote IP of the last attempt', build: plainString('remoteips') },
  { name: 'remotemx', value: 'HOST', help: 'remote MX of the last attempt (or /regex/)', build: regexString('remotemxs') },
  { name: 'tag', value: 'TAG', help: 'tag', build: plainString('tags') },
  { name: 'quota', value: 'NAME', help: 'quota name', build: plainString('quotas') },
  { name: 'probability', value: 'P', help: 'random sample, 0 < P <= 1 (once)', build: probability },
];

const BY_NAME: ReadonlyMap<string, ConditionFlagSpec> = new Map(CONDITION_FLAGS.map((f) => [f.name, f]));

export function isConditionFlag(name: string): boolean {
  return BY_NAME.has(name);
}

/** Build the Condition for the flags, in order. */
export function buildCondition(flags: readonly ConditionFlag[]): Condition {
  const c: Condition = {};
  for (const { flag, value } of flags) {
    const spec = BY_NAME.get(flag);
    if (!spec) throw new ConditionError(flag, value, 'not a condition flag');
    spec.build(c, value, flag);
  }
  return c;
}
