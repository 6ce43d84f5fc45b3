/**
 * The Received: trace header the SMTP server prepends to every message (RFC 5321 §4.4,
 * RFC 5322 §3.6.7). PURE: the caller passes the time.
 *
 *   Received: from <helo> (<ptr or "unknown"> [<ip>])
 *   \tby <hostname> with <protocol> id <transaction id>
 *   \tfor <recipient>; <RFC 5322 date>
 *
 * - TCP-info is an address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3).
 * - "for" is only written when the transaction has exactly one recipient: listing several
 *   would disclose Bcc recipients to all of them (RFC 5321 §7.2).
 * - The protocol is the RFC 3848 / RFC 6531 §4.4 "with" keyword: SMTP (HELO), ESMTP, plus S
 *   for TLS and A for an authenticated session; UTF8SMTP… when the transaction used SMTPUTF8.
 * - The HELO argument is the client's and goes into a header: characters outside printable
 *   ASCII (or UTF-8 when SMTPUTF8 was used) are replaced, so it cannot fold or break the field.
 */
import { isIPv6 } from 'node:net';

export interface TraceInfo {
  helo: string;
  verb: 'HELO' | 'EHLO';
  remoteip: string;
  remoteptr?: string;
  hostname: string;
  tls: boolean;
  auth: boolean;
  smtputf8: boolean;
  id: string;
  /** The one recipient, or undefined when there are several. */
  recipient?: string;
  /** Time of reception, Unix epoch ms. */
  ts: number;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** RFC 5322 §3.3 date-time in UTC, e.g. "Tue, 1 Jul 2003 10:52:37 +0000". */
export function rfc5322Date(ms: number): string {
  const d = new Date(ms);
  const time = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`;
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${time} +0000`;
}

export function protocolKeyword(t: Pick<TraceInfo, 'verb' | 'tls' | 'auth' | 'smtputf8'>): string {
  if (t.verb === 'HELO' && !t.smtputf8) return t.tls ? 'SMTPS' : 'SMTP';
  const base = t.smtputf8 ? 'UTF8SMTP' : 'ESMTP';
  return `${base}${t.tls ? 'S' : ''}${t.auth ? 'A' : ''}`;
}

function sanitize(s: string, utf8: boolean): string {
  const cleaned = utf8 ? s.replace(/[\x00-\x20\x7f();]/g, '?') : s.replace(/[^\x21-\x7e]|[();]/g, '?');
  return cleaned.slice(0, 255);
}

function addressLiteral(ip: string): string {
  return isIPv6(ip) ? `[IPv6:${ip}]` : `[${ip}]`;
}

/** The complete header field, CRLF-terminated, ready to prepend to the message. */
export function buildReceived(t: TraceInfo): Buffer {
  const helo = sanitize(t.helo, t.smtputf8);
  const ptr = t.remoteptr ? sanitize(t.remoteptr, false) : 'unknown';
  const forPart = t.recipient ? `\r\n\tfor <${sanitize(t.recipient, t.smtputf8)}>` : '';
  const text =
    `Received: from ${helo} (${ptr} ${addressLiteral(t.remoteip)})\r\n` +
    `\tby ${t.hostname} with ${protocolKeyword(t)} id ${t.id}${forPart};\r\n` +
    `\t${rfc5322Date(t.ts)}\r\n`;
  return Buffer.from(text, 'utf8');
}
