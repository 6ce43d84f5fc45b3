/**
 * The shared vocabulary of Halyard: a leaf module that every stage imports and that imports
 * nothing of the project. Field names follow Halon's (halon-core.md §4.3, §5.1) so that hook
 * authors and operators recognise them.
 */

/** An e-mail address split as Halon's `senderaddress` / `recipientaddress`. */
export interface Address {
  localpart: string;
  domain: string;
}

/** RFC 3461 DSN parameters kept with each recipient (`queue(..., {dsn})`). */
export interface DsnParams {
  envid?: string;
  ret?: 'FULL' | 'HDRS';
  /** NEVER, or any of SUCCESS, FAILURE, DELAY. */
  notify?: string[];
  /** Original recipient, as given in ORCPT (`addr-type;xtext-decoded address`). */
  orcpt?: string;
}

/** Queue states (halon-core.md §4.2). SENDING and UPDATE are transient "working"/"freeze" states. */
export type QueueState = 'ACTIVE' | 'DEFER' | 'HOLD' | 'SENDING' | 'UPDATE';

/** Full queue id: transaction uuid plus the per-transaction recipient number (1-based). */
export interface QueueId {
  transaction: string;
  queue: number;
}

/**
 * One queue entry: one recipient of one transaction. This is what the spool persists (as JSON
 * metadata beside the message body) and what the queue index, policies and the CLI work on.
 */
export interface QueueEntry {
  id: QueueId;
  /** Reception time, Unix epoch milliseconds. */
  ts: number;
  serverid: string;
  /** Envelope sender, '' for the null reverse-path. */
  sender: string;
  senderaddress: Address;
  recipient: string;
  recipientaddress: Address;
  transportid: string;
  tenantid: string;
  jobid: string;
  priority: 0 | 1;
  metadata: Record<string, string>;
  quotas: string[];
  tags: string[];
  dsn: DsnParams;
  state: QueueState;
  /** Number of delivery attempts that failed temporarily so far. */
  retry: number;
  /** Next attempt time (Unix epoch ms); 0 = now. */
  retryts: number;
  /** Index of the message body (within its transaction) that this recipient receives. */
  body: number;
  /** Size in bytes of that body. */
  size: number;
  /**
   * Where the last delivery attempt went (halon-core.md §4.3: "grouping, remotemx, remoteip —
   * after DNS resolution"): the source address used, the MX name and address that answered, and
   * the grouping key. Absent on an entry never attempted ('' when an attempt did not get that
   * far, e.g. a DNS failure has no remoteip). Optional so that spool records written before
   * these fields existed stay valid.
   */
  localip?: string;
  remotemx?: string;
  remoteip?: string;
  grouping?: string;
}

/** What the connection looked like when a transaction was received (kept for logs and DSNs). */
export interface ReceivedFrom {
  remoteip: string;
  remoteport: number;
  localip: string;
  localport: number;
  helo: string;
  tls: boolean;
  authuser?: string;
}

/** A whole accepted transaction, as it enters the queue through the one door (`ingress`). */
export interface AcceptedTransaction {
  id: string;
  ts: number;
  serverid: string;
  sender: string;
  from: ReceivedFrom;
  /** Message bodies (CRLF line endings, no dot-stuffing). Entries refer to them by index. */
  bodies: Buffer[];
  entries: QueueEntry[];
}

/** An SMTP reply as hooks and logs see it. */
export interface Reply {
  code: number;
  enhanced: [number, number, number] | null;
  /** One element per line. */
  reason: string[];
}

/** The fields a new entry must be given; everything else starts at its default. */
export type NewEntryFields = Pick<QueueEntry, 'id' | 'ts' | 'serverid' | 'sender' | 'recipient' | 'transportid' | 'size'> & Partial<QueueEntry>;

/**
 * A new queue entry with Halon's defaults (ACTIVE, retry 0, priority 0, empty tenant/job,
 * metadata, quotas, tags and DSN parameters); the address parts are split from the strings.
 * Every receiver and the bounce path create entries here, so the defaults live in one place.
 */
export function newQueueEntry(f: NewEntryFields): QueueEntry {
  return {
    senderaddress: splitAddress(f.sender),
    recipientaddress: splitAddress(f.recipient),
    tenantid: '',
    jobid: '',
    priority: 0,
    metadata: {},
    quotas: [],
    tags: [],
    dsn: {},
    state: 'ACTIVE',
    retry: 0,
    retryts: 0,
    body: 0,
    ...f,
  };
}

export function formatQueueId(id: QueueId): string {
  return `${id.transaction}:${id.queue}`;
}

export function parseQueueId(s: string): QueueId | null {
  const m = /^([0-9a-fA-F-]{36}):(\d+)$/.exec(s);
  return m ? { transaction: m[1].toLowerCase(), queue: Number(m[2]) } : null;
}

/** Split an address at its last '@'. The null sender gives two empty parts. */
export function splitAddress(address: string): Address {
  const at = address.lastIndexOf('@');
  if (at < 0) return { localpart: address, domain: '' };
  return { localpart: address.slice(0, at), domain: address.slice(at + 1) };
}

export function joinAddress(a: Address): string {
  if (!a.domain) return a.localpart;
  return `${a.localpart}@${a.domain}`;
}
