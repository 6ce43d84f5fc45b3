/**
 * Delivery status notifications: PURE (no I/O, no config, the clock passed in).
 *
 * Purpose: build the RFC 3464 multipart/report that tells an envelope sender what became of
 * some of its recipients ("failed", "delayed", and "delivered"/"relayed" when asked for), as
 * Halon does after post-delivery (halon-core.md §4.8, §5.4). The caller sends the result through
 * the transport group's `dsn.transport`.
 *
 * Inputs: `DsnInput` — our hostname, the time, an id generator, the original envelope and header
 * section (and body, returned only for RET=FULL failures), and one entry per recipient.
 * Output: `{ sender: '', recipient, message }`, or null when no DSN may or need be sent:
 *   - the original reverse-path is null: a DSN is never sent to `<>` (RFC 3461 §6.2,
 *     RFC 5321 §6.1 — that is what stops bounce loops);
 *   - no recipient's NOTIFY asks for its action (RFC 3461 §4.1). Absent NOTIFY means
 *     FAILURE,DELAY: failures always, delays when the retry interval says `notify: true`
 *     (RFC 3461 §4.1 leaves DELAY to the MTA; the scheduler decides when to ask).
 * Invariants of the message: CRLF line endings only, no line over 998 octets (RFC 5322 §2.1.1),
 * every field value from outside stripped of control characters (no field injection), long
 * fields folded at existing spaces so unfolding restores them (RFC 5322 §2.2.3), a boundary
 * that occurs nowhere in the content (RFC 2046 §5.1.1).
 * 8-bit (RFC 6533): when the original header section holds 8-bit octets or the sender address
 * is non-ASCII, the DSN itself needs SMTPUTF8, so it uses message/global-delivery-status and
 * message/global-headers (or message/global) and keeps UTF-8 as is; otherwise every part is
 * 7-bit or 8bit-MIME (UTF-8 addresses as utf-8-addr-xtext, non-ASCII human text in base64).
 * Errors: none thrown for any input.
 */
import { randomUUID } from 'node:crypto';

export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed';

export interface DsnDiagnostic {
  /** `smtp`: the remote reply (use formatDiagnostic); `x-error`: our own reason (halon-core §5.4). */
  type: 'smtp' | 'x-error';
  text: string;
}

export interface DsnRecipient {
  /** The envelope recipient (Final-Recipient). */
  recipient: string;
  /**
   * ORCPT as the queue keeps it (`addr-type;address`, xtext already decoded by the SMTP codec,
   * model/types.ts DsnParams.orcpt). A `utf-8` address may still hold \x{HEX} escapes.
   */
  orcpt?: string;
  /** RFC 3461 NOTIFY keywords; absent or empty = FAILURE,DELAY. */
  notify?: string[];
  action: DsnAction;
  /** RFC 3463 enhanced status, e.g. '5.1.1' (see parseStatus). */
  status: string;
  remoteMta?: string;
  diagnostic?: DsnDiagnostic;
  lastAttempt?: Date;
  /** Shown for `delayed` only (RFC 3464 §2.3.9). */
  willRetryUntil?: Date;
}

export interface DsnOriginal {
  /** Envelope sender; '' is the null reverse-path. */
  sender: string;
  envid?: string;
  ret?: 'FULL' | 'HDRS';
  arrivalDate: Date;
  receivedFromMta?: string;
  /** The original header section. */
  headers: Buffer;
  /** The original body; returned only for RET=FULL failures up to DSN_BODY_CAP octets. */
  body?: Buffer;
}

export interface DsnInput {
  /** Our hostname (Reporting-MTA, MAILER-DAEMON@, Message-ID). */
  reportingMta: string;
  now: Date;
  /** Id of the DSN message (Message-ID and boundary); default a random UUID. */
  idGen?: () => string;
  original: DsnOriginal;
  recipients: DsnRecipient[];
}

export interface DsnMessage {
  sender: '';
  recipient: string;
  message: Buffer;
}

/** Largest original body returned in full; beyond it only the headers go back. */
export const DSN_BODY_CAP = 100 * 1024;

const CRLF = '\r\n';
/** Fold fields near here (RFC 5322 §2.1.1 SHOULD 78) ... */
const SOFT_WIDTH = 78;
/** ... and never let a line exceed this (RFC 5322 §2.1.1 MUST 998). */
const HARD_WIDTH = 998;
const TEXT_WIDTH = 76;

// ---------------------------------------------------------------------------------------------
// Public helpers

/**
 * The RFC 3463 status for an SMTP reply. A valid enhanced code is kept, its class forced to the
 * reply code's (RFC 3463 §2 makes them agree; the basic code wins, as in Postfix); without one,
 * the class alone: 2.0.0, 4.0.0 or 5.0.0 (anything but 2xx/4xx counts as permanent).
 */
export function parseStatus(enhanced: [number, number, number] | null, code: number): string {
  const cls = replyClass(code);
  if (!enhanced || !enhanced.slice(1).every(isStatusNumber)) return `${cls}.0.0`;
  return `${cls}.${enhanced[1]}.${enhanced[2]}`;
}

/**
 * An SMTP reply as Diagnostic-Code text (RFC 3464 §2.3.6: the reply as received): each line
 * "code-[enhanced ]text", the last "code [enhanced ]text", joined with spaces into one logical
 * line (folded when written). A line that already starts with the enhanced code keeps one copy.
 */
export function formatDiagnostic(code: number, enhanced: [number, number, number] | null, lines: readonly string[]): string {
  const enh = enhanced ? enhanced.join('.') : '';
  const all = lines.length === 0 ? [''] : lines;
  return all.map((line, i) => diagnosticLine(code, enh, clean(line), i === all.length - 1)).join(' ');
}

// ---------------------------------------------------------------------------------------------
// buildDsn

interface Part {
  headers: string[];
  body: Buffer;
  eightBit: boolean;
}

type Returned = 'full' | 'headers' | 'too-large' | 'not-mime-safe';

interface Ctx {
  input: DsnInput;
  recipients: DsnRecipient[];
  /** The DSN needs SMTPUTF8 anyway, so RFC 6533 global types and raw UTF-8 are used. */
  global: boolean;
  headline: DsnAction;
  returned: Returned;
}

export function buildDsn(input: DsnInput): DsnMessage | null {
  const sender = input.original.sender.trim();
  if (sender === '' || sender === '<>') return null;
  const recipients = input.recipients.filter(wantsNotice);
  if (recipients.length === 0) return null;
  const ctx = makeContext(input, recipients);
  const parts = [humanPart(ctx), statusPart(ctx), originalPart(ctx)];
  const id = (input.idGen ?? randomUUID)();
  return { sender: '', recipient: input.original.sender, message: assemble(ctx, id, parts) };
}

/** RFC 3461 §4.1 keyword that asks for each action. */
const NOTIFY_KEYWORD: Readonly<Record<DsnAction, string>> = {
  failed: 'FAILURE',
  delayed: 'DELAY',
  delivered: 'SUCCESS',
  relayed: 'SUCCESS',
};

function wantsNotice(r: DsnRecipient): boolean {
  const notify = (r.notify ?? []).map((k) => k.trim().toUpperCase()).filter((k) => k !== '');
  if (notify.length === 0) return r.action === 'failed' || r.action === 'delayed';
  if (notify.includes('NEVER')) return false;
  return notify.includes(NOTIFY_KEYWORD[r.action]);
}

function makeContext(input: DsnInput, recipients: DsnRecipient[]): Ctx {
  const o = input.original;
  const global = has8bit(o.headers) || !isAscii(o.sender);
  const headline = SEVERITY.find((a) => recipients.some((r) => r.action === a)) ?? 'failed';
  return { input, recipients, global, headline, returned: returnedContent(o, headline === 'failed') };
}

/** The action that names the whole report: the worst one in it. */
const SEVERITY: readonly DsnAction[] = ['failed', 'delayed', 'delivered', 'relayed'];

/**
 * RFC 3461 §4.3: RET=FULL asks for the whole message in a *failure* report; HDRS, no RET, delays
 * and successes get the headers. A body over the cap, or one that is not valid 8bit-MIME
 * (NUL, bare CR/LF, lines over 998 — possible after BDAT), goes back as headers only.
 */
function returnedContent(o: DsnOriginal, failure: boolean): Returned {
  if (o.ret !== 'FULL' || !failure || o.body === undefined) return 'headers';
  if (o.body.length > DSN_BODY_CAP) return 'too-large';
  return isMimeSafe(o.body) ? 'full' : 'not-mime-safe';
}

// ---------------------------------------------------------------------------------------------
// Top-level message

const SUBJECT: Readonly<Record<DsnAction, string>> = {
  failed: 'Undelivered Mail Returned to Sender',
  delayed: 'Delayed Mail (still being retried)',
  delivered: 'Successful Mail Delivery Report',
  relayed: 'Successful Mail Delivery Report',
};

function assemble(ctx: Ctx, id: string, parts: Part[]): Buffer {
  const boundary = pickBoundary(id, parts);
  const eightBit = ctx.global || parts.some((p) => p.eightBit);
  const top = topHeaders(ctx, id, boundary, eightBit);
  const chunks: Buffer[] = [text(top.map(foldField).join(CRLF) + CRLF + CRLF), text(`This is a MIME-encapsulated message.${CRLF}`)];
  for (const p of parts) {
    chunks.push(text(`${CRLF}--${boundary}${CRLF}${p.headers.map(foldField).join(CRLF)}${CRLF}${CRLF}`), p.body);
  }
  chunks.push(text(`${CRLF}--${boundary}--${CRLF}`));
  return Buffer.concat(chunks);
}

function topHeaders(ctx: Ctx, id: string, boundary: string, eightBit: boolean): string[] {
  const host = clean(ctx.input.reportingMta);
  return [
    `From: "Mail Delivery System" <MAILER-DAEMON@${host}>`,
    `To: <${stripControls(ctx.input.original.sender.trim())}>`,
    `Subject: ${SUBJECT[ctx.headline]}`,
    `Date: ${rfc5322Date(ctx.input.now)}`,
    `Message-ID: <${atext(id)}@${host}>`,
    // RFC 3834 §5: marks the DSN as automatic so that autoresponders stay silent.
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    `Content-Transfer-Encoding: ${eightBit ? '8bit' : '7bit'}`,
  ];
}

/** RFC 2046 §5.1.1: bchars only, ≤ 70, and found in no part (a suffix is added until it is not). */
function pickBoundary(id: string, parts: Part[]): string {
  const base = `=_dsn_${id.replace(/[^A-Za-z0-9.-]/g, '').slice(0, 40)}`;
  const bodies = parts.map((p) => p.body.toString('latin1'));
  for (let n = 0; ; n++) {
    const b = n === 0 ? base : `${base}_${n}`;
    if (!bodies.some((s) => s.includes(`--${b}`))) return b;
  }
}

// ---------------------------------------------------------------------------------------------
// Part 1: human-readable text

const INTRO: Readonly<Record<DsnAction, string>> = {
  failed: 'Your message could not be delivered to one or more recipients. The reasons are given below.',
  delayed:
    'Your message has not yet been delivered to one or more recipients. The mail system will keep trying; you do not need to send it again.',
  delivered: 'Your message was delivered to the recipients below.',
  relayed: 'Your message was delivered to the recipients below.',
};

const RETURNED_NOTE: Readonly<Record<Returned, string>> = {
  full: 'Your message is attached.',
  headers: 'The headers of your message are attached.',
  'too-large': `Your message was larger than ${DSN_BODY_CAP / 1024} KiB, so only its headers are attached.`,
  'not-mime-safe': 'Your message could not be attached as it was sent, so only its headers are attached.',
};

function humanPart(ctx: Ctx): Part {
  const paras = [
    wrap(`This is the mail system at host ${clean(ctx.input.reportingMta)}.`, ''),
    wrap(INTRO[ctx.headline], ''),
    ...ctx.recipients.map((r) => recipientText(r).map((l) => wrap(l, '    ')).join(CRLF)),
    wrap(RETURNED_NOTE[ctx.returned], ''),
  ];
  const body = paras.join(CRLF + CRLF) + CRLF;
  return textPart(body, ctx.global);
}

const ACTION_TEXT: Readonly<Record<DsnAction, (r: DsnRecipient) => string>> = {
  failed: () => 'delivery failed',
  delayed: (r) => (r.willRetryUntil ? `delivery delayed, still trying until ${rfc5322Date(r.willRetryUntil)}` : 'delivery delayed, still trying'),
  delivered: () => 'delivered',
  relayed: () => 'relayed to a system that does not report delivery',
};

/** One paragraph per recipient: its outcome, then indented details. */
function recipientText(r: DsnRecipient): string[] {
  const lines = [`<${stripControls(r.recipient)}>: ${ACTION_TEXT[r.action](r)}`];
  if (r.remoteMta) lines.push(`    Remote server: ${clean(r.remoteMta)}`);
  if (r.diagnostic) {
    const who = r.diagnostic.type === 'smtp' ? 'The remote server said' : 'Reason';
    lines.push(`    ${who}: ${clean(r.diagnostic.text)}`);
  }
  return lines;
}

/** ASCII as is; otherwise UTF-8, raw when the DSN is SMTPUTF8 anyway, else base64 (RFC 2045 §6.8). */
function textPart(body: string, global: boolean): Part {
  const type = ['Content-Description: Notification'];
  if (isAscii(body)) {
    return { headers: [...type, 'Content-Type: text/plain; charset=us-ascii', 'Content-Transfer-Encoding: 7bit'], body: text(body), eightBit: false };
  }
  const headers = [...type, 'Content-Type: text/plain; charset=utf-8'];
  if (global) return { headers: [...headers, 'Content-Transfer-Encoding: 8bit'], body: text(body), eightBit: true };
  const b64 = (Buffer.from(body, 'utf8').toString('base64').match(/.{1,76}/g) ?? []).join(CRLF) + CRLF;
  return { headers: [...headers, 'Content-Transfer-Encoding: base64'], body: text(b64), eightBit: false };
}

// ---------------------------------------------------------------------------------------------
// Part 2: message/delivery-status (RFC 3464 §2.2, §2.3; field order as in its grammar)

function statusPart(ctx: Ctx): Part {
  const blocks = [perMessageFields(ctx), ...ctx.recipients.map((r) => perRecipientFields(r, ctx.global))];
  const body = blocks.map((fields) => fields.map(foldField).join(CRLF) + CRLF).join(CRLF);
  const type = ctx.global ? 'message/global-delivery-status' : 'message/delivery-status';
  const headers = ['Content-Description: Delivery report', `Content-Type: ${type}`];
  headers.push(`Content-Transfer-Encoding: ${ctx.global && !isAscii(body) ? '8bit' : '7bit'}`);
  return { headers, body: text(body), eightBit: !isAscii(body) };
}

function perMessageFields(ctx: Ctx): string[] {
  const o = ctx.input.original;
  const fields: string[] = [];
  if (o.envid) fields.push(`Original-Envelope-Id: ${value(o.envid, ctx.global)}`);
  fields.push(`Reporting-MTA: dns; ${clean(ctx.input.reportingMta)}`);
  if (o.receivedFromMta) fields.push(`Received-From-MTA: dns; ${value(o.receivedFromMta, ctx.global)}`);
  fields.push(`Arrival-Date: ${rfc5322Date(o.arrivalDate)}`);
  return fields;
}

function perRecipientFields(r: DsnRecipient, global: boolean): string[] {
  const fields: string[] = [];
  const orig = r.orcpt ? originalRecipient(r.orcpt, global) : null;
  if (orig) fields.push(`Original-Recipient: ${orig}`);
  fields.push(`Final-Recipient: ${typedAddress(r.recipient, global)}`);
  fields.push(`Action: ${r.action}`, `Status: ${statusFor(r)}`);
  if (r.remoteMta) fields.push(`Remote-MTA: dns; ${value(r.remoteMta, global)}`);
  if (r.diagnostic) fields.push(`Diagnostic-Code: ${r.diagnostic.type}; ${value(r.diagnostic.text, global)}`);
  if (r.lastAttempt) fields.push(`Last-Attempt-Date: ${rfc5322Date(r.lastAttempt)}`);
  if (r.action === 'delayed' && r.willRetryUntil) fields.push(`Will-Retry-Until: ${rfc5322Date(r.willRetryUntil)}`);
  return fields;
}

/** RFC 3464 §2.3.4 status-code; a malformed one becomes the action's generic code. */
function statusFor(r: DsnRecipient): string {
  if (/^[245]\.\d{1,3}\.\d{1,3}$/.test(r.status.trim())) return r.status.trim();
  return r.action === 'failed' ? '5.0.0' : r.action === 'delayed' ? '4.0.0' : '2.0.0';
}

/**
 * Original-Recipient from the queue's ORCPT (RFC 3461 §4.2 → RFC 3464 §2.3.1): the address is
 * already xtext-decoded; `utf-8` addresses are decoded from \x{HEX} and re-encoded for this
 * report (RFC 6533 §3); other registered types pass through as printable text.
 */
function originalRecipient(orcpt: string, global: boolean): string | null {
  const semi = orcpt.indexOf(';');
  const type = semi < 0 ? 'rfc822' : orcpt.slice(0, semi).trim().toLowerCase();
  const addr = (semi < 0 ? orcpt : orcpt.slice(semi + 1)).trim();
  if (addr === '' || !/^[a-z0-9-]+$/.test(type)) return null;
  if (type === 'rfc822') return typedAddress(addr, global);
  if (type === 'utf-8') return typedAddress(decodeUtf8AddrEscapes(addr), global);
  return `${type}; ${value(addr, global)}`;
}

/** `rfc822; addr` for ASCII; `utf-8;` + utf-8-addr-xtext (7-bit) or -unitext (global), RFC 6533 §3. */
function typedAddress(address: string, global: boolean): string {
  const addr = stripControls(address);
  if (isAscii(addr)) return `rfc822; ${addr}`;
  let out = '';
  for (const ch of addr) {
    const cp = ch.codePointAt(0) ?? 0;
    const literal = (cp > 0x20 && cp < 0x7f && ch !== '+' && ch !== '=' && ch !== '\\') || (global && cp > 0x7f);
    out += literal ? ch : `\\x{${cp.toString(16).toUpperCase().padStart(2, '0')}}`;
  }
  return `utf-8; ${out}`;
}

function decodeUtf8AddrEscapes(s: string): string {
  return s.replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, (m, hex: string) => {
    const cp = parseInt(hex, 16);
    return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
  });
}

// ---------------------------------------------------------------------------------------------
// Part 3: the original message or its headers

function originalPart(ctx: Ctx): Part {
  const headers = normaliseHeaders(ctx.input.original.headers);
  if (ctx.returned === 'full') return fullMessagePart(ctx, headers);
  const type = ctx.global ? 'message/global-headers' : 'text/rfc822-headers';
  const desc = ctx.headline === 'failed' ? 'Undelivered Message Headers' : 'Message Headers';
  const eightBit = has8bit(headers);
  const cte = eightBit ? '8bit' : '7bit';
  return { headers: [`Content-Description: ${desc}`, `Content-Type: ${type}`, `Content-Transfer-Encoding: ${cte}`], body: headers, eightBit };
}

/** RFC 2046 §5.2.1: message/* parts take 7bit or 8bit only; the body was checked by isMimeSafe. */
function fullMessagePart(ctx: Ctx, headers: Buffer): Part {
  const body = ctx.input.original.body ?? Buffer.alloc(0);
  const whole = Buffer.concat([headers, text(CRLF), body, text(endsWithCrlf(body) || body.length === 0 ? '' : CRLF)]);
  const eightBit = has8bit(whole);
  const type = ctx.global ? 'message/global' : 'message/rfc822';
  return { headers: ['Content-Description: Undelivered Message', `Content-Type: ${type}`, `Content-Transfer-Encoding: ${eightBit ? '8bit' : '7bit'}`], body: whole, eightBit };
}

/**
 * The header section as CRLF lines, ending in CRLF, without the empty line: a bare LF becomes
 * CRLF (local submitters write LF), a bare CR a space (it ends no line), and a line over 998 octets is folded at its last space before the limit (or cut there
 * and continued with a space — the only case where the returned headers differ in content).
 */
function normaliseHeaders(raw: Buffer): Buffer {
  const lines = raw.toString('latin1').replace(/\r(?!\n)/g, ' ').split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const out = lines.flatMap((l) => hardSplit(l, (s) => s.length));
  return Buffer.from(out.map((l) => l + CRLF).join(''), 'latin1');
}

// ---------------------------------------------------------------------------------------------
// Line-level helpers

/** Control characters (CR and LF first) and runs of white space become one space. */
function clean(s: string): string {
  return s.replace(/[\x00-\x20\x7f]+/g, ' ').trim();
}

function stripControls(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, '');
}

/** A field value from outside: cleaned, and ASCII-only unless the report is global (RFC 6533). */
function value(s: string, global: boolean): string {
  const c = clean(s);
  return global ? c : c.replace(/[^\x00-\x7f]/g, '?');
}

function atext(id: string): string {
  const a = id.replace(/[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]/g, '').replace(/^\.+|\.+$/g, '').replace(/\.{2,}/g, '.');
  return a === '' ? 'dsn' : a;
}

/**
 * Fold a header field at spaces (RFC 5322 §2.2.3): CRLF goes before an existing space, so
 * unfolding gives the field back exactly. A word too long for a line is cut (and continued
 * with a space) only to keep the 998-octet limit.
 */
function foldField(field: string): string {
  const lines: string[] = [];
  let rest = field;
  while (rest.length > SOFT_WIDTH) {
    const cut = breakAt(rest, SOFT_WIDTH);
    if (cut <= 0) break;
    lines.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  lines.push(rest);
  return lines.flatMap((l) => hardSplit(l, utf8Length)).join(CRLF);
}

/** The last space at or before `width` that leaves text on both sides, else the first after it. */
function breakAt(s: string, width: number): number {
  const before = s.lastIndexOf(' ', width);
  if (before > 0 && s.slice(0, before).trim() !== '') return before;
  const from = s.search(/\S/);
  return s.indexOf(' ', Math.max(width, from) + 1);
}

/** Keep every line within HARD_WIDTH octets; continuation lines start with a space. */
function hardSplit(line: string, octets: (s: string) => number): string[] {
  const out: string[] = [];
  let rest = line;
  while (octets(rest) > HARD_WIDTH) {
    let cut = HARD_WIDTH;
    while (octets(rest.slice(0, cut)) > HARD_WIDTH) cut--;
    const space = rest.lastIndexOf(' ', cut);
    if (space > 0 && rest.slice(0, space).trim() !== '') cut = space;
    out.push(rest.slice(0, cut));
    rest = rest[cut] === ' ' ? rest.slice(cut) : ' ' + rest.slice(cut);
  }
  out.push(rest);
  return out;
}

/** Word-wrap one line of plain text; continuation lines start with `hang`. */
function wrap(line: string, hang: string): string {
  const indent = /^ */.exec(line)?.[0] ?? '';
  const words = line.trim().split(' ').filter((w) => w !== '');
  const out: string[] = [];
  let cur = indent;
  for (const w of words) {
    if (cur.trim() !== '' && cur.length + 1 + w.length > TEXT_WIDTH) {
      out.push(cur);
      cur = hang;
    }
    cur += (cur.trim() === '' ? '' : ' ') + w;
  }
  out.push(cur);
  return out.flatMap((l) => hardSplit(l, utf8Length)).join(CRLF);
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 §3.3 date-time, always in UTC (+0000) so the output does not depend on the host. */
export function rfc5322Date(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const time = `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
  return `${DAYS[d.getUTCDay()]}, ${p(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${time} +0000`;
}

function diagnosticLine(code: number, enh: string, line: string, last: boolean): string {
  const body = enh && !line.startsWith(enh) ? `${enh} ${line}` : line;
  return `${code}${last ? ' ' : '-'}${body}`.trimEnd();
}

function replyClass(code: number): 2 | 4 | 5 {
  const c = Math.floor(code / 100);
  return c === 2 ? 2 : c === 4 ? 4 : 5;
}

function isStatusNumber(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 999;
}

function text(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

function has8bit(b: Buffer): boolean {
  return b.some((x) => x > 0x7f);
}

function endsWithCrlf(b: Buffer): boolean {
  return b.length >= 2 && b[b.length - 2] === 0x0d && b[b.length - 1] === 0x0a;
}

/** RFC 6152 / RFC 2045 §2.8: no NUL, CR and LF only as CRLF, lines ≤ 998 octets. */
function isMimeSafe(b: Buffer): boolean {
  let lineLen = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === 0) return false;
    if (c === 0x0d) {
      if (b[i + 1] !== 0x0a) return false;
      i++;
      lineLen = 0;
    } else if (c === 0x0a || ++lineLen > HARD_WIDTH) return false;
  }
  return true;
}
