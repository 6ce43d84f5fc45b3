/**
 * Types of the outbound SMTP/LMTP client (smtp-client.ts is the public façade).
 *
 * Purpose: one place for the values the client hands back, shaped like Halon's post-delivery
 * `$arguments.attempt` (halon-core.md §5.4): `result` is an SMTP reply {code, enhanced, reason[],
 * state}; `error` is a failure without a reply from the peer {temporary, message, type};
 * `connection` describes the session {localip, remoteip, remotemx, remotegreet[], helo, tls{…}}.
 * State names are Halon's (§5.6). Leaf module: imports nothing of the project but the model.
 *
 * Invariants: remote behaviour is never an exception; it is one of these values.
 */
import type { Reply, DsnParams } from '../model/types';

/** Halon's SMTP state names (halon-core.md §5.6) that this client uses. */
export type SmtpState =
  | 'BANNER' | 'HELO' | 'EHLO' | 'LHLO' | 'STARTTLS'
  | 'MAIL' | 'RCPT' | 'DATA' | 'EOD' | 'RSET' | 'NOOP' | 'QUIT';

export const SMTP_STATES: readonly SmtpState[] = ['BANNER', 'HELO', 'EHLO', 'LHLO', 'STARTTLS', 'MAIL', 'RCPT', 'DATA', 'EOD', 'RSET', 'NOOP', 'QUIT'];

/** An SMTP reply and the state it answered: Halon's `attempt.result`. */
export interface AttemptResult extends Reply {
  state: SmtpState;
}

/**
 * Halon's `attempt.error.type` values plus two of ours: 'timeout' (a per-state time-out; Halon
 * folds these into 'network', the caller may too) and 'spool' (the message body could not be
 * read locally).
 */
export type AttemptErrorType = 'config' | 'network' | 'timeout' | 'tls' | 'protocol' | 'smtp' | 'spool';

/** A failure that is not an SMTP reply from the peer: Halon's `attempt.error`. */
export interface AttemptError {
  temporary: boolean;
  /** For the log and the DSN's x-error diagnostic. Holds no secrets. */
  message: string;
  type: AttemptErrorType;
  /** The state the session was in, when there was one. */
  state?: SmtpState;
  /** RFC 3463 status for a failure decided locally (e.g. [5,3,4] for SIZE): the DSN status to use. */
  enhanced?: [number, number, number];
}

/** STARTTLS policy (halon-core.md §4.6 `tls.mode`; DANE modes are the caller's business). */
export type TlsMode = 'disabled' | 'optional' | 'optional_verify' | 'require' | 'require_verify';
export const TLS_MODES: readonly TlsMode[] = ['disabled', 'optional', 'optional_verify', 'require', 'require_verify'];

export interface TlsSettings {
  mode: TlsMode;
  /** Trust anchors for the *_verify modes instead of Node's default CA list (tests, private CAs). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Lowest protocol accepted. Default TLSv1.2 (Halon's default `!SSLv2,!SSLv3,!TLSv1,!TLSv1.1`). */
  minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  /** Highest protocol offered (smtpd-delivery.yaml `tls.protocols`). Default Node's. */
  maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  /** SNI name; default the servername (MX name). false: send none. */
  sni?: string | false;
  /** Names accepted in the certificate instead of the servername (Try `tls_verify_name[]`). */
  verifyNames?: string[];
  /** Client certificate (Try `tls_client_cert`). */
  cert?: string | Buffer;
  key?: string | Buffer;
}

/**
 * Per-state time-outs in seconds (fractions allowed). Defaults from RFC 5321 §4.5.3.2 and
 * Halon's `connect_timeout` (30 s): see DEFAULT_TIMEOUTS in client-connection.ts.
 */
export interface ClientTimeouts {
  /** TCP connect. */
  connect?: number;
  /** Each write of message data waiting for the socket to drain (RFC 5321 §4.5.3.2.5 "data block"). */
  datablock?: number;
  /** Waiting for the reply in each state (Halon `timeout.smtp.<STATE>`). */
  smtp?: Partial<Record<SmtpState, number>>;
}

/** Bounds on replies from the peer (client-reply.ts). */
export interface ReplyLimits {
  /** Longest reply line, octets without CRLF. Default 4096 (RFC 5321 §4.5.3.1.5 says 512; peers exceed it). */
  maxLineLength?: number;
  /** Most lines in one multi-line reply. Default 100. */
  maxLines?: number;
}

export interface ConnectOptions {
  /** Source address to bind (from addresses[] / sourceip); absent = the OS chooses. */
  localAddress?: string;
  /** The addresses[] id of the source (Halon `localipid`), for the record only. */
  localId?: string;
  /** The HELO/EHLO/LHLO name (per source address). */
  helo: string;
  tls?: TlsSettings;
  /** The MX name: SNI and certificate verification. Default: the remote address. */
  servername?: string;
  /** The MX name for the record (`remotemx`). Default: servername. */
  remotemx?: string;
  timeouts?: ClientTimeouts;
  protocol?: 'smtp' | 'lmtp';
  limits?: ReplyLimits;
  /** Sees every command sent ('>') and reply received ('<'), for debug logs; message data is not passed. */
  trace?: (direction: '<' | '>', line: string) => void;
}

/** What the peer's EHLO/LHLO reply announced (client-codec.ts parseCapabilities). */
export interface Capabilities {
  esmtp: boolean;
  pipelining: boolean;
  /** SIZE announced; `sizeLimit` 0 = no fixed limit (RFC 1870 §4). */
  size: boolean;
  sizeLimit: number;
  eightbitmime: boolean;
  smtputf8: boolean;
  dsn: boolean;
  starttls: boolean;
  chunking: boolean;
  enhancedstatuscodes: boolean;
  /** Every keyword, upper-case, for the log. */
  keywords: string[];
}

export interface PeerCertificate {
  subject: string;
  issuer: string;
  /** SHA-256 of the DER certificate, upper-case hex with colons. */
  fingerprint: string;
  validTo?: string;
}

export interface TlsInfo {
  started: boolean;
  protocol?: string;
  cipher?: string;
  keysize?: number;
  peercert?: PeerCertificate;
  /** Chain and name checked and good. */
  verified?: boolean;
  /** 'optional' mode fell back to plaintext after a failed handshake (RFC 3207 §4.1). */
  fallback?: boolean;
}

/** Halon's `attempt.connection` (halon-core.md §5.4). */
export interface ConnectionInfo {
  id: string;
  transactions: number;
  localip: string;
  localport: number;
  localipid?: string;
  remoteip: string;
  remoteport: number;
  remotemx: string;
  /** Banner lines as received (text after the code). */
  remotegreet: string[];
  helo: string;
  protocol: 'smtp' | 'lmtp';
  tls: TlsInfo;
}

export interface TransactionRecipient {
  address: string;
  /** DSN parameters relayed when the peer offers DSN (RFC 3461 §4.1, §4.2). */
  dsn?: DsnParams;
}

export interface Transaction {
  /** Envelope sender; '' is the null reverse-path. */
  sender: string;
  recipients: TransactionRecipient[];
  /** Size of the body in octets (SIZE=, RFC 1870). */
  size: number;
  /** The message, CRLF line endings, not dot-stuffed; or a loader called at most once. */
  body: Buffer | (() => Promise<Buffer>);
  envid?: string;
  ret?: 'FULL' | 'HDRS';
  /** Needs SMTPUTF8 (non-ASCII address or header, RFC 6531). */
  smtputf8?: boolean;
  /** Holds 8-bit octets: BODY=8BITMIME when offered (RFC 6152). */
  eightbit?: boolean;
}

export type RecipientOutcomeKind = 'delivered' | 'temporary' | 'permanent';

/** The final word on one recipient in one transaction: a reply, or an error when there was none. */
export interface RecipientOutcome {
  address: string;
  outcome: RecipientOutcomeKind;
  result?: AttemptResult;
  error?: AttemptError;
}

export interface TransactionResult {
  /** Same order as the transaction's recipients. */
  recipients: RecipientOutcome[];
  /** DSN parameters were passed on (else a NOTIFY=SUCCESS recipient is "relayed", RFC 3461 §6.2.1). */
  dsnRelayed: boolean;
  /** A failure of the transaction as a whole that was not a reply (also copied into recipients). */
  error?: AttemptError;
}

/** The outcome of a connect: a ready session, or why not. */
export type ConnectOutcome<C> =
  | { ok: true; connection: C }
  | { ok: false; error: AttemptError; result?: AttemptResult; info?: ConnectionInfo };
