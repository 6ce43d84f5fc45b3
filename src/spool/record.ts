/**
 * Spool record codec (pure: no I/O, no clock, no config).
 *
 * Every record in a spool segment is framed and self-checking (docs/spool.md §1):
 *
 *   offset 0  magic   4 bytes  'H' 'J' 'R' '1'
 *          4  type    u8       1 = TX, 2 = UPDATE, 3 = REMOVE
 *          5  length  u32 LE   payload length in bytes
 *          9  crc     u32 LE   CRC-32 (IEEE, as zlib) of the type byte followed by the payload
 *         13  payload
 *
 * Payloads (integers u32 LE unless noted, strings UTF-8, JSON as text):
 *   TX      idLen u8, id, metaLen, meta, nEntries, nEntries × (queue, metaLen, meta),
 *           nBodies, nBodies × (bodyLen, body)          — bodies last, so offsets are known
 *   UPDATE  idLen u8, id, queue, metaLen, meta
 *   REMOVE  idLen u8, id, queue
 *
 * Inputs/outputs: `encodeParts` returns the record as a list of buffers (bodies are not copied,
 * so the caller must not mutate them until written) plus the offset of each body inside the
 * record; `encode` concatenates them. `decode(buf, offset)` returns exactly one of
 *   { kind: 'record', record, next, bodyOffsets }  — a whole record whose checksum matched;
 *   { kind: 'incomplete', need }                   — the buffer ends inside the record; `need`
 *                                                    is the byte count from `offset` required;
 *   { kind: 'corrupt', reason }                    — bad magic, implausible length, checksum
 *                                                    mismatch or a malformed payload.
 * `decodeRaw` is the same decoder (same checks, same results) except that the JSON texts come
 * back as UTF-8 byte views into `buf` instead of strings: spool recovery copies them out of its
 * read buffer without building a string per record.
 * Invariant: decode never returns a record that encode did not produce (up to CRC-32 collisions),
 * and decode(encode(r)) deep-equals r. Errors: encode throws RangeError on values that do not
 * fit the format (id longer than 255 bytes, queue outside 1..2^32-1, payload above the limit).
 */
import * as zlib from 'node:zlib';

export const MAGIC = Buffer.from('HJR1', 'latin1');
export const HEADER_SIZE = 13;
/** Default upper bound on a payload; a larger length field is treated as corruption. */
export const MAX_PAYLOAD = 1024 * 1024 * 1024;

export const RecordType = { tx: 1, update: 2, remove: 3 } as const;
export type RecordKind = keyof typeof RecordType;

export interface TxRecord {
  type: 'tx';
  id: string;
  /** Transaction metadata as JSON text. */
  meta: string;
  entries: Array<{ queue: number; meta: string }>;
  bodies: Buffer[];
}
export interface UpdateRecord { type: 'update'; id: string; queue: number; meta: string }
export interface RemoveRecord { type: 'remove'; id: string; queue: number }
export type SpoolRecord = TxRecord | UpdateRecord | RemoveRecord;

export interface EncodedRecord {
  parts: Buffer[];
  length: number;
  /** Offset of each body from the start of the record (TX only; empty otherwise). */
  bodyOffsets: number[];
}

/** A record as decodeRaw returns it: JSON texts as UTF-8 views into the decoded buffer. */
export type RawRecord =
  | { type: 'tx'; id: string; meta: Buffer; entries: Array<{ queue: number; meta: Buffer }>; bodies: Buffer[] }
  | { type: 'update'; id: string; queue: number; meta: Buffer }
  | RemoveRecord;

export type DecodeResultOf<R> =
  | { kind: 'record'; record: R; next: number; bodyOffsets: number[] }
  | { kind: 'incomplete'; need: number }
  | { kind: 'corrupt'; reason: string };
export type DecodeResult = DecodeResultOf<SpoolRecord>;

// ---------------------------------------------------------------------------------------------
// CRC-32 (IEEE 802.3 polynomial, reflected, as zlib). zlib.crc32 exists from Node 20.15; the
// table version keeps Node >= 20.0 working.

type Crc = (data: Uint8Array, value?: number) => number;

function tableCrc32(): Crc {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return (data, value = 0) => {
    let c = (value ^ 0xffffffff) >>> 0;
    for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
}

const nativeCrc = (zlib as { crc32?: Crc }).crc32;
/**
 * zlib.crc32 hands the view's data pointer to zlib's crc32(), which returns 0 ("initial value")
 * when that pointer is NULL, as it is for some empty buffers (seen on Node 20.20 with
 * Buffer.alloc(0)). An empty input must leave the running value unchanged, so skip it here.
 */
function guarded(native: Crc): Crc {
  return (data, value = 0) => (data.length === 0 ? value >>> 0 : native(data, value));
}
export const crc32: Crc = typeof nativeCrc === 'function' ? guarded(nativeCrc) : tableCrc32();
/** Exposed for tests: the portable implementation. */
export const crc32Portable: Crc = tableCrc32();

// ---------------------------------------------------------------------------------------------
// Encoding

/** CRC-32 of each record type byte alone: the running value a record's checksum starts from. */
const TYPE_CRC: Record<number, number> = Object.fromEntries(Object.values(RecordType).map((t) => [t, crc32(Uint8Array.of(t))]));

/**
 * Writes the small parts of records into a buffer sized beforehand (no intermediate buffers:
 * a hold of 100,000 entries used to allocate eight small buffers per record, and allocating
 * their pools cost more than everything else the journal did).
 */
class Writer {
  constructor(readonly buf: Buffer, public pos: number) {}
  u8(v: number): void { this.buf[this.pos++] = v; }
  u32(v: number): void {
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
  }
  /** A string whose UTF-8 length the caller measured. */
  text(s: string, bytes: number): void {
    if (bytes > 0) this.buf.write(s, this.pos, bytes, 'utf8');
    this.pos += bytes;
  }
  str32(s: string, bytes: number): void {
    this.u32(bytes);
    this.text(s, bytes);
  }
}

function checkQueue(queue: number): void {
  if (!Number.isInteger(queue) || queue < 1 || queue > 0xffffffff) {
    throw new RangeError(`spool record: queue number ${queue} outside 1..4294967295`);
  }
}

function idBytes(id: string): number {
  const n = Buffer.byteLength(id, 'utf8');
  if (n === 0 || n > 255) throw new RangeError('spool record: id must be 1..255 bytes');
  return n;
}

function header(buf: Buffer, at: number, type: number, length: number): void {
  MAGIC.copy(buf, at);
  buf[at + 4] = type;
  buf.writeUInt32LE(length, at + 5);
}

function checkLength(length: number, maxPayload: number): void {
  if (length > maxPayload) throw new RangeError(`spool record: payload of ${length} bytes exceeds ${maxPayload}`);
}

/** Bytes an UPDATE or REMOVE record takes, header included; `metaBytes` for UPDATE. */
function smallSize(idLen: number, metaBytes: number | undefined): number {
  return HEADER_SIZE + 1 + idLen + 4 + (metaBytes === undefined ? 0 : 4 + metaBytes);
}

/** Write an UPDATE or REMOVE record at `at` (space measured by smallSize); returns its end. */
function writeSmall(buf: Buffer, at: number, r: UpdateRecord | RemoveRecord, idLen: number, metaBytes: number | undefined, maxPayload: number): number {
  checkQueue(r.queue);
  const length = smallSize(idLen, metaBytes) - HEADER_SIZE;
  checkLength(length, maxPayload);
  const type = RecordType[r.type];
  header(buf, at, type, length);
  const w = new Writer(buf, at + HEADER_SIZE);
  w.u8(idLen);
  w.text(r.id, idLen);
  w.u32(r.queue);
  if (r.type === 'update') w.str32(r.meta, metaBytes!);
  buf.writeUInt32LE(crc32(buf.subarray(at + HEADER_SIZE, w.pos), TYPE_CRC[type]) >>> 0, at + 9);
  return w.pos;
}

/**
 * A TX record as parts: the header and every small field up to the first body's length in one
 * buffer, then each body (not copied) followed by the next body's length (or nothing).
 */
function encodeTx(r: TxRecord, maxPayload: number): EncodedRecord {
  const idLen = idBytes(r.id);
  const metaBytes = Buffer.byteLength(r.meta, 'utf8');
  const entryBytes = r.entries.map((e) => {
    checkQueue(e.queue);
    return Buffer.byteLength(e.meta, 'utf8');
  });
  let head = 1 + idLen + 4 + metaBytes + 4 + 4;
  for (const n of entryBytes) head += 8 + n;
  if (r.bodies.length > 0) head += 4;
  let length = head;
  for (let i = 0; i < r.bodies.length; i++) length += r.bodies[i].length + (i > 0 ? 4 : 0);
  checkLength(length, maxPayload);
  const type = RecordType.tx;
  const first = Buffer.allocUnsafe(HEADER_SIZE + head);
  header(first, 0, type, length);
  const w = new Writer(first, HEADER_SIZE);
  w.u8(idLen);
  w.text(r.id, idLen);
  w.str32(r.meta, metaBytes);
  w.u32(r.entries.length);
  r.entries.forEach((e, i) => {
    w.u32(e.queue);
    w.str32(e.meta, entryBytes[i]);
  });
  w.u32(r.bodies.length);
  const parts: Buffer[] = [first];
  const bodyOffsets: number[] = [];
  let at = HEADER_SIZE + head;
  r.bodies.forEach((body, i) => {
    if (i === 0) w.u32(body.length);
    else {
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32LE(body.length, 0);
      parts.push(len);
      at += 4;
    }
    bodyOffsets.push(at);
    parts.push(body);
    at += body.length;
  });
  let crc = crc32(first.subarray(HEADER_SIZE), TYPE_CRC[type]);
  for (let i = 1; i < parts.length; i++) crc = crc32(parts[i], crc);
  first.writeUInt32LE(crc >>> 0, 9);
  return { parts, length: HEADER_SIZE + length, bodyOffsets };
}

export function encodeParts(r: SpoolRecord, maxPayload = MAX_PAYLOAD): EncodedRecord {
  if (r.type === 'tx') return encodeTx(r, maxPayload);
  const idLen = idBytes(r.id);
  const metaBytes = r.type === 'update' ? Buffer.byteLength(r.meta, 'utf8') : undefined;
  const buf = Buffer.allocUnsafe(smallSize(idLen, metaBytes));
  writeSmall(buf, 0, r, idLen, metaBytes, maxPayload);
  return { parts: [buf], length: buf.length, bodyOffsets: [] };
}

/**
 * Several UPDATE records back to back in ONE buffer (a control-socket change of many entries):
 * the same bytes as encoding each and concatenating them. `offsets[i]` is where record i
 * starts. Throws RangeError as encodeParts does, for the first record that does not fit.
 */
export function encodeUpdates(records: readonly UpdateRecord[], maxPayload = MAX_PAYLOAD): { buf: Buffer; offsets: number[] } {
  const idLens = new Array<number>(records.length);
  const metaLens = new Array<number>(records.length);
  const offsets = new Array<number>(records.length);
  let total = 0;
  for (let i = 0; i < records.length; i++) {
    idLens[i] = idBytes(records[i].id);
    metaLens[i] = Buffer.byteLength(records[i].meta, 'utf8');
    offsets[i] = total;
    total += smallSize(idLens[i], metaLens[i]);
  }
  const buf = Buffer.allocUnsafeSlow(total);
  for (let i = 0; i < records.length; i++) writeSmall(buf, offsets[i], records[i], idLens[i], metaLens[i], maxPayload);
  return { buf, offsets };
}

export function encode(r: SpoolRecord, maxPayload = MAX_PAYLOAD): Buffer {
  const e = encodeParts(r, maxPayload);
  return Buffer.concat(e.parts, e.length);
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Thrown inside payload parsing only; decode turns it into { kind: 'corrupt' }. */
class Malformed extends Error {}

class PayloadReader {
  private pos: number;
  constructor(private readonly buf: Buffer, start: number, private readonly end: number) {
    this.pos = start;
  }
  get offset(): number { return this.pos; }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  slice(n: number): Buffer {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  str32(): string { return this.slice(this.u32()).toString('utf8'); }
  bytes32(): Buffer { return this.slice(this.u32()); }
  id(): string {
    const n = this.u8();
    if (n === 0) throw new Malformed('empty id');
    return this.slice(n).toString('utf8');
  }
  queue(): number {
    const q = this.u32();
    if (q === 0) throw new Malformed('queue number 0');
    return q;
  }
  done(): void {
    if (this.pos !== this.end) throw new Malformed(`${this.end - this.pos} trailing payload bytes`);
  }
  private need(n: number): void {
    if (n > this.end - this.pos) throw new Malformed('field runs past the payload');
  }
}

/** How a payload's JSON texts are read: as strings (decode) or as byte views (decodeRaw). */
type Text<T> = (r: PayloadReader) => T;
const asString: Text<string> = (r) => r.str32();
const asBytes: Text<Buffer> = (r) => r.bytes32();

type Parsed<T> = { record: { type: 'tx'; id: string; meta: T; entries: Array<{ queue: number; meta: T }>; bodies: Buffer[] } | { type: 'update'; id: string; queue: number; meta: T } | RemoveRecord; bodyOffsets: number[] };

function parseTx<T>(r: PayloadReader, recordStart: number, text: Text<T>): Parsed<T> {
  const id = r.id();
  const meta = text(r);
  const nEntries = r.u32();
  const entries: Array<{ queue: number; meta: T }> = [];
  for (let i = 0; i < nEntries; i++) entries.push({ queue: r.queue(), meta: text(r) });
  const nBodies = r.u32();
  const bodies: Buffer[] = [];
  const bodyOffsets: number[] = [];
  for (let i = 0; i < nBodies; i++) {
    const len = r.u32();
    bodyOffsets.push(r.offset - recordStart);
    bodies.push(r.slice(len));
  }
  r.done();
  return { record: { type: 'tx', id, meta, entries, bodies }, bodyOffsets };
}

function parsePayload<T>(type: number, r: PayloadReader, recordStart: number, text: Text<T>): Parsed<T> {
  switch (type) {
    case RecordType.tx:
      return parseTx(r, recordStart, text);
    case RecordType.update: {
      const record = { type: 'update' as const, id: r.id(), queue: r.queue(), meta: text(r) };
      r.done();
      return { record, bodyOffsets: [] };
    }
    case RecordType.remove: {
      const record: RemoveRecord = { type: 'remove', id: r.id(), queue: r.queue() };
      r.done();
      return { record, bodyOffsets: [] };
    }
    default:
      throw new Malformed(`unknown record type ${type}`);
  }
}

function checkHeader(buf: Buffer, offset: number, maxPayload: number): { kind: 'incomplete'; need: number } | { kind: 'corrupt'; reason: string } | null {
  const have = buf.length - offset;
  const magicBytes = Math.min(have, MAGIC.length);
  if (buf.compare(MAGIC, 0, magicBytes, offset, offset + magicBytes) !== 0) return { kind: 'corrupt', reason: 'bad magic' };
  if (have < HEADER_SIZE) return { kind: 'incomplete', need: HEADER_SIZE };
  const type = buf[offset + 4];
  if (type < RecordType.tx || type > RecordType.remove) return { kind: 'corrupt', reason: `unknown record type ${type}` };
  const length = buf.readUInt32LE(offset + 5);
  if (length > maxPayload) return { kind: 'corrupt', reason: `implausible payload length ${length}` };
  if (have < HEADER_SIZE + length) return { kind: 'incomplete', need: HEADER_SIZE + length };
  return null;
}

export function decode(buf: Buffer, offset: number, maxPayload = MAX_PAYLOAD): DecodeResult {
  return decodeWith(buf, offset, maxPayload, asString);
}

export function decodeRaw(buf: Buffer, offset: number, maxPayload = MAX_PAYLOAD): DecodeResultOf<RawRecord> {
  return decodeWith(buf, offset, maxPayload, asBytes);
}

function decodeWith<T>(buf: Buffer, offset: number, maxPayload: number, text: Text<T>): DecodeResultOf<Parsed<T>['record']> {
  if (offset >= buf.length) return { kind: 'incomplete', need: HEADER_SIZE };
  const early = checkHeader(buf, offset, maxPayload);
  if (early) return early;
  const type = buf[offset + 4];
  const length = buf.readUInt32LE(offset + 5);
  const start = offset + HEADER_SIZE;
  const end = start + length;
  const expected = buf.readUInt32LE(offset + 9);
  const actual = crc32(buf.subarray(start, end), crc32(buf.subarray(offset + 4, offset + 5)));
  if (actual >>> 0 !== expected) return { kind: 'corrupt', reason: 'checksum mismatch' };
  try {
    const { record, bodyOffsets } = parsePayload(type, new PayloadReader(buf, start, end), offset, text);
    return { kind: 'record', record, next: end, bodyOffsets };
  } catch (err) {
    if (err instanceof Malformed) return { kind: 'corrupt', reason: `malformed payload: ${err.message}` };
    throw err;
  }
}
