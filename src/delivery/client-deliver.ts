/**
 * One delivery attempt over the next hops: `deliver(hops, tx, opts)`.
 *
 * Inputs: hops from nexthop.ts (in the order to try, each with addresses in the order to try),
 * one transaction (recipients sharing that destination), and options: source addresses with
 * their HELO names (addresses[] / transport sourceip), TLS policy, time-outs, protocol, a pool.
 * Outputs: `{ ok: true, transaction, connection, hop }` from the first hop that ran a
 * transaction (whatever its per-recipient outcomes), or `{ ok: false, error, result? }` when no
 * hop did; `failures` lists every hop that was skipped and why (for the log).
 *
 * Rules:
 * - Any failure before a transaction could start moves on to the next address, then the next
 *   MX (RFC 5321 §5.1 "try the next"): connection refused or timed out, TLS required but not
 *   available or not verified, a 4yz or 5yz banner, a refused EHLO/HELO/LHLO. A 5yz banner
 *   moves on too (one host's refusal says nothing about its peers; Postfix's
 *   smtp_skip_5xx_greeting does the same).
 * - The first hop that gives a transaction result ends the attempt; replies to MAIL/RCPT/DATA
 *   are the destination's answer, not a reason to try another host.
 * - When every hop failed: the last failure is returned, temporary unless every failure was
 *   permanent (e.g. every MX greeted with 554: RFC 5321 §3.1 "the client should not retry").
 * - Source address: the sources of the destination's IP family; random among them (Halon's
 *   default) or the first (`sourceRandom: false`, Try `sourceip_random`); the HELO name is the
 *   source's, else `helo`, else the host name. Sources given but none of the family: the address
 *   is skipped (a 'config' failure).
 * - Pool: an idle session with the same key is reused; a reused session that fails at once
 *   (closed by the peer, 421 to MAIL) is replaced by a fresh connection to the same address,
 *   because an idle session may have been dropped by the peer in between. After the
 *   transaction the session goes back to the pool (or gets QUIT).
 * - At most `maxAddresses` addresses are tried (default 10) so one attempt is bounded.
 * - The body loader is called at most once per attempt, however many hops are tried.
 * Errors: none thrown.
 */
import net from 'node:net';
import os from 'node:os';
import { SmtpConnection, poolKey } from './client-connection';
import type { ConnectionPool, PoolPolicy } from './client-pool';
import type {
  AttemptError, AttemptResult, ClientTimeouts, ConnectOptions, ConnectionInfo, ReplyLimits, TlsSettings, Transaction, TransactionResult,
} from './client-types';
import type { NextHop } from './nexthop';
import { merged } from '../util/objects';

export interface SourceAddress {
  /** addresses[] id (Halon `localipid`). */
  id?: string;
  address: string;
  helo?: string;
}

export interface DeliverOptions {
  /** HELO name when the source has none. Default: os.hostname(). */
  helo?: string;
  sources?: SourceAddress[];
  /** false: always the first source of the family. Default true (random). */
  sourceRandom?: boolean;
  random?: () => number;
  tls?: TlsSettings;
  timeouts?: ClientTimeouts;
  protocol?: 'smtp' | 'lmtp';
  limits?: ReplyLimits;
  pool?: ConnectionPool;
  poolPolicy?: Partial<PoolPolicy>;
  maxAddresses?: number;
  trace?: ConnectOptions['trace'];
}

export interface HopRef {
  mx: string;
  address: string;
  port: number;
}

export interface HopFailure extends HopRef {
  error: AttemptError;
  result?: AttemptResult;
  connection?: ConnectionInfo;
}

export type DeliverResult =
  | { ok: true; transaction: TransactionResult; connection: ConnectionInfo; hop: HopRef; reused: boolean; failures: HopFailure[] }
  | { ok: false; error: AttemptError; result?: AttemptResult; connection?: ConnectionInfo; failures: HopFailure[] };

const DEFAULT_MAX_ADDRESSES = 10;

export async function deliver(hops: readonly NextHop[], tx: Transaction, opts: DeliverOptions = {}): Promise<DeliverResult> {
  const once = merged(tx, { body: memo(tx.body) });
  const failures: HopFailure[] = [];
  const max = opts.maxAddresses ?? DEFAULT_MAX_ADDRESSES;
  let tried = 0;
  for (const hop of hops) {
    for (const address of hop.addresses) {
      if (tried++ >= max) return failed(failures);
      const ref: HopRef = { mx: hop.mx, address, port: hop.port };
      const outcome = await attempt(hop, ref, once, opts);
      if ('failure' in outcome) failures.push(outcome.failure);
      else return { ok: true, ...outcome, hop: ref, failures };
    }
  }
  return failed(failures);
}

type Attempted =
  | { transaction: TransactionResult; connection: ConnectionInfo; reused: boolean }
  | { failure: HopFailure };

async function attempt(hop: NextHop, ref: HopRef, tx: Transaction, opts: DeliverOptions): Promise<Attempted> {
  const connectOpts = connectOptions(hop, ref.address, opts);
  if ('error' in connectOpts) return { failure: { ...ref, error: connectOpts.error } };
  const pooled = opts.pool?.acquire(keyFor(ref, connectOpts, opts));
  if (pooled) {
    const transaction = await pooled.send(tx);
    if (!stale(transaction)) return finish(pooled, transaction, true, opts);
    pooled.close();
  }
  const opened = await SmtpConnection.connect(ref.address, ref.port, connectOpts);
  if (!opened.ok) {
    return { failure: { ...ref, error: opened.error, ...(opened.result ? { result: opened.result } : {}), ...(opened.info ? { connection: opened.info } : {}) } };
  }
  const transaction = await opened.connection.send(tx);
  return finish(opened.connection, transaction, false, opts);
}

async function finish(conn: SmtpConnection, transaction: TransactionResult, reused: boolean, opts: DeliverOptions): Promise<Attempted> {
  const connection = conn.info;
  if (opts.pool && conn.usable) opts.pool.release(conn, opts.poolPolicy);
  else await conn.quit();
  return { transaction, connection, reused };
}

/** A reused idle session that the peer had already given up on: nothing was decided. */
function stale(t: TransactionResult): boolean {
  return t.recipients.every((r) =>
    (r.error !== undefined && (r.error.type === 'network' || r.error.type === 'protocol') && r.error.state === 'MAIL')
    || (r.result !== undefined && r.result.code === 421 && r.result.state === 'MAIL'));
}

function connectOptions(hop: NextHop, address: string, opts: DeliverOptions): ConnectOptions | { error: AttemptError } {
  const source = pickSource(address, opts);
  if (source && 'error' in source) return source;
  const name = hop.mx || hop.host;
  return {
    helo: source?.helo ?? opts.helo ?? os.hostname(),
    ...(source ? { localAddress: source.address } : {}),
    ...(source?.id !== undefined ? { localId: source.id } : {}),
    ...(name ? { servername: name } : {}),
    remotemx: hop.mx,
    ...(opts.tls ? { tls: opts.tls } : {}),
    ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
    protocol: opts.protocol ?? 'smtp',
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.trace ? { trace: opts.trace } : {}),
  };
}

function pickSource(address: string, opts: DeliverOptions): SourceAddress | { error: AttemptError } | undefined {
  const all = opts.sources ?? [];
  if (all.length === 0) return undefined;
  const family = net.isIP(address);
  const fit = all.filter((s) => net.isIP(s.address) === family);
  if (fit.length === 0) {
    return { error: { temporary: true, type: 'config', message: `no source address of the family of ${address}` } };
  }
  if (opts.sourceRandom === false) return fit[0];
  const r = (opts.random ?? Math.random)();
  return fit[Math.min(fit.length - 1, Math.floor(r * fit.length))];
}

function keyFor(ref: HopRef, c: ConnectOptions, opts: DeliverOptions): string {
  return poolKey({ localip: c.localAddress ?? '', remoteip: ref.address, port: ref.port, tlsMode: opts.tls?.mode ?? 'disabled', helo: c.helo, protocol: c.protocol ?? 'smtp' });
}

function failed(failures: HopFailure[]): DeliverResult {
  const last = failures[failures.length - 1];
  if (!last) return { ok: false, error: { temporary: true, type: 'config', message: 'no next hop to try' }, failures };
  const temporary = failures.some((f) => f.error.temporary);
  return {
    ok: false,
    error: { ...last.error, temporary },
    ...(last.result ? { result: last.result } : {}),
    ...(last.connection ? { connection: last.connection } : {}),
    failures,
  };
}

function memo(body: Transaction['body']): Transaction['body'] {
  if (Buffer.isBuffer(body)) return body;
  let loaded: Promise<Buffer> | undefined;
  return () => (loaded ??= body());
}
