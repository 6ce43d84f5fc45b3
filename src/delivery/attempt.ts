/**
 * One delivery attempt, end to end below the queue: next-hop resolution (nexthop.ts) and the
 * SMTP/LMTP client (smtp-client.ts), behind one small seam so the queue manager never touches
 * the client's types directly.
 *
 * Inputs: an `AttemptPlan` — where to (the recipient domain's MX, or a fixed server), on which
 * port, with which next-hop options (seed/retry for the shuffle, IPv6, mx_include/mx_exclude),
 * one SMTP transaction (sender, recipients sharing that destination, the body), and the
 * client's options (HELO, source addresses, TLS mode, time-outs, protocol).
 * Output: an `AttemptReport` — one outcome per recipient (delivered / temporary / permanent,
 * with the SMTP reply or the error that decided it), the connection used, the MX and address
 * reached, and the duration. DNS failures come back as errors of type 'dns' with Halon's
 * `attempt.error.dns` value (halon-core.md §5.4).
 * Invariants: never throws for anything the network or DNS does; the body is passed in (the
 * caller read it from the spool). Connections are pooled per `DeliveryAgent` (one per daemon).
 * Errors: a bad mx_include/mx_exclude pattern is a 'config' error of the attempt, temporary.
 */
import { resolveNextHops, resolveServer, type NextHopResolver, type NextHopOptions, type NextHop } from './nexthop';
import {
  deliver, ConnectionPool,
  type AttemptError, type PoolCounters, type AttemptResult, type ClientTimeouts, type ConnectionInfo, type DeliverOptions, type HopFailure,
  type SmtpState, type SourceAddress, type TlsMode, type Transaction,
} from './smtp-client';
import type { DsnParams } from '../model/types';
import { HopWindow } from './hop-window';
import { merged } from '../util/objects';
import { isAscii as isAsciiBuffer } from 'node:buffer';

/** `attempt.error` with the DNS case added (the client never fails on DNS; we do first). */
export type AttemptFailure =
  | AttemptError
  | { temporary: boolean; message: string; type: 'dns'; dns: 'other' | 'nxdomain' | 'nullmx' | 'ipfamily' | 'nodata' | 'excluded' };

export type RecipientOutcomeKind = 'delivered' | 'temporary' | 'permanent';

export interface RecipientReport {
  outcome: RecipientOutcomeKind;
  result?: AttemptResult;
  error?: AttemptFailure;
}

export interface AttemptReport {
  /** Same order as the plan's recipients. */
  recipients: RecipientReport[];
  connection?: ConnectionInfo;
  /** MX name ('' for a fixed IP or the implicit MX) and address of the host that answered. */
  remotemx: string;
  remoteip: string;
  /** Seconds from start to outcome, DNS included. */
  duration: number;
  /** Hosts that were tried and skipped before the one that answered (for the log). */
  skipped: Array<{ mx: string; address: string; port: number; message: string }>;
}

export type Destination = { kind: 'mx'; domain: string } | { kind: 'server'; server: string };

export interface AttemptPlan {
  destination: Destination;
  port: number;
  nexthop: Pick<NextHopOptions, 'seed' | 'retry' | 'ipv6' | 'mxInclude' | 'mxExclude'>;
  sender: string;
  recipients: Array<{ address: string; dsn?: DsnParams }>;
  body: Buffer;
  envid?: string;
  ret?: 'FULL' | 'HDRS';
  helo: string;
  sources: SourceAddress[];
  sourceRandom: boolean;
  tls: TlsMode;
  /** Seconds per state, and `connect`. */
  timeouts?: Partial<Record<SmtpState | 'connect', number>>;
  protocol: 'smtp' | 'lmtp';
  /** TLS protocol range (smtpd-delivery.yaml `tls.protocols`). */
  tlsVersions?: { min?: TlsVersionName; max?: TlsVersionName };
  /** Connection reuse for this attempt (smtpd-delivery.yaml `pooling`); enabled unless false. */
  pooling?: { enabled?: boolean; timeout?: number; transactions?: number; evictable?: boolean };
  /**
   * The hop pickup counted this attempt against (traffic shaping keyed on remotemx/remoteip):
   * tried first when it is among the next hops.
   */
  prefer?: { remotemx: string; remoteip: string };
}

export type TlsVersionName = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

export interface AgentOptions {
  /** Most idle connections kept for reuse (`queues.pooling.size`); 0 switches pooling off. */
  poolSize: number;
  /** Idle seconds before a pooled connection is closed. */
  poolTimeout?: number;
}

/**
 * A transport's TLS mode as the client understands it. DANE (RFC 7672) is not implemented:
 * `dane` behaves as opportunistic TLS, the DANE-requiring modes as `require_verify`, so no
 * configuration ever ends up with less protection than it asked for.
 */
export function clientTlsMode(mode: string): TlsMode {
  switch (mode) {
    case 'disabled':
    case 'optional':
    case 'optional_verify':
    case 'require':
    case 'require_verify':
      return mode;
    case 'dane':
      return 'optional';
    case 'dane_require':
    case 'dane_fallback_require_verify':
      return 'require_verify';
    default:
      return 'optional';
  }
}

export class DeliveryAgent {
  private readonly pool: ConnectionPool | undefined;
  private readonly window = new HopWindow();

  constructor(opts: AgentOptions) {
    this.pool = opts.poolSize > 0 ? new ConnectionPool({ maxsize: opts.poolSize, ...(opts.poolTimeout ? { timeout: opts.poolTimeout } : {}) }) : undefined;
  }

  async attempt(plan: AttemptPlan, resolver: NextHopResolver): Promise<AttemptReport> {
    const started = performance.now();
    const hops = await nextHopsOf(plan, resolver);
    if ('error' in hops) return everyone(plan, { error: hops.error }, (performance.now() - started) / 1000);
    return this.window.run(hops.hops, () => this.deliverTo(hops.hops, plan, started));
  }

  /**
   * The SMTP part of an attempt, over next hops already resolved: what the delivery thread runs
   * (worker-agent.ts). `started` is when the attempt began, for its duration.
   */
  async deliverTo(hops: NextHop[], plan: AttemptPlan, started = performance.now()): Promise<AttemptReport> {
    const seconds = () => (performance.now() - started) / 1000;
    const result = await deliver(hops, this.transaction(plan), this.options(plan));
    const skipped = result.failures.map(describeFailure);
    if (!result.ok) {
      const report = everyone(plan, { error: result.error, ...(result.result ? { result: result.result } : {}) }, seconds());
      return merged(report, { remotemx: result.connection?.remotemx ?? '', remoteip: result.connection?.remoteip ?? '', skipped, ...(result.connection ? { connection: result.connection } : {}) });
    }
    const recipients = result.transaction.recipients.map((r): RecipientReport => ({
      outcome: r.outcome,
      ...(r.result ? { result: r.result } : {}),
      ...(r.error ? { error: r.error } : {}),
    }));
    return { recipients, connection: result.connection, remotemx: result.hop.mx, remoteip: result.hop.address, duration: seconds(), skipped };
  }

  /** The connection pool's figures (process-stats `queue.connections.pooling`); none when pooling is off. */
  poolStats(): PoolCounters | undefined {
    return this.pool?.stats();
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }

  private transaction(plan: AttemptPlan): Transaction {
    const tx: Transaction = {
      sender: plan.sender,
      recipients: plan.recipients.map((r) => ({ address: r.address, ...(r.dsn ? { dsn: r.dsn } : {}) })),
      size: plan.body.length,
      body: plan.body,
      // RFC 6531: non-ASCII envelope addresses need SMTPUTF8; our server only takes them with it.
      smtputf8: !isAscii(plan.sender) || plan.recipients.some((r) => !isAscii(r.address)),
      eightbit: has8bit(plan.body),
    };
    if (plan.envid !== undefined) tx.envid = plan.envid;
    if (plan.ret !== undefined) tx.ret = plan.ret;
    return tx;
  }

  private options(plan: AttemptPlan): DeliverOptions {
    const opts: DeliverOptions = {
      helo: plan.helo,
      sources: plan.sources,
      sourceRandom: plan.sourceRandom,
      tls: { mode: plan.tls, ...(plan.tlsVersions?.min ? { minVersion: plan.tlsVersions.min } : {}), ...(plan.tlsVersions?.max ? { maxVersion: plan.tlsVersions.max } : {}) },
      protocol: plan.protocol,
    };
    const p = plan.pooling;
    if (this.pool && p?.enabled !== false) {
      opts.pool = this.pool;
      if (p && (p.timeout !== undefined || p.transactions !== undefined || p.evictable !== undefined)) {
        const policy: NonNullable<DeliverOptions['poolPolicy']> = {};
        if (p.timeout !== undefined) policy.timeout = p.timeout;
        if (p.transactions !== undefined) policy.transactions = p.transactions;
        if (p.evictable !== undefined) policy.evictable = p.evictable;
        opts.poolPolicy = policy;
      }
    }
    const timeouts = clientTimeouts(plan.timeouts);
    if (timeouts) opts.timeouts = timeouts;
    return opts;
  }
}

/** Where an attempt goes: its next hops in the order to try them, or why there are none. */
export async function nextHopsOf(plan: AttemptPlan, resolver: NextHopResolver): Promise<{ hops: NextHop[] } | { error: AttemptFailure }> {
  let r;
  try {
    const opts: NextHopOptions = merged(plan.nexthop, { port: plan.port });
    r = plan.destination.kind === 'mx'
      ? await resolveNextHops(plan.destination.domain, resolver, opts)
      : await resolveServer(plan.destination.server, plan.port, resolver, opts);
  } catch (err) {
    // Only a bad mx_include/mx_exclude pattern throws (nexthop.ts): the operator's to fix.
    return { error: { temporary: true, type: 'config', message: (err as Error).message } };
  }
  if ('error' in r) return { error: { temporary: r.error.temporary, type: 'dns', dns: r.error.dns, message: r.error.message } };
  return { hops: plan.prefer ? preferHop(r.hops, plan.prefer) : r.hops };
}

/** The preferred hop first, and within it the preferred address first; the rest keep their order. */
function preferHop(hops: NextHop[], prefer: { remotemx: string; remoteip: string }): NextHop[] {
  const at = hops.findIndex((h) => (h.mx || h.host) === prefer.remotemx && h.addresses.includes(prefer.remoteip));
  if (at < 0) return hops;
  const hop = hops[at];
  const first: NextHop = merged(hop, { addresses: [prefer.remoteip, ...hop.addresses.filter((a) => a !== prefer.remoteip)] });
  return [first, ...hops.slice(0, at), ...hops.slice(at + 1)];
}

function clientTimeouts(t: AttemptPlan['timeouts']): ClientTimeouts | undefined {
  if (!t) return undefined;
  const out: ClientTimeouts = {};
  const smtp: Partial<Record<SmtpState, number>> = {};
  for (const [k, v] of Object.entries(t)) {
    if (v === undefined) continue;
    if (k === 'connect') out.connect = v;
    else smtp[k as SmtpState] = v;
  }
  if (Object.keys(smtp).length > 0) out.smtp = smtp;
  return out;
}

/** The same outcome for every recipient (the attempt failed before any recipient was answered). */
export function everyone(plan: AttemptPlan, facts: { error: AttemptFailure; result?: AttemptResult }, duration: number): AttemptReport {
  const outcome: RecipientOutcomeKind = facts.error.temporary ? 'temporary' : 'permanent';
  return {
    recipients: plan.recipients.map(() => ({ outcome, ...facts })),
    remotemx: '',
    remoteip: '',
    duration,
    skipped: [],
  };
}

function describeFailure(f: HopFailure): AttemptReport['skipped'][number] {
  const reply = f.result ? ` (${f.result.code} ${f.result.reason.join(' ')})` : '';
  return { mx: f.mx, address: f.address, port: f.port, message: `${f.error.type}: ${f.error.message}${reply}` };
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

/** Any octet above 127 (native and vectorised: every attempt asks, over the whole body). */
function has8bit(b: Buffer): boolean {
  return !isAsciiBuffer(b);
}
