/**
 * The value syntaxes shared by every Halyard config file (halon-core.md §1.2), in one place so
 * that `smtpd.yaml`, `smtpd-app.yaml` and the three queue files agree on what `1h30m`, `10MiB`,
 * `1000/60` or `*.example.com` mean.
 *
 * Inputs: raw values as YAML produced them (string or number; lists for match values).
 * Outputs: durations in seconds, sizes in bytes, rates as {messages, seconds}, and match values
 * compiled into `Matcher` functions.
 * Invariants: every result is a finite, non-negative number (never NaN); a matcher is built once
 * at load time and does no parsing, allocation-heavy work or I/O per call.
 * Errors: bad input throws `ValueSyntaxError` whose message says what was wrong and what is
 * accepted; the config loader prefixes it with the file and key path.
 *
 * Decisions (see the report / docs/decisions.md):
 * - Sizes accept only Halon's binary units (B, KiB, MiB, GiB, TiB; case-insensitive). Decimal
 *   units (KB, MB, GB, TB) are refused with a hint, because silently reading "10MB" as either
 *   10 000 000 or 10 485 760 bytes would surprise someone.
 * - `*.example.com` matches names below example.com (any depth) but not example.com itself,
 *   as a DNS wildcard does (RFC 4592 §2.1.1); list both to match both.
 * - Plain strings compare case-insensitively; `/regex/` is case-sensitive unless written
 *   `/regex/i`, so the author decides.
 * - A leading `@` is Halon's list reference (`@listname`), which Halyard does not have yet;
 *   it is refused rather than read as a literal string.
 */
import { BlockList, isIP, isIPv4 } from 'node:net';

/** A compiled match value: true when `value` matches. */
export type Matcher = (value: string) => boolean;

export interface Rate {
  messages: number;
  seconds: number;
}

/** Thrown for a value that does not follow its syntax; the message is meant for the operator. */
export class ValueSyntaxError extends SyntaxError {
  constructor(message: string) {
    super(message);
    this.name = 'ValueSyntaxError';
  }
}

function fail(message: string): never {
  throw new ValueSyntaxError(message);
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

// ---------------------------------------------------------------------------------------------
// Durations: `?d?h?m?s` in that order, or plain seconds.

const DURATION_UNITS = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;
const PLAIN_NUMBER = /^\d+(?:\.\d+)?$/;

/** Parse a duration (`1h30m`, `2d`, `45s`, `90`, or a number of seconds) into seconds. */
export function parseDuration(v: string | number): number {
  if (typeof v === 'number') return nonNegative(v, 'duration');
  if (typeof v !== 'string') fail(`a duration must be a string or a number, not ${typeof v}`);
  const s = v.trim();
  if (PLAIN_NUMBER.test(s)) return Number(s);
  const m = DURATION_UNITS.exec(s);
  if (!m || s === '') {
    fail(`invalid duration ${show(v)}: use seconds (90) or ?d?h?m?s in that order (1h30m, 2d, 45s)`);
  }
  const [d, h, min, sec] = m.slice(1).map((x) => (x === undefined ? 0 : Number(x)));
  return d * 86400 + h * 3600 + min * 60 + sec;
}

function nonNegative(n: number, what: string): number {
  if (!Number.isFinite(n) || n < 0) fail(`a ${what} must be a finite number >= 0, not ${n}`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Sizes: `?(TiB|GiB|MiB|KiB|B)`, or plain bytes.

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};
const DECIMAL_UNITS = new Set(['k', 'kb', 'm', 'mb', 'g', 'gb', 't', 'tb']);
const SIZE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i;

/** Parse a size (`10MiB`, `512KiB`, `1GiB`, `100B`, or a number of bytes) into whole bytes. */
export function parseSize(v: string | number): number {
  if (typeof v === 'number') return Math.floor(nonNegative(v, 'size'));
  if (typeof v !== 'string') fail(`a size must be a string or a number, not ${typeof v}`);
  const m = SIZE.exec(v.trim());
  if (!m) fail(`invalid size ${show(v)}: use bytes (1048576) or a number with B, KiB, MiB, GiB or TiB (10MiB)`);
  const unit = m[2].toLowerCase();
  if (DECIMAL_UNITS.has(unit)) {
    fail(`invalid size ${show(v)}: decimal unit ${m[2]} is not accepted, use the binary units KiB, MiB, GiB, TiB`);
  }
  const factor = unit === '' ? 1 : SIZE_UNITS[unit];
  if (factor === undefined) fail(`invalid size ${show(v)}: unknown unit ${m[2]}, use B, KiB, MiB, GiB or TiB`);
  return Math.floor(Number(m[1]) * factor);
}

// ---------------------------------------------------------------------------------------------
// Rates: `messages/seconds`, or a plain number meaning messages per second.

const RATE = /^(\d+)\s*\/\s*(\d+(?:\.\d+)?)$/;

/** Parse a rate (`1000/60`, `30/60`, or a number = per second) into {messages, seconds}. */
export function parseRate(v: string | number): Rate {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) fail(`a rate given as a number must be a whole number >= 0, not ${v}`);
    return { messages: v, seconds: 1 };
  }
  if (typeof v !== 'string') fail(`a rate must be a string or a number, not ${typeof v}`);
  const s = v.trim();
  if (/^\d+$/.test(s)) return { messages: Number(s), seconds: 1 };
  const m = RATE.exec(s);
  if (!m) fail(`invalid rate ${show(v)}: use messages/seconds (1000/60) or messages per second (10)`);
  const seconds = Number(m[2]);
  if (seconds <= 0) fail(`invalid rate ${show(v)}: the period in seconds must be greater than 0`);
  return { messages: Number(m[1]), seconds };
}

// ---------------------------------------------------------------------------------------------
// Match values.

/** One element of a match value, classified once; `compileMatch` turns these into a matcher. */
export type MatchToken =
  | { kind: 'exact'; value: string }
  | { kind: 'regex'; regex: RegExp }
  | { kind: 'wildcard'; suffix: string }
  | { kind: 'address'; address: string; family: 'ipv4' | 'ipv6' }
  | { kind: 'network'; address: string; prefix: number; family: 'ipv4' | 'ipv6' }
  | { kind: 'grouping'; id: string };

export interface MatchOptions {
  /** Matchers for `&id` references (Halon groupings, `queues.grouping.groupings[]`). */
  groupings?: ReadonlyMap<string, Matcher>;
}

const REGEX_LITERAL = /^\/(.*)\/([a-z]*)$/s;
/** Flags that keep a RegExp stateless: `g` and `y` would make `test()` depend on lastIndex. */
const REGEX_FLAGS = /^[imsu]*$/;
const GROUPING_ID = /^[A-Za-z0-9_.:-]+$/;

/** Classify one element of a match value (string or number). Throws ValueSyntaxError. */
export function parseMatchToken(raw: string | number): MatchToken {
  if (typeof raw === 'number') return { kind: 'exact', value: String(raw) };
  if (typeof raw !== 'string') fail(`a match value must be a string, a number or a list of them, not ${typeof raw}`);
  if (raw.startsWith('/')) return regexToken(raw);
  if (raw.startsWith('&')) return groupingToken(raw);
  if (raw.startsWith('@')) fail(`list references like ${show(raw)} are not supported; write the values as a YAML list`);
  if (raw.includes('*')) return wildcardToken(raw);
  return ipToken(raw) ?? { kind: 'exact', value: raw.toLowerCase() };
}

function regexToken(raw: string): MatchToken {
  const m = REGEX_LITERAL.exec(raw);
  if (!m || m[1] === '') fail(`invalid regular expression ${show(raw)}: write it as /pattern/ or /pattern/i`);
  if (!REGEX_FLAGS.test(m[2])) fail(`invalid regular expression flags "${m[2]}" in ${show(raw)}: only i, m, s and u are allowed`);
  try {
    return { kind: 'regex', regex: new RegExp(m[1], m[2]) };
  } catch (e) {
    return fail(`invalid regular expression ${show(raw)}: ${(e as Error).message}`);
  }
}

function groupingToken(raw: string): MatchToken {
  const id = raw.slice(1);
  if (!GROUPING_ID.test(id)) fail(`invalid grouping reference ${show(raw)}: write &id, e.g. &google`);
  return { kind: 'grouping', id };
}

function wildcardToken(raw: string): MatchToken {
  const suffix = raw.slice(1).toLowerCase();
  if (!raw.startsWith('*.') || suffix.length < 2 || suffix.slice(1).includes('*')) {
    fail(`invalid wildcard ${show(raw)}: '*' is only allowed as a leading label, as in *.example.com`);
  }
  return { kind: 'wildcard', suffix };
}

function ipToken(raw: string): MatchToken | undefined {
  const family = familyOf(raw);
  if (family) return { kind: 'address', address: raw, family };
  const slash = raw.indexOf('/');
  if (slash < 0) return undefined;
  const address = raw.slice(0, slash);
  const netFamily = familyOf(address);
  if (!netFamily) return undefined;
  const bits = raw.slice(slash + 1);
  const max = netFamily === 'ipv4' ? 32 : 128;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) {
    fail(`invalid network ${show(raw)}: the prefix length must be 0-${max}`);
  }
  return { kind: 'network', address, prefix: Number(bits), family: netFamily };
}

function familyOf(s: string): 'ipv4' | 'ipv6' | undefined {
  const v = isIP(s);
  return v === 4 ? 'ipv4' : v === 6 ? 'ipv6' : undefined;
}

/** The elements of a match value (one value or a non-empty list), classified. */
export function parseMatch(value: unknown): MatchToken[] {
  if (!Array.isArray(value)) return [parseMatchToken(value as string | number)];
  if (value.length === 0) fail('an empty list matches nothing; remove the key or give at least one value');
  return value.map((v) => {
    if (Array.isArray(v)) fail('a match list cannot contain another list');
    return parseMatchToken(v as string | number);
  });
}

/**
 * Check a match value without building it. `groupingIds`, when given, are the known grouping ids;
 * a reference to any other id is an error. With `ip`, plain strings and wildcards are refused
 * (for fields that hold IP addresses). Throws ValueSyntaxError.
 */
export function validateMatch(value: unknown, groupingIds?: ReadonlySet<string>, opts: { ip?: boolean } = {}): void {
  for (const t of parseMatch(value)) {
    if (t.kind === 'grouping' && groupingIds && !groupingIds.has(t.id)) fail(unknownGrouping(t.id));
    // An IP field compared with a host name or a mistyped address (300.1.1.1) never matches.
    if (opts.ip && (t.kind === 'exact' || t.kind === 'wildcard')) fail(`${show(matchText(t))} is not an IP address or network`);
  }
}

function matchText(t: { kind: 'exact'; value: string } | { kind: 'wildcard'; suffix: string }): string {
  return t.kind === 'exact' ? t.value : `*${t.suffix}`;
}

function unknownGrouping(id: string): string {
  return `unknown grouping &${id}: it is not defined in queues.grouping.groupings[]`;
}

/**
 * Compile a match value into a Matcher. A list matches when any element matches. Strings match
 * exactly (case-insensitive); IP addresses and networks match addresses of their family (an
 * IPv4-mapped IPv6 value such as ::ffff:192.0.2.1 is matched as IPv4); `&id` delegates to
 * `opts.groupings`. Throws ValueSyntaxError for bad syntax or an unknown grouping.
 */
export function compileMatch(value: unknown, opts: MatchOptions = {}): Matcher {
  const tokens = parseMatch(value);
  const exact = new Set<string>();
  const blocks = new BlockList();
  let hasIp = false;
  const suffixes: string[] = [];
  const others: Matcher[] = [];
  for (const t of tokens) {
    switch (t.kind) {
      case 'exact': exact.add(t.value); break;
      case 'wildcard': suffixes.push(t.suffix); break;
      case 'regex': others.push(regexMatcher(t.regex)); break;
      case 'grouping': others.push(groupingMatcher(t.id, opts)); break;
      case 'address': blocks.addAddress(t.address, t.family); hasIp = true; break;
      case 'network': blocks.addSubnet(t.address, t.prefix, t.family); hasIp = true; break;
      default: assertNever(t);
    }
  }
  return combine(exact, hasIp ? blocks : undefined, suffixes, others);
}

function regexMatcher(re: RegExp): Matcher {
  return (v) => re.test(v);
}

function groupingMatcher(id: string, opts: MatchOptions): Matcher {
  const m = opts.groupings?.get(id);
  if (!m) fail(unknownGrouping(id));
  return m;
}

function combine(exact: Set<string>, blocks: BlockList | undefined, suffixes: string[], others: Matcher[]): Matcher {
  return (value: string): boolean => {
    if (typeof value !== 'string') return false;
    const lower = exact.size > 0 || suffixes.length > 0 ? value.toLowerCase() : value;
    if (exact.has(lower)) return true;
    if (blocks && ipMatches(blocks, value)) return true;
    for (const s of suffixes) if (lower.length > s.length && lower.endsWith(s)) return true;
    for (const m of others) if (m(value)) return true;
    return false;
  };
}

function ipMatches(blocks: BlockList, value: string): boolean {
  const v = isIP(value);
  if (v === 4) return blocks.check(value, 'ipv4');
  if (v !== 6) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(value);
  if (mapped && isIPv4(mapped[1])) return blocks.check(mapped[1], 'ipv4') || blocks.check(value, 'ipv6');
  return blocks.check(value, 'ipv6');
}

function assertNever(x: never): never {
  throw new Error(`unhandled match token ${JSON.stringify(x)}`);
}
