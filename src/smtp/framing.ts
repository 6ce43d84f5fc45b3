/**
 * SMTP framing: PURE, bounded readers over the chunks a socket delivers. They return values
 * (a line, a sentinel for an error, the bytes left over) and never throw on peer input.
 *
 * - LineReader: complete command lines ending in CRLF; a line longer than the limit yields
 *   TOO_LONG once and is discarded up to its line end; a line ending in a bare LF, or holding a
 *   bare CR, yields BAD_EOL (RFC 5321 §2.3.8: only CRLF ends a line; accepting bare LF is what
 *   makes SMTP smuggling possible).
 * - DataReader: DATA content (RFC 5321 §4.5.2 dot-unstuffing). It ends ONLY on CRLF "." CRLF,
 *   where the first CRLF is a real CRLF: "\n.\n", "\r.\n", "\n.\r\n", "\r\n.\n" never end the
 *   data (SMTP smuggling, CVE-2023-51764/51765/51766). A bare LF or CR anywhere marks the
 *   message BAD_EOL (refused after the end marker, never queued). Past `maxsize` bytes the
 *   content is discarded but reading continues to the end marker (then 552).
 * - BdatReader: RFC 3030 chunks: exact byte counts, no dot-stuffing, the same size limit and
 *   the same bare LF/CR rule (the message must be canonical CRLF text: we do not offer
 *   BINARYMIME, and a bare LF relayed onward could be re-interpreted by a lenient next hop).
 *
 * Performance: scanning uses Buffer.indexOf (native); content is kept as subarrays of the
 * received chunks and concatenated once at the end; a chunk is copied only when a line-start
 * dot straddles two chunks (at most two bytes are carried over).
 */

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const EMPTY = Buffer.alloc(0);

export const TOO_LONG = 'tooLong';
export const BAD_EOL = 'badEol';
/** A command line (without CRLF), or one of the two error sentinels, or null: need more bytes. */
export type LineResult = Buffer | typeof TOO_LONG | typeof BAD_EOL | null;

export class LineReader {
  private buf: Buffer = EMPTY;
  private pos = 0;
  private discarding = false;

  /** @param maxLength maximum line length in bytes, CRLF included (RFC 5321 §4.5.3.1.4: 512). */
  constructor(public maxLength: number) {}

  push(chunk: Buffer): void {
    if (this.pos >= this.buf.length) {
      this.buf = chunk;
      this.pos = 0;
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk]);
      this.pos = 0;
    }
  }

  /** Bytes held and not yet returned as lines. */
  get buffered(): number {
    return this.buf.length - this.pos;
  }

  /** The next complete line or error, or null when more bytes are needed. */
  next(): LineResult {
    for (;;) {
      const lf = this.buf.indexOf(LF, this.pos);
      if (!this.discarding) return lf < 0 ? this.partial() : this.complete(lf);
      // Resynchronise after a too-long line: drop everything up to and including its LF.
      if (lf < 0) {
        this.clear();
        return null;
      }
      this.pos = lf + 1;
      this.discarding = false;
    }
  }

  /** Remove and return everything buffered (switching to DATA/BDAT, or discarding at STARTTLS). */
  takeRest(): Buffer {
    const rest = this.buf.subarray(this.pos);
    this.clear();
    return rest;
  }

  private clear(): void {
    this.buf = EMPTY;
    this.pos = 0;
  }

  private partial(): LineResult {
    if (this.buffered < this.maxLength) return null;
    this.clear();
    this.discarding = true;
    return TOO_LONG;
  }

  private complete(lf: number): LineResult {
    const start = this.pos;
    this.pos = lf + 1;
    if (lf + 1 - start > this.maxLength) return TOO_LONG;
    if (lf === start || this.buf[lf - 1] !== CR) return BAD_EOL;
    const cr = this.buf.indexOf(CR, start);
    if (cr < lf - 1) return BAD_EOL;
    return this.buf.subarray(start, lf - 1);
  }
}

/** How a message body ended. */
export type BodyStatus = 'ok' | 'tooBig' | typeof BAD_EOL;

/** Collects body bytes with the size limit; shared by the DATA and BDAT readers. */
class BodyCollector {
  protected parts: Buffer[] = [];
  /** Body bytes seen (after unstuffing), also those discarded past the limit. */
  size = 0;
  protected bare = false;

  constructor(protected readonly maxsize: number) {}

  protected collect(b: Buffer): void {
    if (b.length === 0) return;
    this.size += b.length;
    if (this.size > this.maxsize || this.bare) {
      this.parts.length = 0; // refused anyway: hold no memory
      return;
    }
    this.parts.push(b);
  }

  status(): BodyStatus {
    if (this.bare) return BAD_EOL;
    return this.size > this.maxsize ? 'tooBig' : 'ok';
  }

  /** The body (optionally after `prefix`), concatenated once. Only meaningful when status is ok. */
  body(prefix?: Buffer): Buffer {
    if (prefix) this.parts.unshift(prefix);
    const out = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.parts = [];
    return out;
  }
}

export class DataReader extends BodyCollector {
  /** At the start of a line: the previous bytes were CRLF (or the data just began). */
  private lineStart = true;
  /** The last byte of the previous chunk was a CR (already collected). */
  private prevCR = false;
  /** A line-start "." or ".\r" at a chunk's end, not yet collected. */
  private pending: Buffer | null = null;

  /** Feed received bytes. Returns null while the end marker is not seen, else the bytes after it. */
  feed(input: Buffer): Buffer | null {
    const chunk = this.pending ? Buffer.concat([this.pending, input]) : input;
    this.pending = null;
    const n = chunk.length;
    let p = this.startChunk(chunk);
    let seg = 0;
    while (p < n) {
      if (this.lineStart) {
        this.lineStart = false;
        if (chunk[p] === DOT) {
          const c1 = p + 1 < n ? chunk[p + 1] : -1;
          const c2 = p + 2 < n ? chunk[p + 2] : -1;
          this.collect(chunk.subarray(seg, p));
          if (c1 === CR && c2 === LF) return chunk.subarray(p + 3);
          if (c1 === -1 || (c1 === CR && c2 === -1)) {
            this.pending = chunk.subarray(p);
            this.lineStart = true;
            return null;
          }
          seg = ++p; // RFC 5321 §4.5.2: drop the leading dot
          continue;
        }
      }
      p = this.scanLine(chunk, p);
    }
    this.collect(chunk.subarray(seg, n));
    return null;
  }

  /** Complete a CRLF split across chunks; returns where scanning starts. */
  private startChunk(chunk: Buffer): number {
    if (!this.prevCR || chunk.length === 0) return 0;
    this.prevCR = false;
    if (chunk[0] === LF) {
      this.lineStart = true;
      return 1;
    }
    this.bare = true; // CR followed by something else
    return 0;
  }

  /** Scan from `p` (not at a line start) to just past the next LF, or to the end. */
  private scanLine(chunk: Buffer, p: number): number {
    const n = chunk.length;
    const lf = chunk.indexOf(LF, p);
    const end = lf < 0 ? n : lf;
    if (!this.bare) {
      const cr = chunk.indexOf(CR, p);
      if (cr >= 0 && cr < end - 1) this.bare = true;
    }
    if (lf < 0) {
      this.prevCR = chunk[n - 1] === CR;
      return n;
    }
    // Only a real CRLF starts a new line: after a bare LF a "." is content, never the end.
    if (lf > 0 && chunk[lf - 1] === CR) this.lineStart = true;
    else this.bare = true;
    return lf + 1;
  }
}

export class BdatReader extends BodyCollector {
  private remaining = 0;
  private discarding = false;
  private prevCR = false;

  /**
   * Start a chunk of `size` bytes. With `discard` the bytes are consumed but neither counted
   * nor kept (RFC 3030 §3: after an error the announced bytes must still be read).
   */
  begin(size: number, discard = false): void {
    this.remaining = size;
    this.discarding = discard;
  }

  /** Bytes of the current chunk still expected. */
  get expecting(): number {
    return this.remaining;
  }

  /** Feed received bytes. Returns null until the chunk is complete, then the bytes after it. */
  feed(chunk: Buffer): Buffer | null {
    const take = Math.min(this.remaining, chunk.length);
    this.remaining -= take;
    if (take > 0 && !this.discarding) {
      const part = chunk.subarray(0, take);
      this.checkEol(part);
      this.collect(part);
    }
    return this.remaining === 0 ? chunk.subarray(take) : null;
  }

  /** At LAST: a trailing CR is bare; a body not ending in CRLF gets one (stored bodies are CRLF text). */
  finish(): void {
    if (this.prevCR) this.bare = true;
    const last = this.parts[this.parts.length - 1];
    if (last && last[last.length - 1] !== LF && this.status() === 'ok') this.collect(Buffer.from('\r\n'));
  }

  private checkEol(b: Buffer): void {
    if (this.bare) return;
    let p = 0;
    if (this.prevCR) {
      if (b[0] !== LF) return void (this.bare = true);
      p = 1;
    }
    for (let lf = b.indexOf(LF, p); lf >= 0; lf = b.indexOf(LF, lf + 1)) {
      if (lf === 0 || b[lf - 1] !== CR) return void (this.bare = true);
    }
    for (let cr = b.indexOf(CR, p); cr >= 0 && cr < b.length - 1; cr = b.indexOf(CR, cr + 1)) {
      if (b[cr + 1] !== LF) return void (this.bare = true);
    }
    this.prevCR = b[b.length - 1] === CR;
  }
}

/**
 * Count "Received:" header fields in the header section of `msg` starting at `from`
 * (loop detection, RFC 5321 §6.3). Stops at the first empty line. Case-insensitive.
 */
export function countReceived(msg: Buffer, from = 0): number {
  let count = 0;
  let p = from;
  while (p < msg.length) {
    if (msg[p] === CR || msg[p] === LF) break; // empty line: end of the header section
    if (isReceived(msg, p)) count++;
    const lf = msg.indexOf(LF, p);
    if (lf < 0) break;
    p = lf + 1;
  }
  return count;
}

const RECEIVED = Buffer.from('received:', 'latin1');

function isReceived(msg: Buffer, p: number): boolean {
  if (p + RECEIVED.length > msg.length) return false;
  for (let i = 0; i < RECEIVED.length; i++) {
    if ((msg[p + i] | 0x20) !== RECEIVED[i]) return false; // ':' | 0x20 === ':'
  }
  return true;
}
