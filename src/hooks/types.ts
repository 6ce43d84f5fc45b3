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
