/**
 * The hook contract: what a hook module receives and which actions it may take. These types are
 * exported from the package (`import type { EodHook } from 'halyard'`) so that a hook written in
 * an editor type-checks. Names and shapes are Halon's (halon-core.md §5.1, §5.2).
 *
 * A hook module's default export is a function called once per event with a context object.
 * It ends the phase by calling one action (`Accept`, `Reject`, `Defer`); the first action wins,
 * and calling a second one is an error. Returning without an action is the phase's implicit
 * outcome, and throwing (or timing out) is its error outcome:
 *
 * | phase      | implicit end | error / timeout |
 * |------------|--------------|-----------------|
 * | connect    | Accept       | Defer (421)     |
 * | helo       | Accept       | Defer (450)     |
 * | auth       | Reject (535) | Defer (454)     |
 * | mailfrom   | Accept       | Defer (450)     |
 * | rcptto     | Accept       | Defer (450)     |
 * | eod        | Defer (421), nothing queued | Defer (421), nothing queued |
 * | disconnect | (no actions) | logged          |
 */
import type { Address, DsnParams, QueueId } from '../model/types';

export interface ReplyCodes {
  code?: number;
  enhanced?: [number, number, number];
}

export interface RejectOptions {
  reply_codes?: ReplyCodes;
  /** Close the connection after the reply. */
  disconnect?: boolean;
}

export type Reason = string | string[];

export interface HookAction {
  action: 'Accept' | 'Reject' | 'Defer';
  reason?: Reason;
  options?: Record<string, unknown>;
}

export interface PeerCert {
  subject?: Record<string, string>;
  issuer?: Record<string, string>;
  fingerprint256?: string;
  error?: string;
}

export interface ConnectionInfo {
  id: string;
  remoteip: string;
  remoteport: number;
  remoteptr?: string;
  localip: string;
  localport: number;
  serverid: string;
  helo?: { verb: 'HELO' | 'EHLO'; host: string };
  tls?: { protocol: string; cipher: string; keysize?: number; sni?: string; peercert?: PeerCert };
  auth?: { mechanism: string; username: string };
}

export interface RecipientInfo {
  recipient: string;
  address: Address;
  /** ESMTP parameters, upper-case keys (NOTIFY, ORCPT). */
  params: Record<string, string>;
  transportid: string;
}

export interface TransactionInfo {
  id: string;
  sender?: string;
  senderaddress?: Address;
  senderparams?: Record<string, string>;
  recipients: RecipientInfo[];
  /** Set in the eod phase: time the message data ended (Unix epoch seconds, with fraction). */
  ts?: number;
}

export interface Actions<AcceptOpts = Record<string, unknown>> {
  Accept(options?: AcceptOpts): HookAction;
  Reject(reason?: Reason, options?: RejectOptions): HookAction;
  Defer(reason?: Reason, options?: RejectOptions): HookAction;
}

/** Fields shared by every SMTP-phase hook context. */
export interface BaseContext {
  connection: ConnectionInfo;
  transaction?: TransactionInfo;
  /** Writable, connection-bound: whatever a hook stores here the next hook of the connection sees. */
  context: Record<string, unknown>;
  /** Structured log line, attributed to the hook and connection. */
  log(message: string, fields?: Record<string, unknown>): void;
}

export interface ConnectArguments {
  remoteip: string;
  remoteport: number;
  remoteptr?: string;
  localip: string;
  localport: number;
  serverid: string;
  /** Address of the proxy that sent a PROXY header, when one did. */
  proxyip?: string;
  /** PROXY v2 TLVs by type number, as hex strings. */
  proxytlv?: Record<number, string>;
}
export interface ConnectHook extends BaseContext, Actions<{ reason?: Reason; remoteip?: string; remoteptr?: string }> {
  arguments: ConnectArguments;
}

export interface HeloArguments {
  verb: 'HELO' | 'EHLO';
  host: string;
  /** Extensions that will be announced; `Accept({extensions})` replaces the list. */
  extensions: string[];
}
export interface HeloHook extends BaseContext, Actions<{ extensions?: string[]; host?: string; reason?: Reason }> {
  arguments: HeloArguments;
}

export interface AuthArguments {
  mechanism: 'PLAIN' | 'LOGIN';
  username: string;
  password: string;
}
export interface AuthHook extends BaseContext, Actions<{ username?: string; reason?: Reason }> {
  arguments: AuthArguments;
}

export interface MailFromArguments {
  sender: string;
  address: Address;
  params: Record<string, string>;
}
export interface MailFromHook extends BaseContext, Actions<{ sender?: string; reason?: Reason }> {
  arguments: MailFromArguments;
  transaction: TransactionInfo;
}

export interface RcptToArguments {
  recipient: string;
  address: Address;
  params: Record<string, string>;
  transportid: string;
}
export interface RcptToHook extends BaseContext, Actions<{ recipient?: string; transportid?: string; reason?: Reason }> {
  arguments: RcptToArguments;
  transaction: TransactionInfo;
}

/** Options of `mail.queue()` (halon-core.md §5.2). */
export interface QueueOptions {
  metadata?: Record<string, string>;
  hold?: boolean;
  /** Seconds before the first attempt (the entry starts in DEFER). */
  delay?: number;
  jobid?: string;
  tenantid?: string;
  priority?: 0 | 1;
  quotas?: string[];
  dsn?: DsnParams;
}

export interface HeaderOptions {
  /** Which occurrence (0-based) to act on; default: the first (get/set) or all (delete). */
  index?: number;
  /** Add at the top (default) or the bottom of the header. */
  position?: 'top' | 'bottom';
  /** Keep the value exactly as given (no folding). */
  refold?: boolean;
}

export interface DkimOptions {
  algorithm?: 'rsa-sha256' | 'ed25519-sha256';
  canonicalization_header?: 'relaxed' | 'simple';
  canonicalization_body?: 'relaxed' | 'simple';
  /** Header fields to sign; default: those present of a standard list. */
  headers?: string[];
  /** Signature expiry, seconds from now. */
  expiration?: number;
}

/** The message in the eod phase (Halon's EODMailMessage). Edits apply to what is queued next. */
export interface EODMailMessage {
  /** Queue the message (as modified so far) for one recipient; returns its queue id. */
  queue(sender: string | Address, recipient: string | Address, transportid: string, options?: QueueOptions): QueueId;
  getHeader(name: string, options?: HeaderOptions): string | null;
  getHeaders(name: string): string[];
  /** All header fields in order, names as written. */
  getHeaderNames(): string[];
  addHeader(name: string, value: string, options?: HeaderOptions): void;
  setHeader(name: string, value: string, options?: HeaderOptions): void;
  /** Delete every occurrence (or only `options.index`); returns how many were deleted. */
  delHeader(name: string, options?: HeaderOptions): number;
  /** The body (everything after the blank line), decoded as UTF-8 text. */
  getBody(): string;
  setBody(body: string | Buffer): void;
  /** Size in bytes of the whole message as it would be queued now. */
  getSize(): number;
  /** The whole message as it would be queued now. */
  toBuffer(): Buffer;
  toString(): string;
  /**
   * Add a DKIM-Signature header. `key` is a PEM private key, or the id of a `pki.private[]`
   * entry. Throws on a bad key or algorithm mismatch.
   */
  signDKIM(selector: string, domain: string, key: string, options?: DkimOptions): Promise<void>;
}

export interface EodArguments {
  mail: EODMailMessage;
  /** Metadata given with an HTTP submission (empty for SMTP). */
  metadata: Record<string, string>;
  /** Request facts for HTTP submission; absent for SMTP. */
  http?: { path: string; query: Record<string, string>; headers: Record<string, string> };
}
export interface EodHook extends BaseContext, Actions<{ reason?: Reason }> {
  arguments: EodArguments;
  transaction: Required<Pick<TransactionInfo, 'id' | 'recipients'>> & TransactionInfo;
}

export interface DisconnectArguments {
  close: 'local' | 'remote';
  reply?: { code: number; enhanced?: [number, number, number]; reason: string; state?: string };
  error?: { reason: string; type: 'socket' | 'tls' | 'timeout'; code?: string };
}
export interface DisconnectHook extends BaseContext {
  arguments: DisconnectArguments;
}

export type HookFunction<C> = (ctx: C) => void | HookAction | Promise<void | HookAction>;

export interface HookContextByPhase {
  connect: ConnectHook;
  helo: HeloHook;
  auth: AuthHook;
  mailfrom: MailFromHook;
  rcptto: RcptToHook;
  eod: EodHook;
  disconnect: DisconnectHook;
}

// ---------------------------------------------------------------------------------------------
// Delivery hooks (halon-core.md §5.3, §5.4): `scripting.hooks.predelivery` runs before each
// delivery attempt of a queue entry, `scripting.hooks.postdelivery` after it. Both see the entry
// as `message` and share one writable `context` per attempt.
//
// | hook         | implicit end | error / timeout                              |
// |--------------|--------------|----------------------------------------------|
// | predelivery  | Try()        | Queue({ delay: 300, increment_retry: false }) |
// | postdelivery | Default()    | Default()                                    |

/** Halon's SMTP state names (halon-core.md §5.6) as used in attempt results and `timeout`. */
export type SmtpStateName =
  | 'BANNER' | 'HELO' | 'EHLO' | 'LHLO' | 'STARTTLS' | 'MAIL' | 'RCPT' | 'DATA' | 'EOD' | 'RSET' | 'NOOP' | 'QUIT';

/** The queue entry as delivery hooks see it (`$message`); a copy, changing it changes nothing. */
export interface DeliveryMessage {
  id: QueueId;
  /** Reception time, Unix epoch seconds with fraction. */
  ts: number;
  serverid: string;
  sender: string;
  senderaddress: Address;
  recipient: string;
  recipientaddress: Address;
  transportid: string;
  tenantid: string;
  jobid: string;
  priority: 0 | 1;
  /** Bytes of the message this recipient receives. */
  size: number;
  tags: string[];
  dsn: DsnParams;
}

/** `Try()` options: overrides for this attempt only (halon-core.md §5.3). */
export interface TryOptions {
  /** Next hop instead of the transport's (host name or IP address); "lookup-mx" forces MX look-up. */
  server?: string;
  port?: number;
  /** Source addresses: `addresses[]` ids or IP addresses. */
  sourceip?: string[];
  /** false: use the source addresses in the order given (warm-up), not at random. */
  sourceip_random?: boolean;
  /** HELO/EHLO name (default: the source address's, else the host name). */
  helo?: string;
  /** STARTTLS policy for this attempt. */
  tls?: 'disabled' | 'optional' | 'optional_verify' | 'require' | 'require_verify';
  protocol?: 'smtp' | 'lmtp';
  /** Only these MX hosts (exact names or `*.example.com`). */
  mx_include?: string[];
  /** Never these MX hosts. */
  mx_exclude?: string[];
  /** Envelope sender for this attempt ('' = null sender). */
  sender?: string;
  /** Envelope recipient for this attempt. */
  recipient?: string;
  /** Seconds per SMTP state, and `connect` for the TCP connect. */
  timeout?: Partial<Record<SmtpStateName | 'connect', number>>;
}

/** `Queue()` options in delivery hooks (halon-core.md §5.3). */
export interface DeliveryQueueOptions {
  /** Seconds until the next attempt (default: the transport group's retry interval). */
  delay?: number;
  /** Park the entry in HOLD. */
  hold?: boolean;
  /** For the log and, when the entry later bounces, the DSN. */
  reason?: string;
  /** Count this as a failed attempt (default true). */
  increment_retry?: boolean;
  /** Start counting retries from 0 again. */
  reset_retry?: boolean;
  /** Move the entry to another transport. */
  transportid?: string;
}

/** `Bounce()` / `Delete()` options. */
export interface DeliveryEndOptions {
  /** Bounce: the DSN's diagnostic text; Delete: logged. */
  reason?: string;
}

export interface DeliveryAction {
  action: 'Try' | 'Queue' | 'Bounce' | 'Delete' | 'Default';
  options?: Record<string, unknown>;
}

interface DeliveryBase {
  message: DeliveryMessage;
  /** Writable; what predelivery stores here, postdelivery of the same attempt sees. */
  context: Record<string, unknown>;
  /** Replace the entry's metadata (string values), kept in the spool across retries. */
  SetMetaData(metadata: Record<string, string>): void;
  GetMetaData(): Record<string, string>;
  log(message: string, fields?: Record<string, unknown>): void;
}

export interface PreDeliveryArguments {
  /** Temporary failures so far. */
  retry: number;
  queue: { plugin?: { return?: unknown } };
}

export interface PreDeliveryHook extends DeliveryBase {
  arguments: PreDeliveryArguments;
  Try(options?: TryOptions): DeliveryAction;
  Queue(options?: DeliveryQueueOptions): DeliveryAction;
  Bounce(options?: DeliveryEndOptions): DeliveryAction;
  Delete(options?: DeliveryEndOptions): DeliveryAction;
}

/** An SMTP reply of the attempt (`attempt.result`). */
export interface AttemptReply {
  code: number;
  enhanced: [number, number, number] | null;
  reason: string[];
  state: SmtpStateName;
}

/** A failure without an SMTP reply (`attempt.error`). */
export interface AttemptFailure {
  temporary: boolean;
  message: string;
  type: 'config' | 'dns' | 'network' | 'timeout' | 'tls' | 'protocol' | 'smtp' | 'spool';
  /** For type 'dns'. */
  dns?: 'other' | 'nxdomain' | 'nullmx' | 'ipfamily' | 'nodata' | 'excluded';
}

/** The connection of the attempt (`attempt.connection`). */
export interface AttemptConnection {
  id: string;
  transactions: number;
  localip: string;
  localipid?: string;
  helo: string;
  remoteip: string;
  remoteport: number;
  remotemx: string;
  remotegreet: string[];
  tls: { started: boolean; protocol?: string; cipher?: string; keysize?: number; peercert?: { subject: string; issuer: string; fingerprint: string } };
}

export interface DeliveryAttempt {
  result?: AttemptReply;
  error?: AttemptFailure;
  connection?: AttemptConnection;
  /** Seconds. */
  duration: number;
}

export interface DeliveryDsnInfo {
  action: 'delayed' | 'failed' | 'relayed' | 'delivered';
  /** Enhanced status, e.g. [5, 1, 1]. */
  status: [number, number, number];
  diagnostictype: 'smtp' | 'x-error';
  diagnosticcode: string;
}

export interface PostDeliveryArguments {
  retry: number;
  /** The retry count or maximum age (`retry.count`, `retry.during`) is used up. */
  expired: boolean;
  /** What happens without another action; absent after a successful delivery. */
  action?: 'QUEUE' | 'BOUNCE' | 'DELETE';
  /** The grouping of the destination ('' when none). */
  grouping: string;
  /** Pickup policies applied (filled by the traffic-shaping engine). */
  policy: { tags: string[]; policies: unknown[] };
  /** Absent when predelivery skipped the attempt (Bounce, Delete). */
  attempt?: DeliveryAttempt;
  dsn?: DeliveryDsnInfo;
  queue: { plugin?: { return?: unknown } };
}

export interface PostDeliveryHook extends DeliveryBase {
  arguments: PostDeliveryArguments;
  /** Defer (or hold) instead of the default action. An error after a successful delivery. */
  Queue(options?: DeliveryQueueOptions): DeliveryAction;
  /** Delete and send a DSN. An error after a successful delivery. */
  Bounce(options?: DeliveryEndOptions): DeliveryAction;
  /** Delete without a DSN. An error after a successful delivery. */
  Delete(options?: DeliveryEndOptions): DeliveryAction;
  /** Take `arguments.action` (nothing after a success). */
  Default(): DeliveryAction;
}
