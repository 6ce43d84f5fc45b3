/**
 * SMTP reply parser for the client: PURE and bounded.
 *
 * Inputs: octets from the peer, in pieces of any size (`ReplyParser.feed`).
 * Outputs: complete replies {code, enhanced, reason[]} in order, or one ParseError after which
 * the parser refuses further input (the session must be closed: its framing is lost).
 *
 * Rules (RFC 5321 §4.2, §4.2.1):
 * - A reply is one or more lines "ddd-text" ending with "ddd text" (or a bare "ddd"); every line
 *   of one reply has the same code. Lines end in CRLF; a bare LF is accepted (robustness
 *   principle, RFC 5321 §4.5.1 asks servers to send CRLF but some do not).
 * - The first digit must be 2-5 (RFC 5321 §4.2.1; 1yz is unused in SMTP).
 * - Bounds: a line longer than `maxLineLength` or a reply with more than `maxLines` lines is a
 *   protocol error, so a hostile peer cannot make us buffer without limit.
 * - Enhanced status code (RFC 3463 §2, RFC 2034 §4): taken from the first line when its text
 *   starts with "class.subject.detail" whose class equals the reply's first digit; the code is
 *   then removed from every line that starts with the same code (reason lines hold the text only).
 * - Text is decoded as UTF-8 (RFC 6531 peers may send it); control characters other than TAB
 *   become '?', so nothing the peer sends can inject lines into logs or DSNs.
 * Errors: none thrown; `feed` returns `{ replies, error? }`.
 */
import type { Reply } from '../model/types';
import type { ReplyLimits } from './client-types';

export type { Reply } from '../model/types';

export interface ParseError {
  message: string;
}

export interface FeedResult {
  replies: Reply[];
  error?: ParseError;
}

const DEFAULT_MAX_LINE = 4096;
const DEFAULT_MAX_LINES = 100;

interface Line {
  code: number;
  last: boolean;
  text: string;
}

export class ReplyParser {
  private readonly maxLine: number;
  private readonly maxLines: number;
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private lines: Line[] = [];
  private failed: ParseError | undefined;

  constructor(limits: ReplyLimits = {}) {
    this.maxLine = limits.maxLineLength ?? DEFAULT_MAX_LINE;
    this.maxLines = limits.maxLines ?? DEFAULT_MAX_LINES;
  }

  /** Octets received but not yet part of a complete reply (a partial line or a partial reply). */
  get buffered(): boolean {
    return this.pendingLength > 0 || this.lines.length > 0;
  }

  feed(chunk: Buffer): FeedResult {
    if (this.failed) return { replies: [], error: this.failed };
    const replies: Reply[] = [];
    let start = 0;
    for (;;) {
      const lf = chunk.indexOf(0x0a, start);
      if (lf < 0) break;
      const raw = this.takeLine(chunk.subarray(start, lf));
      start = lf + 1;
      const error = this.addLine(raw, replies);
      if (error) return this.fail(error, replies);
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0) {
      if (this.pendingLength + rest.length > this.maxLine + 1) return this.fail({ message: `reply line longer than ${this.maxLine} octets` }, replies);
      this.pending.push(Buffer.from(rest));
      this.pendingLength += rest.length;
    }
    return { replies };
  }

  /** The line up to (not including) LF, joined with earlier pieces, without a trailing CR. */
  private takeLine(tail: Buffer): Buffer {
    let line = tail;
    if (this.pending.length > 0) {
      line = Buffer.concat([...this.pending, tail]);
      this.pending = [];
      this.pendingLength = 0;
    }
    return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line;
  }

  private addLine(raw: Buffer, out: Reply[]): ParseError | undefined {
    if (raw.length > this.maxLine) return { message: `reply line longer than ${this.maxLine} octets` };
    const line = parseLine(raw);
    if (!line) return { message: 'malformed reply line' };
    if (this.lines.length > 0 && this.lines[0].code !== line.code) return { message: 'reply code changed within a multi-line reply' };
    this.lines.push(line);
    if (this.lines.length > this.maxLines) return { message: `reply longer than ${this.maxLines} lines` };
    if (line.last) {
      out.push(assemble(this.lines));
      this.lines = [];
    }
    return undefined;
  }

  private fail(error: ParseError, replies: Reply[]): FeedResult {
    this.failed = error;
    this.pending = [];
    this.pendingLength = 0;
    this.lines = [];
    return { replies, error };
  }
}

/** Parse complete reply text (tests, fixed strings): exactly one reply or undefined. */
export function parseReply(text: string, limits?: ReplyLimits): Reply | undefined {
  const withEol = /\n$/.test(text) ? text : `${text}\r\n`;
  const r = new ReplyParser(limits).feed(Buffer.from(withEol, 'utf8'));
  return !r.error && r.replies.length === 1 ? r.replies[0] : undefined;
}

function parseLine(raw: Buffer): Line | undefined {
  if (raw.length < 3) return undefined;
  const d0 = raw[0], d1 = raw[1], d2 = raw[2];
  if (d0 < 0x32 || d0 > 0x35 || !isDigit(d1) || !isDigit(d2)) return undefined;
  const code = (d0 - 0x30) * 100 + (d1 - 0x30) * 10 + (d2 - 0x30);
  if (raw.length === 3) return { code, last: true, text: '' };
  const sep = raw[3];
  if (sep !== 0x20 && sep !== 0x2d) return undefined;
  return { code, last: sep === 0x20, text: clean(raw.subarray(4).toString('utf8')) };
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function clean(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '?');
}

/** RFC 3463 §2: class "." subject "." detail, subject and detail 1-3 digits, no leading zeros required. */
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/;

function assemble(lines: Line[]): Reply {
  const code = lines[0].code;
  const enhanced = enhancedOf(code, lines[0].text);
  const prefix = enhanced ? enhanced.join('.') : undefined;
  const reason = lines.map((l) => (prefix !== undefined ? stripPrefix(l.text, prefix) : l.text));
  return { code, enhanced, reason };
}

/** The enhanced code at the start of `text`, when its class is the reply's (RFC 3463 §2). */
export function enhancedOf(code: number, text: string): [number, number, number] | null {
  const m = ENHANCED.exec(text);
  if (!m || Number(m[1]) !== Math.floor(code / 100)) return null;
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

function stripPrefix(text: string, prefix: string): string {
  const m = ENHANCED.exec(text);
  if (!m || `${m[1]}.${Number(m[2])}.${Number(m[3])}` !== prefix) return text;
  return text.slice(m[0].length).replace(/^\s+/, '');
}

/** A reply as one log line: "550 5.1.1 No such user". */
export function formatReply(r: Reply): string {
  const enh = r.enhanced ? ` ${r.enhanced.join('.')}` : '';
  const text = r.reason.join(' ').trim();
  return `${r.code}${enh}${text ? ` ${text}` : ''}`;
}
