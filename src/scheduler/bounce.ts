/**
 * Delivery status notifications from the queue: the RFC 3463 status and diagnostic of an
 * attempt, and the DSN (built by delivery/dsn.ts) wrapped as a new transaction for the ingress.
 * PURE: the clock and the id generator are passed in.
 *
 * - Status: an SMTP reply's enhanced code (class forced to the action's: 5 for failed, 4 for
 *   delayed, RFC 3464 §2.3.4); without a reply, a code chosen by error type (table below);
 *   expiry is X.4.7 "delivery time expired" (RFC 3463 §3.5) whatever the last error was.
 * - Diagnostic: the remote reply as received (`smtp;`, RFC 3464 §2.3.6), else our own reason
 *   (`x-error;`). A hook's `Bounce({reason})` replaces it.
 * - The DSN transaction: sender '' (RFC 5321 §4.5.5: no DSN about a DSN), one recipient — the
 *   original sender — on the group's `dsn.transport`; `null` when no DSN may or need be sent
 *   (null sender, NOTIFY=NEVER, or no recipient asked for this action: buildDsn decides).
 */
import type { AcceptedTransaction, QueueEntry } from '../model/types';
import { newQueueEntry } from '../model/types';
import { buildDsn, formatDiagnostic, parseStatus, type DsnDiagnostic, type DsnRecipient } from '../delivery/dsn';
import type { AttemptFailure, RecipientReport } from '../delivery/attempt';

/** Subject.detail of RFC 3463 codes for failures that have no SMTP reply. */
const ERROR_STATUS: Readonly<Record<AttemptFailure['type'], string>> = {
  dns: '4.4', // routing: overridden per DNS case below
  network: '4.1', // no answer from host
  timeout: '4.2', // bad connection
  tls: '7.10', // encryption needed (RFC 5248 registry)
  protocol: '5.0', // other protocol status
  smtp: '5.0',
  config: '3.5', // system incorrectly configured
  spool: '3.0', // other mail system status
};

const DNS_STATUS: Readonly<Record<string, string>> = {
  nxdomain: '1.2', // bad destination system address
  nodata: '1.2',
  nullmx: '1.10', // recipient address has null MX (RFC 7505 §4.2)
  other: '4.3', // directory server failure
  ipfamily: '4.4', // unable to route
  excluded: '4.4',
};

export type DsnAction = 'failed' | 'delayed';

/** RFC 3463 status "c.s.d" of an attempt outcome for a DSN action. */
export function statusOf(r: Pick<RecipientReport, 'result' | 'error'>, action: DsnAction, expired = false): string {
  const cls = action === 'failed' ? 5 : 4;
  if (expired) return `${cls}.4.7`;
  if (r.result) return `${cls}.${parseStatus(r.result.enhanced, r.result.code).split('.').slice(1).join('.')}`;
  const e = r.error;
  if (!e) return `${cls}.0.0`;
  if ('enhanced' in e && e.enhanced) return `${cls}.${e.enhanced[1]}.${e.enhanced[2]}`;
  const sub = e.type === 'dns' ? DNS_STATUS[e.dns] ?? '4.4' : ERROR_STATUS[e.type];
  return `${cls}.${sub}`;
}

export function diagnosticOf(r: Pick<RecipientReport, 'result' | 'error'>, reason?: string): DsnDiagnostic | undefined {
  if (reason !== undefined) return { type: 'x-error', text: reason };
  if (r.result) return { type: 'smtp', text: formatDiagnostic(r.result.code, r.result.enhanced, r.result.reason) };
  if (r.error) return { type: 'x-error', text: r.error.message };
  return undefined;
}

export interface DsnFacts {
  entry: QueueEntry;
  action: DsnAction;
  status: string;
  diagnostic?: DsnDiagnostic;
  remoteMta?: string;
  lastAttempt?: Date;
  willRetryUntil?: Date;
}

export interface DsnTransactionInput {
  /** Recipients of one transaction (same sender) to report on. */
  facts: DsnFacts[];
  /** The original message (header section and, for RET=FULL failures, the body go back). */
  original: Buffer;
  hostname: string;
  now: number;
  newId: () => string;
  transportid: string;
}

export function dsnTransaction(input: DsnTransactionInput): AcceptedTransaction | null {
  const first = input.facts[0]?.entry;
  if (!first) return null;
  const { headers, body } = splitMessage(input.original);
  const msg = buildDsn({
    reportingMta: input.hostname,
    now: new Date(input.now),
    idGen: input.newId,
    original: {
      sender: first.sender,
      ...(first.dsn.envid !== undefined ? { envid: first.dsn.envid } : {}),
      ...(first.dsn.ret !== undefined ? { ret: first.dsn.ret } : {}),
      arrivalDate: new Date(first.ts),
      headers,
      body,
    },
    recipients: input.facts.map(toDsnRecipient),
  });
  if (!msg) return null;
  const id = input.newId();
  return {
    id,
    ts: input.now,
    serverid: first.serverid,
    sender: '',
    from: { remoteip: '', remoteport: 0, localip: '', localport: 0, helo: input.hostname, tls: false },
    bodies: [msg.message],
    entries: [newQueueEntry({
      id: { transaction: id, queue: 1 },
      ts: input.now,
      serverid: first.serverid,
      sender: '',
      recipient: msg.recipient,
      transportid: input.transportid,
      tenantid: first.tenantid,
      size: msg.message.length,
    })],
  };
}

function toDsnRecipient(f: DsnFacts): DsnRecipient {
  const r: DsnRecipient = { recipient: f.entry.recipient, action: f.action, status: f.status };
  if (f.entry.dsn.orcpt !== undefined) r.orcpt = f.entry.dsn.orcpt;
  if (f.entry.dsn.notify !== undefined) r.notify = f.entry.dsn.notify;
  if (f.remoteMta) r.remoteMta = f.remoteMta;
  if (f.diagnostic) r.diagnostic = f.diagnostic;
  if (f.lastAttempt) r.lastAttempt = f.lastAttempt;
  if (f.willRetryUntil) r.willRetryUntil = f.willRetryUntil;
  return r;
}

/** Header section (without the empty line) and body of an RFC 5322 message. */
export function splitMessage(m: Buffer): { headers: Buffer; body: Buffer } {
  if (m.length >= 2 && m[0] === 0x0d && m[1] === 0x0a) return { headers: Buffer.alloc(0), body: m.subarray(2) };
  const at = m.indexOf('\r\n\r\n');
  if (at >= 0) return { headers: m.subarray(0, at + 2), body: m.subarray(at + 4) };
  const lf = m.indexOf('\n\n');
  if (lf >= 0) return { headers: m.subarray(0, lf + 1), body: m.subarray(lf + 2) };
  return { headers: m, body: Buffer.alloc(0) };
}
