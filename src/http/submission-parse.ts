/**
 * Reading one HTTP submission request (halon-api.md §8): the multipart/form-data body with the
 * parts `options` (JSON) and `rfc822` (the message), each optionally gzip-compressed and then
 * named `options.gzip` / `rfc822.gzip`.
 *
 * Inputs: the request stream, its headers, and the limits (`phases.data.maxsize` of the
 * server for the message; a fixed bound for the options).
 * Output: `{ options, message }` — the validated envelope and metadata, and the message with
 * CRLF line endings — or a `SubmissionError` with the HTTP status (400 or 413) and a reason
 * fit for the client (it names the part or field at fault, never internal details).
 * Invariants:
 * - each part at most once; `options` and `options.gzip` (or `rfc822` and `rfc822.gzip`)
 *   together are refused, as are parts of any other name (a typo should not silently drop
 *   data); no more than the limit is ever buffered (the parser stops at the limit) or inflated
 *   (`maxOutputLength`);
 * - line endings: HTTP clients send files as they are on disk, usually with bare LF; every
 *   bare LF (and bare CR) becomes CRLF, as RFC 5322 §2.1 requires of a message on the wire;
 * - addresses: `{localpart, domain}` objects (or "local@domain" strings); a U-label domain
 *   (IDN) is converted to its A-label form (RFC 5890), so delivery needs no SMTPUTF8 for it;
 *   a non-ASCII local part is kept (the message then needs SMTPUTF8 downstream).
 */
import type http from 'node:http';
import { domainToASCII } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import busboy from 'busboy';
import type { Address } from '../model/types';
import { validLiteral, validLocalPart } from '../smtp/codec';

const gunzip = promisify(zlib.gunzip);

/** Largest options part (JSON, before or after inflating). */
export const OPTIONS_MAX = 1024 * 1024;
const PART_NAMES = ['options', 'options.gzip', 'rfc822', 'rfc822.gzip'] as const;
type PartName = (typeof PART_NAMES)[number];

export class SubmissionError extends Error {
  constructor(
    readonly status: 400 | 413,
    reason: string,
  ) {
    super(reason);
    this.name = 'SubmissionError';
  }
}

export interface SubmissionOptions {
  /** '' = the null reverse-path. */
  sender: string;
  senderaddress: Address;
  recipients: Array<{ recipient: string; address: Address }>;
  metadata: Record<string, string>;
  /** A local part is not ASCII. */
  smtputf8: boolean;
}

export interface ParsedSubmission {
  options: SubmissionOptions;
  message: Buffer;
}

function isPartName(name: string): name is PartName {
  return (PART_NAMES as readonly string[]).includes(name);
}

/** Collect the named parts, refusing unknown, repeated and oversized ones. */
function readParts(req: http.IncomingMessage, maxsize: number): Promise<Map<PartName, Buffer>> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fileSize: Math.max(maxsize, OPTIONS_MAX) + 1, fieldSize: Math.max(maxsize, OPTIONS_MAX) + 1, parts: 4, fields: 4, files: 4 } });
    } catch (err) {
      reject(new SubmissionError(400, `expected a multipart/form-data body: ${(err as Error).message}`));
      return;
    }
    const parts = new Map<PartName, Buffer>();
    let failed = false;
    const fail = (e: SubmissionError) => {
      if (failed) return;
      failed = true;
      req.unpipe(bb); // the server drains the rest before it answers
      reject(e);
    };
    const add = (name: string, data: Buffer, truncated: boolean) => {
      if (!isPartName(name)) return fail(new SubmissionError(400, `unknown part "${name}" (expected options and rfc822, or their .gzip forms)`));
      if (parts.has(name)) return fail(new SubmissionError(400, `part "${name}" given more than once`));
      const limit = name.startsWith('options') ? OPTIONS_MAX : maxsize;
      if (truncated || data.length > limit) return fail(new SubmissionError(413, `part "${name}" is larger than ${limit} bytes`));
      parts.set(name, data);
    };
    bb.on('file', (name, stream) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => fail(new SubmissionError(413, `part "${name}" is larger than ${name.startsWith('options') ? OPTIONS_MAX : maxsize} bytes`)));
      stream.on('end', () => {
        if (!failed) add(name, Buffer.concat(chunks), (stream as unknown as { truncated?: boolean }).truncated === true);
      });
    });
    bb.on('field', (name, value, info) => add(name, Buffer.from(value, 'utf8'), info.valueTruncated));
    bb.on('partsLimit', () => fail(new SubmissionError(400, 'too many parts (expected options and rfc822)')));
    bb.on('filesLimit', () => fail(new SubmissionError(400, 'too many parts (expected options and rfc822)')));
    bb.on('fieldsLimit', () => fail(new SubmissionError(400, 'too many parts (expected options and rfc822)')));
    bb.on('error', (err: Error) => fail(new SubmissionError(400, `malformed multipart body: ${err.message}`)));
    bb.on('close', () => {
      if (!failed) resolve(parts);
    });
    req.pipe(bb);
  });
}

async function inflate(name: string, data: Buffer, limit: number): Promise<Buffer> {
  try {
    return await gunzip(data, { maxOutputLength: limit });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new SubmissionError(413, `part "${name}" inflates to more than ${limit} bytes`);
    }
    throw new SubmissionError(400, `part "${name}" is not gzip data`);
  }
}

/** The one of `plain` / `plain.gzip` that was given, inflated. */
async function pick(parts: Map<PartName, Buffer>, plain: 'options' | 'rfc822', limit: number): Promise<Buffer> {
  const gz = `${plain}.gzip` as const;
  const a = parts.get(plain);
  const b = parts.get(gz);
  if (a && b) throw new SubmissionError(400, `give either "${plain}" or "${gz}", not both`);
  if (b) return inflate(gz, b, limit);
  if (a) return a;
  throw new SubmissionError(400, `part "${plain}" (or "${gz}") is missing`);
}

/** Bare LF or CR → CRLF (RFC 5322 §2.1); existing CRLF pairs are kept. */
export function toCrlf(message: Buffer): Buffer {
  if (!hasBareLineEnd(message)) return message;
  const text = message.toString('latin1'); // byte-preserving
  const fixed = text.replace(/\r\n|\r|\n/g, '\r\n');
  return fixed.length === text.length ? message : Buffer.from(fixed, 'latin1');
}

/** True when some LF is not preceded by CR or some CR is not followed by LF (Buffer.indexOf scans). */
function hasBareLineEnd(b: Buffer): boolean {
  for (let i = b.indexOf(0x0a); i !== -1; i = b.indexOf(0x0a, i + 1)) if (i === 0 || b[i - 1] !== 0x0d) return true;
  for (let i = b.indexOf(0x0d); i !== -1; i = b.indexOf(0x0d, i + 1)) if (b[i + 1] !== 0x0a) return true;
  return false;
}

// --- options --------------------------------------------------------------------------------

const HOSTNAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function addressOf(v: unknown, field: string, nullAllowed: boolean): Address {
  let localpart: unknown;
  let domain: unknown;
  if (typeof v === 'string') {
    const at = v.lastIndexOf('@');
    [localpart, domain] = at < 0 ? [v, ''] : [v.slice(0, at), v.slice(at + 1)];
  } else if (isObject(v)) {
    ({ localpart, domain } = v);
  } else {
    throw new SubmissionError(400, `${field}: expected {"localpart", "domain"}`);
  }
  if (typeof localpart !== 'string' || typeof domain !== 'string') throw new SubmissionError(400, `${field}: localpart and domain must be strings`);
  if (nullAllowed && localpart === '' && domain === '') return { localpart, domain };
  if (Buffer.byteLength(localpart) > 64 || !validLocalPart(localpart)) throw new SubmissionError(400, `${field}: invalid local part`);
  // An address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") is checked as SMTP's RCPT checks it.
  if (domain.startsWith('[')) {
    if (!validLiteral(domain)) throw new SubmissionError(400, `${field}: invalid address literal "${domain}"`);
    return { localpart, domain };
  }
  const ascii = domainToASCII(domain);
  if (!ascii || !HOSTNAME.test(ascii) || !ascii.includes('.')) throw new SubmissionError(400, `${field}: invalid domain "${domain}"`);
  return { localpart, domain: ascii.toLowerCase() };
}

function metadataOf(v: unknown): Record<string, string> {
  if (v === undefined) return {};
  if (!isObject(v)) throw new SubmissionError(400, 'metadata: expected an object of strings');
  const out: Record<string, string> = {};
  for (const [k, value] of Object.entries(v)) {
    if (typeof value !== 'string') throw new SubmissionError(400, `metadata.${k}: expected a string`);
    out[k] = value;
  }
  return out;
}

const join = (a: Address): string => (a.domain ? `${a.localpart}@${a.domain}` : a.localpart);

/** Validate the decoded options JSON. */
export function parseOptions(json: Buffer, maxRecipients: number): SubmissionOptions {
  let v: unknown;
  try {
    v = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new SubmissionError(400, `options: invalid JSON: ${(err as Error).message}`);
  }
  if (!isObject(v)) throw new SubmissionError(400, 'options: expected a JSON object');
  for (const k of Object.keys(v)) {
    if (!['sender', 'recipients', 'metadata'].includes(k)) throw new SubmissionError(400, `options: unknown field "${k}"`);
  }
  if (v.sender === undefined) throw new SubmissionError(400, 'options: sender is missing');
  const senderaddress = addressOf(v.sender, 'sender', true);
  if (!Array.isArray(v.recipients) || v.recipients.length === 0) throw new SubmissionError(400, 'options: recipients must be a non-empty array');
  if (v.recipients.length > maxRecipients) throw new SubmissionError(400, `options: more than ${maxRecipients} recipients`);
  const recipients = v.recipients.map((r, i) => {
    const address = addressOf(r, `recipients[${i}]`, false);
    return { recipient: join(address), address };
  });
  const all = [senderaddress, ...recipients.map((r) => r.address)];
  return {
    sender: join(senderaddress),
    senderaddress,
    recipients,
    metadata: metadataOf(v.metadata),
    smtputf8: all.some((a) => /[^\x00-\x7f]/.test(a.localpart)),
  };
}

/** Read and validate a whole submission request. */
export async function parseSubmission(req: http.IncomingMessage, limits: { maxsize: number; recipients: number }): Promise<ParsedSubmission> {
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  if (!type.startsWith('multipart/form-data')) throw new SubmissionError(400, 'expected a multipart/form-data body');
  const parts = await readParts(req, limits.maxsize);
  const options = parseOptions(await pick(parts, 'options', OPTIONS_MAX), limits.recipients);
  const message = toCrlf(await pick(parts, 'rfc822', limits.maxsize));
  if (message.length > limits.maxsize) throw new SubmissionError(413, `the message is larger than ${limits.maxsize} bytes`);
  if (message.length === 0) throw new SubmissionError(400, 'part "rfc822" is empty');
  return { options, message };
}
