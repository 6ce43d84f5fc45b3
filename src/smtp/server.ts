/**
 * An SMTP virtual server (`servers[]` of type smtp): its listeners, the PROXY protocol gate,
 * the connection limit, and graceful shutdown. Each accepted connection becomes a `Session`.
 *
 * Inputs: the startup settings of the server (listeners, proxyprotocol), a `runtime()` callback
 * called once PER NEW CONNECTION (so a config reload applies to new connections only), the
 * ingress, a logger, the hostname and an id generator.
 * Outputs: `listen()` resolves once every listener is bound (rejects naming address:port);
 * `close(graceMs)` stops accepting, lets transactions finish, then ends sessions with 421.
 * Invariants:
 * - A PROXY header (v1 or v2) is required from, and only accepted from, peers matching
 *   `proxyprotocol`; from anyone else it is just an unknown command.
 * - Implicit-TLS listeners are plain net.Servers whose sockets the session wraps in TLS itself:
 *   the PROXY header precedes the TLS handshake, and the certificate comes from the runtime
 *   snapshot of the connection (reloadable) rather than from a context fixed at listen().
 * - Connections over limits.connections get "421 4.7.0 Too many connections" and are closed.
 */
import net from 'node:net';
import type { ListenerConfig, StartupServer } from '../config/types';
import type { Ingress } from '../model/ingress';
import type { Logger } from '../util/log';
import { encodeReply } from './codec';
import { parseProxyHeader, type ProxyHeader } from './proxy';
import { REPLIES, type SmtpReply } from './replies';
import { Session, type PeerInfo, type ServerRuntime } from './session';
import { merged } from '../util/objects';

export type { ServerRuntime, PeerInfo } from './session';

export interface SmtpServerOptions {
  startup: StartupServer;
  runtime: () => ServerRuntime;
  ingress: Ingress;
  log: Logger;
  hostname: string;
  newId: () => string;
}

interface Bound {
  listener: ListenerConfig;
  server: net.Server;
}

/** PROXY v2 can carry 16 + 65535 bytes; nothing longer is a header. */
const PROXY_MAX = 16 + 65535;
const REFUSE_LINGER_MS = 2000;

function noop(): void {}

/** "::ffff:192.0.2.1" (a v4 peer on a dual-stack socket) → "192.0.2.1". */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && net.isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

/** Build the allow-list of PROXY senders; throws on an entry that is not an IP or network. */
export function proxyAllowList(entries: readonly string[]): net.BlockList | null {
  if (entries.length === 0) return null;
  const list = new net.BlockList();
  for (const entry of entries) {
    const [addr, prefix] = entry.split('/');
    const family = net.isIPv4(addr) ? 'ipv4' : net.isIPv6(addr) ? 'ipv6' : null;
    if (!family) throw new Error(`proxyprotocol: "${entry}" is not an IP address or network`);
    if (prefix === undefined) list.addAddress(addr, family);
    else list.addSubnet(addr, Number(prefix), family);
  }
  return list;
}

function allowed(list: net.BlockList, ip: string): boolean {
  return list.check(ip, net.isIPv4(ip) ? 'ipv4' : 'ipv6');
}

function encode(r: SmtpReply): string {
  return encodeReply(r.code, r.enhanced, r.lines);
}

/** The local address and port of a listener bound to one address. */
interface LocalEnd {
  ip: string;
  port: number;
}

export class SmtpServer {
  private readonly bound: Bound[] = [];
  private readonly sessions = new Set<Session>();
  private readonly pendingProxy = new Set<net.Socket>();
  private readonly proxyList: net.BlockList | null;
  private connectionsTotal = 0;
  private closing = false;
  private onDrained: (() => void) | null = null;

  constructor(private readonly opts: SmtpServerOptions) {
    this.proxyList = proxyAllowList(opts.startup.proxyprotocol);
  }

  /** Bind every listener; on any failure the ones already bound are closed again. */
  async listen(): Promise<void> {
    const results = await Promise.allSettled(this.opts.startup.listeners.map((l) => this.bind(l)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (!failed) return;
    await Promise.all(this.bound.map((b) => new Promise<void>((resolve) => b.server.close(() => resolve()))));
    this.bound.length = 0;
    throw failed.reason;
  }

  private bind(listener: ListenerConfig): Promise<void> {
    // A listener bound to one address knows every connection's local end without asking the
    // kernel (getsockname, once per connection); a wildcard listener still asks.
    let local: LocalEnd | undefined;
    const server = net.createServer({ noDelay: true }, (sock) => this.onConnection(sock, listener, local));
    const where = `${listener.address ?? '*'}:${listener.port}`;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new Error(`SMTP server "${this.opts.startup.id}" cannot listen on ${where}: ${err.code ?? err.message}`));
      };
      server.once('error', onError);
      server.listen({ port: listener.port, host: listener.address, backlog: listener.backlog }, () => {
        server.removeListener('error', onError);
        const a = server.address() as net.AddressInfo;
        if (a.address !== '0.0.0.0' && a.address !== '::') local = { ip: normalizeIp(a.address), port: a.port };
        server.on('error', (err) => this.opts.log.error({ serverid: this.opts.startup.id, listener: where, err: err.message }, 'smtp listener error'));
        this.bound.push({ listener, server });
        resolve();
      });
    });
  }

  /** The bound addresses (tests listen on port 0 and read the real port here). */
  addresses(): Array<{ listenerId?: string; address: string; port: number }> {
    return this.bound.map(({ listener, server }) => {
      const a = server.address() as net.AddressInfo;
      return { listenerId: listener.id, address: a.address, port: a.port };
    });
  }

  stats(): { connections: number; connectionsTotal: number } {
    return { connections: this.sessions.size + this.pendingProxy.size, connectionsTotal: this.connectionsTotal };
  }

  /**
   * Stop accepting; idle sessions get 421 4.3.2 at once, sessions in a transaction may finish it
   * within `graceMs`, then every remaining session gets 421 4.3.2 and is closed.
   */
  async close(graceMs = 10_000): Promise<void> {
    this.closing = true;
    const closed = this.bound.map((b) => new Promise<void>((resolve) => b.server.close(() => resolve())));
    for (const sock of this.pendingProxy) sock.destroy();
    for (const s of this.sessions) s.shutdown();
    if (!(await this.waitDrained(graceMs))) {
      for (const s of this.sessions) s.forceClose();
      await this.waitDrained(graceMs + 5000);
    }
    // Every socket is destroyed by now or within its linger time; bound the wait all the same.
    await Promise.race([Promise.all(closed), new Promise<void>((resolve) => setTimeout(resolve, 5000).unref())]);
    this.bound.length = 0;
  }

  /** Resolves true once no session is left, false after `ms`. */
  private waitDrained(ms: number): Promise<boolean> {
    if (this.sessions.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.onDrained = null;
        resolve(false);
      }, ms);
      this.onDrained = () => {
        clearTimeout(timer);
        this.onDrained = null;
        resolve(true);
      };
    });
  }

  // -------------------------------------------------------------------------------------------

  private onConnection(sock: net.Socket, listener: ListenerConfig, local: LocalEnd | undefined): void {
    sock.on('error', noop); // until a session owns the socket
    if (this.closing || !sock.remoteAddress) return void sock.destroy();
    const rt = this.opts.runtime();
    const limit = rt.server.limits.connections;
    if (Number.isFinite(limit) && limit > 0 && this.stats().connections >= limit) return this.refuse(sock, REPLIES.tooManyConnections, 'too many connections');
    this.connectionsTotal++;
    const implicitTls = listener.id !== undefined && rt.server.tls.implicit.includes(listener.id);
    const peer: PeerInfo = {
      remoteip: normalizeIp(sock.remoteAddress),
      remoteport: sock.remotePort ?? 0,
      localip: local ? local.ip : normalizeIp(sock.localAddress ?? ''),
      localport: local ? local.port : (sock.localPort ?? 0),
    };
    if (this.proxyList && allowed(this.proxyList, peer.remoteip)) return this.readProxy(sock, rt, implicitTls, peer);
    this.startSession(sock, rt, implicitTls, peer);
  }

  /** Answer a connection we will not serve, then close it. */
  private refuse(sock: net.Socket, r: SmtpReply, why: string): void {
    this.opts.log.info({ serverid: this.opts.startup.id, remoteip: sock.remoteAddress, reason: why }, 'smtp connection refused');
    sock.end(encode(r));
    const timer = setTimeout(() => sock.destroy(), REFUSE_LINGER_MS);
    sock.once('close', () => clearTimeout(timer));
  }

  /** Read a PROXY v1/v2 header (required from allowed peers), then start the session. */
  private readProxy(sock: net.Socket, rt: ServerRuntime, implicitTls: boolean, real: PeerInfo): void {
    this.pendingProxy.add(sock);
    let buf: Buffer = Buffer.alloc(0);
    const finish = (): void => {
      sock.removeListener('data', onData);
      sock.removeListener('close', finish);
      clearTimeout(timer);
      this.pendingProxy.delete(sock);
    };
    const fail = (why: string): void => {
      finish();
      this.refuse(sock, REPLIES.proxyRequired, `PROXY header: ${why}`);
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const r = parseProxyHeader(buf);
      if ('incomplete' in r) return void (buf.length > PROXY_MAX && fail('too long'));
      if ('error' in r) return fail(r.error);
      finish();
      sock.pause();
      this.startSession(sock, rt, implicitTls, applyProxy(real, r.header), buf.subarray(r.consumed));
    };
    const idle = rt.server.timeout.idle;
    const timer = setTimeout(() => fail('timeout'), Number.isFinite(idle) && idle > 0 ? idle * 1000 : 60_000);
    sock.on('data', onData);
    sock.on('close', finish);
  }

  private startSession(sock: net.Socket, rt: ServerRuntime, implicitTls: boolean, peer: PeerInfo, initial?: Buffer): void {
    const session = new Session({
      socket: sock,
      rt,
      serverid: this.opts.startup.id,
      hostname: this.opts.hostname,
      ingress: this.opts.ingress,
      log: this.opts.log,
      newId: this.opts.newId,
      peer,
      implicitTls,
      onClose: (s) => this.onSessionClose(s),
    });
    this.sessions.add(session);
    session.start(initial);
    if (this.closing) session.shutdown();
  }

  private onSessionClose(s: Session): void {
    this.sessions.delete(s);
    if (this.sessions.size === 0) this.onDrained?.();
  }
}

/** The client identity a PROXY header gives; LOCAL/UNKNOWN keep the real connection's. */
function applyProxy(real: PeerInfo, h: ProxyHeader): PeerInfo {
  if (h.command !== 'PROXY' || !h.source || !h.destination) return merged(real, { proxyip: real.remoteip });
  return {
    remoteip: normalizeIp(h.source.address),
    remoteport: h.source.port,
    localip: normalizeIp(h.destination.address),
    localport: h.destination.port,
    proxyip: real.remoteip,
    proxytlv: Object.keys(h.tlvs).length ? h.tlvs : undefined,
  };
}
