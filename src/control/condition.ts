/**
 * The queue filter `Condition` (halon-api.md §5.4) compiled into one predicate over queue
 * entries, plus the choice of an index that narrows the candidates first. Pure apart from the
 * `random` source given for `probability`.
 *
 * Inputs: a decoded Condition, the current time (Unix ms) and a random source in [0, 1).
 * Output: `compileCondition` → `(entry) => boolean`; `narrowing` → an exact indexed field and
 * value every match must have, when the Condition implies one.
 * Semantics:
 * - several entries of one repeated field are OR-ed, different fields AND-ed; an entry's
 *   `exclude` negates that entry alone; an empty repeated field does not restrict;
 * - strings: `CompareStringValue` is exact; `CompareStringRegexValue` exact or an unanchored
 *   JavaScript regular expression; `StringMatch` as match.ts; domains (sender, recipient,
 *   remote MX) compare case-insensitively (RFC 5321 §2.4), regular expressions on them too;
 * - numbers (`CompareUInt64`, `CompareDouble`) and times (`CompareTime`): every comparator set
 *   in one Compare must hold; times are seconds, `relative` is seconds from now (negative =
 *   past); an entry's next retry time 0 ("due now") compares as now;
 * - metadata: every key of one map entry must match (a missing key reads as ''), within a
 *   key any of its string matches or number comparisons;
 * - fields Halyard does not keep per entry (senderip, stageid, subject, retryreason) read
 *   as '' — a condition on them matches only the empty string (or excludes nothing);
 * - `probability` p in (0, 1) keeps each otherwise matching entry with chance p;
 *   `policygroupings` does not filter (it shapes group-by keys).
 * The compiled predicate allocates nothing per entry (the store's scan relies on that).
 * Errors: `ControlError` for an invalid regular expression or a Compare with no comparator.
 */
import type { QueueEntry } from '../model/types';
import type { QueueField } from '../queue/store';
import { ControlError } from './context';
import { compileStringMatch, type StringPredicate } from './match';
import type * as M from './messages';

export type EntryPredicate = (e: QueueEntry) => boolean;

const ALWAYS: EntryPredicate = () => true;

/** The whole Condition as one predicate; compile once per request. */
export function compileCondition(c: M.Condition | undefined, now: number, random: () => number = Math.random): EntryPredicate {
  if (!c) return ALWAYS;
  const tests: EntryPredicate[] = [];
  const add = (p: EntryPredicate | undefined): void => {
    if (p) tests.push(p);
  };
  add(anyOf(c.queues, (q) => stateIs(q.queue ?? 'ACTIVE')));
  add(anyOf(c.freezes, (f) => stateIs(f.freeze ?? 'HOLD')));
  add(anyOf(c.workings, (w) => ((w.working ?? 'UNKNOWN') === 'SENDING' ? stateIs('SENDING') : () => false)));
  add(anyOf(c.ids, idTest));
  if (c.hold) {
    const want = c.hold.value === true;
    tests.push((e) => (e.state === 'HOLD') === want);
  }
  add(anyOf(c.serverids, (m) => plain(m, (e) => e.serverid)));
  add(anyOf(c.senderips, (m) => plain(m, () => '')));
  add(anyOf(c.stageids, (m) => plain(m, () => '')));
  add(anyOf(c.transportids, (m) => regexOrExact(m, false, (e) => e.transportid)));
  add(anyOf(c.jobids, (m) => regexOrExact(m, false, (e) => e.jobid)));
  add(anyOf(c.groupings, (m) => regexOrExact(m, false, (e) => e.grouping ?? '')));
  add(anyOf(c.remotemxs, (m) => regexOrExact(m, true, (e) => e.remotemx ?? '')));
  add(anyOf(c.localips, (m) => plain(m, (e) => e.localip ?? '')));
  add(anyOf(c.remoteips, (m) => plain(m, (e) => e.remoteip ?? '')));
  add(anyOf(c.senders, (m) => mailAddress(m, (e) => e.senderaddress)));
  add(anyOf(c.recipients, (m) => mailAddress(m, (e) => e.recipientaddress)));
  add(anyOf(c.tss, (t) => numeric(compareTime(t, now), (e) => e.ts / 1000)));
  add(anyOf(c.retrytss, (t) => numeric(compareTime(t, now), (e) => (e.retryts === 0 ? now : e.retryts) / 1000)));
  add(anyOf(c.retrycounts, (n) => numeric(compareNumber(n), (e) => e.retry)));
  add(anyOf(c.sizes, (n) => numeric(compareNumber(n), (e) => e.size)));
  add(anyOf(c.priorities, (n) => numeric(compareNumber(n), (e) => e.priority)));
  add(anyOf(c.subjects, (m) => stringOf(compileStringMatch(m), () => '')));
  add(anyOf(c.retryreasons, (m) => stringOf(compileStringMatch(m), () => '')));
  add(anyOf(c.metadatas, metadataTest));
  add(anyOf(c.quotas, (m) => listed(m, (e) => e.quotas)));
  add(anyOf(c.tags, (m) => listed(m, (e) => e.tags)));
  // Last, so that the sample is drawn from the entries that match everything else.
  const p = c.probability;
  if (p !== undefined && p > 0 && p < 1) tests.push(() => random() < p);
  return all(tests);
}

/** An indexed exact field and value that every match must have, if the Condition implies one. */
export function narrowing(c: M.Condition | undefined): { field: QueueField; value: string } | undefined {
  if (!c) return undefined;
  const only = <T>(list: T[] | undefined): T | undefined => (list && list.length === 1 ? list[0] : undefined);
  const rcpt = only(c.recipients);
  if (rcpt && !rcpt.exclude && rcpt.domain && (rcpt.domain.type ?? 'EXACT') === 'EXACT' && rcpt.domain.value) {
    return { field: 'recipientdomain', value: rcpt.domain.value };
  }
  const exact = (field: QueueField, m: M.Condition_CompareStringRegexValue | undefined) =>
    m && !m.exclude && (m.type ?? 'EXACT') === 'EXACT' && m.value ? { field, value: m.value } : undefined;
  return exact('jobid', only(c.jobids)) ?? exact('grouping', only(c.groupings)) ?? exact('remotemx', only(c.remotemxs));
}

// ---------------------------------------------------------------------------------------------

function all(tests: EntryPredicate[]): EntryPredicate {
  switch (tests.length) {
    case 0:
      return ALWAYS;
    case 1:
      return tests[0];
    default:
      return (e) => {
        for (let i = 0; i < tests.length; i++) if (!tests[i](e)) return false;
        return true;
      };
  }
}

/** OR of one repeated field; undefined (no restriction) when the field is empty. */
function anyOf<T>(list: T[] | undefined, compile: (item: T) => EntryPredicate): EntryPredicate | undefined {
  if (!list || list.length === 0) return undefined;
  const tests = list.map(compile);
  if (tests.length === 1) return tests[0];
  return (e) => {
    for (let i = 0; i < tests.length; i++) if (tests[i](e)) return true;
    return false;
  };
}

function negated(p: EntryPredicate, exclude: boolean | undefined): EntryPredicate {
  return exclude ? (e) => !p(e) : p;
}

function stateIs(state: string): EntryPredicate {
  return (e) => e.state === state;
}

function idTest(id: M.Condition_QueueItemID): EntryPredicate {
  const tx = (id.transaction ?? '').toLowerCase();
  const queue = id.queue ?? 0;
  // Queue numbers start at 1, so 0 (proto3's default) means "every recipient".
  const p: EntryPredicate = queue > 0 ? (e) => e.id.transaction === tx && e.id.queue === queue : (e) => e.id.transaction === tx;
  return negated(p, id.exclude);
}

function plain(m: M.Condition_CompareStringValue, get: (e: QueueEntry) => string): EntryPredicate {
  const v = m.value ?? '';
  return negated((e) => get(e) === v, m.exclude);
}

function regex(source: string, caseless: boolean): RegExp {
  try {
    return new RegExp(source, caseless ? 'iu' : 'u');
  } catch (err) {
    throw new ControlError(`invalid regular expression ${JSON.stringify(source)}: ${(err as Error).message}`);
  }
}

function stringTest(value: string, type: 'EXACT' | 'REGEX', folded: boolean): StringPredicate {
  if (type === 'REGEX') {
    const re = regex(value, folded);
    return (s) => re.test(s);
  }
  if (!folded) return (s) => s === value;
  const lower = value.toLowerCase();
  return (s) => s.length === lower.length && s.toLowerCase() === lower;
}

function regexOrExact(m: M.Condition_CompareStringRegexValue, folded: boolean, get: (e: QueueEntry) => string): EntryPredicate {
  const t = stringTest(m.value ?? '', m.type ?? 'EXACT', folded);
  return negated((e) => t(get(e)), m.exclude);
}

function stringOf(t: StringPredicate, get: (e: QueueEntry) => string): EntryPredicate {
  return (e) => t(get(e));
}

function mailAddress(m: M.Condition_MailAddress, get: (e: QueueEntry) => { localpart: string; domain: string }): EntryPredicate {
  const local = m.localpart ? compileStringMatch(m.localpart) : undefined;
  const domain = m.domain ? stringTest(m.domain.value ?? '', m.domain.type ?? 'EXACT', true) : undefined;
  const p: EntryPredicate = (e) => {
    const a = get(e);
    return (local === undefined || local(a.localpart)) && (domain === undefined || domain(a.domain));
  };
  return negated(p, m.exclude);
}

function listed(m: M.Condition_CompareStringValue, get: (e: QueueEntry) => readonly string[]): EntryPredicate {
  const v = m.value ?? '';
  return negated((e) => get(e).includes(v), m.exclude);
}

type NumberTest = (n: number) => boolean;

const COMPARATORS: ReadonlyArray<[M.Comparator, (a: number, b: number) => boolean]> = [
  ['eq', (a, b) => a === b],
  ['neq', (a, b) => a !== b],
  ['lt', (a, b) => a < b],
  ['gt', (a, b) => a > b],
  ['gte', (a, b) => a >= b],
  ['lte', (a, b) => a <= b],
];

/** Every comparator set in `c` must hold; `value` turns its operand into a number. */
function comparison<V>(c: M.Compare<V>, value: (v: V) => number): NumberTest {
  const checks: Array<[(a: number, b: number) => boolean, number]> = [];
  for (const [name, op] of COMPARATORS) {
    const v = c[name];
    if (v !== undefined && v !== null) checks.push([op, value(v)]);
  }
  if (checks.length === 0) throw new ControlError('a comparison needs at least one of eq, neq, lt, gt, gte, lte');
  return (n) => {
    for (let i = 0; i < checks.length; i++) if (!checks[i][0](n, checks[i][1])) return false;
    return true;
  };
}

/** Times in seconds since the epoch. */
function compareTime(c: M.CompareTime, now: number): NumberTest {
  return comparison(c, (t) => (t.relative !== undefined ? now / 1000 + t.relative : t.absolute ?? 0));
}

function compareNumber(c: M.Compare<{ value?: number }>): NumberTest {
  return comparison(c, (v) => v.value ?? 0);
}

function numeric(t: NumberTest, get: (e: QueueEntry) => number): EntryPredicate {
  return (e) => t(get(e));
}

function metadataTest(m: M.Condition_MapStringValue): EntryPredicate {
  const keys = Object.entries(m.value ?? {}).map(([key, any]) => {
    const strings = (any.string ?? []).map(compileStringMatch);
    const numbers = (any.double ?? []).map(compareNumber);
    return { key, strings, numbers };
  });
  const p: EntryPredicate = (e) => {
    for (const k of keys) {
      const raw = e.metadata[k.key];
      const s = raw ?? '';
      let hit = k.strings.length === 0 && k.numbers.length === 0 ? raw !== undefined : false;
      for (let i = 0; !hit && i < k.strings.length; i++) hit = k.strings[i](s);
      if (!hit && k.numbers.length > 0 && s.trim() !== '') {
        const n = Number(s);
        for (let i = 0; !hit && i < k.numbers.length; i++) hit = Number.isFinite(n) && k.numbers[i](n);
      }
      if (!hit) return false;
    }
    return true;
  };
  return negated(p, m.exclude);
}
