/**
 * Encoding for the outbound SMTP client: PURE (no I/O).
 *
 * - parseCapabilities: the EHLO/LHLO reply → Capabilities (RFC 5321 §4.1.1.1; keywords of
 *   RFC 2920 PIPELINING, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN,
 *   RFC 3207 STARTTLS, RFC 3030 CHUNKING, RFC 2034 ENHANCEDSTATUSCODES).
 * - mailCommand / rcptCommand: the command lines with the parameters the peer announced.
 * - xtext (RFC 3461 §4) and utf-8-addr-xtext / -unitext (RFC 6533 §3) for ENVID and ORCPT.
 * - dotStuff: the message as DATA content (RFC 5321 §4.5.2), in bounded chunks, with the
 *   terminating CRLF.CRLF.
 * - checkAddress: an address that could break the command line is refused before sending.
 *
 * Invariants: no command line built here contains CR or LF from the input (addresses are checked,
 * parameter values are xtext-encoded), so peer-visible commands cannot be injected.
 */
import type { Capabilities, Transaction, TransactionRecipient } from './client-types';
import type { Reply } from '../model/types';
import { merged } from '../util/objects';

// ---------------------------------------------------------------------------------------------
// Capabilities

/** Capabilities of a peer that answered HELO (RFC 5321 §4.1.1.1: no extensions). */
export const NO_CAPABILITIES: Capabilities = Object.freeze({
  esmtp: false, pipelining: false, size: false, sizeLimit: 0, eightbitmime: false, smtputf8: false,
  dsn: false, starttls: false, chunking: false, enhancedstatuscodes: false, keywords: [] as string[],
});

/** The EHLO/LHLO reply's lines after the first are "keyword [params]" (RFC 5321 §4.1.1.1). */
export function parseCapabilities(reply: Reply): Capabilities {
  const caps: Capabilities = merged(NO_CAPABILITIES, { esmtp: true, keywords: [] as string[] });
  for (const line of reply.reason.slice(1)) {
    const [word, ...params] = line.trim().split(/\s+/);
    if (!word) continue;
    const keyword = word.toUpperCase();
    caps.keywords.push(keyword);
    applyKeyword(caps, keyword, params);
  }
  return caps;
}

function applyKeyword(caps: Capabilities, keyword: string, params: string[]): void {
  switch (keyword) {
    case 'PIPELINING': caps.pipelining = true; break;
    case 'SIZE': {
      caps.size = true;
      // RFC 1870 §4: "SIZE" alone or "SIZE 0" means no fixed maximum.
      const n = params.length > 0 && /^\d{1,15}$/.test(params[0]) ? Number(params[0]) : 0;
      caps.sizeLimit = n;
      break;
    }
    case '8BITMIME': caps.eightbitmime = true; break;
    case 'SMTPUTF8': caps.smtputf8 = true; break;
    case 'DSN': caps.dsn = true; break;
    case 'STARTTLS': caps.starttls = true; break;
    case 'CHUNKING': caps.chunking = true; break;
    case 'ENHANCEDSTATUSCODES': caps.enhancedstatuscodes = true; break;
    default: break;
  }
}

// ---------------------------------------------------------------------------------------------
// Addresses and parameters

/** Octets that must never reach a command line from an address (CTLs, DEL, the path brackets). */
// eslint-disable-next-line no-control-regex
const UNSAFE_ADDRESS = /[\x00-\x1f\x7f<>]/;

export function checkAddress(address: string): boolean {
  return !UNSAFE_ADDRESS.test(address) && Buffer.byteLength(address, 'utf8') <= 512;
}

// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

export function isAscii(s: string): boolean {
  return !NON_ASCII.test(s);
}

/** RFC 3461 §4: xchar is "!".."~" except "+" and "="; everything else is "+" two upper-case hex digits. */
export function xtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte >= 0x21 && byte <= 0x7e && byte !== 0x2b && byte !== 0x3d ? String.fromCharCode(byte) : `+${hex2(byte)}`;
  }
  return out;
}

/**
 * RFC 6533 §3 utf-8-addr-xtext (`unitext` false) or utf-8-addr-unitext (true, only when the
 * session uses SMTPUTF8): QCHAR as is, non-ASCII as UTF-8 (unitext) or \x{HEX}, and SP, CTLs,
 * "\", "+", "=" as \x{HEX}. An existing \x{HEX} escape is kept (the queue may hold it).
 */
export function utf8AddrXtext(address: string, unitext: boolean): string {
  let out = '';
  const chars = [...address];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === '\\') {
      const m = /^\\x\{[0-9A-Fa-f]{1,6}\}/.exec(chars.slice(i, i + 10).join(''));
      if (m) { out += m[0].toUpperCase().replace('\\X', '\\x'); i += m[0].length - 1; continue; }
    }
    if (isQchar(cp)) out += ch;
    else if (cp > 0x7f && unitext) out += ch;
    else out += `\\x{${cp.toString(16).toUpperCase().padStart(2, '0')}}`;
  }
  return out;
}

function isQchar(cp: number): boolean {
  return cp >= 0x21 && cp <= 0x7e && cp !== 0x2b && cp !== 0x3d && cp !== 0x5c;
}

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}

/** ORCPT value from the queue's `addr-type;address` (decoded), encoded for the wire. */
export function encodeOrcpt(orcpt: string, utf8Session: boolean): string | undefined {
  const semi = orcpt.indexOf(';');
  if (semi <= 0) return undefined;
  const type = orcpt.slice(0, semi).trim();
  const address = orcpt.slice(semi + 1);
  if (!/^[A-Za-z0-9-]{1,40}$/.test(type) || address === '') return undefined;
  // A non-ASCII address can only be carried as a utf-8 addr-type (RFC 6533 §3).
  if (type.toLowerCase() === 'utf-8' || !isAscii(address)) return `utf-8;${utf8AddrXtext(address, utf8Session)}`;
  return `${type};${xtext(address)}`;
}

const NOTIFY_WORDS = new Set(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY']);

/** RFC 3461 §4.1: NEVER alone, or a list of SUCCESS/FAILURE/DELAY. Invalid words are dropped. */
export function notifyValue(notify: readonly string[] | undefined): string | undefined {
  if (!notify || notify.length === 0) return undefined;
  const words = [...new Set(notify.map((w) => w.trim().toUpperCase()).filter((w) => NOTIFY_WORDS.has(w)))];
  if (words.length === 0) return undefined;
  return words.includes('NEVER') ? 'NEVER' : words.join(',');
}

export interface MailParams {
  /** Announce SIZE= (peer offers SIZE). */
  size: boolean;
  /** Send BODY=8BITMIME. */
  eightbit: boolean;
  /** Send SMTPUTF8. */
  smtputf8: boolean;
  /** Relay DSN parameters (peer offers DSN). */
  dsn: boolean;
}

/** "MAIL FROM:<sender> [params]" without CRLF. */
export function mailCommand(tx: Transaction, p: MailParams): string {
  const params: string[] = [];
  if (p.size) params.push(`SIZE=${Math.max(0, Math.floor(tx.size))}`);
  if (p.eightbit) params.push('BODY=8BITMIME');
  if (p.smtputf8) params.push('SMTPUTF8');
  if (p.dsn) {
    const ret = tx.ret ?? firstDsn(tx, 'ret');
    const envid = tx.envid ?? firstDsn(tx, 'envid');
    if (ret === 'FULL' || ret === 'HDRS') params.push(`RET=${ret}`);
    if (envid) params.push(`ENVID=${xtext(envid)}`);
  }
  return `MAIL FROM:<${tx.sender}>${params.map((x) => ` ${x}`).join('')}`;
}

/** RET/ENVID are per message; the queue keeps them per recipient, so take the first that has one. */
function firstDsn(tx: Transaction, key: 'ret' | 'envid'): string | undefined {
  for (const r of tx.recipients) {
    const v = r.dsn?.[key];
    if (v) return v;
  }
  return undefined;
}

/** "RCPT TO:<address> [NOTIFY=…] [ORCPT=…]" without CRLF. */
export function rcptCommand(rcpt: TransactionRecipient, dsn: boolean, utf8Session: boolean): string {
  const params: string[] = [];
  if (dsn && rcpt.dsn) {
    const notify = notifyValue(rcpt.dsn.notify);
    if (notify) params.push(`NOTIFY=${notify}`);
    const orcpt = rcpt.dsn.orcpt ? encodeOrcpt(rcpt.dsn.orcpt, utf8Session) : undefined;
    if (orcpt) params.push(`ORCPT=${orcpt}`);
  }
  return `RCPT TO:<${rcpt.address}>${params.map((x) => ` ${x}`).join('')}`;
}

// ---------------------------------------------------------------------------------------------
// DATA content

const DOT = Buffer.from('.');
const CR = Buffer.from('\r');
const CRLF = Buffer.from('\r\n');
const END = Buffer.from('.\r\n');

/**
 * The body as DATA content: a "." is doubled at the start of every line (RFC 5321 §4.5.2), a
 * bare LF becomes CRLF (lines are what SMTP carries; a bare LF must not reach a peer that might
 * read "\n.\n" as the end, the "SMTP smuggling" problem), a missing final CRLF is added, and
 * ".\r\n" ends it. Bare CR is left alone. Yields chunks of at most `chunkSize` octets; large
 * stretches are views into `body`, not copies.
 */
export function dotStuff(body: Buffer, chunkSize = 64 * 1024): Iterable<Buffer> {
  const parts = stuffedParts(body);
  // The usual message fits one chunk: one buffer, without a generator's objects per message.
  let total = 0;
  for (const p of parts) total += p.length;
  if (total <= chunkSize) return [parts.length === 1 ? parts[0] : Buffer.concat(parts, total)];
  return coalesce(parts, chunkSize);
}

function stuffedParts(body: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let seg = 0;
  const insert = (at: number, what: Buffer): void => {
    if (at > seg) parts.push(body.subarray(seg, at));
    parts.push(what);
    seg = at;
  };
  if (body.length > 0 && body[0] === 0x2e) insert(0, DOT);
  for (let lf = body.indexOf(0x0a); lf >= 0; lf = body.indexOf(0x0a, lf + 1)) {
    if (lf === 0 || body[lf - 1] !== 0x0d) insert(lf, CR);
    if (lf + 1 < body.length && body[lf + 1] === 0x2e) insert(lf + 1, DOT);
  }
  if (body.length > seg) parts.push(body.subarray(seg));
  if (body.length > 0 && body[body.length - 1] !== 0x0a) parts.push(CRLF);
  parts.push(END);
  return parts;
}

/** Re-cut parts into chunks of at most `size`: small parts joined, big ones sliced. */
function* coalesce(parts: Buffer[], size: number): Generator<Buffer> {
  let pending: Buffer[] = [];
  let pendingLength = 0;
  for (let part of parts) {
    while (part.length > 0) {
      const room = size - pendingLength;
      const take = part.subarray(0, room);
      pending.push(take);
      pendingLength += take.length;
      part = part.subarray(take.length);
      if (pendingLength === size) {
        yield pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingLength);
        pending = [];
        pendingLength = 0;
      }
    }
  }
  if (pendingLength > 0) yield pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingLength);
}
