/**
 * Matching for traffic shaping: the eight fields as bit positions, facts as arrays, compiled
 * field matches of the three queue files, exact-value keys for the indexes, and the groupings of
 * `queues.grouping` (halon-core.md §1.2, §3.4, §4.4).
 *
 * Inputs: raw `FieldMatch` values of the queue files, `QueuesConfig['grouping']`, facts and
 * exact field values given by hooks or the control socket.
 * Outputs: `CompiledMatch` (test raw facts), field masks, index keys, `GroupingTable`.
 * Invariants:
 * - A field set is a bit mask in `QUEUE_FIELDS` order; an index key lists the values of the
 *   mask's fields in that order joined by NUL, so a field set and its values have one key
 *   whatever order a caller named them in.
 * - Exact values compare case-insensitively (as plain strings do in the config files): keys
 *   are built from lower-cased values, and IPv6 addresses in canonical form (rules once, when
 *   added; the facts' localip/remoteip through a small memo).
 * - `&id` on `grouping` matches the facts' grouping `&id`; on recipientdomain, remotemx and
 *   remoteip it matches a value that grouping id's list for that field matches; elsewhere, or
 *   for an id the running configuration no longer has, it matches nothing (the files were
 *   checked against the ids when loaded; a later smtpd-app.yaml may drop one).
 * Errors: `ValueSyntaxError` from `compileMatch` for a bad match value (never for a value the
 * config loader accepted).
 */
import { isIP } from 'node:net';
import { QUEUE_FIELDS, type FieldMatch } from '../config/queue-files';
import { compileMatch, parseMatch, type Matcher } from '../config/syntax';
import type { QueuesConfig } from '../config/types';
import type { Facts, FieldValues, ShapingField } from './types';

export const FIELD_COUNT = QUEUE_FIELDS.length;
export const FIELD_INDEX: Readonly<Record<ShapingField, number>> = Object.fromEntries(QUEUE_FIELDS.map((f, i) => [f, i])) as Record<ShapingField, number>;
export const bit = (f: ShapingField): number => 1 << FIELD_INDEX[f];
export const BIT_GROUPING = bit('grouping');
export const BIT_ROUTED = bit('remotemx') | bit('remoteip');

/** Separator of values in an index key: cannot occur in a header-derived or DNS value. */
const SEP = '\u0000';

const NEVER: Matcher = () => false;

/**
 * `s` as one flat string. Strings built by `+` (ids from randomUUID, multi-field keys) are V8
 * rope trees that can cost several hundred bytes each; reading a character flattens them in
 * place, and the GC then drops the rope. Used on strings kept for a long time (ids, keys).
 */
export function flat(s: string): string {
  if (s.length > 0) s.charCodeAt(0);
  return s;
}

/** The facts as an array in field order: raw (for compiled matchers) and lower-cased (for keys). */
export function rawValues(f: Facts): string[] {
  // Spelled out (QUEUE_FIELDS order): named property reads stay monomorphic on the hot path.
  return [f.tenantid ?? '', f.jobid ?? '', f.transportid ?? '', f.localip ?? '', f.grouping ?? '', f.remoteip ?? '', f.remotemx ?? '', f.recipientdomain ?? ''];
}

const LOCALIP = 3;
const REMOTEIP = 5;

export function lowerValues(raw: readonly string[]): string[] {
  const out = new Array<string>(FIELD_COUNT);
  for (let i = 0; i < FIELD_COUNT; i++) out[i] = raw[i].toLowerCase();
  // Source addresses come from smtpd-app.yaml as written: compare IPv6 in canonical form.
  if (out[LOCALIP].includes(':')) out[LOCALIP] = canonicalIp(out[LOCALIP]);
  if (out[REMOTEIP].includes(':')) out[REMOTEIP] = canonicalIp(out[REMOTEIP]);
  return out;
}

/** IPv6 facts seen recently, canonical (a URL parse per attempt would cost more than the rest). */
const ipMemo = new Map<string, string>();
const IP_MEMO_SIZE = 4096;

function canonicalIp(v: string): string {
  let c = ipMemo.get(v);
  if (c === undefined) {
    if (ipMemo.size >= IP_MEMO_SIZE) ipMemo.clear();
    c = normaliseValue(v);
    ipMemo.set(v, c);
  }
  return c;
}

/** The key of the mask's fields in `vals` (NUL-joined, field order). */
export function keyOf(mask: number, vals: readonly string[]): string {
  let key = '';
  let first = true;
  for (let i = 0; i < FIELD_COUNT; i++) {
    if ((mask & (1 << i)) === 0) continue;
    key = first ? vals[i] : key + SEP + vals[i];
    first = false;
  }
  return key;
}

export function maskOf(fields: Iterable<ShapingField>): number {
  let m = 0;
  for (const f of fields) m |= bit(f);
  return m;
}

export function fieldsOf(mask: number): ShapingField[] {
  return QUEUE_FIELDS.filter((_, i) => (mask & (1 << i)) !== 0);
}

/** The field values a key stands for. */
export function valuesOfKey(mask: number, key: string): FieldValues {
  const fields = fieldsOf(mask);
  const parts = fields.length === 1 ? [key] : key.split(SEP);
  const out: FieldValues = {};
  fields.forEach((f, i) => (out[f] = parts[i] ?? ''));
  return out;
}

/** An exact value as the indexes hold it: lower case; IPv6 in canonical form. */
export function normaliseValue(v: string): string {
  const lower = v.toLowerCase();
  if (lower.includes(':') && isIP(lower) === 6) {
    try {
      return new URL(`http://[${lower}]/`).hostname.slice(1, -1);
    } catch {
      return lower;
    }
  }
  return lower;
}

/** Exact field values → (mask, key) for the indexes. */
export function exactKey(values: FieldValues): { mask: number; key: string } {
  const vals = new Array<string>(FIELD_COUNT).fill('');
  let mask = 0;
  for (const [f, v] of Object.entries(values) as Array<[ShapingField, string | undefined]>) {
    if (v === undefined) continue;
    mask |= bit(f);
    vals[FIELD_INDEX[f]] = normaliseValue(v);
  }
  return { mask, key: keyOf(mask, vals) };
}

// ---------------------------------------------------------------------------------------------
// Compiled field matches (the `if` of policies and delivery, a static suspend's fields)

export interface CompiledMatch {
  /** The fields it names. */
  readonly mask: number;
  /** Field index and matcher per named field. */
  readonly tests: ReadonlyArray<readonly [number, Matcher]>;
  /** When every field is a plain string (or a short list of them): the index keys it stands for. */
  readonly exactKeys?: readonly string[];
}

/** A static suspend with lists of plain strings is indexed under each combination, up to this many. */
const MAX_EXACT_KEYS = 64;

export function compileFieldMatch(match: FieldMatch, groupings: GroupingTable): CompiledMatch {
  let mask = 0;
  const tests: Array<readonly [number, Matcher]> = [];
  for (const f of QUEUE_FIELDS) {
    const value = match[f];
    if (value === undefined) continue;
    mask |= bit(f);
    tests.push([FIELD_INDEX[f], compileMatch(value, { groupings: groupings.matchersFor(f) })]);
  }
  const exactKeys = exactCombinations(match);
  return exactKeys ? { mask, tests, exactKeys } : { mask, tests };
}

/** The keys of a match whose every value is plain strings; undefined otherwise. */
function exactCombinations(match: FieldMatch): string[] | undefined {
  let keys = [''];
  let first = true;
  for (const f of QUEUE_FIELDS) {
    const value = match[f];
    if (value === undefined) continue;
    const tokens = parseMatch(value);
    const exact: string[] = [];
    for (const t of tokens) {
      if (t.kind !== 'exact') return undefined;
      exact.push(t.value);
    }
    if (keys.length * exact.length > MAX_EXACT_KEYS) return undefined;
    keys = keys.flatMap((k) => exact.map((v) => (first ? v : k + SEP + v)));
    first = false;
  }
  return keys;
}

export function matches(m: CompiledMatch, raw: readonly string[]): boolean {
  for (const [i, fn] of m.tests) if (!fn(raw[i])) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Groupings (queues.grouping)

/** Matchers per id that answer false for an unknown id instead of throwing. */
class GroupingMatchers extends Map<string, Matcher> {
  override get(id: string): Matcher {
    return super.get(id) ?? NEVER;
  }
}

interface GroupingItem {
  id: string;
  recipientdomain: Matcher;
  remotemx: Matcher;
  remoteip: Matcher;
}

type Grouping = QueuesConfig['grouping'];

export class GroupingTable {
  private readonly items: GroupingItem[];
  private readonly byField: ReadonlyMap<ShapingField, GroupingMatchers>;
  private readonly byDefault: Grouping['default'];
  /** The grouping value depends on remotemx or remoteip. */
  readonly needsRouting: boolean;

  constructor(config: Grouping | undefined) {
    const none = new GroupingMatchers();
    const list = (v: string | string[] | undefined): Matcher => (v === undefined ? NEVER : compileMatch(v, { groupings: none }));
    this.items = (config?.groupings ?? []).map((g) => ({ id: g.id, recipientdomain: list(g.recipientdomain), remotemx: list(g.remotemx), remoteip: list(g.remoteip) }));
    this.byDefault = config?.default;
    this.needsRouting = this.byDefault === 'remotemx' || (config?.groupings ?? []).some((g) => g.remotemx !== undefined || g.remoteip !== undefined);
    const byField = new Map<ShapingField, GroupingMatchers>();
    const own = new GroupingMatchers();
    for (const g of this.items) {
      const value = `&${g.id}`.toLowerCase();
      own.set(g.id, (v) => typeof v === 'string' && v.toLowerCase() === value);
    }
    byField.set('grouping', own);
    for (const f of ['recipientdomain', 'remotemx', 'remoteip'] as const) {
      byField.set(f, new GroupingMatchers(this.items.map((g) => [g.id, g[f]])));
    }
    this.byField = byField;
  }

  /** `&id` of the first item any of whose lists matches; else per `default`. */
  groupingOf(recipientdomain: string, remotemx: string, remoteip: string): string {
    for (const g of this.items) {
      if (g.recipientdomain(recipientdomain) || g.remotemx(remotemx) || g.remoteip(remoteip)) return `&${g.id}`;
    }
    if (this.byDefault === 'recipientdomain') return recipientdomain;
    if (this.byDefault === 'remotemx') return remotemx;
    return '';
  }

  /** What `&id` means on this field (compileMatch's `groupings`). */
  matchersFor(field: ShapingField): ReadonlyMap<string, Matcher> {
    return this.byField.get(field) ?? new GroupingMatchers();
  }
}
