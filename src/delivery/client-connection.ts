/**
 * One outbound SMTP or LMTP session: `SmtpConnection`.
 *
 * Inputs: a remote address and port and ConnectOptions (source address, HELO name, TLS policy,
 * MX name for SNI/verification, per-state time-outs, protocol); then transactions.
 * Outputs: `connect()` → a ready session (banner read, EHLO/LHLO done, STARTTLS per policy) or
 * an AttemptError (+ the reply when the peer gave one); `send(tx)` → a TransactionResult with
 * the final word on every recipient; `info` → Halon's `attempt.connection`.
 *
 * Protocol (RFC 5321 unless said otherwise):
 * - Greeting: any 2yz banner is accepted (§4.2.1); otherwise the peer refused us (§3.1).
 * - EHLO, and HELO after a 5yz EHLO (§3.2; old servers); LMTP uses LHLO only (RFC 2033 §4.1).
 * - STARTTLS (RFC 3207) per `tls.mode`:
 *     disabled        never;
 *     optional        when offered, no verification; a refused STARTTLS continues in plaintext;
 *                     a failed handshake reconnects once in plaintext (the old session is
 *                     unusable after a failed handshake, RFC 3207 §4.1);
 *     optional_verify when offered, and then the certificate must verify (chain + MX name), else
 *                     the attempt fails with type 'tls'; not offered → plaintext;
 *     require         must be offered and succeed (no verification), else 'tls' failure;
 *     require_verify  must be offered, succeed and verify.
 *   After TLS the client forgets what it knew and says EHLO again (RFC 3207 §4.2).
 * - MAIL parameters: SIZE= when offered (RFC 1870) and a local 5.3.4 refusal when the message is
 *   bigger than the announced limit; BODY=8BITMIME when the message is 8-bit and it is offered
 *   (RFC 6152); SMTPUTF8 when needed and offered, a local 5.6.7 refusal when needed and not
 *   offered (RFC 6531 §3.2: no downgrade is done); RET/ENVID and NOTIFY/ORCPT only when DSN is
 *   offered (RFC 3461 §4, §5.2).
 * - With PIPELINING (RFC 2920 §3.1) MAIL, every RCPT and DATA go in one write and the replies
 *   are read in order; without it, lock-step.
 * - DATA content dot-stuffed (§4.5.2) and written with back-pressure; BDAT is not used.
 * - LMTP: one reply per accepted recipient after the data, in RCPT order (RFC 2033 §4.2).
 * - A transaction that ends before the end-of-data reply is cleared with RSET (§4.1.1.5) so the
 *   session can be reused; a failed RSET makes the session unusable.
 * - 421 at any point (§3.8): the session is unusable and every undecided recipient gets the 421.
 * Time-outs per state, defaults from §4.5.3.2 (see DEFAULT_TIMEOUTS), overridable by state name.
 *
 * Invariants: remote behaviour never throws; one transaction at a time; commands contain no
 * CR/LF from the input (client-codec.ts). Errors: AttemptError values (client-types.ts).
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { ReplyStream, type ReadResult } from './client-io';
import { checkAddress, dotStuff, isAscii, mailCommand, NO_CAPABILITIES, parseCapabilities, rcptCommand } from './client-codec';
import { formatReply } from './client-reply';
import {
  TLS_MODES,
  type AttemptError, type AttemptResult, type Capabilities, type ClientTimeouts, type ConnectOptions, type ConnectOutcome,
  type ConnectionInfo, type PeerCertificate, type RecipientOutcome, type SmtpState, type TlsInfo, type TlsMode,
  type Transaction, type TransactionResult,
} from './client-types';
import type { Reply } from '../model/types';
import { merged } from '../util/objects';

/** RFC 5321 §4.5.3.2 time-outs (seconds); connect is Halon's `connect_timeout` default. */
export const DEFAULT_TIMEOUTS: Required<Omit<ClientTimeouts, 'smtp'>> & { smtp: Record<SmtpState, number> } = Object.freeze({
  connect: 30,
  datablock: 180,
  smtp: Object.freeze({
    BANNER: 300, HELO: 300, EHLO: 300, LHLO: 300, STARTTLS: 300,
    MAIL: 300, RCPT: 300, DATA: 120, EOD: 600, RSET: 300, NOOP: 300, QUIT: 300,
  }),
});

/** How long a QUIT on a failure path may wait for its reply: the outcome is known already. */
const FAILURE_QUIT_SECONDS = 5;

/** Pool key: connections are interchangeable only when all of these match. */
export interface PoolKeyParts {
  localip: string;
  remoteip: string;
  port: number;
  tlsMode: string;
  helo: string;
  protocol: 'smtp' | 'lmtp';
}

export function poolKey(p: PoolKeyParts): string {
  return JSON.stringify([p.localip, p.remoteip, p.port, p.tlsMode, p.helo, p.protocol]);
}

type Step = { ok: true } | { ok: false; error: AttemptError; result?: AttemptResult; retryPlain?: boolean };

export class SmtpConnection {
  readonly id = randomUUID();
  /** Pool key (see poolKey) from what was asked for, not what was negotiated. */
  readonly key: string;
  private readonly io: ReplyStream;
  private readonly opts: ConnectOptions;
  private readonly timeouts: { connect: number; datablock: number; smtp: Record<SmtpState, number> };
  private readonly facts: ConnectionInfo;
  private caps: Capabilities = NO_CAPABILITIES;
  private broken = false;
  private busy = false;
  private ended = false;
  private count = 0;

  private constructor(io: ReplyStream, facts: ConnectionInfo, opts: ConnectOptions, mode: TlsMode) {
    this.io = io;
    this.opts = opts;
    this.facts = facts;
    this.timeouts = settleTimeouts(opts.timeouts);
    this.key = poolKey({ localip: opts.localAddress ?? '', remoteip: facts.remoteip, port: facts.remoteport, tlsMode: mode, helo: opts.helo, protocol: facts.protocol });
  }

  /**
   * Open a session: TCP connect, banner, EHLO/LHLO, STARTTLS per `opts.tls.mode`. For 'optional'
   * a failed handshake is retried once on a new connection without TLS.
   */
  static async connect(address: string, port: number, opts: ConnectOptions): Promise<ConnectOutcome<SmtpConnection>> {
    const mode = opts.tls?.mode ?? 'disabled';
    if (!TLS_MODES.includes(mode)) return { ok: false, error: { temporary: true, type: 'config', message: `unsupported TLS mode ${JSON.stringify(mode)}` } };
    const first = await SmtpConnection.open(address, port, opts, mode, mode);
    if (first.ok || !first.retryPlain) return strip(first);
    const second = await SmtpConnection.open(address, port, opts, 'disabled', mode);
    if (second.ok) second.connection.facts.tls.fallback = true;
    return strip(second);
  }

  private static async open(address: string, port: number, opts: ConnectOptions, mode: TlsMode, keyMode: TlsMode): Promise<ConnectOutcome<SmtpConnection> & { retryPlain?: boolean }> {
    const timeouts = settleTimeouts(opts.timeouts);
    const tcp = await tcpConnect(address, port, opts.localAddress, timeouts.connect);
    if ('error' in tcp) return { ok: false, error: tcp.error };
    const socket = tcp.socket;
    socket.setNoDelay(true);
    const facts: ConnectionInfo = {
      id: '',
      transactions: 0,
      localip: socket.localAddress ?? opts.localAddress ?? '',
      localport: socket.localPort ?? 0,
      ...(opts.localId !== undefined ? { localipid: opts.localId } : {}),
      remoteip: address,
      remoteport: port,
      remotemx: opts.remotemx ?? opts.servername ?? '',
      remotegreet: [],
      helo: opts.helo,
      protocol: opts.protocol ?? 'smtp',
      tls: { started: false },
    };
    const conn = new SmtpConnection(new ReplyStream(socket, opts.limits), facts, opts, keyMode);
    facts.id = conn.id;
    const step = await conn.handshake(mode);
    if (step.ok) return { ok: true, connection: conn };
    await conn.quit(FAILURE_QUIT_SECONDS);
    return { ok: false, error: step.error, ...(step.result ? { result: step.result } : {}), info: conn.info, ...(step.retryPlain ? { retryPlain: true } : {}) };
  }

  /** Halon's `attempt.connection` (a copy). */
  get info(): ConnectionInfo {
    return merged(this.facts, { transactions: this.count, remotegreet: [...this.facts.remotegreet], tls: { ...this.facts.tls } });
  }

  get capabilities(): Capabilities {
    return this.caps;
  }

  /** Transactions started (MAIL sent) on this session. */
  get transactions(): number {
    return this.count;
  }

  /** Ready for a transaction: open, no failure or 421, idle, and nothing unsolicited from the peer. */
  get usable(): boolean {
    return !this.ended && !this.broken && !this.busy && !this.io.failed && !this.io.hasUnread;
  }

  /** Called once when the session ends for any reason (peer close, error, time-out, quit). Returns an unsubscribe. */
  onClose(listener: () => void): () => void {
    return this.io.onFault(listener);
  }

  // -------------------------------------------------------------------------------------------
  // Session set-up

  private async handshake(mode: TlsMode): Promise<Step> {
    const banner = await this.command(undefined, 'BANNER');
    if ('error' in banner) return { ok: false, error: banner.error };
    this.facts.remotegreet = [...banner.reply.reason];
    if (!isPositive(banner.reply)) return refused(banner.reply, 'BANNER', 'the server refused the connection');
    const hello = await this.hello();
    if (!hello.ok) return hello;
    return this.startTls(mode);
  }

  /** EHLO (HELO after a 5yz) or LHLO; sets the capabilities. */
  private async hello(): Promise<Step> {
    if (this.facts.protocol === 'lmtp') return this.ehlo('LHLO');
    const ehlo = await this.ehlo('EHLO');
    if (ehlo.ok || !ehlo.result || ehlo.result.code < 500 || ehlo.result.code > 599) return ehlo;
    const helo = await this.command(`HELO ${this.opts.helo}`, 'HELO');
    if ('error' in helo) return { ok: false, error: helo.error };
    if (!isPositive(helo.reply)) return refused(helo.reply, 'HELO', 'HELO was refused');
    this.caps = NO_CAPABILITIES;
    return { ok: true };
  }

  private async ehlo(verb: 'EHLO' | 'LHLO'): Promise<Step> {
    const r = await this.command(`${verb} ${this.opts.helo}`, verb);
    if ('error' in r) return { ok: false, error: r.error };
    if (!isPositive(r.reply)) return refused(r.reply, verb, `${verb} was refused`);
    this.caps = parseCapabilities(r.reply);
    return { ok: true };
  }

  private async startTls(mode: TlsMode): Promise<Step> {
    if (mode === 'disabled') return { ok: true };
    const required = mode === 'require' || mode === 'require_verify';
    if (!this.caps.starttls) {
      return required ? tlsFailure('STARTTLS is required but the server does not offer it') : { ok: true };
    }
    const r = await this.command('STARTTLS', 'STARTTLS');
    if ('error' in r) return { ok: false, error: r.error };
    if (r.reply.code === 421) return refused(r.reply, 'STARTTLS', 'STARTTLS was refused');
    if (r.reply.code !== 220) {
      // RFC 3207 §4: the client decides whether to continue without TLS.
      return required ? { ...tlsFailure(`STARTTLS was refused: ${formatReply(r.reply)}`), result: result(r.reply, 'STARTTLS') } : { ok: true };
    }
    return this.negotiate(mode);
  }

  private async negotiate(mode: TlsMode): Promise<Step> {
    const raw = this.io.detach();
    if (!raw) return { ok: false, error: { temporary: true, type: 'protocol', state: 'STARTTLS', message: 'the server sent data after its STARTTLS reply' } };
    const secured = await tlsHandshake(raw, this.tlsOptions(), this.timeouts.smtp.STARTTLS);
    if ('error' in secured) {
      // Dead session either way; 'optional' gets one more try in plaintext (RFC 3207 §4.1).
      raw.destroy();
      this.io.destroy();
      return { ...tlsFailure(`TLS handshake failed: ${secured.error}`), retryPlain: mode === 'optional' };
    }
    this.io.attach(secured.socket, this.opts.limits);
    // Fetched once: on Node 20 a second call may return an empty object.
    const cert = secured.socket.getPeerCertificate(true);
    this.facts.tls = describeTls(secured.socket, cert);
    if (mode === 'optional_verify' || mode === 'require_verify') {
      const problem = this.verify(secured.socket, cert);
      this.facts.tls.verified = problem === undefined;
      if (problem) return tlsFailure(`certificate verification failed: ${problem}`);
    }
    // RFC 3207 §4.2: discard what the plaintext EHLO said and ask again.
    this.caps = NO_CAPABILITIES;
    return this.facts.protocol === 'lmtp' ? this.ehlo('LHLO') : this.ehlo('EHLO');
  }

  private tlsOptions(): tls.ConnectionOptions {
    const t = this.opts.tls;
    const sni = t?.sni === false ? undefined : (t?.sni ?? this.opts.servername);
    return {
      ...(sni && net.isIP(sni) === 0 ? { servername: sni } : {}),
      rejectUnauthorized: false,
      // Names are checked in verify(), only in the *_verify modes.
      checkServerIdentity: () => undefined,
      minVersion: t?.minVersion ?? 'TLSv1.2',
      ...(t?.maxVersion !== undefined ? { maxVersion: t.maxVersion } : {}),
      ...(t?.ca !== undefined ? { ca: t.ca } : {}),
      ...(t?.cert !== undefined && t.key !== undefined ? { cert: t.cert, key: t.key } : {}),
    };
  }

  /** undefined when the chain is trusted and a name matches; else why not. */
  private verify(socket: tls.TLSSocket, cert: tls.DetailedPeerCertificate): string | undefined {
    if (!socket.authorized) return String(socket.authorizationError ?? 'untrusted certificate');
    if (!cert.raw) return 'no certificate';
    const names = this.opts.tls?.verifyNames?.length ? this.opts.tls.verifyNames : [this.opts.servername || this.facts.remoteip];
    const matched = names.some((n) => tls.checkServerIdentity(n, cert) === undefined);
    return matched ? undefined : `certificate does not match ${names.join(', ')}`;
  }

  // -------------------------------------------------------------------------------------------
  // Transactions

  /** Run one mail transaction. Never throws; every recipient gets an outcome. */
  async send(tx: Transaction): Promise<TransactionResult> {
    if (!this.usable) return everyone(tx, { temporary: true, type: 'network', message: 'the connection is not usable' }, false);
    const local = this.localRefusal(tx);
    if (local) return everyone(tx, local, false);
    const body = await loadBody(tx);
    if ('error' in body) return everyone(tx, body.error, false);
    this.busy = true;
    try {
      return await this.transaction(tx, body.body);
    } finally {
      this.busy = false;
    }
  }

  /** What the peer's capabilities rule out before anything is sent. */
  private localRefusal(tx: Transaction): AttemptError | undefined {
    if (!checkAddress(tx.sender)) return localError(false, [5, 1, 7], 'the sender address cannot be sent in SMTP');
    if (needsUtf8(tx) && !this.caps.smtputf8) {
      return localError(false, [5, 6, 7], 'the message needs SMTPUTF8 and the server does not offer it (RFC 6531 §3.2)');
    }
    if (this.caps.sizeLimit > 0 && tx.size > this.caps.sizeLimit) {
      return localError(false, [5, 3, 4], `the message (${tx.size} octets) exceeds the server's size limit (${this.caps.sizeLimit})`);
    }
    return undefined;
  }

  private async transaction(tx: Transaction, body: Buffer): Promise<TransactionResult> {
    const utf8 = needsUtf8(tx);
    const dsn = this.caps.dsn;
    const out: Array<RecipientOutcome | undefined> = tx.recipients.map((r) =>
      checkAddress(r.address) ? undefined : refuse(r.address, localError(false, [5, 1, 3], 'the recipient address cannot be sent in SMTP')));
    const sendable = tx.recipients.map((r, i) => ({ rcpt: r, index: i })).filter((x) => out[x.index] === undefined);
    if (sendable.length === 0) return finish(out, tx, dsn);
    // RFC 6152 §3 forbids 8-bit data to a server without 8BITMIME; like Postfix and Exim (with
    // MIME conversion off) we send it unlabelled rather than bounce: such servers pass it on.
    const mail = mailCommand(tx, { size: this.caps.size, eightbit: !!tx.eightbit && this.caps.eightbitmime, smtputf8: utf8, dsn });
    const rcpts = sendable.map((x) => rcptCommand(x.rcpt, dsn, utf8));
    this.count++;
    const env = this.caps.pipelining ? await this.pipelined(mail, rcpts) : await this.lockstep(mail, rcpts);
    const accepted = this.applyEnvelope(env, sendable, out);
    if (accepted.length === 0 || env.stop) return this.conclude(out, tx, dsn, env.dataReply?.code === 354 ? 'terminate' : 'reset');
    if (!env.dataReply || env.dataReply.code !== 354) {
      const r = env.dataReply ? { result: result(env.dataReply, 'DATA') } : {};
      this.settle(out, accepted, env.dataError ? { error: env.dataError } : r);
      return this.conclude(out, tx, dsn, 'reset');
    }
    await this.data(body, accepted, out);
    return this.conclude(out, tx, dsn, 'none');
  }

  /** RFC 2920 §3.1: MAIL, every RCPT and DATA in one write; replies read in order. */
  private async pipelined(mail: string, rcpts: string[]): Promise<Envelope> {
    const env = newEnvelope();
    const written = await this.io.write([mail, ...rcpts, 'DATA'].map((c) => `${c}\r\n`).join(''), 'MAIL', this.timeouts.smtp.MAIL);
    this.traceOut(mail, rcpts.length);
    if (written) return stopped(env, 'mailError', written);
    const m = await this.readReply('MAIL');
    if ('error' in m) return stopped(env, 'mailError', m.error);
    env.mailReply = m.reply;
    if (this.broken) return stopped(env);
    for (let i = 0; i < rcpts.length; i++) {
      const r = await this.readReply('RCPT');
      if ('error' in r) return stopped(env, 'rcptError', r.error);
      env.rcptReplies.push(r.reply);
      if (this.broken) return stopped(env);
    }
    const d = await this.readReply('DATA');
    if ('error' in d) return stopped(env, 'dataError', d.error);
    env.dataReply = d.reply;
    return stopped(env, undefined, undefined, this.broken);
  }

  /** Without PIPELINING: one command, one reply. */
  private async lockstep(mail: string, rcpts: string[]): Promise<Envelope> {
    const env = newEnvelope();
    const m = await this.command(mail, 'MAIL');
    if ('error' in m) return stopped(env, 'mailError', m.error);
    env.mailReply = m.reply;
    if (this.broken || !isPositive(m.reply)) return stopped(env, undefined, undefined, this.broken);
    for (const rcpt of rcpts) {
      const r = await this.command(rcpt, 'RCPT');
      if ('error' in r) return stopped(env, 'rcptError', r.error);
      env.rcptReplies.push(r.reply);
      if (this.broken) return stopped(env);
    }
    if (!env.rcptReplies.some(isPositive)) return env;
    const d = await this.command('DATA', 'DATA');
    if ('error' in d) return stopped(env, 'dataError', d.error);
    env.dataReply = d.reply;
    return stopped(env, undefined, undefined, this.broken);
  }

  /**
   * Give each recipient what the envelope replies decided; return the indexes still accepted.
   * A MAIL failure or a 421 decides everyone still open; a lost connection likewise (as an error).
   */
  private applyEnvelope(env: Envelope, sendable: Array<{ index: number; rcpt: { address: string } }>, out: Array<RecipientOutcome | undefined>): number[] {
    const all = sendable.map((x) => x.index);
    if (env.mailError) { this.settle(out, all, { error: env.mailError }); return []; }
    if (env.mailReply && (!isPositive(env.mailReply) || env.mailReply.code === 421)) {
      this.settle(out, all, { result: result(env.mailReply, 'MAIL') });
      return [];
    }
    const accepted: number[] = [];
    sendable.forEach((x, i) => {
      const reply = env.rcptReplies[i];
      if (reply && !isPositive(reply)) out[x.index] = decided(x.rcpt.address, result(reply, 'RCPT'));
      else if (reply) accepted.push(x.index);
    });
    const undecided = all.filter((i) => out[i] === undefined);
    const last421 = [...env.rcptReplies, env.dataReply].find((r) => r?.code === 421);
    if (last421) { this.settle(out, undecided, { result: result(last421, last421 === env.dataReply ? 'DATA' : 'RCPT') }); return []; }
    const lost = env.rcptError ?? (env.stop ? env.dataError : undefined);
    if (lost) { this.settle(out, undecided, { error: lost }); return []; }
    return accepted;
  }

  /** Send the content and read the end-of-data reply (one, or one per recipient for LMTP). */
  private async data(body: Buffer, accepted: number[], out: Array<RecipientOutcome | undefined>): Promise<void> {
    for (const chunk of dotStuff(body)) {
      const err = await this.io.write(chunk, 'EOD', this.timeouts.datablock, 'sending message data');
      if (err) {
        // The peer may have answered and closed (e.g. 552 or 421 mid-data): prefer its reply.
        const early = await this.io.read('EOD', 0);
        if ('reply' in early) this.noteReply(early.reply);
        this.settle(out, accepted, 'reply' in early ? { result: result(early.reply, 'EOD') } : { error: err });
        return;
      }
    }
    this.trace('>', '<message data>');
    const replies = this.facts.protocol === 'lmtp' ? accepted.length : 1;
    for (let i = 0; i < replies; i++) {
      const r = await this.readReply('EOD');
      const targets = this.facts.protocol === 'lmtp' && !('error' in r) && r.reply.code !== 421 ? [accepted[i]] : accepted.slice(i);
      this.settle(out, targets.filter((t) => out[t] === undefined), 'error' in r ? { error: r.error } : { result: result(r.reply, 'EOD') });
      if ('error' in r || this.broken) return;
    }
  }

  /** End a transaction: RSET or terminate DATA when needed (and still possible), then the result. */
  private async conclude(out: Array<RecipientOutcome | undefined>, tx: Transaction, dsn: boolean, how: 'reset' | 'terminate' | 'none'): Promise<TransactionResult> {
    if (this.usableAfter()) {
      if (how === 'terminate') {
        // RFC 2920 §3.1: DATA was accepted without recipients; end it with an empty message.
        const r = await this.command('.', 'EOD');
        if ('error' in r || !this.usableAfter()) this.broken = true;
      } else if (how === 'reset') {
        await this.resetInternal();
      }
    }
    return finish(out, tx, dsn);
  }

  private settle(out: Array<RecipientOutcome | undefined>, indexes: number[], what: { result?: AttemptResult; error?: AttemptError }): void {
    for (const i of indexes) {
      if (out[i] !== undefined) continue;
      out[i] = what.result ? decided('', what.result) : refuse('', what.error ?? { temporary: true, type: 'protocol', message: 'no reply' });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Session end and housekeeping

  /** RSET (RFC 5321 §4.1.1.5). A failure makes the session unusable. */
  async reset(): Promise<{ result: AttemptResult } | { error: AttemptError }> {
    if (this.busy || this.ended) return { error: { temporary: true, type: 'network', state: 'RSET', message: 'the connection is not usable' } };
    return this.resetInternal();
  }

  private async resetInternal(): Promise<{ result: AttemptResult } | { error: AttemptError }> {
    const r = await this.command('RSET', 'RSET');
    if ('error' in r) { this.broken = true; return { error: r.error }; }
    if (!isPositive(r.reply)) this.broken = true;
    return { result: result(r.reply, 'RSET') };
  }

  /** QUIT, wait for the reply (at most the QUIT time-out or `seconds`), then close. Never throws. */
  async quit(seconds?: number): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    if (!this.io.failed && !this.broken) {
      const wait = Math.min(seconds ?? Infinity, this.timeouts.smtp.QUIT);
      const w = await this.io.write('QUIT\r\n', 'QUIT', wait);
      this.trace('>', 'QUIT');
      if (!w) await this.io.read('QUIT', wait);
    }
    this.io.destroy();
  }

  /** Close at once, without QUIT. */
  close(): void {
    this.ended = true;
    this.io.destroy();
  }

  private usableAfter(): boolean {
    return !this.ended && !this.broken && !this.io.failed;
  }

  /** Write one command (or none, for the banner) and read its reply. */
  private async command(line: string | undefined, state: SmtpState): Promise<ReadResult> {
    if (line !== undefined) {
      const err = await this.io.write(`${line}\r\n`, state, this.timeouts.smtp[state]);
      this.trace('>', line);
      if (err) return { error: err };
    }
    return this.readReply(state);
  }

  private async readReply(state: SmtpState): Promise<ReadResult> {
    const r = await this.io.read(state, this.timeouts.smtp[state]);
    if ('reply' in r) this.noteReply(r.reply);
    return r;
  }

  private noteReply(reply: Reply): void {
    if (this.opts.trace) this.trace('<', formatReply(reply));
    // RFC 5321 §3.8: 421 means the server is closing the channel.
    if (reply.code === 421) this.broken = true;
  }

  private traceOut(mail: string, rcpts: number): void {
    if (this.opts.trace) this.trace('>', `${mail} (+${rcpts} RCPT, DATA pipelined)`);
  }

  private trace(dir: '<' | '>', line: string): void {
    this.opts.trace?.(dir, line);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

interface Envelope {
  mailReply: Reply | undefined;
  mailError: AttemptError | undefined;
  rcptReplies: Reply[];
  rcptError: AttemptError | undefined;
  dataReply: Reply | undefined;
  dataError: AttemptError | undefined;
  /** The session cannot go on (error or 421). */
  stop: boolean;
}

/** Every member present from the start: one hidden class for every envelope (util/objects.ts). */
function newEnvelope(): Envelope {
  return { mailReply: undefined, mailError: undefined, rcptReplies: [], rcptError: undefined, dataReply: undefined, dataError: undefined, stop: false };
}

/** End the envelope phase: record the failure (if any) and whether the session can go on. */
function stopped(env: Envelope, what?: 'mailError' | 'rcptError' | 'dataError', error?: AttemptError, stop = true): Envelope {
  if (what) env[what] = error;
  env.stop = stop;
  return env;
}

function settleTimeouts(t: ClientTimeouts | undefined): { connect: number; datablock: number; smtp: Record<SmtpState, number> } {
  return {
    connect: t?.connect ?? DEFAULT_TIMEOUTS.connect,
    datablock: t?.datablock ?? DEFAULT_TIMEOUTS.datablock,
    smtp: merged(DEFAULT_TIMEOUTS.smtp, definedOnly(t?.smtp ?? {})),
  };
}

function definedOnly(o: Partial<Record<SmtpState, number>>): Partial<Record<SmtpState, number>> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => typeof v === 'number' && v > 0));
}

function strip(o: ConnectOutcome<SmtpConnection> & { retryPlain?: boolean }): ConnectOutcome<SmtpConnection> {
  if (o.ok) return o;
  const { retryPlain: _unused, ...rest } = o;
  return rest;
}

function tcpConnect(address: string, port: number, localAddress: string | undefined, seconds: number): Promise<{ socket: net.Socket } | { error: AttemptError }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port, ...(localAddress ? { localAddress } : {}) });
    const done = (v: { socket: net.Socket } | { error: AttemptError }): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      resolve(v);
    };
    const onConnect = (): void => done({ socket });
    const onError = (err: NodeJS.ErrnoException): void => {
      socket.destroy();
      done({ error: { temporary: true, type: 'network', message: `connect to ${address}:${port} failed: ${err.code ?? err.message}` } });
    };
    const timer = setTimeout(() => {
      socket.destroy();
      done({ error: { temporary: true, type: 'timeout', message: `connect to ${address}:${port} timed out` } });
    }, seconds * 1000);
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}

function tlsHandshake(raw: net.Socket, options: tls.ConnectionOptions, seconds: number): Promise<{ socket: tls.TLSSocket } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ ...options, socket: raw });
    const done = (v: { socket: tls.TLSSocket } | { error: string }): void => {
      clearTimeout(timer);
      socket.off('secureConnect', onSecure);
      socket.off('error', onError);
      if ('error' in v) socket.destroy();
      resolve(v);
    };
    const onSecure = (): void => done({ socket });
    const onError = (err: NodeJS.ErrnoException): void => done({ error: err.code ?? err.message });
    const timer = setTimeout(() => done({ error: 'handshake timed out' }), seconds * 1000);
    socket.once('secureConnect', onSecure);
    socket.once('error', onError);
  });
}

function describeTls(socket: tls.TLSSocket, cert: tls.DetailedPeerCertificate): TlsInfo {
  const cipher = socket.getCipher();
  const info: TlsInfo = { started: true, protocol: socket.getProtocol() ?? undefined, cipher: cipher?.standardName ?? cipher?.name };
  const bits = keySize(cipher?.name ?? '');
  if (bits) info.keysize = bits;
  const peer = peerCertificate(cert);
  if (peer) info.peercert = peer;
  return info;
}

/** Symmetric key size from the cipher name (Node does not report it). */
function keySize(name: string): number | undefined {
  const m = /(?:AES|CAMELLIA|ARIA)[-_]?(128|256)/i.exec(name);
  if (m) return Number(m[1]);
  return /CHACHA20/i.test(name) ? 256 : undefined;
}

function peerCertificate(cert: tls.DetailedPeerCertificate): PeerCertificate | undefined {
  if (!cert.raw) return undefined;
  return { subject: dn(cert.subject), issuer: dn(cert.issuer), fingerprint: cert.fingerprint256, validTo: cert.valid_to };
}

/** "CN=mx.example, O=Example" from Node's name object (values may be arrays). */
function dn(name: object | undefined): string {
  if (!name) return '';
  return Object.entries(name).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${k}=${x}`)).join(', ');
}

function isPositive(r: Reply): boolean {
  return r.code >= 200 && r.code <= 299;
}

function result(r: Reply, state: SmtpState): AttemptResult {
  return { code: r.code, enhanced: r.enhanced, reason: [...r.reason], state };
}

/** A negative reply during session set-up: 4yz temporary, 5yz permanent. */
function refused(r: Reply, state: SmtpState, what: string): Step {
  return {
    ok: false,
    result: result(r, state),
    error: { temporary: r.code < 500, type: 'smtp', state, message: `${what}: ${formatReply(r)}` },
  };
}

function tlsFailure(message: string): Step & { ok: false } {
  return { ok: false, error: { temporary: true, type: 'tls', state: 'STARTTLS', message } };
}

function localError(temporary: boolean, enhanced: [number, number, number], message: string): AttemptError {
  return { temporary, type: 'smtp', enhanced, message };
}

function needsUtf8(tx: Transaction): boolean {
  return !!tx.smtputf8 || !isAscii(tx.sender) || tx.recipients.some((r) => !isAscii(r.address));
}

async function loadBody(tx: Transaction): Promise<{ body: Buffer } | { error: AttemptError }> {
  if (Buffer.isBuffer(tx.body)) return { body: tx.body };
  try {
    return { body: await tx.body() };
  } catch (err) {
    return { error: { temporary: true, type: 'spool', message: `cannot read the message: ${(err as Error).message}` } };
  }
}

function kind(code: number): RecipientOutcome['outcome'] {
  if (code >= 200 && code <= 299) return 'delivered';
  return code >= 500 && code <= 599 ? 'permanent' : 'temporary';
}

function decided(address: string, r: AttemptResult): RecipientOutcome {
  return { address, outcome: kind(r.code), result: r };
}

function refuse(address: string, error: AttemptError): RecipientOutcome {
  return { address, outcome: error.temporary ? 'temporary' : 'permanent', error };
}

function everyone(tx: Transaction, error: AttemptError, dsn: boolean): TransactionResult {
  return { recipients: tx.recipients.map((r) => refuse(r.address, error)), dsnRelayed: dsn, error };
}

function finish(out: Array<RecipientOutcome | undefined>, tx: Transaction, dsn: boolean): TransactionResult {
  const recipients = tx.recipients.map((r, i) => merged(out[i] ?? refuse('', { temporary: true, type: 'protocol', message: 'no reply for this recipient' }), { address: r.address }));
  const shared = recipients.find((r) => r.error && r.error.type !== 'smtp')?.error;
  return { recipients, dsnRelayed: dsn, ...(shared ? { error: shared } : {}) };
}
