/**
 * Decoding a queue entry straight from its spool text (start-up with a large queue).
 *
 * `decodeEntryText(transaction, queue, text)` returns exactly what
 * `decodeEntry(transaction, queue, JSON.parse(text.toString('utf8')))` returns (codec.ts), and
 * throws where that throws; `text` is the UTF-8 JSON of one entry as the spool holds it.
 *
 * Why: at start-up every queued recipient is decoded once; JSON.parse builds a whole object
 * tree per entry (about twenty strings and objects) that decodeEntry reads once and drops, and
 * that garbage was the largest single cost of loading 1,000,000 entries. This reader walks the
 * bytes once and builds only the entry: values that repeat across entries (server, transport,
 * tenant and job ids, sender, domains, state, hop fields) are looked up by their bytes in the
 * intern table (compact.ts) without making a string, and entries with the same sender share
 * one `senderaddress` object (nothing mutates an entry's address in place: changes replace it).
 *
 * Scope: the fast path takes the JSON that encodeEntry writes — one object, no whitespace,
 * keys of QueueEntry (plus `queue`), each once, in any order; strings (escapes and non-ASCII
 * included), integers (at most 15 digits); `{}`/`[]` or any JSON value for metadata, quotas,
 * tags and dsn (a non-empty one is parsed with JSON.parse and read by codec.ts's own
 * functions). Anything else (another key or value type, a fraction, whitespace, a repeated key,
 * invalid JSON) is handed to JSON.parse + decodeEntry, so the result never depends on which
 * path ran. test/unit/queue-entry-text.test.ts checks both paths against each other.
 *
 * Not re-entrant (module-level scratch state; it calls nothing that calls back).
 */
import type { Address, DsnParams, QueueEntry, QueueState } from '../model/types';
import type { Json } from '../spool/types';
import { decodeEntry, readAddress, readDsn, readList, readRecord } from './codec';
import { EMPTY_DSN, EMPTY_LIST, EMPTY_RECORD, intern, INTERN_MAX } from './compact';

/** Thrown inside the fast path to fall back to JSON.parse + decodeEntry; never escapes. */
const FALLBACK = new Error('entry text: not the fast-path shape');

const Q = 0x22; // "
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

// ---------------------------------------------------------------------------------------------
// Keys

const KEYS = [
  'ts', 'serverid', 'sender', 'senderaddress', 'recipient', 'recipientaddress', 'transportid',
  'tenantid', 'jobid', 'priority', 'metadata', 'quotas', 'tags', 'dsn', 'state', 'retry',
  'retryts', 'body', 'size', 'localip', 'remotemx', 'remoteip', 'grouping', 'queue',
] as const;
const K_TS = 0, K_SERVERID = 1, K_SENDER = 2, K_SENDERADDRESS = 3, K_RECIPIENT = 4, K_RECIPIENTADDRESS = 5,
  K_TRANSPORTID = 6, K_TENANTID = 7, K_JOBID = 8, K_PRIORITY = 9, K_METADATA = 10, K_QUOTAS = 11, K_TAGS = 12,
  K_DSN = 13, K_STATE = 14, K_RETRY = 15, K_RETRYTS = 16, K_BODY = 17, K_SIZE = 18, K_LOCALIP = 19,
  K_REMOTEMX = 20, K_REMOTEIP = 21, K_GROUPING = 22, K_QUEUE = 23;
const KEY_BYTES = KEYS.map((k) => Buffer.from(k, 'latin1'));

/** Key bytes hash (same as hashBytes) → key number; built once, checked free of collisions. */
const KEY_BY_HASH = new Map<number, number>();
for (let i = 0; i < KEY_BYTES.length; i++) {
  const h = hashBytes(KEY_BYTES[i], 0, KEY_BYTES[i].length);
  if (KEY_BY_HASH.has(h)) throw new Error('entry-text: key hash collision');
  KEY_BY_HASH.set(h, i);
}

const STATE_NAMES: readonly QueueState[] = ['ACTIVE', 'DEFER', 'HOLD', 'SENDING', 'UPDATE'];
const STATE_BYTES = STATE_NAMES.map((s) => Buffer.from(s, 'latin1'));

/**
 * FNV-1a over bytes [s, e), cut to 30 bits: a small integer (a Smi) as a Map key is hashed
 * and compared without allocating, a full 32-bit one would be a boxed number per lookup.
 */
function hashBytes(b: Uint8Array, s: number, e: number): number {
  let h = 0x811c9dc5;
  for (let i = s; i < e; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return h & 0x3fffffff;
}

// ---------------------------------------------------------------------------------------------
// Scratch state of the entry being read (reset per call)

let buf: Buffer = Buffer.alloc(0);
let pos = 0;
let end = 0;
let seen = 0;
/** Per key: where its string value is (start, end of the bytes between the quotes) and how it reads. */
const strStart = new Int32Array(KEYS.length);
const strEnd = new Int32Array(KEYS.length);
/** 0: plain ASCII; 1: non-ASCII; 2: has escapes. */
const strKind = new Int8Array(KEYS.length);
const nums = new Float64Array(KEYS.length);
/** senderaddress / recipientaddress: localpart and domain spans, or a value read by readAddress. */
const addrSpan = new Int32Array(8);
const addrKind = new Int8Array(4);
let senderAddrValue: Json | undefined;
let recipientAddrValue: Json | undefined;
let metadataValue: Record<string, string> = EMPTY_RECORD;
let quotasValue: string[] = EMPTY_LIST;
let tagsValue: string[] = EMPTY_LIST;
let dsnValue: DsnParams = EMPTY_DSN;

// ---------------------------------------------------------------------------------------------
// Public

export function decodeEntryText(transaction: string, queue: number, text: Buffer): QueueEntry {
  let entry: QueueEntry | undefined;
  try {
    entry = fast(transaction, queue, text);
  } catch (err) {
    if (err !== FALLBACK) throw err;
  } finally {
    buf = EMPTY_BUF;
    senderAddrValue = recipientAddrValue = undefined;
    metadataValue = EMPTY_RECORD;
    quotasValue = tagsValue = EMPTY_LIST;
    dsnValue = EMPTY_DSN;
  }
  return entry ?? decodeEntry(transaction, queue, JSON.parse(text.toString('utf8')) as Json);
}

const EMPTY_BUF = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------
// Reading

function fast(transaction: string, queue: number, text: Buffer): QueueEntry {
  buf = text;
  pos = 0;
  end = text.length;
  seen = 0;
  keyAt = 0;
  expect(LBRACE);
  if (peek() === RBRACE) throw FALLBACK;
  for (;;) {
    const key = readKey();
    expect(COLON);
    readValue(key);
    const c = next();
    if (c === COMMA) continue;
    if (c === RBRACE) break;
    throw FALLBACK;
  }
  if (pos !== end) throw FALLBACK;
  return build(transaction, queue);
}

function peek(): number {
  if (pos >= end) throw FALLBACK;
  return buf[pos];
}

function next(): number {
  if (pos >= end) throw FALLBACK;
  return buf[pos++];
}

function expect(c: number): void {
  if (next() !== c) throw FALLBACK;
}

/**
 * The keys in the order the previous entry had them: entries are written from objects of one
 * shape, so the next key is nearly always the one at the same place, checked byte for byte
 * (no hashing); `keyAt` counts the keys of the current entry.
 */
const order = new Int8Array(KEYS.length).fill(-1);
let keyAt = 0;

/** A key of KEYS not seen before in this entry; its number. (Hot loop: locals only.) */
function readKey(): number {
  const b = buf;
  const e = end;
  let p = pos;
  if (p >= e || b[p] !== Q) throw FALLBACK;
  const s = ++p;
  let k = keyAt < order.length ? order[keyAt] : -1;
  if (k >= 0) {
    const want = KEY_BYTES[k];
    const n = want.length;
    if (s + n < e && b[s + n] === Q && sameBytes(s, s + n, want)) {
      pos = s + n + 1;
    } else {
      k = -1;
    }
  }
  if (k < 0) {
    let h = 0x811c9dc5;
    for (;;) {
      if (p >= e) throw FALLBACK;
      const c = b[p++];
      if (c === Q) break;
      if (c === BACKSLASH || c < 0x20 || c >= 0x80) throw FALLBACK;
      h = Math.imul(h ^ c, 0x01000193);
    }
    pos = p;
    const found = KEY_BY_HASH.get(h & 0x3fffffff);
    if (found === undefined || !sameBytes(s, p - 1, KEY_BYTES[found])) throw FALLBACK;
    k = found;
    if (keyAt < order.length) order[keyAt] = k;
  }
  keyAt++;
  const bit = 1 << k;
  if (seen & bit) throw FALLBACK; // a repeated key: JSON.parse keeps the last one
  seen |= bit;
  return k;
}

function sameBytes(s: number, e: number, want: Uint8Array): boolean {
  if (e - s !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (buf[s + i] !== want[i]) return false;
  return true;
}

function readValue(key: number): void {
  switch (key) {
    case K_TS: case K_PRIORITY: case K_RETRY: case K_RETRYTS: case K_BODY: case K_SIZE: case K_QUEUE:
      nums[key] = readInt();
      return;
    case K_SENDERADDRESS:
      senderAddrValue = readAddressValue(0);
      return;
    case K_RECIPIENTADDRESS:
      recipientAddrValue = readAddressValue(1);
      return;
    case K_METADATA:
      metadataValue = peek() === LBRACE && buf[pos + 1] === RBRACE ? skip2(EMPTY_RECORD) : readRecord(readJson());
      return;
    case K_QUOTAS:
      quotasValue = peek() === LBRACKET && buf[pos + 1] === RBRACKET ? skip2(EMPTY_LIST) : readList(readJson());
      return;
    case K_TAGS:
      tagsValue = peek() === LBRACKET && buf[pos + 1] === RBRACKET ? skip2(EMPTY_LIST) : readList(readJson());
      return;
    case K_DSN:
      dsnValue = peek() === LBRACE && buf[pos + 1] === RBRACE ? skip2(EMPTY_DSN) : readDsn(readJson());
      return;
    default:
      readString(key);
  }
}

function skip2<T>(v: T): T {
  pos += 2;
  return v;
}

/** A JSON integer of at most 15 digits (exact in a double); anything else falls back. */
function readInt(): number {
  const b = buf;
  const e = end;
  let p = pos;
  if (p >= e) throw FALLBACK;
  let c = b[p++];
  const neg = c === 0x2d;
  if (neg) {
    if (p >= e) throw FALLBACK;
    c = b[p++];
  }
  if (c < 0x30 || c > 0x39) throw FALLBACK;
  let v = c - 0x30;
  const first = p;
  while (p < e) {
    c = b[p];
    if (c < 0x30 || c > 0x39) break;
    v = v * 10 + (c - 0x30);
    p++;
  }
  // A leading zero is not JSON; more than 15 digits may not be exact: both go to JSON.parse.
  if (p > first && (b[first - 1] === 0x30 || p - first > 14)) throw FALLBACK;
  if (p < e && (c === 0x2e || c === 0x65 || c === 0x45)) throw FALLBACK; // fraction or exponent
  pos = p;
  return neg ? -v : v;
}

/** A string value: records where it is and how it reads; a non-string value falls back. */
function readString(key: number): void {
  const s = readStringSpan();
  strStart[key] = s;
  strEnd[key] = spanEnd;
  strKind[key] = spanKind;
}

let spanEnd = 0;
let spanKind = 0;

/** Reads a JSON string; returns the start of its bytes (spanEnd: their end, spanKind: how it reads). */
function readStringSpan(): number {
  const b = buf;
  const e = end;
  let p = pos;
  if (p >= e || b[p] !== Q) throw FALLBACK;
  const s = ++p;
  let kind = 0;
  for (;;) {
    if (p >= e) throw FALLBACK;
    const c = b[p];
    if (c === Q) break;
    if (c === BACKSLASH) {
      kind |= 2;
      p += 2;
      continue;
    }
    if (c < 0x20) throw FALLBACK;
    if (c >= 0x80) kind |= 1;
    p++;
  }
  pos = p + 1;
  spanEnd = p;
  spanKind = kind > 1 ? 2 : kind;
  return s;
}

/** The string of a span: plain ASCII by latin1, other UTF-8 decoded, escapes by JSON.parse. */
function spanString(s: number, e: number, kind: number): string {
  if (kind === 0) return buf.toString('latin1', s, e);
  if (kind === 1) return buf.toString('utf8', s, e);
  try {
    return JSON.parse(buf.toString('utf8', s - 1, e + 1)) as string;
  } catch {
    throw FALLBACK; // a bad escape: the whole text goes to JSON.parse, which reports it
  }
}

// Interning by bytes: first the value this field had in the previous entry (`last`, by a slot
// per field), then hash → the interned string; both verified char by char.
const byHash = new Map<number, string>();
const last: string[] = new Array<string>(KEYS.length + 4).fill('');
/** Slots of `last` for the address domains (after the key numbers). */
const LAST_SENDER_DOMAIN = KEYS.length;
const LAST_RECIPIENT_DOMAIN = KEYS.length + 1;

function internSpan(s: number, e: number, kind: number, slot: number): string {
  if (s === e) return '';
  if (kind !== 0) return intern(spanString(s, e, kind));
  const prev = last[slot];
  if (sameChars(s, e, prev)) return prev;
  const h = hashBytes(buf, s, e);
  const known = byHash.get(h);
  let str: string;
  if (known !== undefined && sameChars(s, e, known)) {
    str = known;
  } else {
    str = intern(buf.toString('latin1', s, e));
    if (byHash.size < INTERN_MAX) byHash.set(h, str);
  }
  last[slot] = str;
  return str;
}

function sameChars(s: number, e: number, str: string): boolean {
  if (str.length !== e - s) return false;
  for (let i = 0; i < str.length; i++) if (str.charCodeAt(i) !== buf[s + i]) return false;
  return true;
}

/**
 * An address value: `{"localpart":"…","domain":"…"}` (either order, nothing else) is recorded
 * as spans in addrSpan[4·which …]; any other JSON value is parsed and returned for readAddress.
 */
function readAddressValue(which: number): Json | undefined {
  const at = pos;
  if (peek() === LBRACE && tryAddressObject(which)) return undefined;
  pos = at;
  addrKind[2 * which] = -1;
  return readJson();
}

function tryAddressObject(which: number): boolean {
  pos++;
  let got = 0;
  for (let n = 0; n < 2; n++) {
    if (next() !== Q) return false;
    const ks = pos;
    while (pos < end && buf[pos] !== Q) pos++;
    const ke = pos++;
    if (next() !== COLON || peek() !== Q) return false;
    const slot = keyIs(ks, ke, 'localpart') ? 0 : keyIs(ks, ke, 'domain') ? 1 : -1;
    if (slot < 0 || got & (1 << slot)) return false;
    got |= 1 << slot;
    const s = readStringSpan();
    addrSpan[4 * which + 2 * slot] = s;
    addrSpan[4 * which + 2 * slot + 1] = spanEnd;
    addrKind[2 * which + slot] = spanKind;
    if (next() !== (n === 0 ? COMMA : RBRACE)) return false;
  }
  return true;
}

function keyIs(s: number, e: number, name: string): boolean {
  if (e - s !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (buf[s + i] !== name.charCodeAt(i)) return false;
  return true;
}

/** Any JSON value at pos: its extent found by skipValue, then parsed by JSON.parse. */
function readJson(): Json {
  const s = pos;
  skipValue(0);
  try {
    return JSON.parse(buf.toString('utf8', s, pos)) as Json;
  } catch {
    throw FALLBACK;
  }
}

/** Moves past one JSON value (strings, numbers, literals, nested containers); checks little. */
function skipValue(depth: number): void {
  if (depth > 64) throw FALLBACK;
  const c = peek();
  if (c === Q) {
    readStringSpan();
    return;
  }
  if (c === LBRACE || c === LBRACKET) {
    const close = c === LBRACE ? RBRACE : RBRACKET;
    pos++;
    if (peek() === close) {
      pos++;
      return;
    }
    for (;;) {
      if (close === RBRACE) {
        readStringSpan();
        expect(COLON);
      }
      skipValue(depth + 1);
      const d = next();
      if (d === COMMA) continue;
      if (d === close) return;
      throw FALLBACK;
    }
  }
  // number or literal: up to the next delimiter
  while (pos < end) {
    const d = buf[pos];
    if (d === COMMA || d === RBRACE || d === RBRACKET) return;
    pos++;
  }
}

// ---------------------------------------------------------------------------------------------
// Building the entry (the same object decodeEntry builds, field for field and in its order)

const HAS = (k: number): boolean => (seen & (1 << k)) !== 0;

function str(k: number): string {
  return HAS(k) ? internSpan(strStart[k], strEnd[k], strKind[k], k) : '';
}

function num(k: number): number {
  return HAS(k) ? nums[k] : 0;
}

function stateOf(): QueueState {
  if (!HAS(K_STATE) || strKind[K_STATE] !== 0) throw FALLBACK;
  for (let i = 0; i < STATE_BYTES.length; i++) {
    if (sameBytes(strStart[K_STATE], strEnd[K_STATE], STATE_BYTES[i])) {
      const st = STATE_NAMES[i];
      return st === 'SENDING' || st === 'UPDATE' ? 'ACTIVE' : st;
    }
  }
  throw FALLBACK; // decodeEntry throws "bad state"
}

/** Entries with the same sender share one senderaddress object (bounded like the intern table). */
const senderAddresses = new Map<string, Address>();

function senderAddress(sender: string): Address {
  if (!HAS(K_SENDERADDRESS) || addrKind[0] < 0) return readAddress(HAS(K_SENDERADDRESS) ? senderAddrValue : undefined, sender);
  const known = senderAddresses.get(sender);
  const domain = internSpan(addrSpan[2], addrSpan[3], addrKind[1], LAST_SENDER_DOMAIN);
  if (known !== undefined && known.domain === domain && addrKind[0] === 0 && sameChars(addrSpan[0], addrSpan[1], known.localpart)) return known;
  const a: Address = { localpart: spanString(addrSpan[0], addrSpan[1], addrKind[0]), domain };
  if (senderAddresses.size < INTERN_MAX) senderAddresses.set(sender, a);
  return a;
}

function recipientAddress(recipient: string, rs: number, re: number, rkind: number): Address {
  if (!HAS(K_RECIPIENTADDRESS) || addrKind[2] < 0) return readAddress(HAS(K_RECIPIENTADDRESS) ? recipientAddrValue : undefined, recipient);
  const ls = addrSpan[4];
  const le = addrSpan[5];
  const domain = internSpan(addrSpan[6], addrSpan[7], addrKind[3], LAST_RECIPIENT_DOMAIN);
  // The localpart is usually the recipient's beginning: slice it instead of decoding it again.
  let localpart: string;
  if (rkind === 0 && addrKind[2] === 0 && le - ls <= re - rs && prefixOf(ls, le, rs)) localpart = recipient.slice(0, le - ls);
  else localpart = spanString(ls, le, addrKind[2]);
  return { localpart, domain };
}

function prefixOf(ls: number, le: number, rs: number): boolean {
  for (let i = 0; i < le - ls; i++) if (buf[ls + i] !== buf[rs + i]) return false;
  return true;
}

function build(transaction: string, queue: number): QueueEntry {
  const state = stateOf();
  // decodeEntry throws for a missing or non-string recipient or transportid (readString only
  // records strings, so HAS means "is a string" here).
  if (!HAS(K_RECIPIENT) || !HAS(K_TRANSPORTID)) throw FALLBACK;
  const sender = str(K_SENDER);
  const rs = strStart[K_RECIPIENT];
  const re = strEnd[K_RECIPIENT];
  const recipient = spanString(rs, re, strKind[K_RECIPIENT]);
  const base: QueueEntry = {
    id: { transaction, queue },
    ts: num(K_TS),
    serverid: str(K_SERVERID),
    sender,
    senderaddress: senderAddress(sender),
    recipient,
    recipientaddress: recipientAddress(recipient, rs, re, strKind[K_RECIPIENT]),
    transportid: str(K_TRANSPORTID),
    tenantid: str(K_TENANTID),
    jobid: str(K_JOBID),
    priority: num(K_PRIORITY) === 1 ? 1 : 0,
    metadata: metadataValue,
    quotas: quotasValue,
    tags: tagsValue,
    dsn: dsnValue,
    state,
    retry: num(K_RETRY),
    retryts: num(K_RETRYTS),
    body: num(K_BODY),
    size: num(K_SIZE),
  };
  if (!HAS(K_LOCALIP) && !HAS(K_REMOTEMX) && !HAS(K_REMOTEIP) && !HAS(K_GROUPING)) return base;
  return {
    id: base.id, ts: base.ts, serverid: base.serverid, sender: base.sender, senderaddress: base.senderaddress,
    recipient: base.recipient, recipientaddress: base.recipientaddress, transportid: base.transportid,
    tenantid: base.tenantid, jobid: base.jobid, priority: base.priority, metadata: base.metadata, quotas: base.quotas,
    tags: base.tags, dsn: base.dsn, state: base.state, retry: base.retry, retryts: base.retryts, body: base.body, size: base.size,
    localip: str(K_LOCALIP),
    remotemx: str(K_REMOTEMX),
    remoteip: str(K_REMOTEIP),
    grouping: str(K_GROUPING),
  };
}
