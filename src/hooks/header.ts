/**
 * RFC 5322 header section codec used by the eod message API (pure: bytes in, values out).
 *
 * `parseMessage` splits a raw message (CRLF line endings) into header fields and body without
 * copying: each field keeps its original bytes, folding included, so that untouched fields are
 * written back byte for byte (DKIM signatures made upstream stay valid). `buildField` makes a
 * new field, folded at whitespace to 78 characters per line where possible (RFC 5322 §2.2.3),
 * and refuses values that would smuggle a line break (header injection).
 *
 * Parsing rules: the header ends at the first empty line (the separator). A first line that is
 * not a field (`name:` with printable ASCII name, RFC 5322 §3.6.8, optional WSP before the colon
 * as obs-syntax §4.5) means there is no header: everything is body. A later line that is neither
 * a field nor a continuation starts the body even without a separator (the message is kept as
 * it came; a separator is written when the message is rendered after an edit).
 */

export interface HeaderField {
  /** The name as written (WSP before the colon dropped). */
  name: string;
  /** Lower-case name, for case-insensitive matching (RFC 5322 §1.2.2). */
  lname: string;
  /** The whole field: name, colon, value with its folding; without the final CRLF. */
  raw: Buffer;
  /** Offset of the value (just after the colon) in `raw`. */
  valueStart: number;
}

export interface ParsedMessage {
  fields: HeaderField[];
  /** Whether an empty line separated header and body. */
  separator: boolean;
  body: Buffer;
}

const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;
const CRLF = Buffer.from('\r\n');
const EMPTY = Buffer.alloc(0);

/** Field names are printable US-ASCII except colon (RFC 5322 §3.6.8 ftext). */
const NAME_RE = /^[\x21-\x39\x3b-\x7e]+$/;

export function parseMessage(raw: Buffer): ParsedMessage {
  const fields: HeaderField[] = [];
  let start = -1;
  let end = -1;
  let pos = 0;
  const close = (): void => {
    if (start >= 0) fields.push(makeField(raw.subarray(start, end)));
    start = -1;
  };
  while (pos < raw.length) {
    const eol = raw.indexOf(CRLF, pos);
    const lineEnd = eol < 0 ? raw.length : eol;
    const next = eol < 0 ? raw.length : eol + 2;
    if (lineEnd === pos) {
      close();
      return { fields, separator: true, body: raw.subarray(next) };
    }
    const first = raw[pos];
    if ((first === SP || first === HT) && start >= 0) {
      end = lineEnd;
    } else if (fieldNameEnd(raw, pos, lineEnd) > 0) {
      close();
      start = pos;
      end = lineEnd;
    } else {
      close();
      return { fields, separator: false, body: raw.subarray(pos) };
    }
    pos = next;
  }
  close();
  return { fields, separator: false, body: EMPTY };
}

/** Index of the colon if the line starts a field, else -1. */
function fieldNameEnd(buf: Buffer, pos: number, lineEnd: number): number {
  let i = pos;
  while (i < lineEnd && buf[i] >= 0x21 && buf[i] <= 0x7e && buf[i] !== COLON) i++;
  if (i === pos) return -1;
  while (i < lineEnd && (buf[i] === SP || buf[i] === HT)) i++;
  return i < lineEnd && buf[i] === COLON ? i : -1;
}

function makeField(raw: Buffer): HeaderField {
  const colon = raw.indexOf(COLON);
  const name = raw.toString('latin1', 0, colon).replace(/[ \t]+$/, '');
  return { name, lname: name.toLowerCase(), raw, valueStart: colon + 1 };
}

/**
 * The value as text: UTF-8 decoded (RFC 6532), unfolded (RFC 5322 §2.2.3: CRLF before WSP
 * removed), leading and trailing whitespace trimmed. RFC 2047 encoded-words are not decoded.
 */
export function fieldValue(f: HeaderField): string {
  return f.raw
    .toString('utf8', f.valueStart)
    .replace(/\r\n(?=[ \t])/g, '')
    .replace(/^[ \t]+|[ \t]+$/g, '');
}

export function checkFieldName(name: unknown): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new TypeError(`invalid header name ${JSON.stringify(name)} (printable ASCII without colon or space)`);
  }
  return name;
}

/**
 * A new field. With `refold` the value is unfolded and folded again at 78 characters; without
 * it the value is kept as given, but any line break in it must already be valid folding
 * (CRLF followed by WSP), since anything else would start a new header field or the body.
 */
export function buildField(name: string, value: string, refold: boolean): HeaderField {
  checkFieldName(name);
  if (typeof value !== 'string') throw new TypeError(`header value for ${name} must be a string`);
  if (value.includes('\0')) throw new TypeError(`header value for ${name} contains NUL`);
  let text: string;
  if (refold) {
    const flat = value.replace(/\r?\n(?=[ \t])/g, '');
    if (/[\r\n]/.test(flat)) throw new TypeError(`header value for ${name} contains a line break`);
    text = fold(name, flat);
  } else {
    if (/\r(?!\n[ \t])|(?<!\r)\n/.test(value)) throw new TypeError(`header value for ${name} contains a line break that is not folding`);
    text = `${name}: ${value}`;
  }
  return makeField(Buffer.from(text, 'utf8'));
}

/** Fold `Name: value` at whitespace so lines stay within 78 characters where a break exists. */
export function fold(name: string, value: string): string {
  const line = `${name}: ${value}`;
  if (line.length <= 78) return line;
  // Each token is a whitespace run plus the word after it, so a break (before the whitespace)
  // never leaves a line of only whitespace (RFC 5322 §3.2.2).
  const tokens = (' ' + value).match(/[ \t]*[^ \t]+|[ \t]+$/g) ?? [];
  let out = `${name}:`;
  let len = out.length;
  let lineHasWord = false;
  for (const tok of tokens) {
    const breakable = tok[0] === ' ' || tok[0] === '\t';
    if (lineHasWord && breakable && len + tok.length > 78) {
      out += '\r\n';
      len = 0;
    }
    out += tok;
    len += tok.length;
    lineHasWord = true;
  }
  return out;
}

/**
 * Render fields and body. The separator is written whenever there is a header (or there was a
 * separator): RFC 5322 §2.1 allows omitting it for an empty body, but common parsers (DKIM
 * verifiers among them) only find the header's end at the empty line.
 */
export function renderMessage(fields: readonly HeaderField[], separator: boolean, body: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const f of fields) parts.push(f.raw, CRLF);
  if (separator || fields.length > 0) parts.push(CRLF);
  parts.push(body);
  return Buffer.concat(parts);
}

/** CRLF line endings for a body given by a hook (RFC 5322 §2.3: CR and LF only as CRLF). */
export function normaliseBody(body: string | Buffer): Buffer {
  const text = typeof body === 'string' ? body : body.toString('latin1');
  if (!/\r(?!\n)|(?<!\r)\n/.test(text)) return typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
  const fixed = text.replace(/\r\n|\r|\n/g, '\r\n');
  return typeof body === 'string' ? Buffer.from(fixed, 'utf8') : Buffer.from(fixed, 'latin1');
}
