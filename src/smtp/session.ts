/**
 * One SMTP server connection: the state machine that drives the codec (codec.ts) and the
 * framing readers (framing.ts) over a socket, calls the hooks, and hands accepted messages to
 * the ingress.
 *
 * Inputs: an accepted socket (after any PROXY header), the runtime snapshot taken when the
 * connection opened (config, hooks, TLS contexts), the ingress, a logger and an id generator.
 * Outputs: replies on the socket; `AcceptedTransaction`s to `ingress.commit`; one log line per
 * connection and per transaction; the disconnect hook.
 * Invariants:
 * - Input is processed strictly in order, one command at a time (a pump serialises the async
 *   hook calls); replies are batched and written when no complete command is left (RFC 2920),
 *   and before the connection changes hands (STARTTLS) or closes.
 * - Memory is bounded: at most MAX_BUFFERED unprocessed bytes (then the socket is paused),
 *   lines by limits.linelength, message bodies by limits.maxsize (then discarded).
 * - Nothing a peer sends throws out of the session: socket and TLS errors end the connection,
 *   an internal error answers 421 and closes; every timer is cleared on close.
 * - A message is acknowledged with 250 only after `ingress.commit` resolved.
 * Errors: see replies.ts for every code the session sends and why.
 */
import { isIP } from 'node:net';
import type net from 'node:net';
import tls from 'node:tls';
import type { RunningServer, SmtpPhase } from '../config/types';
import type { Ingress } from '../model/ingress';
import type { ReceivedFrom } from '../model/types';
import { formatQueueId, splitAddress } from '../model/types';
import { EodMail } from '../hooks/mail';
import type { HookInput, HookOutcome, LoadedHooks } from '../hooks/runtime';
import type { ConnectionInfo, DisconnectArguments } from '../hooks/types';
import type { Logger } from '../util/log';
import { encodeReply, parseCommand, unannouncedParam, type Command, type HeloCommand, type Verb } from './codec';
import { BAD_EOL, BdatReader, countReceived, DataReader, LineReader, TOO_LONG, type BodyStatus, type LineResult } from './framing';
import { REPLIES, reply, type SmtpReply } from './replies';
import { decodeBase64Text, decodePlain, LOGIN_PASSWORD_CHALLENGE, LOGIN_USERNAME_CHALLENGE } from './sasl';
import { buildReceived } from './trace';
import { EntryCollector, Transaction } from './transaction';
import { merged } from '../util/objects';

/** What a connection needs from the running configuration; fetched once per new connection. */
export interface ServerRuntime {
  server: RunningServer;
  hooks: LoadedHooks;
  /** The certificate for an SNI name (or the default one without a name); undefined = no TLS. */
  secureContext: (servername?: string) => tls.SecureContext | undefined;
  /** Private key PEM of a `pki.private[]` id, for `mail.signDKIM(…, id)` in eod hooks. */
  resolveKey?: (pkiId: string) => string | undefined;
}

/** The client as seen on the connection (or as given by a trusted PROXY header). */
export interface PeerInfo {
  remoteip: string;
  remoteport: number;
  localip: string;
  localport: number;
  /** The proxy's own address, when a PROXY header was accepted. */
  proxyip?: string;
  proxytlv?: Record<number, string>;
}

export interface SessionOptions {
  socket: net.Socket;
  rt: ServerRuntime;
  serverid: string;
  hostname: string;
  ingress: Ingress;
  log: Logger;
  newId: () => string;
  peer: PeerInfo;
  implicitTls: boolean;
  onClose: (session: Session) => void;
}

type Mode = 'greeting' | 'tls' | 'command' | 'auth' | 'data' | 'bdat' | 'busy' | 'closed';
type AuthState = { mechanism: 'PLAIN' } | { mechanism: 'LOGIN'; username?: string };
interface BdatChunk {
  reader: BdatReader;
  last: boolean;
  /** Set when the chunk is consumed only to be refused (RFC 3030 §2: read the bytes anyway). */
  error: SmtpReply | null;
}
interface CloseInfo {
  by: 'local' | 'remote';
  reason: string;
  error?: DisconnectArguments['error'];
}
type Handler<V extends Verb> = (s: Session, cmd: Extract<Command, { verb: V }>) => void | Promise<void>;
type HandlerTable = { [V in Verb]: Handler<V> };

/** Unprocessed input beyond which the socket is paused (pipelining abuse). */
const MAX_BUFFERED = 256 * 1024;
/** Pending reply bytes after which replies are written even mid-batch. */
const FLUSH_AT = 16 * 1024;
/** RFC 4954 §4: AUTH continuation lines may be up to 12288 octets. */
const AUTH_LINE_MAX = 12288;
/** After we close our side, how long to wait for the peer to close before destroying. */
const LINGER_MS = 2000;
const TLS_ORDER = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
const EXTENSION_LINE = /^[A-Za-z0-9][A-Za-z0-9-]*(?: [\x21-\x7e]+)*$/;
const NO_EXTENSIONS: ReadonlySet<string> = new Set();
/** Wire text of catalogue replies, with and without enhanced codes (servers may differ). */
const encodedCache = [new WeakMap<SmtpReply, string>(), new WeakMap<SmtpReply, string>()];

function noop(): void {}

function limitReached(count: number, limit: number): boolean {
  return Number.isFinite(limit) && limit > 0 && count >= limit;
}

function outcomeReply(o: HookOutcome, fallback: string): SmtpReply {
  return reply(o.code, o.enhanced, o.reason.length ? o.reason : [fallback]);
}

/** A reply the hook chose explicitly (Accept with a reason), or null to use the server's own. */
function customAccept(o: HookOutcome | null): SmtpReply | null {
  return o && o.options.reason !== undefined ? outcomeReply(o, 'OK') : null;
}

function keywords(list: string[]): ReadonlySet<string> {
  return new Set(list.map((l) => l.split(' ')[0].toUpperCase()));
}

export class Session {
  readonly id: string;
  private socket: net.Socket;
  private readonly rt: ServerRuntime;
  private readonly server: RunningServer;
  private readonly lines: LineReader;
  private mode: Mode = 'greeting';
  private remoteip: string;
  private remoteptr: string | undefined;
  private helo: { verb: 'HELO' | 'EHLO'; host: string } | null = null;
  private announced: ReadonlySet<string> = NO_EXTENSIONS;
  private tlsInfo: ConnectionInfo['tls'];
  private authInfo: ConnectionInfo['auth'];
  private authState: AuthState | null = null;
  private tx: Transaction | null = null;
  private txid: string;
  private data: DataReader | null = null;
  private bdat: BdatChunk | null = null;
  private bodyDone: 'data' | 'bdat' | null = null;
  private readonly context: Record<string, unknown> = {};
  private out: string[] = [];
  private outBytes = 0;
  private pumping = false;
  private busy = false;
  private waitingDrain = false;
  private shuttingDown = false;
  private finished = false;
  private closeInfo: CloseInfo | null = null;
  private lastReply: SmtpReply | null = null;
  private linger: NodeJS.Timeout | null = null;
  /** The eod hook asked to disconnect after its reply. */
  private closeAfter = false;
  private armedMs = -1;
  private readonly startedAt = Date.now();
  private transactions = 0;
  private commands = 0;
  private errors = 0;

  constructor(private readonly opts: SessionOptions) {
    this.id = opts.newId();
    this.txid = opts.newId();
    this.rt = opts.rt;
    this.server = opts.rt.server;
    this.socket = opts.socket;
    this.remoteip = opts.peer.remoteip;
    this.lines = new LineReader(this.server.limits.linelength);
    this.attach(this.socket);
  }

  /** Begin: TLS first on implicit-TLS listeners, then the connect hook and the greeting. */
  start(initial?: Buffer): void {
    this.armTimer();
    if (this.opts.implicitTls) {
      if (initial?.length) this.socket.unshift(initial); // the TLS engine reads it (PROXY + TLS)
      this.startTls(() => this.greet());
      return;
    }
    if (initial?.length) this.lines.push(initial);
    this.socket.resume(); // paused by the PROXY reader, if there was one
    this.greet();
  }

  /** Graceful shutdown: close now when idle, else after the current transaction. */
  shutdown(): void {
    this.shuttingDown = true;
    if (this.isIdle()) this.closeLocal('shutdown', REPLIES.shuttingDown);
  }

  /** End of the grace period: close whatever is happening. */
  forceClose(): void {
    this.closeLocal('shutdown', REPLIES.shuttingDown);
  }

  // -------------------------------------------------------------------------------------------
  // Socket plumbing

  private readonly onData = (chunk: Buffer): void => {
    switch (this.mode) {
      case 'closed':
        return; // anything after QUIT or a closing reply is ignored
      case 'data':
        return this.feedData(chunk);
      case 'bdat':
        return this.feedBdat(chunk);
      default:
        this.lines.push(chunk);
        if (this.lines.buffered > MAX_BUFFERED) this.socket.pause();
        void this.pump();
    }
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    const type = this.mode === 'tls' || err.code?.startsWith('ERR_SSL') ? 'tls' : 'socket';
    this.closeInfo ??= { by: 'remote', reason: `${type} error`, error: { reason: err.message, type, code: err.code } };
    this.socket.destroy();
  };

  private readonly onTimeout = (): void => {
    if (this.isClosed()) return;
    if (this.mode === 'tls' || this.waitingDrain) {
      this.closeInfo ??= { by: 'local', reason: 'timeout', error: { reason: 'timeout', type: 'timeout' } };
      this.socket.destroy();
      return;
    }
    if (this.busy || this.mode === 'busy' || this.mode === 'greeting') return; // waiting on ourselves
    const r = this.mode === 'data' || this.mode === 'bdat' ? REPLIES.dataTimeout : REPLIES.idleTimeout;
    this.closeLocal('timeout', r);
  };

  private readonly onSocketClose = (): void => {
    if (this.finished) return;
    this.finished = true;
    this.mode = 'closed';
    this.closeInfo ??= { by: 'remote', reason: 'peer closed' };
    if (this.linger) clearTimeout(this.linger);
    this.socket.setTimeout(0);
    this.opts.onClose(this);
    this.logClose();
    void this.runDisconnect();
  };

  private attach(sock: net.Socket): void {
    sock.on('data', this.onData);
    sock.on('error', this.onError);
    sock.on('timeout', this.onTimeout);
    sock.on('close', this.onSocketClose);
  }

  private detach(sock: net.Socket): void {
    sock.removeListener('data', this.onData);
    sock.removeListener('error', this.onError);
    sock.removeListener('timeout', this.onTimeout);
    sock.removeListener('close', this.onSocketClose);
    sock.on('error', noop); // the TLS socket reports errors from now on
    sock.setTimeout(0);
  }

  private setMode(mode: Mode): void {
    this.mode = mode;
    this.armTimer();
  }

  /** idle timeout while waiting for commands, data timeout while waiting for message bytes. */
  private armTimer(): void {
    const t = this.server.timeout;
    const seconds = this.mode === 'data' || this.mode === 'bdat' ? t.data : t.idle;
    const ms = Number.isFinite(seconds) && seconds > 0 ? Math.round(seconds * 1000) : 0;
    if (ms === this.armedMs) return;
    this.armedMs = ms;
    this.socket.setTimeout(ms);
  }

  private send(r: SmtpReply): void {
    this.lastReply = r;
    const enhanced = this.server.extensions.enhancedstatuscodes;
    const cache = encodedCache[enhanced ? 1 : 0];
    let text = cache.get(r);
    if (text === undefined) {
      text = encodeReply(r.code, enhanced ? r.enhanced : null, r.lines);
      if (Object.isFrozen(r)) cache.set(r, text);
    }
    this.out.push(text);
    this.outBytes += text.length;
  }

  private flush(): void {
    if (this.out.length === 0) return;
    const text = this.out.length === 1 ? this.out[0] : this.out.join('');
    this.out = [];
    this.outBytes = 0;
    if (this.socket.writable) this.socket.write(text);
  }

  /** Write pending replies; if the peer does not read them, wait (bounded by the idle timeout). */
  private async flushAndDrain(): Promise<void> {
    this.flush();
    if (!this.socket.writableNeedDrain) return;
    this.waitingDrain = true;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.socket.removeListener('drain', done);
        this.socket.removeListener('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
    this.waitingDrain = false;
  }

  /** Reply (optionally), then close our side; the peer gets LINGER_MS to close its side. */
  private closeLocal(reason: string, r?: SmtpReply): void {
    if (this.isClosed()) return;
    if (r) this.send(r);
    this.flush();
    this.mode = 'closed';
    this.closeInfo ??= { by: 'local', reason };
    this.lines.takeRest();
    if (reason === 'quit' && !this.tlsInfo && this.socket.writableLength === 0) {
      // The 221 is in the kernel and the client has nothing more to say: close now. The kernel
      // still sends the reply, then FIN. Waiting for the client's side instead costs a timer
      // and, for the many clients that reset after QUIT, an error object per session. Not over
      // TLS: there the close goes through end() so the client gets TLS's close_notify.
      this.socket.destroy();
      return;
    }
    this.socket.end();
    this.linger = setTimeout(() => this.socket.destroy(), LINGER_MS);
    this.linger.unref();
  }

  private internalError(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    this.opts.log.error({ connection: this.id, err: e.message, stack: e.stack }, 'smtp session internal error');
    this.closeLocal('internal error', REPLIES.internalError);
  }

  /** A method, not a field test: the mode changes across awaits, which TS narrowing ignores. */
  private isClosed(): boolean {
    return this.mode === 'closed';
  }

  private isIdle(): boolean {
    return !this.pumping && !this.busy && this.tx === null && (this.mode === 'command' || this.mode === 'auth');
  }

  // -------------------------------------------------------------------------------------------
  // The pump: processes buffered input in order, one command (or one finished body) at a time.

  private async pump(): Promise<void> {
    if (this.pumping || this.isClosed()) return;
    this.pumping = true;
    try {
      while (!this.isClosed()) {
        const work = this.step();
        if (work === false) break;
        if (work) await work;
        if (this.outBytes > FLUSH_AT) await this.flushAndDrain();
      }
    } catch (err) {
      this.internalError(err);
    } finally {
      this.pumping = false;
    }
    this.afterPump();
  }

  /** Start one unit of work; false when nothing can be done now. */
  private step(): void | Promise<void> | false {
    if (this.bodyDone) return this.finishBody();
    if (this.mode !== 'command' && this.mode !== 'auth') return false;
    const line = this.lines.next();
    if (line === null) return false;
    return this.mode === 'auth' ? this.onAuthLine(line) : this.onLine(line);
  }

  /** All input handled: write the batch, resume reading, honour a pending shutdown. */
  private afterPump(): void {
    if (this.isClosed()) return;
    if (this.shuttingDown && this.isIdle()) return this.closeLocal('shutdown', REPLIES.shuttingDown);
    this.flush();
    if (this.mode !== 'tls' && this.socket.isPaused() && this.lines.buffered < MAX_BUFFERED) this.socket.resume();
  }

  private onLine(line: LineResult): void | Promise<void> {
    if (line === TOO_LONG) return this.protocolError(REPLIES.lineTooLong);
    if (line === BAD_EOL) return this.protocolError(REPLIES.bareEolCommand);
    if (line === null) return;
    this.commands++;
    const cmd = parseCommand(line);
    return (Session.HANDLERS[cmd.verb] as Handler<Verb>)(this, cmd as never);
  }

  private static readonly HANDLERS: HandlerTable = {
    HELO: (s, c) => s.onHelo(c),
    EHLO: (s, c) => s.onHelo(c),
    MAIL: (s, c) => s.onMail(c),
    RCPT: (s, c) => s.onRcpt(c),
    DATA: (s) => s.onDataCommand(),
    BDAT: (s, c) => s.onBdat(c),
    RSET: (s) => s.onRset(),
    NOOP: (s) => s.send(REPLIES.ok),
    HELP: (s) => s.send(REPLIES.help),
    VRFY: (s) => s.send(REPLIES.vrfy),
    QUIT: (s) => s.closeLocal('quit', REPLIES.bye),
    STARTTLS: (s) => s.onStartTls(),
    AUTH: (s, c) => s.onAuth(c),
    UNKNOWN: (s) => s.protocolError(REPLIES.unknownCommand),
    ERROR: (s, c) => s.protocolError(reply(c.error.code, c.error.enhanced, [c.error.text])),
  };

  /** A bad or out-of-sequence command; after limits.errors of them the connection is closed. */
  private protocolError(r: SmtpReply): void {
    this.send(r);
    this.countError();
  }

  private countError(): void {
    this.errors++;
    if (limitReached(this.errors, this.server.limits.errors)) this.closeLocal('too many errors', REPLIES.tooManyErrors);
  }

  // -------------------------------------------------------------------------------------------
  // Hooks

  private hasHook(phase: SmtpPhase): boolean {
    return this.rt.hooks.has(this.opts.serverid, phase);
  }

  /** Run a phase's hook when one is configured; null when none is. Never rejects. */
  private async runHook<P extends SmtpPhase>(phase: P, input: HookInput<P>): Promise<HookOutcome | null> {
    if (!this.hasHook(phase)) return null;
    this.busy = true;
    try {
      return await this.rt.hooks.run(this.opts.serverid, phase, input);
    } catch (err) {
      this.opts.log.error({ connection: this.id, phase, err: (err as Error).message }, 'hook runtime failed; answering with a temporary failure');
      const code = phase === 'connect' || phase === 'eod' ? 421 : 451;
      return { action: 'Defer', code, enhanced: [4, 3, 0], reason: ['Temporary failure, try again later'], disconnect: code === 421, options: {}, source: 'error' };
    } finally {
      this.busy = false;
    }
  }

  /** Send a hook's Reject/Defer reply; 421 or `disconnect` closes the connection (RFC 5321 §3.8). */
  private refuse(o: HookOutcome, phase: SmtpPhase, fields: Record<string, unknown> = {}): void {
    const r = outcomeReply(o, 'Rejected');
    this.logRefusal(phase, r, { action: o.action, source: o.source, ...fields });
    if (o.disconnect || o.code === 421) return this.closeLocal(`${phase} ${o.action}`, r);
    this.send(r);
  }

  private logRefusal(phase: string, r: SmtpReply, fields: Record<string, unknown>): void {
    this.opts.log.info({ connection: this.id, transaction: this.tx?.id ?? this.txid, phase, code: r.code, ...fields }, 'smtp command refused');
  }

  private connection(): ConnectionInfo {
    const p = this.opts.peer;
    return {
      id: this.id,
      remoteip: this.remoteip,
      remoteport: p.remoteport,
      remoteptr: this.remoteptr,
      localip: p.localip,
      localport: p.localport,
      serverid: this.opts.serverid,
      helo: this.helo ? { ...this.helo } : undefined,
      tls: this.tlsInfo ? { ...this.tlsInfo } : undefined,
      auth: this.authInfo ? { ...this.authInfo } : undefined,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Connect and greeting

  private greet(): void {
    this.runConnect().catch((err: unknown) => this.internalError(err));
  }

  private async runConnect(): Promise<void> {
    const p = this.opts.peer;
    const o = await this.runHook('connect', {
      arguments: { remoteip: this.remoteip, remoteport: p.remoteport, localip: p.localip, localport: p.localport, serverid: this.opts.serverid, proxyip: p.proxyip, proxytlv: p.proxytlv },
      connection: this.connection(),
      context: this.context,
    });
    if (this.isClosed()) return;
    if (o && o.action !== 'Accept') {
      this.refuse(o, 'connect');
      return this.closeLocal(`connect ${o.action}`); // a refused connection is always closed
    }
    if (o) this.applyConnectOptions(o.options);
    const custom = o?.options.reason !== undefined && o.reason.length ? o.reason : null;
    this.send(reply(220, null, custom ? [`${this.opts.hostname} ${custom[0]}`, ...custom.slice(1)] : [`${this.opts.hostname} ESMTP`]));
    this.setMode('command');
    void this.pump();
  }

  /** connect hook `Accept({remoteip, remoteptr})` overrides the remote identity. */
  private applyConnectOptions(options: Record<string, unknown>): void {
    if (typeof options.remoteip === 'string' && isIP(options.remoteip)) this.remoteip = options.remoteip;
    if (typeof options.remoteptr === 'string') this.remoteptr = options.remoteptr;
  }

  // -------------------------------------------------------------------------------------------
  // HELO / EHLO

  private defaultExtensions(): string[] {
    const s = this.server;
    const e = s.extensions;
    const list: string[] = [];
    if (e.pipelining) list.push('PIPELINING');
    if (e.size) list.push(`SIZE ${s.limits.maxsize}`);
    if (e['8bitmime']) list.push('8BITMIME');
    if (e.smtputf8) list.push('SMTPUTF8');
    if (e.enhancedstatuscodes) list.push('ENHANCEDSTATUSCODES');
    if (e.chunking) list.push('CHUNKING');
    if (e.dsn) list.push('DSN');
    if (this.canStartTls()) list.push('STARTTLS');
    if (this.canOfferAuth()) list.push(`AUTH ${s.auth.mechanisms.join(' ')}`);
    return list;
  }

  private canStartTls(): boolean {
    const t = this.server.tls;
    return !this.tlsInfo && t.starttls && t.certs.length > 0 && this.rt.secureContext() !== undefined;
  }

  /** AUTH needs an auth hook, and TLS unless auth.requiretls is false. */
  private canOfferAuth(): boolean {
    const a = this.server.auth;
    return this.hasHook('auth') && a.mechanisms.length > 0 && (this.tlsInfo !== undefined || !a.requiretls);
  }

  private async onHelo(cmd: HeloCommand): Promise<void> {
    this.resetTx(); // RFC 5321 §4.1.4: EHLO/HELO resets the transaction
    this.helo = null;
    this.announced = NO_EXTENSIONS;
    const defaults = cmd.verb === 'EHLO' ? this.defaultExtensions() : [];
    const o = await this.runHook('helo', { arguments: { verb: cmd.verb, host: cmd.host, extensions: [...defaults] }, connection: this.connection(), context: this.context });
    if (this.isClosed()) return;
    if (o && o.action !== 'Accept') return this.refuse(o, 'helo', { helo: cmd.host });
    const host = typeof o?.options.host === 'string' && o.options.host ? o.options.host : cmd.host;
    const list = cmd.verb === 'EHLO' ? this.pickExtensions(o?.options.extensions, defaults) : [];
    this.helo = { verb: cmd.verb, host };
    this.announced = keywords(list);
    this.send(reply(250, null, [this.opts.hostname, ...list]));
  }

  /** The helo hook's `extensions` replace the list when they are valid keyword lines. */
  private pickExtensions(given: unknown, defaults: string[]): string[] {
    if (!Array.isArray(given)) return defaults;
    return given.filter((x): x is string => typeof x === 'string' && EXTENSION_LINE.test(x));
  }

  // -------------------------------------------------------------------------------------------
  // MAIL / RCPT / RSET

  private async onMail(cmd: Extract<Command, { verb: 'MAIL' }>): Promise<void> {
    const limits = this.server.limits;
    if (!this.helo) return this.protocolError(REPLIES.needHelo);
    if (this.tx) return this.protocolError(REPLIES.nestedMail);
    if (this.shuttingDown) return this.closeLocal('shutdown', REPLIES.shuttingDown);
    if (limitReached(this.transactions, limits.messages)) return this.closeLocal('too many messages', REPLIES.tooManyMessages);
    if (unannouncedParam(cmd.params, this.announced) !== null) return this.protocolError(REPLIES.unsupportedParam);
    const sender = cmd.path.mailbox;
    if (cmd.mail.size !== undefined && cmd.mail.size > limits.maxsize) return this.refuseMail(REPLIES.tooBigAtMail, sender);
    if (!this.opts.ingress.hasSpace()) return this.refuseMail(REPLIES.noSpace, sender);
    const o = await this.runHook('mailfrom', {
      arguments: { sender, address: { ...cmd.path.address }, params: { ...cmd.params } },
      connection: this.connection(),
      transaction: { id: this.txid, recipients: [] },
      context: this.context,
    });
    if (this.isClosed()) return;
    if (o && o.action !== 'Accept') return this.refuse(o, 'mailfrom', { sender });
    const rewritten = typeof o?.options.sender === 'string' ? o.options.sender : null;
    const address = rewritten === null ? cmd.path.address : splitAddress(rewritten);
    this.tx = new Transaction(this.txid, rewritten ?? sender, address, cmd.params, cmd.mail);
    this.transactions++;
    this.send(customAccept(o) ?? REPLIES.senderOk);
  }

  private refuseMail(r: SmtpReply, sender: string): void {
    this.logRefusal('mailfrom', r, { sender });
    this.send(r);
  }

  private async onRcpt(cmd: Extract<Command, { verb: 'RCPT' }>): Promise<void> {
    const tx = this.tx;
    if (!tx) return this.protocolError(REPLIES.needMail);
    if (tx.content === 'bdat') return this.protocolError(REPLIES.rcptAfterBdat);
    const recipient = cmd.path.mailbox;
    if (cmd.path.utf8 && !tx.mail.smtputf8) return this.protocolError(REPLIES.needUtf8); // RFC 6531 §3.5
    if (unannouncedParam(cmd.params, this.announced) !== null) return this.protocolError(REPLIES.unsupportedParam);
    if (limitReached(tx.recipients.length, this.server.limits.recipients)) {
      return this.refuseRcpt(REPLIES.tooManyRecipients, recipient); // RFC 5321 §4.5.3.1.10
    }
    const transportid = this.server.transport;
    const o = await this.runHook('rcptto', {
      arguments: { recipient, address: { ...cmd.path.address }, params: { ...cmd.params }, transportid },
      connection: this.connection(),
      transaction: tx.info(),
      context: this.context,
    });
    if (this.isClosed()) return;
    if (o && o.action !== 'Accept') return this.refuse(o, 'rcptto', { recipient });
    const rewritten = typeof o?.options.recipient === 'string' ? o.options.recipient : null;
    tx.recipients.push({
      recipient: rewritten ?? recipient,
      address: rewritten === null ? cmd.path.address : splitAddress(rewritten),
      params: cmd.params,
      transportid: typeof o?.options.transportid === 'string' ? o.options.transportid : transportid,
      rcpt: cmd.rcpt,
    });
    this.send(customAccept(o) ?? REPLIES.recipientOk);
  }

  private refuseRcpt(r: SmtpReply, recipient: string): void {
    this.logRefusal('rcptto', r, { recipient });
    this.send(r);
  }

  private onRset(): void {
    this.resetTx();
    this.send(REPLIES.resetOk);
  }

  /** Forget the transaction; the next one gets a new id. */
  private resetTx(): void {
    if (this.tx) this.txid = this.opts.newId();
    this.tx = null;
    this.data = null;
    this.bdat = null;
  }

  // -------------------------------------------------------------------------------------------
  // DATA and BDAT

  private onDataCommand(): void {
    const tx = this.tx;
    if (!tx) return this.protocolError(REPLIES.needMail);
    if (tx.content === 'bdat') return this.protocolError(REPLIES.mixedData);
    if (tx.recipients.length === 0) return this.protocolError(REPLIES.needRcpt);
    this.send(REPLIES.startData);
    this.data = new DataReader(this.server.limits.maxsize);
    this.setMode('data');
    const rest = this.lines.takeRest();
    if (rest.length) this.feedData(rest);
  }

  private feedData(chunk: Buffer): void {
    const rest = this.data?.feed(chunk);
    if (rest === null || rest === undefined) return;
    this.endBody('data', rest);
  }

  /** The body (or a BDAT chunk) is complete: hand over to the pump, keep what follows. */
  private endBody(kind: 'data' | 'bdat', rest: Buffer): void {
    this.bodyDone = kind;
    this.setMode('busy');
    if (rest.length) this.lines.push(rest);
    void this.pump();
  }

  private onBdat(cmd: Extract<Command, { verb: 'BDAT' }>): void {
    const error = this.bdatError();
    let reader: BdatReader;
    if (error) {
      reader = new BdatReader(0);
      reader.begin(cmd.size, true); // RFC 3030 §2: the announced bytes are consumed, never commands
    } else {
      const tx = this.tx as Transaction;
      tx.content = 'bdat';
      reader = tx.bdat ??= new BdatReader(this.server.limits.maxsize);
      reader.begin(cmd.size);
    }
    this.bdat = { reader, last: cmd.last, error };
    this.setMode('bdat');
    this.feedBdat(this.lines.takeRest());
  }

  private bdatError(): SmtpReply | null {
    if (!this.announced.has('CHUNKING')) return this.helo ? REPLIES.notImplemented : REPLIES.needEhlo;
    if (!this.tx) return REPLIES.needMail;
    if (this.tx.recipients.length === 0) return REPLIES.needRcpt;
    return null;
  }

  private feedBdat(chunk: Buffer): void {
    const rest = this.bdat?.reader.feed(chunk);
    if (rest === null || rest === undefined) return;
    this.endBody('bdat', rest);
  }

  private async finishBody(): Promise<void> {
    const kind = this.bodyDone;
    this.bodyDone = null;
    if (kind === 'data') await this.endData();
    else await this.endBdatChunk();
    if (this.mode === 'busy') this.setMode('command');
  }

  private async endData(): Promise<void> {
    const reader = this.data as DataReader;
    const tx = this.tx as Transaction;
    this.data = null;
    const status = reader.status();
    if (status !== 'ok') return this.refuseBody(status, tx, reader.size);
    await this.endOfMessage(tx, reader);
  }

  private async endBdatChunk(): Promise<void> {
    const chunk = this.bdat as BdatChunk;
    this.bdat = null;
    if (chunk.error) {
      this.resetTx(); // the transaction failed; later pipelined chunks are discarded (RFC 3030 §2)
      return this.protocolError(chunk.error);
    }
    const tx = this.tx as Transaction;
    if (chunk.last) chunk.reader.finish();
    const status = chunk.reader.status();
    if (status !== 'ok') return this.refuseBody(status, tx, chunk.reader.size);
    if (!chunk.last) return this.send(reply(250, [2, 0, 0], [`${chunk.reader.size} octets received`]));
    await this.endOfMessage(tx, chunk.reader);
  }

  private refuseBody(status: Exclude<BodyStatus, 'ok'>, tx: Transaction, size: number): void {
    const r = status === 'tooBig' ? REPLIES.tooBig : REPLIES.bareEolData;
    if (status === BAD_EOL) this.opts.log.warn({ connection: this.id, transaction: tx.id, remoteip: this.remoteip }, 'message with bare LF or CR refused (possible SMTP smuggling)');
    this.logTransaction(tx, size, [], 'refused', r.code);
    this.resetTx();
    this.send(r);
  }

  // -------------------------------------------------------------------------------------------
  // End of message: trace header, loop check, eod hook, commit

  private async endOfMessage(tx: Transaction, body: { body(prefix?: Buffer): Buffer }): Promise<void> {
    const ts = Date.now();
    const received = buildReceived({
      helo: this.helo?.host ?? '',
      verb: this.helo?.verb ?? 'HELO',
      remoteip: this.remoteip,
      remoteptr: this.remoteptr,
      hostname: this.opts.hostname,
      tls: this.tlsInfo !== undefined,
      auth: this.authInfo !== undefined,
      smtputf8: tx.mail.smtputf8,
      id: tx.id,
      recipient: tx.recipients.length === 1 ? tx.recipients[0].recipient : undefined,
      ts,
    });
    const msg = body.body(received);
    this.resetTx();
    // RFC 5321 §6.3: loop detection; our own Received field counts as a hop.
    if (countReceived(msg, received.length) + 1 > this.server.limits.maxhops) {
      this.logTransaction(tx, msg.length, [], 'refused', REPLIES.tooManyHops.code);
      return this.send(REPLIES.tooManyHops);
    }
    const r = await this.decide(tx, msg, ts);
    if (r) this.sendFinal(r);
  }

  /** Run the eod hook (or queue every recipient) and commit; the reply, or null when closed. */
  private async decide(tx: Transaction, msg: Buffer, ts: number): Promise<SmtpReply | null> {
    const collector = new EntryCollector(tx, this.opts.serverid, ts);
    let o: HookOutcome | null = null;
    if (this.hasHook('eod')) {
      o = await this.runEod(tx, msg, collector, ts);
      if (this.isClosed()) return null;
      if (o && o.action !== 'Accept') {
        this.logTransaction(tx, msg.length, [], o.action, o.code);
        return this.refuseEod(o);
      }
      if (collector.entries.length === 0) {
        this.logTransaction(tx, msg.length, [], 'discarded', 250);
        return customAccept(o) ?? REPLIES.ok;
      }
    } else {
      for (const r of tx.recipients) collector.add({ sender: tx.sender, recipient: r.recipient, transportid: r.transportid, options: {}, body: msg });
    }
    return this.commit(tx, collector, msg.length, o);
  }

  private runEod(tx: Transaction, msg: Buffer, collector: EntryCollector, ts: number): Promise<HookOutcome | null> {
    const mail = new EodMail(msg, { onQueue: (req) => collector.add(req), resolveKey: this.rt.resolveKey });
    return this.runHook('eod', {
      arguments: { mail, metadata: {} },
      connection: this.connection(),
      transaction: merged(tx.info(), { ts: ts / 1000 }),
      context: this.context,
    });
  }

  private refuseEod(o: HookOutcome): SmtpReply {
    const r = outcomeReply(o, 'Rejected');
    if (o.disconnect) this.closeAfter = true;
    return r;
  }

  /** The end-of-message reply; a 421 (or a hook's `disconnect`) closes the connection. */
  private sendFinal(r: SmtpReply): void {
    const close = this.closeAfter || r.code === 421;
    this.closeAfter = false;
    if (close) return this.closeLocal('eod', r);
    this.send(r);
  }

  private async commit(tx: Transaction, collector: EntryCollector, size: number, o: HookOutcome | null): Promise<SmtpReply | null> {
    if (this.isClosed()) return null; // the client is gone and will retry: do not queue a duplicate
    const queueids = collector.entries.map((e) => formatQueueId(e.id));
    this.busy = true;
    try {
      await this.opts.ingress.commit(collector.transaction(this.receivedFrom()));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const r = e.code === 'SPOOL_FULL' ? REPLIES.noSpace : REPLIES.commitFailed;
      this.opts.log.error({ connection: this.id, transaction: tx.id, err: e.message, code: e.code }, 'queueing failed');
      this.logTransaction(tx, size, [], 'failed', r.code);
      return r;
    } finally {
      this.busy = false;
    }
    this.logTransaction(tx, size, queueids, 'queued', 250);
    return customAccept(o) ?? reply(250, [2, 0, 0], [`Ok: queued as ${tx.id}`]);
  }

  private receivedFrom(): ReceivedFrom {
    const p = this.opts.peer;
    return { remoteip: this.remoteip, remoteport: p.remoteport, localip: p.localip, localport: p.localport, helo: this.helo?.host ?? '', tls: this.tlsInfo !== undefined, authuser: this.authInfo?.username };
  }

  // -------------------------------------------------------------------------------------------
  // STARTTLS and implicit TLS

  private onStartTls(): void {
    if (this.tlsInfo) return this.protocolError(REPLIES.tlsActive);
    if (!this.announced.has('STARTTLS')) return this.protocolError(this.helo ? REPLIES.notImplemented : REPLIES.needEhlo);
    this.send(REPLIES.startTls);
    this.flush();
    // RFC 3207 §5: plaintext pipelined after STARTTLS could be injected by an attacker: drop it.
    const junk = this.lines.takeRest();
    if (junk.length) this.opts.log.warn({ connection: this.id, remoteip: this.remoteip, bytes: junk.length }, 'plaintext pipelined after STARTTLS discarded');
    this.startTls(() => {
      this.setMode('command');
      void this.pump();
    });
  }

  private startTls(then: () => void): void {
    const ctx = this.rt.secureContext();
    if (!ctx) {
      this.opts.log.error({ connection: this.id, serverid: this.opts.serverid }, 'TLS requested but the server has no certificate');
      this.closeInfo = { by: 'local', reason: 'no certificate' };
      this.socket.destroy();
      return;
    }
    const raw = this.socket;
    this.detach(raw);
    raw.pause();
    const sock = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: ctx,
      SNICallback: (name, cb) => cb(null, this.rt.secureContext(name) ?? ctx),
    });
    this.socket = sock;
    this.attach(sock);
    this.armedMs = -1;
    this.setMode('tls');
    sock.once('secure', () => this.onSecure(sock, then));
  }

  private onSecure(sock: tls.TLSSocket, then: () => void): void {
    if (this.isClosed()) return;
    const protocol = sock.getProtocol() ?? '';
    if (TLS_ORDER.indexOf(protocol) < TLS_ORDER.indexOf(this.server.tls.minversion)) {
      this.closeInfo = { by: 'local', reason: 'TLS version below minimum', error: { reason: protocol, type: 'tls' } };
      sock.destroy();
      return;
    }
    const sni = (sock as unknown as { servername?: string | false }).servername;
    this.tlsInfo = { protocol, cipher: sock.getCipher()?.name ?? '', sni: sni || undefined };
    // RFC 3207 §4.2: forget everything learnt before TLS (EHLO, transaction, authentication).
    this.helo = null;
    this.announced = NO_EXTENSIONS;
    this.authInfo = undefined;
    this.resetTx();
    then();
  }

  // -------------------------------------------------------------------------------------------
  // AUTH (RFC 4954; PLAIN RFC 4616; LOGIN)

  private onAuth(cmd: Extract<Command, { verb: 'AUTH' }>): void | Promise<void> {
    const a = this.server.auth;
    if (!this.hasHook('auth') || a.mechanisms.length === 0) return this.protocolError(REPLIES.notImplemented);
    if (a.requiretls && !this.tlsInfo) return this.protocolError(REPLIES.authRequiresTls);
    if (!this.helo) return this.protocolError(REPLIES.needEhlo);
    if (!this.announced.has('AUTH')) return this.protocolError(REPLIES.notImplemented);
    if (this.authInfo) return this.protocolError(REPLIES.authAlready);
    if (this.tx) return this.protocolError(REPLIES.authInTransaction);
    const mech = cmd.mechanism;
    if (mech !== 'PLAIN' && mech !== 'LOGIN') return this.protocolError(REPLIES.authMechanism);
    if (!a.mechanisms.includes(mech)) return this.protocolError(REPLIES.authMechanism);
    if (mech === 'PLAIN') return cmd.initial === undefined ? this.challenge({ mechanism: 'PLAIN' }, '') : this.authPlain(cmd.initial);
    if (cmd.initial === undefined) return this.challenge({ mechanism: 'LOGIN' }, LOGIN_USERNAME_CHALLENGE);
    const username = decodeBase64Text(cmd.initial);
    if (username === null) return this.protocolError(REPLIES.authDecode);
    return this.challenge({ mechanism: 'LOGIN', username }, LOGIN_PASSWORD_CHALLENGE);
  }

  private challenge(state: AuthState, text: string): void {
    this.authState = state;
    this.lines.maxLength = Math.max(AUTH_LINE_MAX, this.server.limits.linelength);
    this.send(reply(334, null, [text]));
    this.setMode('auth');
  }

  private onAuthLine(line: LineResult): void | Promise<void> {
    const state = this.authState as AuthState;
    this.authState = null;
    this.lines.maxLength = this.server.limits.linelength;
    this.setMode('command');
    if (line === TOO_LONG) return this.protocolError(REPLIES.lineTooLong);
    if (line === BAD_EOL || line === null) return this.protocolError(REPLIES.bareEolCommand);
    const text = line.toString('latin1').trim();
    if (text === '*') return this.protocolError(REPLIES.authCancelled);
    if (state.mechanism === 'PLAIN') return this.authPlain(text);
    const value = decodeBase64Text(text);
    if (value === null) return this.protocolError(REPLIES.authDecode);
    if (state.username === undefined) return this.challenge({ mechanism: 'LOGIN', username: value }, LOGIN_PASSWORD_CHALLENGE);
    return this.authDecide('LOGIN', state.username, value);
  }

  private authPlain(b64: string): void | Promise<void> {
    const creds = decodePlain(b64);
    if (!creds) return this.protocolError(REPLIES.authDecode);
    return this.authDecide('PLAIN', creds.username, creds.password);
  }

  private async authDecide(mechanism: 'PLAIN' | 'LOGIN', username: string, password: string): Promise<void> {
    const o = await this.runHook('auth', { arguments: { mechanism, username, password }, connection: this.connection(), context: this.context });
    if (this.isClosed() || !o) return;
    if (o.action !== 'Accept') {
      this.refuse(o, 'auth', { username, mechanism });
      return this.countError(); // failed logins count towards limits.errors (password guessing)
    }
    this.authInfo = { mechanism, username: typeof o.options.username === 'string' ? o.options.username : username };
    this.send(customAccept(o) ?? REPLIES.authOk);
  }

  // -------------------------------------------------------------------------------------------
  // Close, logs and the disconnect hook

  private logTransaction(tx: Transaction, size: number, queue: string[], action: string, code: number): void {
    if (!this.opts.log.isLevelEnabled('info')) return;
    this.opts.log.info(
      { connection: this.id, transaction: tx.id, serverid: this.opts.serverid, sender: tx.sender, recipients: tx.recipients.map((r) => r.recipient), size, queue, action, code },
      'smtp transaction',
    );
  }

  private logClose(): void {
    if (!this.opts.log.isLevelEnabled('info')) return;
    const p = this.opts.peer;
    const c = this.closeInfo as CloseInfo;
    this.opts.log.info(
      {
        connection: this.id,
        serverid: this.opts.serverid,
        remoteip: this.remoteip,
        remoteport: p.remoteport,
        localip: p.localip,
        localport: p.localport,
        proxyip: p.proxyip,
        tls: this.tlsInfo?.protocol,
        cipher: this.tlsInfo?.cipher,
        auth: this.authInfo?.username,
        durationMs: Date.now() - this.startedAt,
        transactions: this.transactions,
        commands: this.commands,
        errors: this.errors,
        close: c.by,
        reason: c.reason,
        error: c.error?.reason,
      },
      'smtp connection closed',
    );
  }

  private async runDisconnect(): Promise<void> {
    if (!this.hasHook('disconnect')) return;
    const c = this.closeInfo as CloseInfo;
    const last = this.lastReply;
    const args: DisconnectArguments = {
      close: c.by,
      reply: last ? { code: last.code, enhanced: last.enhanced ?? undefined, reason: last.lines.join('\n') } : undefined,
      error: c.error,
    };
    try {
      await this.rt.hooks.run(this.opts.serverid, 'disconnect', { arguments: args, connection: this.connection(), transaction: this.tx?.info(), context: this.context });
    } catch (err) {
      this.opts.log.error({ connection: this.id, err: (err as Error).message }, 'disconnect hook failed');
    }
  }
}
