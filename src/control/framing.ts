/**
 * Halon's control-socket framing (halon-api.md §3), as a pure codec: no sockets, no timers.
 *
 * Requests (client → daemon):
 *   connection start   [major u8][minor u8]          API version as raw byte values (06 06 = 6.6)
 *   each request       [command u8]                  one ASCII character (commands.ts)
 *                      [length u64 LE][body]         only for commands that take a body
 * Replies (daemon → client): [status u8][length u64 LE][payload], status '+' (payload = the
 * protobuf response, possibly empty), 'E' (payload = UTF-8 error text) or '=' (log frame).
 *
 * `RequestDecoder` takes chunks as they arrive and hands out one value at a time: a complete
 * request, `incomplete` (feed more bytes), or an error. Invariants:
 * - The two version bytes are required at the start of a connection. Raw values (major 5 or
 *   newer) are the wire form every known client writes; two ASCII digits ('6' '6', the manual's
 *   wording) are accepted there too, since nothing else can stand at that position.
 * - Later, a byte below 0x20 where a command is expected starts a repeated version pair (API
 *   ≤ 5.6 clients send it before every request). Commands are printable, so this is unambiguous.
 * - A body longer than `maxBody` is an error that does not end the connection: the decoder
 *   skips exactly that many bytes and the next request decodes normally. Its memory use stays
 *   bounded by `maxBody` plus one chunk.
 * - Fatal errors (bad version bytes, unknown command) end decoding: after an unknown command
 *   the decoder cannot know whether a length and body follow, so any further byte could be
 *   misread as a command. The caller replies 'E' and closes the connection.
 * `ReplyDecoder` is the client-side counterpart; a length of 2^48 or more is refused as Halon's
 * own clients do ("Too large response").
 */

export interface ApiVersion {
  major: number;
  minor: number;
}

/** Whether a command is followed by a length and a body; undefined = unknown command. */
export type BodyKind = 'none' | 'body';

export type RequestEvent =
  | { kind: 'request'; command: string; body?: Buffer; version: ApiVersion }
  | { kind: 'incomplete' }
  | { kind: 'error'; reason: string; fatal: boolean; command?: string };

export type ReplyStatus = '+' | 'E' | '=';

export type ReplyEvent =
  | { kind: 'reply'; status: ReplyStatus; payload: Buffer }
  | { kind: 'incomplete' }
  | { kind: 'error'; reason: string; fatal: true };

export const STATUS_OK = 0x2b; // '+'
export const STATUS_ERROR = 0x45; // 'E'
export const STATUS_LOG = 0x3d; // '='

/** Oldest API version that sends version bytes at all (5.3 introduced them). */
const MIN_MAJOR = 5;
/** Bytes below this value where a command is expected start a version pair. */
const FIRST_PRINTABLE = 0x20;
/** Halon's clients refuse reply lengths from 2^48 on. */
const MAX_REPLY_LENGTH = 2 ** 48;
const U64_LENGTH = 8;

// ---------------------------------------------------------------------------------------------
// Encoders

/** A u64 little-endian length; lengths beyond 2^53 cannot occur in one Node.js buffer. */
export function u64le(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid length ${n}`);
  const b = Buffer.alloc(U64_LENGTH);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

export function encodeVersion(v: ApiVersion): Buffer {
  return Buffer.from([v.major, v.minor]);
}

/** One request; `body` undefined = a command without body (no length is sent, §3.1). */
export function encodeRequest(command: string, body?: Uint8Array): Buffer {
  if (command.length !== 1 || command.charCodeAt(0) < FIRST_PRINTABLE || command.charCodeAt(0) > 0x7e) {
    throw new RangeError(`a command is one printable ASCII character, not ${JSON.stringify(command)}`);
  }
  const letter = Buffer.from(command, 'latin1');
  if (body === undefined) return letter;
  return Buffer.concat([letter, u64le(body.length), body]);
}

export function encodeReply(status: ReplyStatus, payload: Uint8Array | string = Buffer.alloc(0)): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return Buffer.concat([Buffer.from(status, 'latin1'), u64le(data.length), data]);
}

// ---------------------------------------------------------------------------------------------
// A queue of received chunks; taking bytes copies only what is taken.

class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  peek(i: number): number {
    let offset = this.head + i;
    for (const c of this.chunks) {
      if (offset < c.length) return c[offset];
      offset -= c.length;
    }
    throw new RangeError('peek past the end');
  }

  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const part = Math.min(c.length - this.head, n - filled);
      c.copy(out, filled, this.head, this.head + part);
      filled += part;
      this.head += part;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.length -= n;
    return out;
  }

  /** Drop up to n bytes; returns how many were dropped. */
  skip(n: number): number {
    let left = Math.min(n, this.length);
    const dropped = left;
    while (left > 0) {
      const c = this.chunks[0];
      const part = Math.min(c.length - this.head, left);
      this.head += part;
      left -= part;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.length -= dropped;
    return dropped;
  }
}

function readLength(b: Buffer): number | undefined {
  const n = b.readBigUInt64LE(0);
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Request decoder (daemon side)

export interface RequestDecoderOptions {
  /** Body kind of a command, undefined for a command the daemon does not know. */
  bodyKind: (command: string) => BodyKind | undefined;
  /** Largest request body accepted, in bytes. */
  maxBody: number;
}

type RequestState =
  | { name: 'start' }
  | { name: 'command' }
  | { name: 'body'; command: string; length: number }
  | { name: 'skip'; left: number }
  | { name: 'closed' };

/** Printable description of a command byte for error texts. */
export function describeCommand(byte: number): string {
  const hex = `0x${byte.toString(16).padStart(2, '0')}`;
  return byte >= FIRST_PRINTABLE && byte <= 0x7e ? `'${String.fromCharCode(byte)}' (${hex})` : hex;
}

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

/** The announced version, or an error text. */
function parseVersion(a: number, b: number, atStart: boolean): ApiVersion | string {
  let v: ApiVersion;
  if (a < FIRST_PRINTABLE) v = { major: a, minor: b };
  else if (atStart && isDigit(a) && isDigit(b)) v = { major: a - 0x30, minor: b - 0x30 };
  else return `a connection must start with the two API version bytes (e.g. 06 06 for 6.6), not ${describeCommand(a)} ${describeCommand(b)}`;
  if (v.major < MIN_MAJOR) return `API version ${v.major}.${v.minor} is not supported (5.3 or newer)`;
  return v;
}

export class RequestDecoder {
  private readonly q = new ByteQueue();
  private state: RequestState = { name: 'start' };
  private version: ApiVersion = { major: 0, minor: 0 };

  constructor(private readonly opts: RequestDecoderOptions) {}

  push(chunk: Buffer): void {
    if (this.state.name !== 'closed') this.q.push(chunk);
  }

  /** The version most recently announced on this connection. */
  get apiVersion(): ApiVersion {
    return this.version;
  }

  /** True once a fatal error was returned: nothing more will be decoded. */
  get closed(): boolean {
    return this.state.name === 'closed';
  }

  next(): RequestEvent {
    for (;;) {
      const s = this.state;
      switch (s.name) {
        case 'closed':
          return { kind: 'incomplete' };
        case 'start': {
          if (this.q.length < 2) return { kind: 'incomplete' };
          const err = this.readVersion(true);
          if (err) return err;
          this.state = { name: 'command' };
          break;
        }
        case 'command': {
          const ev = this.readCommand();
          if (ev) return ev;
          break;
        }
        case 'body': {
          if (this.q.length < s.length) return { kind: 'incomplete' };
          this.state = { name: 'command' };
          return { kind: 'request', command: s.command, body: this.q.take(s.length), version: this.version };
        }
        case 'skip': {
          s.left -= this.q.skip(s.left);
          if (s.left > 0) return { kind: 'incomplete' };
          this.state = { name: 'command' };
          break;
        }
      }
    }
  }

  private fatal(reason: string, command?: string): RequestEvent {
    this.state = { name: 'closed' };
    this.q.skip(this.q.length);
    return { kind: 'error', reason, fatal: true, ...(command !== undefined ? { command } : {}) };
  }

  private readVersion(atStart: boolean): RequestEvent | undefined {
    const pair = this.q.take(2);
    const v = parseVersion(pair[0], pair[1], atStart);
    if (typeof v === 'string') return this.fatal(v);
    this.version = v;
    return undefined;
  }

  /** Undefined when the state advanced without producing a value (a repeated version pair). */
  private readCommand(): RequestEvent | undefined {
    if (this.q.length < 1) return { kind: 'incomplete' };
    const byte = this.q.peek(0);
    if (byte < FIRST_PRINTABLE) {
      if (this.q.length < 2) return { kind: 'incomplete' };
      return this.readVersion(false);
    }
    const command = String.fromCharCode(byte);
    const kind = byte <= 0x7e ? this.opts.bodyKind(command) : undefined;
    if (kind === undefined) return this.fatal(`unknown command ${describeCommand(byte)}`);
    if (kind === 'none') {
      this.q.take(1);
      return { kind: 'request', command, version: this.version };
    }
    if (this.q.length < 1 + U64_LENGTH) return { kind: 'incomplete' };
    const length = readLength(this.q.take(1 + U64_LENGTH).subarray(1));
    if (length === undefined) return this.fatal(`request body length of command ${describeCommand(byte)} is out of range`, command);
    if (length > this.opts.maxBody) {
      this.state = { name: 'skip', left: length };
      return { kind: 'error', reason: `request body of ${length} bytes exceeds the limit of ${this.opts.maxBody} bytes`, fatal: false, command };
    }
    this.state = { name: 'body', command, length };
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Reply decoder (client side)

function replyStatus(byte: number): ReplyStatus | undefined {
  switch (byte) {
    case STATUS_OK:
      return '+';
    case STATUS_ERROR:
      return 'E';
    case STATUS_LOG:
      return '=';
    default:
      return undefined;
  }
}

export class ReplyDecoder {
  private readonly q = new ByteQueue();
  private pending: { status: ReplyStatus; length: number } | undefined;
  private failed = false;

  /** `maxPayload`: largest reply accepted (below 2^48 in any case). */
  constructor(private readonly maxPayload = MAX_REPLY_LENGTH - 1) {}

  push(chunk: Buffer): void {
    if (!this.failed) this.q.push(chunk);
  }

  next(): ReplyEvent {
    if (this.failed) return { kind: 'incomplete' };
    if (!this.pending) {
      if (this.q.length < 1 + U64_LENGTH) return { kind: 'incomplete' };
      const head = this.q.take(1 + U64_LENGTH);
      const status = replyStatus(head[0]);
      if (!status) return this.fail(`unexpected reply status ${describeCommand(head[0])}`);
      const length = readLength(head.subarray(1));
      if (length === undefined || length >= MAX_REPLY_LENGTH) return this.fail('Too large response');
      if (length > this.maxPayload) return this.fail(`reply of ${length} bytes exceeds the limit of ${this.maxPayload} bytes`);
      this.pending = { status, length };
    }
    if (this.q.length < this.pending.length) return { kind: 'incomplete' };
    const { status, length } = this.pending;
    this.pending = undefined;
    return { kind: 'reply', status, payload: this.q.take(length) };
  }

  private fail(reason: string): ReplyEvent {
    this.failed = true;
    return { kind: 'error', reason, fatal: true };
  }
}
