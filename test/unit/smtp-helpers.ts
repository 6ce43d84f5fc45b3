/**
 * Test helpers for the SMTP server: a RunningServer with test defaults, fake hooks, a fake
 * ingress, a captured logger, a raw SMTP client over net.Socket/TLS, and a throw-away
 * self-signed certificate. Only loopback addresses; every wait is bounded.
 */
import net from 'node:net';
import tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { ListenerConfig, RunningServer, SmtpPhase } from '../../src/config/types';
import type { HookInput, HookOutcome, LoadedHooks } from '../../src/hooks/runtime';
import type { Ingress } from '../../src/model/ingress';
import type { AcceptedTransaction } from '../../src/model/types';
import { SmtpServer } from '../../src/smtp/server';

export const HOSTNAME = 'mx.test.example';

export function runningServer(over: Partial<Omit<RunningServer, 'limits' | 'timeout' | 'tls' | 'auth' | 'extensions'>> & {
  limits?: Partial<RunningServer['limits']>;
  timeout?: Partial<RunningServer['timeout']>;
  tls?: Partial<RunningServer['tls']>;
  auth?: Partial<RunningServer['auth']>;
  extensions?: Partial<RunningServer['extensions']>;
} = {}): RunningServer {
  return {
    id: 'inbound',
    transport: 'mx',
    hooks: {},
    apikeys: [],
    ...over,
    limits: { connections: 100, messages: 100, recipients: 100, maxsize: 100_000, maxhops: 30, linelength: 512, errors: 10, ...over.limits },
    timeout: { idle: 30, data: 30, ...over.timeout },
    tls: { certs: [], implicit: [], starttls: true, minversion: 'TLSv1.2', ...over.tls },
    auth: { mechanisms: ['PLAIN', 'LOGIN'], requiretls: true, ...over.auth },
    extensions: { pipelining: true, size: true, '8bitmime': true, smtputf8: true, enhancedstatuscodes: true, chunking: true, dsn: true, ...over.extensions },
  };
}

type PhaseImpl<P extends SmtpPhase> = (input: HookInput<P>) => HookOutcome | Promise<HookOutcome>;
export type FakeHookMap = { [P in SmtpPhase]?: PhaseImpl<P> };

export function fakeHooks(impl: FakeHookMap): LoadedHooks {
  return {
    has: (_serverid, phase) => impl[phase] !== undefined,
    run: async (_serverid, phase, input) => (impl[phase] as PhaseImpl<typeof phase>)(input as never),
  };
}

export function accept(options: Record<string, unknown> = {}, code = 250): HookOutcome {
  return { action: 'Accept', code, enhanced: [2, 0, 0], reason: typeof options.reason === 'string' ? [options.reason] : [], disconnect: false, options, source: 'action' };
}

export function refuse(action: 'Reject' | 'Defer', code: number, enhanced: [number, number, number], reason: string, disconnect = false): HookOutcome {
  return { action, code, enhanced, reason: [reason], disconnect: disconnect || code === 421, options: {}, source: 'action' };
}

export class FakeIngress implements Ingress {
  readonly commits: AcceptedTransaction[] = [];
  space = true;
  failWith: NodeJS.ErrnoException | null = null;
  async commit(tx: AcceptedTransaction): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.commits.push(tx);
  }
  hasSpace(): boolean {
    return this.space;
  }
}

export interface CapturedLog {
  log: pino.Logger;
  records: Array<Record<string, unknown>>;
}

export function captureLog(): CapturedLog {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void records.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, records };
}

export interface Harness {
  smtp: SmtpServer;
  port: number;
  ports: Record<string, number>;
  ingress: FakeIngress;
  logs: CapturedLog;
  close(): Promise<void>;
}

let idCounter = 0;
export function testId(): string {
  idCounter++;
  return `00000000-0000-4000-8000-${idCounter.toString(16).padStart(12, '0')}`;
}

export async function startServer(opts: {
  server?: RunningServer;
  hooks?: FakeHookMap;
  proxyprotocol?: string[];
  listeners?: ListenerConfig[];
  secureContext?: (name?: string) => tls.SecureContext | undefined;
} = {}): Promise<Harness> {
  const server = opts.server ?? runningServer();
  const ingress = new FakeIngress();
  const logs = captureLog();
  const hooks = fakeHooks(opts.hooks ?? {});
  const smtp = new SmtpServer({
    startup: { id: server.id, type: 'smtp', listeners: opts.listeners ?? [{ port: 0, address: '127.0.0.1' }], proxyprotocol: opts.proxyprotocol ?? [] },
    runtime: () => ({ server, hooks, secureContext: opts.secureContext ?? (() => undefined) }),
    ingress,
    log: logs.log,
    hostname: HOSTNAME,
    newId: testId,
  });
  await smtp.listen();
  const addrs = smtp.addresses();
  const ports: Record<string, number> = {};
  for (const a of addrs) if (a.listenerId) ports[a.listenerId] = a.port;
  return { smtp, port: addrs[0].port, ports, ingress, logs, close: () => smtp.close(500) };
}

export interface Reply {
  code: number;
  lines: string[];
  /** The text of the last line after the code (and enhanced code, if any). */
  text: string;
}

/** A raw SMTP client: send bytes, read whole (multi-line) replies. */
export class Client {
  private buf = '';
  private waiters: Array<() => void> = [];
  closed = false;
  readonly closedPromise: Promise<void>;
  socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closedPromise = new Promise((resolve) => socket.once('close', () => resolve()));
    this.listen(socket);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host, () => resolve(new Client(s)));
      s.once('error', reject);
    });
  }

  static connectTls(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, servername: 'localhost' }, () => resolve(new Client(s)));
      s.once('error', reject);
    });
  }

  private listen(socket: net.Socket): void {
    socket.on('data', (d: Buffer) => {
      this.buf += d.toString('utf8');
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(s: string | Buffer): void {
    this.socket.write(s);
  }

  /** The next complete reply; rejects after `ms` or when the connection closes first. */
  async read(ms = 3000): Promise<Reply> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = this.take();
      if (r) return r;
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buf)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${ms} ms; unread: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  private take(): Reply | null {
    const lines: string[] = [];
    let pos = 0;
    for (;;) {
      const end = this.buf.indexOf('\r\n', pos);
      if (end < 0) return null;
      const line = this.buf.slice(pos, end);
      pos = end + 2;
      lines.push(line);
      if (line.length === 3 || line[3] === ' ') break;
    }
    this.buf = this.buf.slice(pos);
    const last = lines[lines.length - 1];
    return { code: Number(last.slice(0, 3)), lines: lines.map((l) => l.slice(4)), text: last.slice(4) };
  }

  async cmd(line: string, ms?: number): Promise<Reply> {
    this.send(line + '\r\n');
    return this.read(ms);
  }

  /** Everything unread so far (for "nothing more was answered" checks). */
  pending(): string {
    return this.buf;
  }

  /** Upgrade this connection with STARTTLS (the 220 must already have been read). */
  async startTls(servername = 'localhost'): Promise<tls.TLSSocket> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const t = tls.connect({ socket: plain, rejectUnauthorized: false, servername }, () => resolve(t));
      t.once('error', reject);
    });
    this.socket = secure;
    this.listen(secure);
    return secure;
  }

  end(): void {
    this.socket.end();
  }

  async waitClosed(ms = 3000): Promise<boolean> {
    if (this.closed) return true;
    return Promise.race([this.closedPromise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
  }
}

/** Connect, read the greeting and EHLO. */
export async function ready(port: number, helo = 'client.example'): Promise<Client> {
  const c = await Client.connect(port);
  const g = await c.read();
  if (g.code !== 220) throw new Error(`greeting ${g.code}`);
  const e = await c.cmd(`EHLO ${helo}`);
  if (e.code !== 250) throw new Error(`EHLO ${e.code}`);
  return c;
}

/** Send one message with MAIL/RCPT/DATA; returns the final reply. */
export async function sendMail(c: Client, from: string, to: string[], body: string): Promise<Reply> {
  const m = await c.cmd(`MAIL FROM:<${from}>`);
  if (m.code !== 250) return m;
  for (const r of to) await c.cmd(`RCPT TO:<${r}>`);
  const d = await c.cmd('DATA');
  if (d.code !== 354) return d;
  return c.cmd(`${body}\r\n.`);
}

export interface TestCert {
  key: string;
  cert: string;
  context: tls.SecureContext;
  cleanup(): void;
}

/** A self-signed certificate for CN=localhost, made with openssl in a temporary folder. */
export function makeCert(): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'halyard-smtp-tls-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '2', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  const key = readFileSync(keyFile, 'utf8');
  const cert = readFileSync(certFile, 'utf8');
  return { key, cert, context: tls.createSecureContext({ key, cert, minVersion: 'TLSv1.2' }), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
