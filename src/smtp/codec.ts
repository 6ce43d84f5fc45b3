/**
 * SMTP command codec: PURE (no I/O, no config, no clock).
 *
 * Inputs: one command line as a Buffer without its CRLF (framing.ts has already checked the
 * line ending and the length).
 * Outputs: `parseCommand` returns a discriminated union `Command` (one variant per verb, plus
 * `UNKNOWN` and `ERROR` carrying the exact reply to send); `encodeReply` turns a reply into
 * wire text. The PROXY protocol parser lives in proxy.ts and is re-exported here.
 * Invariants: never throws on peer input; every ERROR carries a 5xx code and an RFC 3463
 * enhanced code; reply text never contains CR or LF from its inputs (no reply forgery).
 *
 * Grammar (RFC 5321 §4.1.2, RFC 6531 §3.3 for UTF-8):
 *   Path = "<" [ A-d-l ":" ] Mailbox ">"   — the source route (A-d-l) is parsed and ignored
 *                                              (§4.1.1.3: "MUST accept and ignore")
 *   Mailbox = Local-part "@" ( Domain / address-literal )
 * Leniencies (each is what widely deployed clients send; documented in docs/decisions.md):
 *   - spaces after "FROM:" / "TO:" are tolerated (Outlook-era clients send "MAIL FROM: <a@b>"),
 *   - trailing spaces after a command are ignored,
 *   - "RCPT TO:<postmaster>" without a domain is accepted (§4.1.1.3 requires it).
 */
import { isAscii, isUtf8 } from 'node:buffer';
import { isIPv4, isIPv6 } from 'node:net';
import type { Address } from '../model/types';

export { parseProxyHeader, type ProxyHeader, type ProxyParseResult } from './proxy';

export type Enhanced = [number, number, number];

/** A reply the codec chose for malformed input. */
export interface CodecError {
  code: number;
  enhanced: Enhanced;
  text: string;
}

/** A parsed reverse- or forward-path. `mailbox` is '' for the null path `<>`. */
export interface Path {
  /** The mailbox exactly as written (quotes kept), without angle brackets or source route. */
  mailbox: string;
  address: Address;
  /** True when the mailbox contains non-ASCII characters (needs SMTPUTF8, RFC 6531 §3.5). */
  utf8: boolean;
}

export interface MailParams {
  size?: number;
  body?: '7BIT' | '8BITMIME';
  smtputf8: boolean;
  ret?: 'FULL' | 'HDRS';
  /** ENVID, xtext-decoded (RFC 3461 §4.4). */
  envid?: string;
}

export interface RcptParams {
  /** NEVER alone, or a subset of SUCCESS, FAILURE, DELAY (RFC 3461 §4.1). */
  notify?: string[];
  /** ORCPT as `addr-type;decoded-address` (RFC 3461 §4.2). */
  orcpt?: string;
}

export type SimpleVerb = 'DATA' | 'RSET' | 'NOOP' | 'QUIT' | 'STARTTLS' | 'HELP';

/** One variant per simple verb, so that `Extract<Command, {verb: V}>` is exact. */
export type SimpleCommand = { [V in SimpleVerb]: { verb: V } }[SimpleVerb];
export type HeloCommand = { [V in 'HELO' | 'EHLO']: { verb: V; host: string } }['HELO' | 'EHLO'];

export type Command =
  | HeloCommand
  | { verb: 'MAIL'; path: Path; params: Record<string, string>; mail: MailParams }
  | { verb: 'RCPT'; path: Path; params: Record<string, string>; rcpt: RcptParams }
  | SimpleCommand
  | { verb: 'VRFY'; arg: string }
  | { verb: 'BDAT'; size: number; last: boolean }
  | { verb: 'AUTH'; mechanism: string; initial?: string }
  | { verb: 'UNKNOWN'; name: string }
  | { verb: 'ERROR'; name: string; error: CodecError };

export type Verb = Command['verb'];

// ---------------------------------------------------------------------------------------------
// Errors the codec produces (part of the reply catalogue, with replies.ts).

function err(code: number, enhanced: Enhanced, text: string): CodecError {
  return { code, enhanced, text };
}

export const CODEC_ERRORS = {
  syntax: err(500, [5, 5, 2], 'Syntax error, command unrecognized'),
  args: err(501, [5, 5, 4], 'Syntax error in parameters or arguments'),
  noArgs: err(501, [5, 5, 4], 'Syntax error, no parameters allowed'),
  heloArg: err(501, [5, 5, 4], 'Syntax: EHLO hostname'),
  badSender: err(501, [5, 1, 7], 'Bad sender address syntax'),
  badRecipient: err(501, [5, 1, 3], 'Bad recipient address syntax'),
  needUtf8: err(553, [5, 6, 7], 'Non-ASCII address requires SMTPUTF8'),
  badParam: err(501, [5, 5, 4], 'Invalid parameter value'),
  dupParam: err(501, [5, 5, 4], 'Duplicate parameter'),
  unknownParam: err(555, [5, 5, 4], 'Unsupported parameter'),
  bdatSyntax: err(501, [5, 5, 4], 'Syntax: BDAT size [LAST]'),
  authSyntax: err(501, [5, 5, 4], 'Syntax: AUTH mechanism [initial-response]'),
} as const;

// ---------------------------------------------------------------------------------------------
// Command line → Command

const CONTROL = /[\x00-\x1f\x7f]/;

/** Decode a command line: ASCII fast path; UTF-8 must be valid (RFC 6531 §3.3). */
function decodeLine(line: Buffer): string | null {
  if (isAscii(line)) return line.toString('latin1');
  return isUtf8(line) ? line.toString('utf8') : null;
}

/** Parse one command line (without CRLF). Never throws. */
export function parseCommand(line: Buffer): Command {
  const text = decodeLine(line);
  if (text === null || CONTROL.test(text)) return { verb: 'ERROR', name: '', error: CODEC_ERRORS.syntax };
  const trimmed = text.trimEnd();
  const sp = trimmed.indexOf(' ');
  const name = (sp < 0 ? trimmed : trimmed.slice(0, sp)).toUpperCase();
  const arg = sp < 0 ? '' : trimmed.slice(sp + 1);
  const parse = PARSERS.get(name);
  return parse ? parse(arg, name) : { verb: 'UNKNOWN', name: name.slice(0, 16) };
}

type Parser = (arg: string, name: string) => Command;

function simple(verb: SimpleVerb, argsAllowed: boolean): Parser {
  const cmd = { verb } as SimpleCommand;
  return (arg, name) => (arg && !argsAllowed ? { verb: 'ERROR', name, error: CODEC_ERRORS.noArgs } : cmd);
}

const HELO_HOST = /^[^\s]+$/;

function parseHelo(arg: string, name: string): Command {
  const host = arg.trim();
  if (!HELO_HOST.test(host)) return { verb: 'ERROR', name, error: CODEC_ERRORS.heloArg };
  return name === 'EHLO' ? { verb: 'EHLO', host } : { verb: 'HELO', host };
}

function parseVrfy(arg: string, name: string): Command {
  return arg ? { verb: 'VRFY', arg } : { verb: 'ERROR', name, error: CODEC_ERRORS.args };
}

const BDAT_RE = /^(\d{1,15})(?: +(LAST))?$/i;

function parseBdat(arg: string, name: string): Command {
  const m = BDAT_RE.exec(arg);
  if (!m) return { verb: 'ERROR', name, error: CODEC_ERRORS.bdatSyntax };
  return { verb: 'BDAT', size: Number(m[1]), last: m[2] !== undefined };
}

const AUTH_RE = /^([A-Za-z0-9_-]{1,20})(?: +([A-Za-z0-9+/]+={0,2}|=))?$/;

function parseAuth(arg: string, name: string): Command {
  const m = AUTH_RE.exec(arg);
  if (!m) return { verb: 'ERROR', name, error: CODEC_ERRORS.authSyntax };
  return m[2] === undefined ? { verb: 'AUTH', mechanism: m[1].toUpperCase() } : { verb: 'AUTH', mechanism: m[1].toUpperCase(), initial: m[2] };
}

const PARSERS: ReadonlyMap<string, Parser> = new Map<string, Parser>([
  ['HELO', parseHelo],
  ['EHLO', parseHelo],
  ['MAIL', parseMail],
  ['RCPT', parseRcpt],
  ['DATA', simple('DATA', false)],
  ['RSET', simple('RSET', false)],
  ['QUIT', simple('QUIT', false)],
  ['STARTTLS', simple('STARTTLS', false)],
  ['NOOP', simple('NOOP', true)],
  ['HELP', simple('HELP', true)],
  ['VRFY', parseVrfy],
  ['BDAT', parseBdat],
  ['AUTH', parseAuth],
]);

// ---------------------------------------------------------------------------------------------
// Paths (RFC 5321 §4.1.2, RFC 6531 §3.3: UTF8-non-ascii allowed in atext, qtext and sub-domains)

const U = '\\u{80}-\\u{10FFFF}';
const ATOM = `[A-Za-z0-9!#$%&'*+\\-/=?^_\`{|}~${U}]+`;
const DOT_STRING = `${ATOM}(?:\\.${ATOM})*`;
const QUOTED = `"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e${U}]|\\\\[\\x20-\\x7e])*"`;
const SUB_DOMAIN = `[A-Za-z0-9${U}](?:[A-Za-z0-9\\-${U}]*[A-Za-z0-9${U}])?`;
const DOMAIN = `${SUB_DOMAIN}(?:\\.${SUB_DOMAIN})*`;
const LITERAL = `\\[[\\x21-\\x5a\\x5e-\\x7e]+\\]`;
const ROUTE = `@${DOMAIN}(?:,@${DOMAIN})*:`;
/** Group 1: local part; group 2: domain or address literal; group 3: what follows the path. */
const PATH_RE = new RegExp(`^<(?:${ROUTE})?(${DOT_STRING}|${QUOTED})@(${DOMAIN}|${LITERAL})>(.*)$`, 'u');
const NON_ASCII = /[^\x00-\x7f]/;

interface PathParse {
  path: Path;
  rest: string;
}

const LOCAL_PART_RE = new RegExp(`^(?:${DOT_STRING}|${QUOTED})$`, 'u');
const LITERAL_RE = new RegExp(`^${LITERAL}$`);

/** RFC 5321 §4.1.2 Local-part (Dot-string or Quoted-string; RFC 6531 UTF-8 allowed), as in a path. */
export function validLocalPart(s: string): boolean {
  return LOCAL_PART_RE.test(s);
}

/**
 * RFC 5321 §4.1.3, `[` and `]` included: IPv4, "IPv6:" + address, or a General-address-literal
 * (tag ":" content).
 */
export function validLiteral(lit: string): boolean {
  if (!LITERAL_RE.test(lit)) return false;
  const inner = lit.slice(1, -1);
  if (isIPv4(inner)) return true;
  const colon = inner.indexOf(':');
  if (colon <= 0) return false;
  const tag = inner.slice(0, colon);
  if (tag.toUpperCase() === 'IPV6') return isIPv6(inner.slice(colon + 1));
  return /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/.test(tag) && colon < inner.length - 1;
}

/** Parse `<...>` at the start of `s`. `special` is how a non-mailbox path is accepted. */
function parsePath(s: string, special: 'null' | 'postmaster'): PathParse | null {
  if (special === 'null' && s.startsWith('<>')) {
    return { path: { mailbox: '', address: { localpart: '', domain: '' }, utf8: false }, rest: s.slice(2) };
  }
  if (special === 'postmaster' && /^<postmaster>/i.test(s)) {
    const mailbox = s.slice(1, 11);
    return { path: { mailbox, address: { localpart: mailbox, domain: '' }, utf8: false }, rest: s.slice(12) };
  }
  const m = PATH_RE.exec(s);
  if (!m || (m[2].startsWith('[') && !validLiteral(m[2]))) return null;
  const mailbox = `${m[1]}@${m[2]}`;
  return { path: { mailbox, address: { localpart: m[1], domain: m[2] }, utf8: NON_ASCII.test(mailbox) }, rest: m[3] };
}

/** Strip "FROM:" / "TO:" (case-insensitive) and any spaces after the colon. */
function afterKeyword(arg: string, keyword: string): string | null {
  if (arg.length < keyword.length || arg.slice(0, keyword.length).toUpperCase() !== keyword) return null;
  return arg.slice(keyword.length).trimStart();
}

// ---------------------------------------------------------------------------------------------
// ESMTP parameters (RFC 5321 §4.1.2 esmtp-param; RFC 1870, 6152, 6531, 3461, 4954)

const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
const VALUE = /^[\x21-\x3c\x3e-\x7e]+$/;

type ParamResult = { params: Record<string, string> } | { error: CodecError };

/** Split `SP key[=value] SP ...` into an upper-cased key map, values as written. */
function splitParams(rest: string): ParamResult {
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  if (rest === '') return { params };
  if (rest[0] !== ' ') return { error: CODEC_ERRORS.args };
  for (const token of rest.split(' ')) {
    if (token === '') continue;
    const eq = token.indexOf('=');
    const key = (eq < 0 ? token : token.slice(0, eq)).toUpperCase();
    const value = eq < 0 ? '' : token.slice(eq + 1);
    if (!KEYWORD.test(key) || (eq >= 0 && !VALUE.test(value))) return { error: CODEC_ERRORS.args };
    if (key in params) return { error: CODEC_ERRORS.dupParam };
    params[key] = value;
  }
  return { params };
}

/** RFC 3461 §4: xtext = *( xchar / "+" 2HEXCHAR ), hex upper-case. Null when malformed. */
export function decodeXtext(s: string): string | null {
  if (!/^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*$/.test(s)) return null;
  return s.indexOf('+') < 0 ? s : s.replace(/\+([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** Inverse of decodeXtext, for writing ORCPT/ENVID back on the wire (delivery, DSNs). */
export function encodeXtext(s: string): string {
  return s.replace(/[^\x21-\x2a\x2c-\x3c\x3e-\x7e]/g, (c) => {
    const code = c.charCodeAt(0);
    return code < 256 ? '+' + code.toString(16).toUpperCase().padStart(2, '0') : c;
  });
}

/** Which extension must have been announced for a parameter to be accepted. */
export const PARAM_EXTENSION: Readonly<Record<string, string>> = {
  SIZE: 'SIZE',
  BODY: '8BITMIME',
  SMTPUTF8: 'SMTPUTF8',
  RET: 'DSN',
  ENVID: 'DSN',
  NOTIFY: 'DSN',
  ORCPT: 'DSN',
  AUTH: 'AUTH',
};

/**
 * The first parameter whose extension was not announced (RFC 5321 §4.1.1.11: parameters of an
 * extension the server did not offer get 555), or null.
 */
export function unannouncedParam(params: Record<string, string>, announced: ReadonlySet<string>): string | null {
  for (const key of Object.keys(params)) {
    const ext = PARAM_EXTENSION[key];
    if (ext === undefined || !announced.has(ext)) return key;
  }
  return null;
}

type MailParamCheck = (value: string, out: MailParams) => CodecError | null;

const MAIL_PARAMS: ReadonlyMap<string, MailParamCheck> = new Map<string, MailParamCheck>([
  ['SIZE', (v, out) => (/^\d{1,20}$/.test(v) ? ((out.size = Number(v)), null) : CODEC_ERRORS.badParam)],
  ['BODY', checkBody],
  ['SMTPUTF8', (v, out) => (v === '' ? ((out.smtputf8 = true), null) : CODEC_ERRORS.badParam)],
  ['RET', checkRet],
  ['ENVID', checkEnvid],
  // RFC 4954 §5: AUTH=<mailbox> is accepted (when AUTH is announced) and otherwise ignored.
  ['AUTH', (v) => (decodeXtext(v) === null ? CODEC_ERRORS.badParam : null)],
]);

/** We announce 8BITMIME and CHUNKING but not BINARYMIME (RFC 3030 §3): refuse it as unknown. */
function checkBody(v: string, out: MailParams): CodecError | null {
  const body = v.toUpperCase();
  if (body === '7BIT' || body === '8BITMIME') {
    out.body = body;
    return null;
  }
  return body === 'BINARYMIME' ? CODEC_ERRORS.unknownParam : CODEC_ERRORS.badParam;
}

function checkRet(v: string, out: MailParams): CodecError | null {
  const ret = v.toUpperCase();
  if (ret !== 'FULL' && ret !== 'HDRS') return CODEC_ERRORS.badParam;
  out.ret = ret;
  return null;
}

/** RFC 3461 §4.4: ENVID is xtext, at most 100 characters. */
function checkEnvid(v: string, out: MailParams): CodecError | null {
  const envid = decodeXtext(v);
  if (envid === null || v.length > 100) return CODEC_ERRORS.badParam;
  out.envid = envid;
  return null;
}

type RcptParamCheck = (value: string, out: RcptParams) => CodecError | null;

const RCPT_PARAMS: ReadonlyMap<string, RcptParamCheck> = new Map<string, RcptParamCheck>([
  ['NOTIFY', checkNotify],
  ['ORCPT', checkOrcpt],
]);

const NOTIFY_VALUES = new Set(['SUCCESS', 'FAILURE', 'DELAY']);

/** RFC 3461 §4.1: "NEVER" alone, or a comma list of SUCCESS, FAILURE, DELAY. */
function checkNotify(v: string, out: RcptParams): CodecError | null {
  const list = v.toUpperCase().split(',');
  if (list.length === 1 && list[0] === 'NEVER') {
    out.notify = ['NEVER'];
    return null;
  }
  if (list.some((x) => !NOTIFY_VALUES.has(x)) || new Set(list).size !== list.length) return CODEC_ERRORS.badParam;
  out.notify = list;
  return null;
}

/** RFC 3461 §4.2: ORCPT=addr-type ";" xtext; kept as `addr-type;decoded`. */
function checkOrcpt(v: string, out: RcptParams): CodecError | null {
  const semi = v.indexOf(';');
  if (semi <= 0 || !/^[A-Za-z0-9-]+$/.test(v.slice(0, semi))) return CODEC_ERRORS.badParam;
  const addr = decodeXtext(v.slice(semi + 1));
  if (addr === null || addr === '' || v.length > 500) return CODEC_ERRORS.badParam;
  out.orcpt = `${v.slice(0, semi)};${addr}`;
  return null;
}

function applyChecks<T>(params: Record<string, string>, checks: ReadonlyMap<string, (v: string, out: T) => CodecError | null>, out: T): CodecError | null {
  for (const key of Object.keys(params)) {
    const check = checks.get(key);
    if (!check) return CODEC_ERRORS.unknownParam;
    const e = check(params[key], out);
    if (e) return e;
  }
  return null;
}

function parseMail(arg: string, name: string): Command {
  const s = afterKeyword(arg, 'FROM:');
  const p = s === null ? null : parsePath(s, 'null');
  if (!p) return { verb: 'ERROR', name, error: CODEC_ERRORS.badSender };
  const split = splitParams(p.rest);
  if ('error' in split) return { verb: 'ERROR', name, error: split.error };
  const mail: MailParams = { smtputf8: false };
  const e = applyChecks(split.params, MAIL_PARAMS, mail);
  if (e) return { verb: 'ERROR', name, error: e };
  if (p.path.utf8 && !mail.smtputf8) return { verb: 'ERROR', name, error: CODEC_ERRORS.needUtf8 };
  return { verb: 'MAIL', path: p.path, params: split.params, mail };
}

/** RCPT's UTF-8 check needs the transaction's SMTPUTF8 flag: the session does it. */
function parseRcpt(arg: string, name: string): Command {
  const s = afterKeyword(arg, 'TO:');
  const p = s === null ? null : parsePath(s, 'postmaster');
  if (!p) return { verb: 'ERROR', name, error: CODEC_ERRORS.badRecipient };
  const split = splitParams(p.rest);
  if ('error' in split) return { verb: 'ERROR', name, error: split.error };
  const rcpt: RcptParams = {};
  const e = applyChecks(split.params, RCPT_PARAMS, rcpt);
  if (e) return { verb: 'ERROR', name, error: e };
  return { verb: 'RCPT', path: p.path, params: split.params, rcpt };
}

// ---------------------------------------------------------------------------------------------
// Replies (RFC 5321 §4.2; RFC 2034 enhanced status codes)

const REPLY_UNSAFE = /[\x00-\x08\x0a-\x1f\x7f]/g;

/**
 * Encode a reply: one line per element of `lines` (each split again at line breaks),
 * "code-text" for all but the last line, "code text" for the last. `enhanced` (when given)
 * prefixes every line's text (RFC 2034 §4). Control characters become spaces.
 */
export function encodeReply(code: number, enhanced: Enhanced | null, lines: readonly string[]): string {
  const prefix = enhanced ? `${enhanced[0]}.${enhanced[1]}.${enhanced[2]}` : '';
  const flat = lines.length === 0 ? [''] : lines.length === 1 && !lines[0].includes('\n') ? lines : lines.flatMap((l) => l.split(/\r?\n/));
  let out = '';
  for (let i = 0; i < flat.length; i++) {
    const text = flat[i].replace(REPLY_UNSAFE, ' ');
    const body = prefix && text ? `${prefix} ${text}` : prefix || text;
    out += `${code}${i === flat.length - 1 ? ' ' : '-'}${body}\r\n`;
  }
  return out;
}
