/**
 * `EodMail`: the message an eod hook sees as `arguments.mail` (Halon's EODMailMessage,
 * halon-core.md §5.2). It edits headers and body, signs with DKIM, and queues the message, as
 * modified so far, once per recipient through the `onQueue` callback the receiver passes in.
 *
 * Input: the raw message (RFC 5322, CRLF line endings, no dot-stuffing) and callbacks.
 * Invariants:
 * - Untouched header fields keep their original bytes; an unmodified message renders as the
 *   very Buffer it was made from.
 * - `toBuffer()` returns the same Buffer object until the next modification, so the receiver
 *   can store one body for all recipients queued between two edits (it dedupes by identity).
 * - After `close()` (the runtime calls it when the eod phase ends, including on timeout),
 *   `queue()` throws: a hook still running after its phase ended can no longer add entries.
 * Errors: TypeError/RangeError for invalid arguments (they reach the hook, which may catch them;
 * uncaught they give the phase's error outcome); DkimError from signDKIM.
 */
import type { Address, DsnParams, QueueId } from '../model/types';
import { joinAddress } from '../model/types';
import { dkimKey, dkimSign, DkimError } from './dkim';
import { buildField, fieldValue, normaliseBody, parseMessage, renderMessage, type HeaderField } from './header';
import type { DkimOptions, EODMailMessage, HeaderOptions, QueueOptions } from './types';

export interface QueueRequest {
  /** Envelope sender ('' for the null reverse-path). */
  sender: string;
  recipient: string;
  transportid: string;
  /** A validated copy; later changes by the hook do not reach it. */
  options: QueueOptions;
  body: Buffer;
}

export interface EodMailOptions {
  onQueue(args: QueueRequest): QueueId;
  /** Private key PEM of a `pki.private[]` id, for `signDKIM(…, key)` given an id. */
  resolveKey?(pkiId: string): string | undefined;
}

export class EodMail implements EODMailMessage {
  private fields: HeaderField[];
  private readonly separator: boolean;
  private body: Buffer;
  private rendered: Buffer | null;
  private closed = false;

  constructor(raw: Buffer, private readonly opts: EodMailOptions) {
    const parsed = parseMessage(raw);
    this.fields = parsed.fields;
    this.separator = parsed.separator;
    this.body = parsed.body;
    this.rendered = raw;
  }

  queue(sender: string | Address, recipient: string | Address, transportid: string, options?: QueueOptions): QueueId {
    if (this.closed) throw new Error('queue(): the eod phase has ended');
    const request: QueueRequest = {
      sender: addressArg(sender, 'sender', true),
      recipient: addressArg(recipient, 'recipient', false),
      transportid: nonEmpty(transportid, 'transportid'),
      options: queueOptions(options),
      body: this.toBuffer(),
    };
    return this.opts.onQueue(request);
  }

  getHeader(name: string, options?: HeaderOptions): string | null {
    const f = this.find(name, indexOption(options) ?? 0);
    return f ? fieldValue(f) : null;
  }

  getHeaders(name: string): string[] {
    const lname = lower(name);
    return this.fields.filter((f) => f.lname === lname).map(fieldValue);
  }

  getHeaderNames(): string[] {
    return this.fields.map((f) => f.name);
  }

  addHeader(name: string, value: string, options?: HeaderOptions): void {
    const field = buildField(name, value, options?.refold !== false);
    this.insert(field, options?.position);
  }

  setHeader(name: string, value: string, options?: HeaderOptions): void {
    const field = buildField(name, value, options?.refold !== false);
    const at = this.position(name, indexOption(options) ?? 0);
    if (at < 0) return this.insert(field, options?.position);
    this.fields[at] = field;
    this.modified();
  }

  delHeader(name: string, options?: HeaderOptions): number {
    const index = indexOption(options);
    const lname = lower(name);
    let seen = 0;
    const kept = this.fields.filter((f) => f.lname !== lname || (index !== undefined && seen++ !== index));
    const deleted = this.fields.length - kept.length;
    if (deleted > 0) {
      this.fields = kept;
      this.modified();
    }
    return deleted;
  }

  getBody(): string {
    return this.body.toString('utf8');
  }

  setBody(body: string | Buffer): void {
    if (typeof body !== 'string' && !Buffer.isBuffer(body)) throw new TypeError('setBody(): body must be a string or a Buffer');
    this.body = normaliseBody(body);
    this.modified();
  }

  getSize(): number {
    return this.toBuffer().length;
  }

  toBuffer(): Buffer {
    if (!this.rendered) this.rendered = renderMessage(this.fields, this.separator, this.body);
    return this.rendered;
  }

  toString(): string {
    return this.toBuffer().toString('utf8');
  }

  /** The signature covers the message as it is when signDKIM is called. */
  async signDKIM(selector: string, domain: string, key: string, options: DkimOptions = {}): Promise<void> {
    if (typeof options !== 'object' || options === null) throw new DkimError('signDKIM(): options must be an object');
    const pem = this.keyPem(key);
    const { key: keyObject, algorithm } = dkimKey(pem, options.algorithm);
    const text = await dkimSign(this.toBuffer(), selector, domain, keyObject, algorithm, options);
    this.insert(buildField('DKIM-Signature', text.slice('DKIM-Signature: '.length), false), 'top');
  }

  /** Ends the eod phase for this message: later `queue()` calls throw. */
  close(): void {
    this.closed = true;
  }

  private keyPem(key: string): string {
    if (typeof key !== 'string' || key === '') throw new DkimError('signDKIM(): key must be a PEM private key or a pki id');
    if (key.includes('-----BEGIN')) return key;
    const pem = this.opts.resolveKey?.(key);
    if (pem === undefined) throw new DkimError(`signDKIM(): no private key with pki id "${key}"`);
    return pem;
  }

  private find(name: string, index: number): HeaderField | undefined {
    const at = this.position(name, index);
    return at < 0 ? undefined : this.fields[at];
  }

  /** Array position of the index-th field with this name, or -1. */
  private position(name: string, index: number): number {
    const lname = lower(name);
    let seen = 0;
    for (let i = 0; i < this.fields.length; i++) {
      if (this.fields[i].lname === lname && seen++ === index) return i;
    }
    return -1;
  }

  private insert(field: HeaderField, position: HeaderOptions['position']): void {
    if (position !== undefined && position !== 'top' && position !== 'bottom') {
      throw new TypeError('header position must be "top" or "bottom"');
    }
    this.fields = position === 'bottom' ? [...this.fields, field] : [field, ...this.fields];
    this.modified();
  }

  private modified(): void {
    this.rendered = null;
  }
}

function lower(name: unknown): string {
  if (typeof name !== 'string') throw new TypeError('header name must be a string');
  return name.toLowerCase();
}

function indexOption(options: HeaderOptions | undefined): number | undefined {
  const index = options?.index;
  if (index === undefined) return undefined;
  if (!Number.isInteger(index) || index < 0) throw new RangeError('header index must be an integer ≥ 0');
  return index;
}

/** An address argument as a string; no control characters (they would break the envelope). */
function addressArg(v: string | Address, what: string, mayBeEmpty: boolean): string {
  let s: string;
  if (typeof v === 'string') s = v;
  else if (v && typeof v === 'object' && typeof v.localpart === 'string' && typeof v.domain === 'string') s = joinAddress(v);
  else throw new TypeError(`queue(): ${what} must be a string or {localpart, domain}`);
  if (!mayBeEmpty && s === '') throw new TypeError(`queue(): ${what} must not be empty`);
  if (/[\x00-\x1f\x7f<>]/.test(s)) throw new TypeError(`queue(): ${what} contains a character not allowed in an address`);
  return s;
}

function nonEmpty(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw new TypeError(`queue(): ${what} must be a non-empty string`);
  return v;
}

type OptionCheck = (v: unknown, out: QueueOptions) => void;

/** Each known option: validate and copy. Unknown options are an error (a typo must not pass). */
const QUEUE_OPTIONS: Record<keyof QueueOptions, OptionCheck> = {
  metadata: (v, out) => {
    if (!isPlainObject(v) || Object.values(v).some((x) => typeof x !== 'string')) {
      throw new TypeError('queue(): options.metadata must map strings to strings');
    }
    out.metadata = { ...(v as Record<string, string>) };
  },
  hold: (v, out) => {
    if (typeof v !== 'boolean') throw new TypeError('queue(): options.hold must be a boolean');
    out.hold = v;
  },
  delay: (v, out) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError('queue(): options.delay must be a number of seconds ≥ 0');
    out.delay = v;
  },
  jobid: (v, out) => {
    out.jobid = stringOption(v, 'jobid');
  },
  tenantid: (v, out) => {
    out.tenantid = stringOption(v, 'tenantid');
  },
  priority: (v, out) => {
    if (v !== 0 && v !== 1) throw new RangeError('queue(): options.priority must be 0 or 1');
    out.priority = v;
  },
  quotas: (v, out) => {
    if (!Array.isArray(v) || v.some((q) => typeof q !== 'string')) throw new TypeError('queue(): options.quotas must be an array of strings');
    out.quotas = [...(v as string[])];
  },
  dsn: (v, out) => {
    out.dsn = dsnOption(v);
  },
};

function queueOptions(options: QueueOptions | undefined): QueueOptions {
  if (options === undefined) return {};
  if (!isPlainObject(options)) throw new TypeError('queue(): options must be an object');
  const out: QueueOptions = {};
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const check = Object.hasOwn(QUEUE_OPTIONS, key) ? QUEUE_OPTIONS[key as keyof QueueOptions] : undefined;
    if (!check) throw new TypeError(`queue(): unknown option "${key}"`);
    check(value, out);
  }
  return out;
}

function stringOption(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new TypeError(`queue(): options.${what} must be a string`);
  return v;
}

const NOTIFY = new Set(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY']);

/** RFC 3461: RET is FULL or HDRS (§4.3); NOTIFY is NEVER alone or a set of the others (§4.1). */
function dsnOption(v: unknown): DsnParams {
  if (!isPlainObject(v)) throw new TypeError('queue(): options.dsn must be an object');
  const d = v as Record<string, unknown>;
  const out: DsnParams = {};
  for (const key of Object.keys(d)) {
    if (!['envid', 'ret', 'notify', 'orcpt'].includes(key)) throw new TypeError(`queue(): unknown option "dsn.${key}"`);
  }
  if (d.envid !== undefined) out.envid = stringOption(d.envid, 'dsn.envid');
  if (d.orcpt !== undefined) out.orcpt = stringOption(d.orcpt, 'dsn.orcpt');
  if (d.ret !== undefined) {
    if (d.ret !== 'FULL' && d.ret !== 'HDRS') throw new TypeError('queue(): options.dsn.ret must be "FULL" or "HDRS"');
    out.ret = d.ret;
  }
  if (d.notify !== undefined) {
    const n = d.notify;
    if (!Array.isArray(n) || n.length === 0 || n.some((x) => typeof x !== 'string' || !NOTIFY.has(x)) || (n.includes('NEVER') && n.length > 1)) {
      throw new TypeError('queue(): options.dsn.notify must be ["NEVER"] or a list of SUCCESS, FAILURE, DELAY');
    }
    out.notify = [...(n as string[])];
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
