/**
 * Normalised, frozen configuration objects as the rest of the daemon sees them.
 *
 * The loader (`load.ts`) reads the YAML files, validates them against the JSON Schemas in
 * `schemas/`, converts the shared syntaxes (durations → seconds, sizes → bytes, rates →
 * {messages, seconds}), resolves relative paths against the config file's folder, fills
 * defaults and deep-freezes the result. Nothing downstream ever reads YAML or mutates these.
 */

export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** `{path}` or `{data}` as Halon writes file references; the loader reads paths into `data`. */
export interface FileData {
  /** Absolute path the data came from, when it came from a file. */
  path?: string;
  data: string;
}

export interface PkiEntry {
  id: string;
  privatekey?: FileData;
  certificate?: FileData;
}

export interface ListenerConfig {
  /** Optional listener id; `servers[].tls.implicit` lists the ids that speak TLS from the start. */
  id?: string;
  port: number;
  /** Bind address; undefined = all addresses. */
  address?: string;
  backlog?: number;
}

export interface StartupServer {
  id: string;
  type: 'smtp' | 'http' | 'https';
  listeners: ListenerConfig[];
  /** Networks/addresses allowed to send a PROXY (v1 or v2) header; raw strings as in the file. */
  proxyprotocol: string[];
}

export interface StartupConfig {
  /** Absolute path of smtpd.yaml. */
  file: string;
  version?: string;
  servers: StartupServer[];
  environment: {
    /** Absolute paths. */
    appconf: string;
    policyconf: string;
    suspendconf: string;
    deliveryconf: string;
    controlsocket: {
      path: string;
      port?: number;
      address?: string;
      group?: string;
      chmod?: string;
      tls?: { cert?: string; clientcerts?: FileData[] };
    };
    uuid: { version: 1 | 4 };
    privdrop?: { user?: string; group?: string };
    umask?: string;
    rlimit?: { nofile?: number };
    /** Hostname used in the banner, EHLO reply, Received headers; default os.hostname(). */
    hostname: string;
  };
  spool: {
    path: string;
    fsync: boolean;
    minfree: { bytes: number; inodes: number };
    corrupt: 'unlink' | 'rename' | 'ignore';
  };
  /** How deliveries run: on a thread of their own (event 1) at a lower priority (nice). */
  queues: { threads: { event: 0 | 1; nice: number } };
  monitor?: {
    listener: { port: number; address?: string };
    type: 'http' | 'https';
  };
  pki: { private: PkiEntry[] };
}

/** SMTP phases that can carry a hook. */
export type SmtpPhase = 'connect' | 'helo' | 'auth' | 'mailfrom' | 'rcptto' | 'eod' | 'disconnect';
export const SMTP_PHASES: readonly SmtpPhase[] = ['connect', 'helo', 'auth', 'mailfrom', 'rcptto', 'eod', 'disconnect'];

export interface RunningServer {
  id: string;
  /** Default transport id given to accepted recipients. */
  transport: string;
  /** Hook id per phase (ids of `scripting.hooks.<phase>[]`). */
  hooks: Partial<Record<SmtpPhase, string>>;
  limits: {
    /** Maximum concurrent connections to this server (`concurrency.total`). */
    connections: number;
    /** Maximum transactions (MAIL FROM) per connection (`phases.mailfrom.maxmessages`). */
    messages: number;
    /** Maximum recipients per transaction (`phases.rcptto.maxrecipients`). */
    recipients: number;
    /** Maximum message size in bytes (`phases.data.maxsize`), announced with SIZE. */
    maxsize: number;
    /** Maximum Received headers before a message is refused as a loop (`phases.data.maxhops`). */
    maxhops: number;
    /** Maximum command line length in bytes including CRLF (RFC 5321 §4.5.3.1.4: 512). */
    linelength: number;
    /** Maximum bad commands before the connection is closed. */
    errors: number;
  };
  /** Seconds. `idle` is the wait for a command, `data` the wait for each DATA/BDAT chunk. */
  timeout: { idle: number; data: number };
  tls: {
    /** pki ids of certificates to offer; the first is the default (SNI picks others by name). */
    certs: string[];
    /** Listener ids that use implicit TLS (e.g. port 465). */
    implicit: string[];
    /** Offer STARTTLS when certs exist (default true). */
    starttls: boolean;
    /** Minimum protocol version accepted. */
    minversion: TlsVersion;
  };
  auth: {
    /** Mechanisms offered when an auth hook exists. */
    mechanisms: Array<'PLAIN' | 'LOGIN'>;
    /** Offer and allow AUTH only after TLS (default true). */
    requiretls: boolean;
  };
  /** ESMTP extensions to announce (all true by default). */
  extensions: {
    pipelining: boolean;
    size: boolean;
    '8bitmime': boolean;
    smtputf8: boolean;
    enhancedstatuscodes: boolean;
    chunking: boolean;
    dsn: boolean;
  };
  /** API keys for HTTP submission servers. */
  apikeys: string[];
}

export interface HookRef {
  id: string;
  /** Absolute path of the .ts/.js module. */
  path: string;
}

export interface RetryInterval {
  interval: number;
  notify: boolean;
}

export interface TransportConfig {
  id: string;
  /** The transport group it inherits from. */
  group: string;
  connection: { server?: string; port: number; sourceip?: { ipv6?: boolean; ids?: string[] } };
  session: { tls: { mode: string }; protocol: 'smtp' | 'lmtp' };
}

export interface TransportGroupConfig {
  id: string;
  retry: { count: number; intervals: RetryInterval[]; during: number };
  dsn?: { transport: string };
  transports: TransportConfig[];
}

export interface QueuesConfig {
  grouping: {
    default?: 'recipientdomain' | 'remotemx';
    groupings: Array<{ id: string; remotemx?: string | string[]; recipientdomain?: string | string[]; remoteip?: string | string[] }>;
  };
  pooling: { size: number };
  concurrency: { total: number };
}

export interface RunningConfig {
  /** Absolute path of smtpd-app.yaml. */
  file: string;
  version?: string;
  servers: RunningServer[];
  transportgroups: TransportGroupConfig[];
  addresses: Array<{ id: string; address: string; helo?: string }>;
  queues: QueuesConfig;
  resolver: { cache: { size: number }; nameservers?: string[] };
  scripting: {
    hooks: Partial<Record<SmtpPhase, HookRef[]>> & { predelivery?: string; postdelivery?: string };
    /** Seconds a hook may run before its phase answers with a temporary failure. */
    timeout: number;
  };
  monitor: { apikeys: string[]; healthy: { maxmessages: { upper: number; lower: number } } };
  pki: { private: PkiEntry[] };
}

export interface ConfigError {
  /** The file the error is in (as given, usually absolute). */
  file: string;
  /** Dotted key path, e.g. `servers.0.phases.data.maxsize`; '' for the whole file. */
  path: string;
  reason: string;
}

/** Thrown by the loaders with every error found, never just the first. */
export class ConfigInvalidError extends Error {
  constructor(readonly errors: ConfigError[]) {
    super(errors.map((e) => `${e.file}: ${e.path || '(file)'}: ${e.reason}`).join('\n'));
    this.name = 'ConfigInvalidError';
  }
}
