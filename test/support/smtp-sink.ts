/**
 * A scriptable in-process SMTP/LMTP sink for client tests, on 127.0.0.1 and an ephemeral port.
 *
 * Inputs (SinkOptions): the greeting, the EHLO extension list, replies per state or per
 * recipient, delays per state, a state at which to drop the connection, LMTP mode, a
 * certificate for STARTTLS (or a broken handshake), a pause before reading message data.
 * Replies are written as "CODE text" with "\n" between lines of a multi-line reply, e.g.
 * '450 4.2.1 try later' or '250 first line\nsecond line'.
 * Outputs (what tests inspect): every completed transaction (HELO name, TLS, MAIL and RCPT
 * addresses with their parameters, the message data after un-stuffing), every command line,
 * session counts (total, concurrent, maximum concurrent), and how many commands were already
 * waiting when the sink read them (a client that pipelines makes this non-zero; put a delay on
 * MAIL to make that deterministic).
 *
 * Invariants: binds 127.0.0.1 only; `close()` ends every session and the listener; sessions
 * answer a reply starting with 421 by closing, as RFC 5321 §3.8 says. Independent of the
 * project's own SMTP server (no code shared), so the client is tested against a second reading
 * of the RFCs.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

export type SinkState = 'BANNER' | 'EHLO' | 'HELO' | 'LHLO' | 'STARTTLS' | 'MAIL' | 'RCPT' | 'DATA' | 'EOD' | 'RSET' | 'NOOP' | 'QUIT';

export interface SinkOptions {
  lmtp?: boolean;
  hostname?: string;
  /** Greeting reply. Default '220 <hostname> ESMTP sink'. */
  banner?: string;
  /** EHLO/LHLO keywords. Default DEFAULT_EXTENSIONS. STARTTLS is added when `tls` is given. */
  extensions?: string[];
  /** Replace the reply in a state (EHLO: the whole reply; RCPT: for every recipient without its own). */
  replies?: Partial<Record<SinkState, string>>;
  /** RCPT reply per recipient address (exact, case-insensitive). */
  rcpt?: Record<string, string>;
  /** LMTP: end-of-data reply per recipient address. */
  lmtpReplies?: Record<string, string>;
  /** Milliseconds to wait before replying in a state. */
  delays?: Partial<Record<SinkState, number>>;
  /** Close the connection (no reply) on receiving this state's command; EOD: after the data. */
  dropAt?: SinkState;
  /** Close the connection on the n-th command of this state counted over all sessions (1-based). */
  dropAtNth?: { state: SinkState; n: number };
  /** STARTTLS with this key and certificate. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** After "220" to STARTTLS, send garbage instead of a TLS handshake. */
  brokenTls?: boolean;
  /** Stop reading for this long after "354", so the client meets back-pressure. */
  pauseDataMs?: number;
}

export const DEFAULT_EXTENSIONS = ['PIPELINING', 'SIZE 52428800', '8BITMIME', 'SMTPUTF8', 'DSN', 'ENHANCEDSTATUSCODES'];

export interface SinkEnvelopeAddress {
  address: string;
  params: string[];
}

export interface SinkTransaction {
  /** 1-based session number (one per TCP connection). */
  session: number;
  helo: string;
  tls: boolean;
  mail: SinkEnvelopeAddress;
  /** Accepted recipients. */
  rcpts: SinkEnvelopeAddress[];
  /** The message after un-stuffing, ending with the CRLF before the final dot. */
  data: Buffer;
  /** When the data was complete (Date.now()). */
  at: number;
}

export class SmtpSink {
  readonly host = '127.0.0.1';
  port = 0;
  sessions = 0;
  concurrent = 0;
  maxConcurrent = 0;
  /** When each session was accepted (Date.now()), in order. */
  readonly sessionStarts: number[] = [];
  /** Commands read while already buffered (the client did not wait for a reply). */
  pipelined = 0;
  readonly transactions: SinkTransaction[] = [];
  readonly commands: Array<{ session: number; line: string }> = [];
  /** How many times each state was entered, over all sessions. */
  readonly seen: Partial<Record<SinkState, number>> = {};
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  readonly opts: SinkOptions;

  private constructor(opts: SinkOptions) {
    this.opts = opts;
    this.server = net.createServer((socket) => void this.session(socket));
  }

  static async start(opts: SinkOptions = {}): Promise<SmtpSink> {
    const sink = new SmtpSink(opts);
    await new Promise<void>((resolve, reject) => {
      sink.server.once('error', reject);
      sink.server.listen(0, '127.0.0.1', () => resolve());
    });
    sink.port = (sink.server.address() as net.AddressInfo).port;
    return sink;
  }

  /** Command lines of one session, or of all, optionally only those starting with a verb. */
  lines(verb?: string): string[] {
    return this.commands.filter((c) => !verb || c.line.toUpperCase().startsWith(verb)).map((c) => c.line);
  }

  /** Send an unsolicited reply to every open session (e.g. '421 4.4.2 idle timeout'); a 421 closes them. */
  kick(reply: string): void {
    const code = reply.slice(0, 3);
    for (const s of this.sockets) {
      s.write(`${reply}\r\n`);
      if (code === '421') s.end();
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async session(raw: net.Socket): Promise<void> {
    const id = ++this.sessions;
    this.sessionStarts.push(Date.now());
    this.concurrent++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.concurrent);
    this.sockets.add(raw);
    raw.on('error', () => undefined);
    raw.once('close', () => { this.concurrent--; this.sockets.delete(raw); });
    const s = new Session(this, id, raw);
    try {
      await s.run();
    } catch {
      // A test sink: a broken session just ends.
    } finally {
      s.end();
    }
  }
}

interface Tx {
  mail?: SinkEnvelopeAddress;
  rcpts: SinkEnvelopeAddress[];
}

class Session {
  private socket: net.Socket;
  private readonly reader: Reader;
  private helo = '';
  private secured = false;
  private tx: Tx = { rcpts: [] };
  private refused = false;

  constructor(private readonly sink: SmtpSink, private readonly id: number, socket: net.Socket) {
    this.socket = socket;
    this.reader = new Reader(socket);
  }

  private get o(): SinkOptions {
    return this.sink.opts;
  }

  private get host(): string {
    return this.o.hostname ?? 'sink.test';
  }

  /** End gracefully (replies written so far still reach the client). */
  end(): void {
    const socket = this.socket;
    socket.end();
    setTimeout(() => socket.destroy(), 500).unref();
  }

  async run(): Promise<void> {
    if (!(await this.before('BANNER'))) return;
    const banner = this.o.banner ?? this.o.replies?.BANNER ?? `220 ${this.host} ESMTP sink`;
    if (!this.reply(banner)) return;
    this.refused = !banner.startsWith('2');
    for (;;) {
      const got = await this.reader.line();
      if (!got) return;
      if (got.buffered) this.sink.pipelined++;
      this.sink.commands.push({ session: this.id, line: got.line });
      if (!(await this.command(got.line))) return;
    }
  }

  /** Handle one command; false ends the session. */
  private async command(line: string): Promise<boolean> {
    const verb = line.split(' ')[0].toUpperCase();
    const state = STATE_OF[verb];
    if (!state) return this.reply('500 5.5.2 Command unrecognized');
    if (!(await this.before(state))) return false;
    if (this.refused && state !== 'QUIT') return this.reply('503 5.5.1 Not accepting mail');
    switch (state) {
      case 'EHLO': case 'LHLO': return this.ehlo(state, line);
      case 'HELO': return this.heloCmd(line);
      case 'STARTTLS': return this.startTls();
      case 'MAIL': return this.mail(line);
      case 'RCPT': return this.rcpt(line);
      case 'DATA': return this.data();
      case 'RSET': this.tx = { rcpts: [] }; return this.reply(this.o.replies?.RSET ?? '250 2.0.0 Ok');
      case 'NOOP': return this.reply('250 2.0.0 Ok');
      case 'QUIT': this.reply('221 2.0.0 Bye'); return false;
      default: return this.reply('500 5.5.2 Command unrecognized');
    }
  }

  /** Delay, then drop if scripted. False when the session ends here. */
  private async before(state: SinkState): Promise<boolean> {
    const ms = this.o.delays?.[state];
    if (ms) await sleep(ms);
    const nth = (this.sink.seen[state] = (this.sink.seen[state] ?? 0) + 1);
    const once = this.o.dropAtNth;
    if (this.o.dropAt === state || (once?.state === state && once.n === nth)) {
      this.socket.destroy();
      return false;
    }
    return !this.socket.destroyed;
  }

  private ehlo(state: 'EHLO' | 'LHLO', line: string): boolean {
    if ((state === 'LHLO') !== !!this.o.lmtp) return this.reply('500 5.5.1 Wrong greeting for this protocol');
    const override = this.o.replies?.[state];
    if (override) return this.reply(override);
    this.helo = line.slice(5).trim();
    this.tx = { rcpts: [] };
    const ext = [...(this.o.extensions ?? DEFAULT_EXTENSIONS)].filter((e) => !(this.secured && e === 'STARTTLS'));
    if ((this.o.tls || this.o.brokenTls) && !this.secured && !ext.includes('STARTTLS')) ext.push('STARTTLS');
    return this.reply(['250 ' + this.host, ...ext].join('\n'));
  }

  private heloCmd(line: string): boolean {
    if (this.o.lmtp) return this.reply('500 5.5.1 Use LHLO');
    const override = this.o.replies?.HELO;
    if (override) return this.reply(override);
    this.helo = line.slice(5).trim();
    this.tx = { rcpts: [] };
    return this.reply(`250 ${this.host}`);
  }

  private async startTls(): Promise<boolean> {
    const override = this.o.replies?.STARTTLS;
    if (override) return this.reply(override);
    if (!this.o.tls && !this.o.brokenTls) return this.reply('454 4.7.0 TLS not available');
    if (!this.reply('220 2.0.0 Ready to start TLS')) return false;
    if (this.o.brokenTls) {
      this.socket.write('this is not a TLS handshake\r\n');
      await sleep(20);
      return false;
    }
    const plain = this.reader.detach();
    const secure = new tls.TLSSocket(plain, { isServer: true, key: this.o.tls!.key, cert: this.o.tls!.cert });
    secure.on('error', () => undefined);
    this.socket = secure;
    this.reader.attach(secure);
    this.secured = true;
    this.helo = '';
    this.tx = { rcpts: [] };
    return true;
  }

  private mail(line: string): boolean {
    if (!this.helo) return this.reply('503 5.5.1 Send HELO/EHLO first');
    if (this.tx.mail) return this.reply('503 5.5.1 Nested MAIL command');
    const parsed = parsePath(line, 'MAIL FROM:');
    if (!parsed) return this.reply('501 5.5.4 Syntax error');
    const r = this.o.replies?.MAIL ?? '250 2.1.0 Ok';
    if (r.startsWith('2')) this.tx = { mail: parsed, rcpts: [] };
    return this.reply(r);
  }

  private rcpt(line: string): boolean {
    if (!this.tx.mail) return this.reply('503 5.5.1 Need MAIL command');
    const parsed = parsePath(line, 'RCPT TO:');
    if (!parsed) return this.reply('501 5.5.4 Syntax error');
    const r = lookup(this.o.rcpt, parsed.address) ?? this.o.replies?.RCPT ?? '250 2.1.5 Ok';
    if (r.startsWith('2')) this.tx.rcpts.push(parsed);
    return this.reply(r);
  }

  private async data(): Promise<boolean> {
    if (!this.tx.mail) return this.reply('503 5.5.1 Need MAIL command');
    if (this.tx.rcpts.length === 0) return this.reply('554 5.5.1 No valid recipients');
    const override = this.o.replies?.DATA;
    if (override && !override.startsWith('354')) return this.reply(override);
    if (!this.reply(override ?? '354 End data with <CR><LF>.<CR><LF>')) return false;
    if (this.o.pauseDataMs) {
      this.socket.pause();
      await sleep(this.o.pauseDataMs);
      this.socket.resume();
    }
    const data = await this.reader.data();
    if (!data) return false;
    if (!(await this.before('EOD'))) return false;
    const tx = this.tx;
    this.tx = { rcpts: [] };
    this.sink.transactions.push({ session: this.id, helo: this.helo, tls: this.secured, mail: tx.mail!, rcpts: tx.rcpts, data, at: Date.now() });
    if (!this.o.lmtp) return this.reply(this.o.replies?.EOD ?? '250 2.0.0 Ok: queued');
    for (const r of tx.rcpts) {
      if (!this.reply(lookup(this.o.lmtpReplies, r.address) ?? this.o.replies?.EOD ?? '250 2.0.0 Ok')) return false;
    }
    return true;
  }

  /** Write a reply; a 421 closes the session (returns false). */
  private reply(text: string): boolean {
    if (this.socket.destroyed) return false;
    const code = text.slice(0, 3);
    const lines = text.slice(4).split('\n');
    this.socket.write(lines.map((l, i) => `${code}${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join(''));
    if (code === '421') {
      this.socket.end();
      return false;
    }
    return true;
  }
}

const STATE_OF: Record<string, SinkState | undefined> = {
  EHLO: 'EHLO', HELO: 'HELO', LHLO: 'LHLO', STARTTLS: 'STARTTLS', MAIL: 'MAIL', RCPT: 'RCPT', DATA: 'DATA', RSET: 'RSET', NOOP: 'NOOP', QUIT: 'QUIT',
};

function parsePath(line: string, prefix: string): SinkEnvelopeAddress | undefined {
  if (line.slice(0, prefix.length).toUpperCase() !== prefix) return undefined;
  const m = /^<([^<>]*)>(.*)$/.exec(line.slice(prefix.length));
  if (!m) return undefined;
  return { address: m[1], params: m[2].trim() === '' ? [] : m[2].trim().split(/\s+/) };
}

function lookup(table: Record<string, string> | undefined, address: string): string | undefined {
  if (!table) return undefined;
  const key = Object.keys(table).find((k) => k.toLowerCase() === address.toLowerCase());
  return key === undefined ? undefined : table[key];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Command lines and DATA content from a socket that can be swapped for its TLS wrapper. */
class Reader {
  private socket: net.Socket;
  private chunks: Buffer[] = [];
  private length = 0;
  private closed = false;
  private wake: (() => void) | undefined;
  private readonly onData = (c: Buffer): void => { this.chunks.push(c); this.length += c.length; this.poke(); };
  private readonly onEnd = (): void => { this.closed = true; this.poke(); };

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.listen();
  }

  detach(): net.Socket {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    // Anything sent before the handshake is not to be trusted after it (RFC 3207 §4.2).
    this.chunks = [];
    this.length = 0;
    return this.socket;
  }

  attach(socket: net.Socket): void {
    this.socket = socket;
    this.listen();
  }

  /** The next line without CRLF; `buffered` when it had arrived before it was asked for. */
  async line(): Promise<{ line: string; buffered: boolean } | undefined> {
    let buffered = true;
    for (;;) {
      const all = this.joined();
      const lf = all.indexOf(0x0a);
      if (lf >= 0) {
        this.keep(all.subarray(lf + 1));
        const end = lf > 0 && all[lf - 1] === 0x0d ? lf - 1 : lf;
        return { line: all.subarray(0, end).toString('utf8'), buffered };
      }
      if (this.closed) return undefined;
      buffered = false;
      await this.waitForData();
    }
  }

  /** DATA content up to CRLF.CRLF, un-stuffed (RFC 5321 §4.5.2), keeping the last CRLF. */
  async data(): Promise<Buffer | undefined> {
    const parts: Buffer[] = [];
    let tail = Buffer.from('\r\n');
    for (;;) {
      const chunk = this.joined();
      this.keep(Buffer.alloc(0));
      const window = Buffer.concat([tail, chunk]);
      const at = window.indexOf('\r\n.\r\n');
      if (at >= 0) {
        const cut = at + 2 - tail.length;
        // `cut` may be negative when the terminator started in the previous chunk.
        const body = Buffer.concat([...parts, chunk]);
        const bodyEnd = body.length - chunk.length + cut;
        this.keep(chunk.subarray(cut + 3));
        return unstuff(body.subarray(0, Math.max(0, bodyEnd)));
      }
      parts.push(chunk);
      tail = window.subarray(Math.max(0, window.length - 4));
      if (this.closed) return undefined;
      await this.waitForData();
    }
  }

  private listen(): void {
    this.socket.on('data', this.onData);
    this.socket.on('end', this.onEnd);
    this.socket.on('close', this.onEnd);
  }

  private joined(): Buffer {
    if (this.chunks.length !== 1) {
      const one = Buffer.concat(this.chunks, this.length);
      this.chunks = [one];
    }
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private keep(rest: Buffer): void {
    this.chunks = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
  }

  private waitForData(): Promise<void> {
    return new Promise((resolve) => { this.wake = resolve; });
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

/** Remove the dot added to lines starting with "." (the first line included). */
function unstuff(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  if (body.length > 0 && body[0] === 0x2e) start = 1;
  let seg = start;
  for (let i = body.indexOf('\r\n.', start); i >= 0; i = body.indexOf('\r\n.', i + 2)) {
    parts.push(body.subarray(seg, i + 2));
    seg = i + 3;
  }
  parts.push(body.subarray(seg));
  return Buffer.concat(parts);
}

/** A self-signed certificate for `cn` (also its subjectAltName) made with openssl, in `dir`. */
export function makeSelfSignedCert(dir: string, cn: string): { key: Buffer; cert: Buffer } {
  const key = path.join(dir, `${cn}.key`);
  const cert = path.join(dir, `${cn}.crt`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=DNS:${cn}`,
  ], { stdio: 'ignore' });
  return { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
}
