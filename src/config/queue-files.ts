/**
 * The three optional queue files (halon-core.md §4.4–4.6): pickup policies
 * (`smtpd-policy.yaml`), static suspends (`smtpd-suspend.yaml`) and delivery settings
 * (`smtpd-delivery.yaml`), as plain typed objects.
 *
 * Inputs: the root cursor of a parsed, schema-checked file (or none for a missing file), and
 * optionally the grouping ids of the running configuration so that `&id` references can be
 * checked. Outputs: the types below; match values stay as written (a string or a list of
 * strings, numbers made strings) because compiling them needs the groupings of the running
 * configuration for each field — the policy engine calls `compileMatch` with those.
 * Invariants: every match value has been syntax-checked; rates and durations are converted.
 * Delivery settings get no defaults: an unset key overrides nothing.
 * Errors: bad match values, rates, durations; unknown groupings (when ids are given); policy
 * conditions on fields that are not part of the counter; two policies with the same fields.
 */
import type { RetryInterval } from './types';
import { type Cursor, setIf } from './reader';
import type { Rate } from './syntax';
import { readIntervals } from './running';

/** Queue fields that policies, suspends and delivery conditions can match (halon-core.md §4.3). */
export type QueueField = 'tenantid' | 'jobid' | 'transportid' | 'localip' | 'grouping' | 'remoteip' | 'remotemx' | 'recipientdomain';
export const QUEUE_FIELDS: readonly QueueField[] = ['tenantid', 'jobid', 'transportid', 'localip', 'grouping', 'remoteip', 'remotemx', 'recipientdomain'];

/** A match value as written: compile it with `compileMatch` (syntax.ts). */
export type MatchValue = string | string[];
export type FieldMatch = Partial<Record<QueueField, MatchValue>>;
export type Properties = Record<string, string | number | boolean>;

export interface PolicyLimits {
  concurrency?: number;
  rate?: Rate;
  /** Seconds. */
  connectinterval?: number;
  tag?: string;
  properties?: Properties;
}

export interface Policy {
  /** Counter key; empty = one system-wide counter. */
  fields: QueueField[];
  conditions: Array<{ if: FieldMatch; then: PolicyLimits }>;
  default?: PolicyLimits;
}

export interface PolicyConfig {
  /** Absolute path; the file may not exist (then `policies` is empty). */
  file: string;
  version?: string;
  rate: { algorithm: 'tokenbucket' | 'fixedwindow' };
  policies: Policy[];
}

export interface Suspend {
  /** Every given field must match; none = suspends everything. */
  match: FieldMatch;
  tag?: string;
  properties?: Properties;
}

export interface SuspendConfig {
  file: string;
  version?: string;
  suspends: Suspend[];
}

export type SmtpState =
  | 'BANNER' | 'HELO' | 'EHLO' | 'LHLO' | 'STARTTLS' | 'AUTH-CRAM-MD5' | 'AUTH-PLAIN' | 'AUTH-LOGIN'
  | 'AUTH-LOGIN-USER' | 'AUTH' | 'XCLIENT' | 'MAIL' | 'RCPT' | 'DATA' | 'EOD' | 'RSET' | 'NOOP' | 'QUIT';

export interface DeliverySettings {
  tls?: { mode?: string; protocols?: string };
  /** `timeout` in seconds. */
  pooling?: { enabled?: boolean; timeout?: number; transactions?: number; evictable?: boolean };
  /** Seconds. */
  timeout?: { connect?: number; smtp?: Partial<Record<SmtpState, number>> };
  retry?: { count?: number; intervals?: RetryInterval[] };
}

export interface DeliveryConfig {
  file: string;
  version?: string;
  conditions: Array<{ if: FieldMatch; then: DeliverySettings }>;
  default?: DeliverySettings;
}

// ---------------------------------------------------------------------------------------------

function readFieldMatch(c: Cursor, groupings: ReadonlySet<string> | undefined): FieldMatch {
  const out: FieldMatch = {};
  for (const f of QUEUE_FIELDS) setIf(out, f, c.get(f).match(groupings, { ip: f === 'remoteip' }));
  return out;
}

function readProperties(c: Cursor): Properties | undefined {
  if (!c.present) return undefined;
  const out: Properties = {};
  for (const k of c.keys()) {
    const v = c.get(k).value;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  }
  return out;
}

export function normalisePolicy(root: Cursor | undefined, file: string, groupings?: ReadonlySet<string>): PolicyConfig {
  const config: PolicyConfig = { file, rate: { algorithm: 'tokenbucket' }, policies: [] };
  if (!root) return config;
  setIf(config, 'version', root.get('version').str());
  config.rate.algorithm = root.get('rate').get('algorithm').oneOf(['tokenbucket', 'fixedwindow'] as const, 'tokenbucket');
  const items = root.get('policies').items();
  config.policies = items.map((p) => readPolicy(p, groupings));
  checkDistinctCounters(items, config.policies);
  return config;
}

function readPolicy(c: Cursor, groupings: ReadonlySet<string> | undefined): Policy {
  const fields = c.get('fields').strings().filter((f): f is QueueField => (QUEUE_FIELDS as readonly string[]).includes(f));
  const conditions = c.get('conditions').items().map((cond) => {
    const ifc = cond.get('if');
    for (const k of ifc.keys()) {
      if (!fields.includes(k as QueueField)) ifc.get(k).error(`field ${k} is not in this policy's fields [${fields.join(', ')}]`);
    }
    return { if: readFieldMatch(ifc, groupings), then: readLimits(cond.get('then')) };
  });
  const policy: Policy = { fields, conditions };
  if (c.get('default').present) policy.default = readLimits(c.get('default'));
  return policy;
}

function readLimits(c: Cursor): PolicyLimits {
  const out: PolicyLimits = {};
  setIf(out, 'concurrency', c.get('concurrency').num());
  setIf(out, 'rate', c.get('rate').rate());
  setIf(out, 'connectinterval', c.get('connectinterval').duration());
  setIf(out, 'tag', c.get('tag').str());
  setIf(out, 'properties', readProperties(c.get('properties')));
  return out;
}

/** A counter is identified by its set of fields (dynamic policies name it that way). */
function checkDistinctCounters(items: Cursor[], policies: Policy[]): void {
  const seen = new Map<string, string>();
  policies.forEach((p, i) => {
    const key = [...p.fields].sort().join(',');
    const prev = seen.get(key);
    if (prev !== undefined) items[i].get('fields').error(`a policy with fields [${key}] already exists at ${prev}`);
    else seen.set(key, items[i].path);
  });
}

export function normaliseSuspend(root: Cursor | undefined, file: string, groupings?: ReadonlySet<string>): SuspendConfig {
  const config: SuspendConfig = { file, suspends: [] };
  if (!root) return config;
  setIf(config, 'version', root.get('version').str());
  config.suspends = root.get('suspends').items().map((c) => {
    const s: Suspend = { match: readFieldMatch(c, groupings) };
    setIf(s, 'tag', c.get('tag').str());
    setIf(s, 'properties', readProperties(c.get('properties')));
    return s;
  });
  return config;
}

export function normaliseDelivery(root: Cursor | undefined, file: string, groupings?: ReadonlySet<string>): DeliveryConfig {
  const config: DeliveryConfig = { file, conditions: [] };
  if (!root) return config;
  setIf(config, 'version', root.get('version').str());
  const d = root.get('delivery');
  config.conditions = d.get('conditions').items().map((c) => ({
    if: readFieldMatch(c.get('if'), groupings),
    then: readSettings(c.get('then')),
  }));
  if (d.get('default').present) config.default = readSettings(d.get('default'));
  return config;
}

function readSettings(c: Cursor): DeliverySettings {
  const out: DeliverySettings = {};
  setIf(out, 'tls', optional(c.get('tls'), (t) => {
    const tls: NonNullable<DeliverySettings['tls']> = {};
    setIf(tls, 'mode', t.get('mode').str());
    setIf(tls, 'protocols', t.get('protocols').str());
    return tls;
  }));
  setIf(out, 'pooling', optional(c.get('pooling'), readPooling));
  setIf(out, 'timeout', optional(c.get('timeout'), readTimeouts));
  setIf(out, 'retry', optional(c.get('retry'), (r) => {
    const retry: NonNullable<DeliverySettings['retry']> = {};
    setIf(retry, 'count', r.get('count').num());
    if (r.get('intervals').present) retry.intervals = readIntervals(r.get('intervals'));
    return retry;
  }));
  return out;
}

function optional<T>(c: Cursor, read: (c: Cursor) => T): T | undefined {
  return c.present ? read(c) : undefined;
}

function readPooling(p: Cursor): NonNullable<DeliverySettings['pooling']> {
  const out: NonNullable<DeliverySettings['pooling']> = {};
  if (p.get('enabled').present) out.enabled = p.get('enabled').bool(false);
  setIf(out, 'timeout', p.get('timeout').duration());
  setIf(out, 'transactions', p.get('transactions').num());
  if (p.get('evictable').present) out.evictable = p.get('evictable').bool(false);
  return out;
}

function readTimeouts(t: Cursor): NonNullable<DeliverySettings['timeout']> {
  const out: NonNullable<DeliverySettings['timeout']> = {};
  setIf(out, 'connect', t.get('connect').duration());
  const smtp = t.get('smtp');
  if (smtp.present) {
    const states: Partial<Record<SmtpState, number>> = {};
    for (const k of smtp.keys()) setIf(states, k as SmtpState, smtp.get(k).duration());
    out.smtp = states;
  }
  return out;
}
