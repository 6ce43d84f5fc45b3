/**
 * One SMTP mail transaction (MAIL … end of data) and how it becomes queue entries: PURE except
 * for the values the caller passes in (ids, clock).
 *
 * Inputs: the accepted MAIL and RCPT data; at the end, queue requests (from the eod hook's
 * `mail.queue()`, or one per recipient when there is no eod hook).
 * Outputs: `QueueEntry` objects and the `AcceptedTransaction` handed to the ingress.
 * Invariants: queue numbers run 1, 2, … in the order of `queue()` calls; bodies are stored once
 * per distinct Buffer (the eod message returns the same Buffer while unmodified); DSN
 * parameters come from the `queue()` options or else from the recipient's NOTIFY/ORCPT and the
 * MAIL's RET/ENVID (RFC 3461).
 */
import type { AcceptedTransaction, Address, DsnParams, QueueEntry, QueueState, ReceivedFrom } from '../model/types';
import { newQueueEntry } from '../model/types';
import type { QueueOptions, RecipientInfo, TransactionInfo } from '../hooks/types';
import type { MailParams, RcptParams } from './codec';
import type { BdatReader } from './framing';

export interface TxRecipient extends RecipientInfo {
  rcpt: RcptParams;
}

export interface QueueRequestLike {
  sender: string;
  recipient: string;
  transportid: string;
  options: QueueOptions;
  body: Buffer;
}

export class Transaction {
  readonly recipients: TxRecipient[] = [];
  /** How the content is being sent; DATA and BDAT cannot be mixed (RFC 3030 §3). */
  content: 'none' | 'bdat' = 'none';
  bdat: BdatReader | null = null;

  constructor(
    readonly id: string,
    public sender: string,
    public senderaddress: Address,
    readonly params: Record<string, string>,
    readonly mail: MailParams,
  ) {}

  /** `$transaction` as hooks see it: a copy, so a hook cannot change the session's state. */
  info(): TransactionInfo {
    return {
      id: this.id,
      sender: this.sender,
      senderaddress: { ...this.senderaddress },
      senderparams: { ...this.params },
      recipients: this.recipients.map((r) => ({ recipient: r.recipient, address: { ...r.address }, params: { ...r.params }, transportid: r.transportid })),
    };
  }

  /** DSN parameters for a queued recipient when `queue()` gave none. */
  dsnFor(recipient: string): DsnParams {
    const dsn: DsnParams = {};
    if (this.mail.envid !== undefined) dsn.envid = this.mail.envid;
    if (this.mail.ret !== undefined) dsn.ret = this.mail.ret;
    const r = this.recipients.find((x) => x.recipient === recipient);
    if (r?.rcpt.notify) dsn.notify = [...r.rcpt.notify];
    if (r?.rcpt.orcpt !== undefined) dsn.orcpt = r.rcpt.orcpt;
    return dsn;
  }
}

/** Collects queue entries and distinct bodies during end-of-message processing. */
export class EntryCollector {
  readonly entries: QueueEntry[] = [];
  readonly bodies: Buffer[] = [];

  constructor(
    private readonly tx: Transaction,
    private readonly serverid: string,
    private readonly ts: number,
  ) {}

  add(req: QueueRequestLike): { transaction: string; queue: number } {
    let body = this.bodies.indexOf(req.body);
    if (body < 0) body = this.bodies.push(req.body) - 1;
    const id = { transaction: this.tx.id, queue: this.entries.length + 1 };
    this.entries.push(buildEntry(this.tx, req, id, body, this.serverid, this.ts));
    return id;
  }

  transaction(from: ReceivedFrom): AcceptedTransaction {
    return { id: this.tx.id, ts: this.ts, serverid: this.serverid, sender: this.tx.sender, from, bodies: this.bodies, entries: this.entries };
  }
}

/** hold ⇒ HOLD; delay > 0 ⇒ DEFER until now + delay (HOLD wins when both are given). */
function initialState(o: QueueOptions): { state: QueueState; delayMs: number } {
  const delayMs = typeof o.delay === 'number' && o.delay > 0 ? o.delay * 1000 : 0;
  const state: QueueState = o.hold ? 'HOLD' : delayMs > 0 ? 'DEFER' : 'ACTIVE';
  return { state, delayMs };
}

function buildEntry(tx: Transaction, req: QueueRequestLike, id: { transaction: string; queue: number }, body: number, serverid: string, ts: number): QueueEntry {
  const o = req.options;
  const { state, delayMs } = initialState(o);
  return newQueueEntry({
    id,
    ts,
    serverid,
    sender: req.sender,
    recipient: req.recipient,
    transportid: req.transportid,
    tenantid: o.tenantid ?? '',
    jobid: o.jobid ?? '',
    priority: o.priority ?? 0,
    metadata: o.metadata ? { ...o.metadata } : {},
    quotas: o.quotas ? [...o.quotas] : [],
    dsn: o.dsn ? { ...o.dsn } : tx.dsnFor(req.recipient),
    state,
    retryts: delayMs > 0 ? ts + delayMs : 0,
    body,
    size: req.body.length,
  });
}
