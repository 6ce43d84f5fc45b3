/**
 * The facts of an attempt in the shapes hooks and logs use. PURE.
 *
 * - `deliveryMessage`: a queue entry as `$message` (halon-core.md §5.3), a copy.
 * - `hookAttempt`: an attempt report for one recipient as `arguments.attempt` (§5.4).
 * - `deliveryRecord`: the one JSON log record per recipient and attempt, with the field names
 *   of Halon's delivery history (§7.1); `action` is delivered | deferred | bounced | removed.
 */
import type { QueueEntry } from '../model/types';
import type { AttemptConnection, AttemptFailure as HookFailure, AttemptReply, DeliveryAttempt, DeliveryMessage } from '../hooks/types';
import type { AttemptReport, RecipientReport } from '../delivery/attempt';
import type { ConnectionInfo } from '../delivery/smtp-client';
import { merged } from '../util/objects';

export function deliveryMessage(e: QueueEntry): DeliveryMessage {
  return {
    id: { transaction: e.id.transaction, queue: e.id.queue },
    ts: e.ts / 1000,
    serverid: e.serverid,
    sender: e.sender,
    senderaddress: { ...e.senderaddress },
    recipient: e.recipient,
    recipientaddress: { ...e.recipientaddress },
    transportid: e.transportid,
    tenantid: e.tenantid,
    jobid: e.jobid,
    priority: e.priority,
    size: e.size,
    tags: [...e.tags],
    dsn: e.dsn.notify ? merged(e.dsn, { notify: [...e.dsn.notify] }) : { ...e.dsn },
  };
}

export function hookAttempt(report: AttemptReport, r: RecipientReport): DeliveryAttempt {
  const out: DeliveryAttempt = { duration: report.duration };
  if (r.result) out.result = { code: r.result.code, enhanced: r.result.enhanced, reason: [...r.result.reason], state: r.result.state } as AttemptReply;
  if (r.error) out.error = hookFailure(r.error);
  if (report.connection) out.connection = hookConnection(report.connection);
  return out;
}

function hookFailure(e: NonNullable<RecipientReport['error']>): HookFailure {
  const out: HookFailure = { temporary: e.temporary, message: e.message, type: e.type };
  if (e.type === 'dns') out.dns = e.dns;
  return out;
}

function hookConnection(c: ConnectionInfo): AttemptConnection {
  const out: AttemptConnection = {
    id: c.id,
    transactions: c.transactions,
    localip: c.localip,
    helo: c.helo,
    remoteip: c.remoteip,
    remoteport: c.remoteport,
    remotemx: c.remotemx,
    remotegreet: [...c.remotegreet],
    tls: { started: c.tls.started },
  };
  if (c.localipid !== undefined) out.localipid = c.localipid;
  if (c.tls.protocol) out.tls.protocol = c.tls.protocol;
  if (c.tls.cipher) out.tls.cipher = c.tls.cipher;
  if (c.tls.keysize) out.tls.keysize = c.tls.keysize;
  if (c.tls.peercert) out.tls.peercert = { ...c.tls.peercert };
  return out;
}

export type LogAction = 'delivered' | 'deferred' | 'bounced' | 'removed';

export interface RecordInput {
  hostname: string;
  now: number;
  entry: QueueEntry;
  action: LogAction;
  /** The entry's state after the action, when it stays queued (DEFER or HOLD). */
  state?: string;
  retry: number;
  grouping: string;
  report?: AttemptReport;
  recipient?: RecipientReport;
  /** Hook or administrative reason. */
  reason?: string;
}

/** One delivery-history record (halon-core.md §7.1). */
export function deliveryRecord(i: RecordInput): Record<string, unknown> {
  const e = i.entry;
  const rec: Record<string, unknown> = {
    hostname: i.hostname,
    '@timestamp': i.now,
    received: e.ts,
    transactionid: e.id.transaction,
    queueid: e.id.queue,
    senderlocalpart: e.senderaddress.localpart,
    senderdomain: e.senderaddress.domain,
    recipientlocalpart: e.recipientaddress.localpart,
    recipientdomain: e.recipientaddress.domain,
    size: e.size,
    transportid: e.transportid,
    grouping: i.grouping,
    jobid: e.jobid,
    tenantid: e.tenantid,
    action: i.action,
    duration: i.report ? round(i.report.duration) : 0,
    retry: i.retry,
  };
  if (i.action !== 'deferred') rec.totalduration = round((i.now - e.ts) / 1000);
  if (i.state) rec.state = i.state;
  addConnection(rec, i.report);
  addReply(rec, i.recipient);
  if (i.reason !== undefined) rec.reason = i.reason;
  return rec;
}

function addConnection(rec: Record<string, unknown>, report: AttemptReport | undefined): void {
  if (!report) return;
  if (report.connection) rec.localip = report.connection.localip;
  if (report.remoteip) rec.remoteip = report.remoteip;
  if (report.remotemx) rec.remotemx = report.remotemx;
  if (report.connection?.tls.started) rec.tls = true;
  // Hosts tried before the one that answered (RFC 5321 §5.1 fallback), for the operator.
  if (report.skipped.length > 0) rec.skipped = report.skipped.map((h) => `${h.mx || h.address}[${h.address}]:${h.port} ${h.message}`);
}

function addReply(rec: Record<string, unknown>, r: RecipientReport | undefined): void {
  if (r?.result) {
    rec.smtpcode = r.result.code;
    if (r.result.enhanced) rec.smtpenhanced = r.result.enhanced.join('.');
    rec.smtpstate = r.result.state;
    rec.smtpreason = r.result.reason.join(' ');
  }
  if (r?.error) {
    rec.error = r.error.message;
    rec.errortype = r.error.type;
    if (r.error.type === 'dns') rec.dns = r.error.dns;
    if ('state' in r.error && r.error.state && !rec.smtpstate) rec.smtpstate = r.error.state;
  }
}

function round(s: number): number {
  return Math.round(s * 1000) / 1000;
}
