/**
 * End-to-end harness: writes a config set into a temp folder, starts the real daemon
 * (bin/halyard-smtpd) as a child process on ephemeral loopback ports, follows its JSON log,
 * and offers small real-socket SMTP helpers. Everything is bounded in time.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../../..');
export const BIN = path.join(ROOT, 'bin');

export interface ConfigSet {
  dir: string;
  smtpd: string;
  app: string;
}

export function tempDir(prefix = 'halyard-e2e-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Write smtpd.yaml / smtpd-app.yaml (and extra files) into a new temp folder. Unless `deliver`
 * is true, an smtpd-suspend.yaml suspending every queue entry is written too (when `files` has
 * none): reception tests then find their entries queued, and nothing tries to reach the
 * Internet.
 */
export function writeConfig(opts: { smtpd?: string; app?: string; files?: Record<string, string>; dir?: string; deliver?: boolean } = {}): ConfigSet {
  const dir = opts.dir ?? tempDir();
  const smtpd = path.join(dir, 'smtpd.yaml');
  const app = path.join(dir, 'smtpd-app.yaml');
  fs.writeFileSync(smtpd, opts.smtpd ?? defaultSmtpd());
  fs.writeFileSync(app, opts.app ?? defaultApp());
  if (!opts.deliver && !opts.files?.['smtpd-suspend.yaml']) fs.writeFileSync(path.join(dir, 'smtpd-suspend.yaml'), 'suspends:\n  - {}\n');
  for (const [name, data] of Object.entries(opts.files ?? {})) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), data);
  }
  return { dir, smtpd, app };
}

export function defaultSmtpd(extra = ''): string {
  return `version: "6.8"
servers:
  - id: default
    listeners:
      - port: 0
        address: 127.0.0.1
environment:
  appconf: smtpd-app.yaml
  hostname: mx.test.example
  controlsocket:
    path: smtpd.ctl
spool:
  path: spool
  fsync: true
${extra}`;
}

export function defaultApp(serverExtra = '', topExtra = ''): string {
  return `version: "6.8"
servers:
  - id: default
    transport: mx
${serverExtra}
transportgroups:
  - id: default
    transports:
      - id: mx
      - id: other
${topExtra}`;
}

export interface LogLine {
  msg?: string;
  level?: string;
  [key: string]: unknown;
}

export class Daemon {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  private waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly proc: ChildProcess,
    readonly config: ConfigSet,
  ) {
    let buf = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.onLine(line);
      }
    });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (c: string) => this.stderr.push(c));
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  }

  private onLine(line: string): void {
    let parsed: LogLine;
    try {
      parsed = JSON.parse(line) as LogLine;
    } catch {
      parsed = { msg: line };
    }
    this.logs.push(parsed);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(parsed)) return true;
      w.resolve(parsed);
      return false;
    });
  }

  /** Resolve with the first log line (past or future) matching `pred`; reject after `ms`. */
  waitForLog(pred: (l: LogLine) => boolean, ms = 10_000): Promise<LogLine> {
    const hit = this.logs.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`log line not seen within ${ms} ms; stderr: ${this.stderr.join('')}`)), ms);
      this.waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) });
    });
  }

  /** Ports of a server's listeners, from its `listening` log line. */
  ports(serverid = 'default'): number[] {
    const l = this.logs.find((x) => x.msg === 'listening' && x.serverid === serverid);
    if (!l) throw new Error(`server ${serverid} is not listening`);
    return (l.listeners as Array<{ port: number }>).map((x) => x.port);
  }

  get port(): number {
    return this.ports()[0];
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), ms);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }
}

/** Start the daemon and wait until it logs `ready` (or exits). */
export async function startDaemon(config: ConfigSet, env: Record<string, string> = {}): Promise<Daemon> {
  const proc = spawn(process.execPath, [path.join(BIN, 'halyard-smtpd'), '-c', config.smtpd], {
    cwd: config.dir,
    env: { ...process.env, HALYARD_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const d = new Daemon(proc, config);
  const ready = d.waitForLog((l) => l.msg === 'ready', 20_000);
  const exited = d.exited.then((r) => {
    throw new Error(`daemon exited early (${r.code ?? r.signal}): ${d.stderr.join('')}`);
  });
  await Promise.race([ready, exited]);
  exited.catch(() => undefined);
  return d;
}

export function run(cmd: string, args: string[], opts: { input?: string; timeout?: number; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: opts.timeout ?? 30_000, cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? ((err as unknown as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

export function which(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(path.join(d, cmd)));
}

/** A minimal line-oriented SMTP client over a real socket, for tests that need exact bytes. */
export class RawSmtp {
  private buf = '';
  private closed = false;
  private waiter: (() => void) | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1', first?: Buffer): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host }, () => {
        if (first) s.write(first);
        resolve(new RawSmtp(s));
      });
      s.once('error', reject);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Read one complete (possibly multi-line) reply; '' if the peer closed first. */
  async reply(ms = 10_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\n/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m[0].length);
        return m[0].replace(/\r\n/g, '\n').trimEnd();
      }
      if (this.closed) return '';
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${ms} ms; buffer: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => (clearTimeout(t), (this.waiter = null), resolve());
      });
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Send a command line (CRLF added) and return the reply. */
  async cmd(line: string): Promise<string> {
    this.socket.write(line + '\r\n');
    return this.reply();
  }

  close(): void {
    this.socket.destroy();
  }

  /** Wait until the server closes the connection. */
  async waitClosed(ms = 10_000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }
}

/** One full transaction over a fresh connection; returns the final reply to the message. */
export async function sendRaw(port: number, from: string, rcpts: string[], data: string): Promise<string> {
  const c = await RawSmtp.connect(port);
  try {
    await c.reply();
    await c.cmd('EHLO client.test');
    const mail = await c.cmd(`MAIL FROM:<${from}>`);
    if (!mail.startsWith('250')) return mail;
    for (const r of rcpts) await c.cmd(`RCPT TO:<${r}>`);
    const d = await c.cmd('DATA');
    if (!d.startsWith('354')) return d;
    c.write(data.replace(/\r?\n/g, '\r\n') + '\r\n.\r\n');
    const res = await c.reply();
    c.write('QUIT\r\n');
    await c.reply().catch(() => '');
    return res;
  } finally {
    c.close();
  }
}

/** Live entries of a spool via the read-only spoolcat tool. */
export async function spoolEntries(config: ConfigSet): Promise<Array<{ id: string; transaction: Record<string, unknown>; entry: Record<string, unknown> }>> {
  const r = await run(process.execPath, [path.join(BIN, 'halyard-spoolcat'), '-c', config.smtpd]);
  if (r.code !== 0) throw new Error(`spoolcat failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

export function message(subject = 'test', body = 'Hello.\n'): string {
  return `From: a@example.com\nTo: b@example.org\nSubject: ${subject}\nMessage-ID: <${Math.random().toString(36).slice(2)}@example.com>\n\n${body}`;
}

/** The message stored for one queue entry, via `halyard-spoolcat --body`. */
export async function spoolBody(config: ConfigSet, id: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(BIN, 'halyard-spoolcat'), '-c', config.smtpd, '--body', id], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`spoolcat --body failed: ${stderr.toString()}`));
      else resolve(stdout);
    });
  });
}

/** `monitor:` block for smtpd.yaml (pass to `defaultSmtpd`): the listener on an ephemeral port. */
export function monitorSmtpd(type: 'http' | 'https' = 'http'): string {
  return `monitor:\n  type: ${type}\n  listener:\n    port: 0\n    address: 127.0.0.1\n`;
}

/** The monitor listener's port, from its `monitor listening` log line. */
export function monitorPort(d: Daemon): number {
  const l = d.logs.find((x) => x.msg === 'monitor listening');
  if (!l) throw new Error('the monitor is not listening');
  return l.port as number;
}

/** Send one framed request (API version 6.6, the command letter, u64 little-endian length + body) and return the '+' payload. */
export function controlRequest(socket: string, letter: string, body: Buffer): Promise<{ status: string; payload: Buffer }> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(socket);
    const chunks: Buffer[] = [];
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(body.length));
    c.on('connect', () => c.write(Buffer.concat([Buffer.from([6, 6]), Buffer.from(letter), len, body])));
    c.on('data', (b) => {
      chunks.push(b);
      const all = Buffer.concat(chunks);
      if (all.length >= 9 && all.length >= 9 + Number(all.readBigUInt64LE(1))) {
        c.end();
        resolve({ status: all.subarray(0, 1).toString(), payload: all.subarray(9, 9 + Number(all.readBigUInt64LE(1))) });
      }
    });
    c.on('error', reject);
    setTimeout(() => (c.destroy(), reject(new Error('no reply'))), 10_000).unref();
  });
}
