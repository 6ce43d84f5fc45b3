/**
 * One pickup's work: the entries the manager took out of ACTIVE together (same transaction,
 * transport, body and recipient domain), from predelivery to their durable next state.
 *
 * Steps (halon-core.md §4.1, §5.3, §5.4):
 * 1. predelivery per entry (implicit Try). Queue → DEFER/HOLD at once; Bounce/Delete → no
 *    attempt, postdelivery with action BOUNCE/DELETE; Try → attempt. Entries whose Try options
 *    differ (other than the recipient override) go in separate SMTP transactions.
 * 2. Per transaction: read the body from the spool, plan (transport + Try options), resolve the
 *    next hops and deliver through the agent (connection pooling on).
 * 3. postdelivery per recipient with the attempt's facts; its action, or the default one,
 *    gives the disposition (outcome.ts).
 * 4. Apply, durably and in this order: DSNs (failed, delayed) enter the queue through the
 *    ingress; then each entry's spool record is updated (new state, plus the attempt's
 *    localip/remotemx/remoteip/grouping when there was an attempt) or removed; only then the
 *    in-memory queue changes. A crash at any point leaves the entry in its last written
 *    state, so it is tried again (at-least-once; a DSN may then be sent twice, never lost).
 * 5. One log record per entry (facts.ts).
 * Errors: none escape; a failing spool write is logged and the entry goes back to DEFER in
 * memory (300 s) so it is not lost from the running queue either.
 */
import type { RunningConfig } from '../config/types';
import type { Ingress } from '../model/ingress';
import type { AcceptedTransaction, QueueEntry } from '../model/types';
import type { Json, Spool } from '../spool/types';
import type { DeliveryHooks, PostDeliveryOutcome } from '../hooks/delivery';
import type { DeliveryDsnInfo, TryOptions } from '../hooks/types';
import type { AttemptPlan, AttemptReport, RecipientReport } from '../delivery/attempt';
import type { DeliverySettings } from '../config/queue-files';
import type { Facts, Ticket } from '../shaping/types';
import type { NextHopResolver } from '../delivery/nexthop';
import { encodeEntry } from '../queue/codec';
import type { QueueStore } from '../queue/store';
import { expiresAt, isExpired, type RetryPolicy } from '../queue/retry';
import { buildPlan, findTransport, retryPolicyOf } from './plan';
import { defaultAction, dispose, queueDisposition, type AttemptKind, type ChosenAction, type DefaultAction, type Disposition } from './outcome';
import { diagnosticOf, dsnTransaction, statusOf, type DsnFacts } from './bounce';
import { deliveryMessage, deliveryRecord, hookAttempt, type LogAction } from './facts';
import { merged } from '../util/objects';

export interface RunLogger {
  info(fields: object, msg: string): void;
  /** pino's: lets the hot path skip building a record nobody will see. */
  isLevelEnabled?(level: string): boolean;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

export interface Attempter {
  attempt(plan: AttemptPlan, resolver: NextHopResolver): Promise<AttemptReport>;
}

/** Everything one run needs; the manager builds it from the current configuration snapshot. */
export interface RunContext {
  config: RunningConfig;
  hooks: DeliveryHooks;
  store: QueueStore;
  spool: Pick<Spool, 'update' | 'remove' | 'readBody'>;
  ingress: Ingress;
  agent: Attempter;
  resolver: NextHopResolver;
  log: RunLogger;
  hostname: string;
  newId: () => string;
  now: () => number;
  /** The grouping of a destination (the shaping engine's); default per `queues.grouping.default` only. */
  groupingOf?: (recipientdomain: string, remotemx: string, remoteip: string) => string;
  /** Counts each settled entry by its logged action (process-stats `queue.delivery`). */
  tally?: (action: LogAction) => void;
}

/**
 * What pickup decided for this attempt (traffic shaping): the facts it was admitted with
 * (source address, remote MX and address it was counted against), the policies applied, and
 * the delivery settings of smtpd-delivery.yaml that match.
 */
export interface Admission {
  facts: Facts;
  ticket?: Ticket;
  settings: DeliverySettings;
}

/** Seconds an entry waits when its new state could not be written. */
const WRITE_FAILURE_DELAY = 300;

/** One entry in flight. */
interface Item {
  entry: QueueEntry;
  admission?: Admission;
  context: Record<string, unknown>;
  /** Metadata set by a hook (SetMetaData), to be persisted with the next state. */
  metadata?: Record<string, string>;
}

/** An item with its decision, ready to apply. */
interface Decided extends Item {
  disposition: Disposition;
  report?: AttemptReport;
  recipient?: RecipientReport;
  expired: boolean;
  /** DSN for this entry (failed or delayed), when one is due and allowed. */
  dsn?: Omit<DsnFacts, 'entry'>;
}

export async function runGroup(ctx: RunContext, entries: readonly QueueEntry[], admission?: Admission): Promise<void> {
  const items: Item[] = entries.map((entry) => ({ entry, context: {}, ...(admission ? { admission } : {}) }));
  const pre = await Promise.all(items.map((it) => predelivery(ctx, it)));
  const tries: Array<{ item: Item; options: TryOptions }> = [];
  const done: Decided[] = [];
  await Promise.all(items.map(async (item, i) => {
    const o = pre[i];
    switch (o.action) {
      case 'Try':
        tries.push({ item, options: o.options });
        return;
      case 'Queue': {
        const policy = retryOf(ctx, item);
        done.push(merged(item, { disposition: queueDisposition(item.entry, checkTransport(ctx, item.entry, o.options), policy, ctx.now()), expired: false }));
        return;
      }
      case 'Bounce':
      case 'Delete':
        done.push(await skipped(ctx, item, o.action === 'Bounce' ? 'bounce' : 'delete', o.options.reason));
        return;
      default:
        return assertNever(o);
    }
  }));
  if (done.length) await apply(ctx, done);
  for (const part of partition(tries)) await attemptPart(ctx, part);
}

// ---------------------------------------------------------------------------------------------
// predelivery

async function predelivery(ctx: RunContext, item: Item) {
  const hook = ctx.hooks.predelivery;
  if (!hook) return { action: 'Try' as const, options: {} as TryOptions, source: 'implicit' as const };
  const o = await hook({
    arguments: { retry: item.entry.retry, queue: {} },
    message: deliveryMessage(item.entry),
    context: item.context,
    metadata: item.entry.metadata,
  });
  if (o.metadata) item.metadata = o.metadata;
  return o;
}

/** Entries that predelivery bounced or deleted: postdelivery runs without an attempt. */
async function skipped(ctx: RunContext, item: Item, kind: 'bounce' | 'delete', reason: string | undefined): Promise<Decided> {
  const def = defaultAction(kind, false);
  const chosen = await postdelivery(ctx, item, { def, expired: false, grouping: groupingFor(ctx, item, '', '') });
  const policy = retryOf(ctx, item);
  const disposition = dispose(item.entry, def, chosen, policy, ctx.now());
  // Taking the default keeps predelivery's reason (for the log and the DSN).
  if (chosen.action === 'Default' && reason !== undefined && disposition.kind !== 'delivered') disposition.reason = reason;
  const d: Decided = merged(item, { disposition, expired: false });
  const text = disposition.kind === 'bounce' ? disposition.reason ?? 'bounced by the predelivery hook' : '';
  if (disposition.kind === 'bounce') d.dsn = { action: 'failed', status: '5.0.0', diagnostic: { type: 'x-error', text } };
  return d;
}

// ---------------------------------------------------------------------------------------------
// attempt

/** Split by Try options: one SMTP transaction per distinct set (recipient override aside). */
function partition(tries: Array<{ item: Item; options: TryOptions }>): Array<Array<{ item: Item; options: TryOptions }>> {
  const parts = new Map<string, Array<{ item: Item; options: TryOptions }>>();
  for (const t of tries) {
    const { recipient: _r, ...shared } = t.options;
    const key = JSON.stringify(shared);
    const list = parts.get(key);
    if (list) list.push(t);
    else parts.set(key, [t]);
  }
  return [...parts.values()];
}

async function attemptPart(ctx: RunContext, part: Array<{ item: Item; options: TryOptions }>): Promise<void> {
  const entries = part.map((p) => p.item.entry);
  const first = entries[0];
  let body: Buffer | undefined;
  let report: AttemptReport;
  try {
    body = await ctx.spool.readBody(first.id.transaction, first.body);
  } catch (err) {
    ctx.log.error({ transactionid: first.id.transaction, err: (err as Error).message }, 'message body unreadable from the spool');
  }
  if (!body) {
    report = failedReport(entries.length, { temporary: true, type: 'spool', message: 'message body could not be read from the spool' });
  } else {
    const admission = part[0].item.admission;
    const planned = buildPlan({ config: ctx.config, entries, recipients: part.map((p) => p.options.recipient ?? p.item.entry.recipient), options: part[0].options, body, hostname: ctx.hostname, ...(admission ? { admission } : {}) });
    report = 'error' in planned
      ? failedReport(entries.length, { temporary: true, type: 'config', message: planned.error })
      : await ctx.agent.attempt(planned.plan, ctx.resolver);
  }
  const decided = await Promise.all(part.map((p, i) => decide(ctx, p.item, report, report.recipients[i])));
  await apply(ctx, decided, body);
}

function failedReport(n: number, error: NonNullable<RecipientReport['error']>): AttemptReport {
  const outcome = error.temporary ? 'temporary' : 'permanent';
  return { recipients: Array.from({ length: n }, () => ({ outcome, error })), remotemx: '', remoteip: '', duration: 0, skipped: [] };
}

async function decide(ctx: RunContext, item: Item, report: AttemptReport, r: RecipientReport): Promise<Decided> {
  const e = item.entry;
  const now = ctx.now();
  const policy = retryOf(ctx, item);
  const kind: AttemptKind = r.outcome;
  const expired = kind === 'temporary' && isExpired(policy, e, now);
  const def = defaultAction(kind, expired);
  const dsnInfo = dsnInfoFor(def, r, expired);
  const chosen = await postdelivery(ctx, item, { def, expired, grouping: groupingFor(ctx, item, report.remotemx, report.remoteip), report, recipient: r, ...(dsnInfo ? { dsn: dsnInfo } : {}) });
  const disposition = dispose(e, def, chosen, policy, now);
  const d: Decided = merged(item, { disposition, report, recipient: r, expired });
  // Only set when due: `delete` would turn every delivered entry's object into a slow dictionary.
  const dsn = dsnFor(disposition, r, expired, report, now, policy, e);
  if (dsn) d.dsn = dsn;
  return d;
}

function dsnInfoFor(def: DefaultAction, r: RecipientReport, expired: boolean): DeliveryDsnInfo | undefined {
  if (def !== 'BOUNCE' && def !== 'QUEUE') return undefined;
  const action = def === 'BOUNCE' ? 'failed' : 'delayed';
  const status = statusOf(r, action, expired).split('.').map(Number) as [number, number, number];
  const diag = diagnosticOf(r);
  return { action, status, diagnostictype: diag?.type ?? 'x-error', diagnosticcode: diag?.text ?? '' };
}

function dsnFor(d: Disposition, r: RecipientReport, expired: boolean, report: AttemptReport, now: number, policy: RetryPolicy, e: QueueEntry): Omit<DsnFacts, 'entry'> | undefined {
  const remote = report.remotemx || report.remoteip;
  const common = { lastAttempt: new Date(now), ...(remote ? { remoteMta: remote } : {}) };
  if (d.kind === 'bounce') {
    const diagnostic = diagnosticOf(r, d.reason);
    return { action: 'failed', status: statusOf(r, 'failed', expired && r.outcome === 'temporary'), ...(diagnostic ? { diagnostic } : {}), ...common };
  }
  if (d.kind === 'queue' && d.notify) {
    const diagnostic = diagnosticOf(r);
    return { action: 'delayed', status: statusOf(r, 'delayed'), ...(diagnostic ? { diagnostic } : {}), ...common, willRetryUntil: new Date(expiresAt(policy, e.ts)) };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// postdelivery

interface PostFacts {
  def: DefaultAction;
  expired: boolean;
  grouping: string;
  report?: AttemptReport;
  recipient?: RecipientReport;
  dsn?: DeliveryDsnInfo;
}

async function postdelivery(ctx: RunContext, item: Item, f: PostFacts): Promise<ChosenAction> {
  const hook = ctx.hooks.postdelivery;
  if (!hook) return { action: 'Default' };
  const o: PostDeliveryOutcome = await hook({
    arguments: {
      retry: item.entry.retry,
      expired: f.expired,
      ...(f.def ? { action: f.def } : {}),
      grouping: f.grouping,
      policy: { tags: [...(item.admission?.ticket?.tags ?? [])], policies: [...(item.admission?.ticket?.policies ?? [])] },
      ...(f.report && f.recipient ? { attempt: hookAttempt(f.report, f.recipient) } : {}),
      ...(f.dsn ? { dsn: f.dsn } : {}),
      queue: {},
    },
    message: deliveryMessage(item.entry),
    context: item.context,
    metadata: item.metadata ?? item.entry.metadata,
    delivered: f.def === undefined,
  });
  if (o.metadata) item.metadata = o.metadata;
  switch (o.action) {
    case 'Default':
      return { action: 'Default' };
    case 'Queue':
      return { action: 'Queue', options: checkTransport(ctx, item.entry, o.options) };
    case 'Bounce':
    case 'Delete':
      return { action: o.action, options: o.options };
    default:
      return assertNever(o);
  }
}

/** A Queue({transportid}) to a transport that does not exist keeps the current one. */
function checkTransport<T extends { transportid?: string }>(ctx: RunContext, e: QueueEntry, o: T): T {
  if (o.transportid === undefined || findTransport(ctx.config, o.transportid)) return o;
  ctx.log.error({ transactionid: e.id.transaction, queueid: e.id.queue, transportid: o.transportid }, 'Queue(): unknown transportid; the entry keeps its transport');
  const { transportid: _t, ...rest } = o;
  return rest as T;
}

/**
 * Halon's `grouping` field for where an attempt went (or, without an attempt, where pickup
 * counted it): `&id` of the matching groupings[] item, else per `queues.grouping.default`.
 */
function groupingFor(ctx: RunContext, item: Item, remotemx: string, remoteip: string): string {
  const f = item.admission?.facts;
  const mx = remotemx || f?.remotemx || '';
  const ip = remoteip || f?.remoteip || '';
  const domain = item.entry.recipientaddress.domain.toLowerCase();
  if (ctx.groupingOf) return ctx.groupingOf(domain, mx, ip);
  const def = ctx.config.queues.grouping?.default;
  if (def === 'recipientdomain') return domain;
  if (def === 'remotemx') return mx;
  return '';
}

/**
 * The retry policy of an entry: its transport group's, with `retry.count`/`retry.intervals`
 * of the matching smtpd-delivery.yaml settings over it (`retry.during` is not overridable,
 * halon-core.md §4.6).
 */
function retryOf(ctx: RunContext, item: Item): RetryPolicy {
  const base = retryPolicyOf(ctx.config, item.entry.transportid);
  const r = item.admission?.settings.retry;
  if (!r || (r.count === undefined && r.intervals === undefined)) return base;
  const out: RetryPolicy = Object.assign({}, base);
  if (r.count !== undefined) out.count = r.count;
  if (r.intervals !== undefined) out.intervals = r.intervals;
  return out;
}

// ---------------------------------------------------------------------------------------------
// apply

async function apply(ctx: RunContext, decided: Decided[], body?: Buffer): Promise<void> {
  const failedDsn = await sendDsns(ctx, decided, body);
  await Promise.all(decided.map((d) => settle(ctx, d, failedDsn.has(d))));
}

/**
 * Commit the DSNs due (one per transaction and action). Returns the bounced items whose DSN
 * could not be committed: they are deferred instead of removed, so the notice is not lost.
 */
async function sendDsns(ctx: RunContext, decided: Decided[], body: Buffer | undefined): Promise<Set<Decided>> {
  const failed = new Set<Decided>();
  const groups = new Map<string, { transportid: string; list: Decided[] }>();
  for (const d of decided) {
    if (!d.dsn || d.entry.sender === '') continue;
    const dsnTransport = findTransport(ctx.config, d.entry.transportid)?.group.dsn?.transport;
    if (dsnTransport === undefined) continue;
    const key = `${d.entry.id.transaction}:${d.entry.body}:${d.dsn.action}:${dsnTransport}`;
    const g = groups.get(key);
    if (g) g.list.push(d);
    else groups.set(key, { transportid: dsnTransport, list: [d] });
  }
  for (const { transportid, list } of groups.values()) {
    if ((await queueDsn(ctx, list, transportid, body)) === 'failed') {
      for (const d of list) if (d.disposition.kind === 'bounce') failed.add(d);
    }
  }
  return failed;
}

/** Build and commit one DSN for entries of one transaction; 'none' when buildDsn declines. */
async function queueDsn(ctx: RunContext, list: Decided[], transportid: string, body: Buffer | undefined): Promise<'ok' | 'failed' | 'none'> {
  const first = list[0].entry;
  try {
    const original = body ?? (await ctx.spool.readBody(first.id.transaction, first.body));
    const tx: AcceptedTransaction | null = dsnTransaction({
      facts: list.map((d) => ({ entry: d.entry, ...d.dsn! })),
      original,
      hostname: ctx.hostname,
      now: ctx.now(),
      newId: ctx.newId,
      transportid,
    });
    if (!tx) return 'none';
    await ctx.ingress.commit(tx);
    ctx.log.info({ transactionid: first.id.transaction, dsn: tx.id, action: list[0].dsn!.action, recipients: list.length, to: tx.entries[0].recipient }, 'DSN queued');
    return 'ok';
  } catch (err) {
    ctx.log.error({ transactionid: first.id.transaction, err: (err as Error).message }, 'DSN could not be queued; the bounce is retried later');
    return 'failed';
  }
}

/** Write one entry's next state to the spool, then to the queue, then log it. */
async function settle(ctx: RunContext, d: Decided, dsnFailed: boolean): Promise<void> {
  const e = d.entry;
  const disposition: Disposition = dsnFailed
    ? { kind: 'queue', state: 'DEFER', retry: e.retry, retryts: ctx.now() + WRITE_FAILURE_DELAY * 1000, transportid: e.transportid, notify: false }
    : d.disposition;
  try {
    await write(ctx, d, disposition);
  } catch (err) {
    ctx.log.error({ transactionid: e.id.transaction, queueid: e.id.queue, err: (err as Error).message }, 'queue entry state could not be written to the spool');
    ctx.store.update(e, { state: 'DEFER', retryts: ctx.now() + WRITE_FAILURE_DELAY * 1000 });
    return;
  }
  const action = logAction(disposition);
  ctx.tally?.(action);
  if (ctx.log.isLevelEnabled && !ctx.log.isLevelEnabled('info')) return;
  ctx.log.info(deliveryRecord({
    hostname: ctx.hostname,
    now: ctx.now(),
    entry: e,
    action,
    ...(disposition.kind === 'queue' ? { state: disposition.state } : {}),
    retry: e.retry,
    grouping: groupingFor(ctx, d, d.report?.remotemx ?? '', d.report?.remoteip ?? ''),
    ...(d.report ? { report: d.report } : {}),
    ...(d.recipient ? { recipient: d.recipient } : {}),
    ...('reason' in disposition && disposition.reason !== undefined ? { reason: disposition.reason } : {}),
  }), 'delivery');
}

async function write(ctx: RunContext, d: Decided, disposition: Disposition): Promise<void> {
  const e = d.entry;
  switch (disposition.kind) {
    case 'delivered':
    case 'bounce':
    case 'delete':
      await ctx.spool.remove(e.id.transaction, e.id.queue);
      ctx.store.delete(e);
      return;
    case 'queue': {
      const patch = {
        state: disposition.state,
        retry: disposition.retry,
        retryts: disposition.retryts,
        transportid: disposition.transportid,
        metadata: d.metadata ?? e.metadata,
        // The attempt's hop travels in the same spool write as the new state (no extra fsync).
        ...(d.report ? hopOf(ctx, d, d.report) : {}),
      };
      await ctx.spool.update(e.id.transaction, e.id.queue, encodeEntry(merged(e, patch)) as Json);
      ctx.store.update(e, patch);
      return;
    }
    default:
      assertNever(disposition);
  }
}

/**
 * Where an attempt went, as queue fields (halon-core.md §4.3: localip, remotemx, remoteip and
 * grouping exist after DNS resolution). '' for what the attempt did not reach (a DNS failure
 * has no remoteip, a fixed server no remotemx).
 */
function hopOf(ctx: RunContext, item: Item, report: AttemptReport): Pick<QueueEntry, 'localip' | 'remotemx' | 'remoteip' | 'grouping'> {
  return {
    localip: report.connection?.localip ?? '',
    remotemx: report.remotemx,
    remoteip: report.remoteip,
    grouping: groupingFor(ctx, item, report.remotemx, report.remoteip),
  };
}

function logAction(d: Disposition): LogAction {
  switch (d.kind) {
    case 'delivered':
      return 'delivered';
    case 'queue':
      return 'deferred';
    case 'bounce':
      return 'bounced';
    case 'delete':
      return 'removed';
    default:
      return assertNever(d);
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}
