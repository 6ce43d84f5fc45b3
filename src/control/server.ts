/**
 * The control socket (halon-api.md §2, §3): Halon's binary protocol on a Unix socket, and
 * optionally on TCP with (mutual) TLS.
 *
 * Inputs: `environment.controlsocket` of smtpd.yaml, the startup pki (TLS key pair by id), the
 * daemon's `ControlContext`, a logger.
 * Behaviour:
 * - Unix socket at `path`: the folder is created; a stale socket file left by a crash is
 *   removed, but a socket another process still listens on, or a file that is not a socket,
 *   is never touched (listen fails instead); then `chmod` (octal string) and `group` (name or
 *   number) are applied. Without `chmod` the mode follows the umask. The file is removed on
 *   close.
 * - TCP on `port`/`address` when configured: with `tls.cert` it speaks TLS with that pki key
 *   pair; with `tls.clientcerts` a client must present one of those certificates (or one
 *   issued by one of them), otherwise the connection is closed after the handshake.
 * - Per connection, requests are decoded by framing.ts and answered strictly in order, one at
 *   a time (the socket is paused while a handler runs, so a client cannot queue unbounded
 *   work). A malformed or oversize body or a refused command gets an 'E' reply and the
 *   connection goes on; bad version bytes or an unknown command get an 'E' reply and the
 *   connection is closed, because the rest of its byte stream can no longer be framed.
 * Errors: `listen` rejects when a socket cannot be set up. Handler failures never reach the
 * socket layer: a `ControlError` is sent as the 'E' text, anything else as "internal error"
 * with the details in the log (a peer sees bland text; the log gets details).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { PkiEntry, StartupConfig } from '../config/types';
import { COMMANDS, commandByLetter, type CommandName } from './commands';
import { ControlError, type ControlContext } from './context';
import { encodeReply, RequestDecoder, type BodyKind } from './framing';
import { HANDLERS, type HandlerEnv } from './handlers';
import { decodeMessage, encodeMessage, findPackageFile, MalformedMessageError } from './schema';
import { parseVersion, type ProcessFigures } from './stats';

export type ControlSocketConfig = StartupConfig['environment']['controlsocket'];

/** The log methods used here (pino's Logger fits). */
export interface ControlLogger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

export interface ControlServerOptions {
  socket: ControlSocketConfig;
  /** Key pairs by pki id (startup pki), for `tls.cert`. */
  pki?: ReadonlyMap<string, PkiEntry>;
  context: ControlContext;
  log: ControlLogger;
  /** Largest request body in bytes; default 64 MiB (a queue import carries a whole message). */
  maxBody?: number;
}

export const DEFAULT_MAX_BODY = 64 * 1024 * 1024;
/** How long a probe of an existing socket file may take before it counts as in use. */
const PROBE_MS = 1000;

function bodyKind(letter: string): BodyKind | undefined {
  const name = commandByLetter(letter);
  if (!name) return undefined;
  return 'request' in COMMANDS[name] ? 'body' : 'none';
}

function packageVersion(): ProcessFigures['version'] {
  try {
    const pkg = JSON.parse(fs.readFileSync(findPackageFile('package.json'), 'utf8')) as { version?: string };
    return parseVersion(pkg.version ?? '');
  } catch {
    return { major: 0, minor: 0, patch: 0 };
  }
}

// ---------------------------------------------------------------------------------------------
// Unix socket file handling

/** True when some process accepts connections on the socket file. */
function socketInUse(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect({ path: file });
    const done = (live: boolean) => {
      clearTimeout(timer);
      probe.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => done(true), PROBE_MS);
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
  });
}

async function prepareSocketPath(file: string): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  let st: fs.Stats;
  try {
    st = await fs.promises.lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new Error(`${file} exists and is not a socket; not replacing it`);
  if (await socketInUse(file)) throw new Error(`${file} is in use by another process`);
  await fs.promises.unlink(file);
}

/** A group name or number → gid (Node.js has no getgrnam; /etc/group is the source). */
export function groupId(group: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(group)) return Number(group);
  const text = fs.readFileSync(groupFile, 'utf8');
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`group "${group}" not found in ${groupFile}`);
}

function applyPermissions(file: string, socket: ControlSocketConfig): void {
  if (socket.chmod !== undefined) {
    if (!/^0?[0-7]{3}$/.test(socket.chmod)) throw new Error(`controlsocket.chmod "${socket.chmod}" is not an octal mode such as "0660"`);
    fs.chmodSync(file, Number.parseInt(socket.chmod, 8));
  }
  if (socket.group !== undefined) fs.chownSync(file, -1, groupId(socket.group));
}

// ---------------------------------------------------------------------------------------------
// TLS

function tlsOptions(socket: ControlSocketConfig, pki: ReadonlyMap<string, PkiEntry> | undefined): { options: tls.TlsOptions; fingerprints: Set<string> } {
  const id = socket.tls?.cert;
  if (!id) throw new Error('environment.controlsocket.tls.cert is required for a TLS control socket');
  const entry = pki?.get(id);
  if (!entry?.privatekey || !entry.certificate) throw new Error(`pki id "${id}" of controlsocket.tls.cert has no key pair`);
  const clientcerts = socket.tls?.clientcerts ?? [];
  const fingerprints = new Set(clientcerts.map((c) => new X509Certificate(c.data).fingerprint256));
  return {
    options: {
      key: entry.privatekey.data,
      cert: entry.certificate.data,
      minVersion: 'TLSv1.2',
      ...(clientcerts.length ? { requestCert: true, rejectUnauthorized: false, ca: clientcerts.map((c) => c.data) } : {}),
    },
    fingerprints,
  };
}

/** A listed certificate itself, or a chain that verified against the listed ones. */
function clientAccepted(sock: tls.TLSSocket, fingerprints: Set<string>): boolean {
  if (fingerprints.size === 0) return true;
  if (sock.authorized) return true;
  const peer = sock.getPeerCertificate();
  return Boolean(peer && 'fingerprint256' in peer && fingerprints.has(peer.fingerprint256));
}

// ---------------------------------------------------------------------------------------------

export class ControlServer {
  private readonly servers: net.Server[] = [];
  private readonly connections = new Set<net.Socket>();
  private readonly env: HandlerEnv;
  private readonly maxBody: number;
  private unixPath: string | undefined;
  private tcpAddress: net.AddressInfo | undefined;

  constructor(private readonly opts: ControlServerOptions) {
    const version = packageVersion();
    this.env = { ctx: opts.context, process: () => ({ pid: process.pid, runtime: process.uptime(), version }) };
    this.maxBody = opts.maxBody ?? DEFAULT_MAX_BODY;
  }

  async listen(): Promise<void> {
    const { socket } = this.opts;
    await prepareSocketPath(socket.path);
    const unix = net.createServer((s) => this.accept(s));
    await listenOn(unix, { path: socket.path });
    this.servers.push(unix);
    this.unixPath = socket.path;
    applyPermissions(socket.path, socket);
    if (socket.port !== undefined) await this.listenTcp(socket);
  }

  private async listenTcp(socket: ControlSocketConfig): Promise<void> {
    let server: net.Server;
    if (socket.tls) {
      const { options, fingerprints } = tlsOptions(socket, this.opts.pki);
      server = tls.createServer(options, (s) => {
        if (clientAccepted(s, fingerprints)) this.accept(s);
        else {
          this.opts.log.warn({ remoteip: s.remoteAddress }, 'control socket: client certificate refused');
          s.destroy();
        }
      });
      server.on('tlsClientError', (err) => this.opts.log.debug({ err: err.message }, 'control socket: TLS handshake failed'));
      if (fingerprints.size === 0) this.opts.log.warn({}, 'control socket on TCP without client certificates (tls.clientcerts): anyone who reaches the port controls the daemon');
    } else {
      server = net.createServer((s) => this.accept(s));
      this.opts.log.warn({}, 'control socket on TCP without TLS: anyone who reaches the port controls the daemon');
    }
    await listenOn(server, { port: socket.port, host: socket.address ?? '127.0.0.1' });
    this.servers.push(server);
    this.tcpAddress = server.address() as net.AddressInfo;
  }

  addresses(): { path?: string; tcp?: { address: string; port: number } } {
    return {
      ...(this.unixPath ? { path: this.unixPath } : {}),
      ...(this.tcpAddress ? { tcp: { address: this.tcpAddress.address, port: this.tcpAddress.port } } : {}),
    };
  }

  /** Stop listening, drop open control connections, remove the socket file. */
  async close(): Promise<void> {
    for (const c of this.connections) c.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.servers.length = 0;
    if (this.unixPath) {
      await fs.promises.unlink(this.unixPath).catch(() => undefined);
      this.unixPath = undefined;
    }
  }

  private accept(sock: net.Socket): void {
    this.connections.add(sock);
    sock.on('close', () => this.connections.delete(sock));
    sock.on('error', (err) => this.opts.log.debug({ err: err.message }, 'control connection error'));
    new Connection(sock, this.maxBody, (command, body) => this.dispatch(command, body), this.opts.log);
  }

  /** Run one request and return the encoded reply frame. */
  async dispatch(command: string, body: Buffer | undefined): Promise<Buffer> {
    const name = commandByLetter(command) as CommandName;
    const info = COMMANDS[name];
    let request: unknown;
    if ('request' in info) {
      try {
        request = decodeMessage(info.request, body ?? Buffer.alloc(0));
      } catch (err) {
        if (err instanceof MalformedMessageError) return encodeReply('E', `${err.message} for command '${command}'`);
        throw err;
      }
    }
    const started = Date.now();
    try {
      const handler = HANDLERS[name] as (env: HandlerEnv, req: unknown) => unknown;
      const result = await handler(this.env, request);
      const payload = 'raw' in info ? Buffer.from(result as Uint8Array) : 'response' in info ? encodeMessage(info.response, (result ?? {}) as object) : undefined;
      this.opts.log.debug({ command, name, ms: Date.now() - started }, 'control command');
      return encodeReply('+', payload);
    } catch (err) {
      if (err instanceof ControlError) {
        this.opts.log.info({ command, name, reason: err.message }, 'control command refused');
        return encodeReply('E', err.message);
      }
      this.opts.log.error({ command, name, err: (err as Error).stack ?? String(err) }, 'control command failed');
      return encodeReply('E', 'internal error (see the daemon log)');
    }
  }
}

function listenOn(server: net.Server, where: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** One client connection: decode, dispatch one request at a time, reply in order. */
class Connection {
  private readonly decoder: RequestDecoder;
  private busy = false;

  constructor(
    private readonly sock: net.Socket,
    maxBody: number,
    private readonly dispatch: (command: string, body: Buffer | undefined) => Promise<Buffer>,
    private readonly log: ControlLogger,
  ) {
    this.decoder = new RequestDecoder({ bodyKind, maxBody });
    sock.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      this.pump().catch((err: Error) => {
        this.log.error({ err: err.stack ?? String(err) }, 'control connection failed');
        sock.destroy();
      });
    });
  }

  private write(frame: Buffer): void {
    if (!this.sock.destroyed && this.sock.writable) this.sock.write(frame);
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        const ev = this.decoder.next();
        if (ev.kind === 'incomplete') break;
        if (ev.kind === 'error') {
          this.log.info({ reason: ev.reason, fatal: ev.fatal }, 'control request refused');
          this.write(encodeReply('E', ev.reason));
          if (ev.fatal) {
            this.sock.end();
            break;
          }
          continue;
        }
        this.sock.pause();
        this.write(await this.dispatch(ev.command, ev.body));
      }
    } finally {
      this.busy = false;
      if (!this.sock.destroyed) this.sock.resume();
    }
  }
}
