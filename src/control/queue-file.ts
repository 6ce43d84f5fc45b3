/**
 * Halyard's queue file: one transaction (some or all of its queue entries, with the message
 * bodies they use) as one self-contained file. `J` unload writes them, `E` import reads them
 * (the `hqf` bytes of QueueImportRequest), and halyardctl builds one when it imports a raw
 * message with an envelope given on its command line.
 *
 * Halon's HQF format is proprietary (halon-core.md §4.10), so this is Halyard's own, with the
 * same logical content (envelope, per-recipient queue fields, message):
 *
 *   Halyard-Queue-File: 1 CRLF
 *   <one line of JSON: {transaction, ts, serverid, sender, bodies: [byte length …],
 *                       entries: [queue entry as the spool stores it …]}> CRLF
 *   <body 0><body 1>…            (exactly the lengths listed, nothing after)
 *
 * The first two lines are text, so `head -2 file.hqf` shows the envelope; the bodies are the
 * RFC 5322 messages as queued (CRLF line ends).
 * Inputs/outputs: `encodeQueueFile(file)` → bytes; `decodeQueueFile(bytes)` → the same shape,
 * every entry validated by the spool's own decoder (queue/codec.ts), so whatever imports
 * cleanly would also load cleanly from the spool.
 * Errors: `QueueFileError` with a reason naming what is wrong (never a partial result).
 */
import type { QueueEntry } from '../model/types';
import { decodeEntry, encodeEntry } from '../queue/codec';
import type { Json } from '../spool/types';

export const QUEUE_FILE_MAGIC = 'Halyard-Queue-File: 1\r\n';

export interface QueueFile {
  transaction: string;
  /** Reception time (Unix ms). */
  ts: number;
  serverid: string;
  sender: string;
  bodies: Buffer[];
  /** Their `body` fields index `bodies`; `id.transaction` equals `transaction`. */
  entries: QueueEntry[];
}

export class QueueFileError extends Error {
  constructor(reason: string) {
    super(`not a valid queue file: ${reason}`);
    this.name = 'QueueFileError';
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CRLF = Buffer.from('\r\n');

export function isQueueFile(data: Uint8Array): boolean {
  return Buffer.from(data.buffer, data.byteOffset, Math.min(data.length, QUEUE_FILE_MAGIC.length)).toString('latin1') === QUEUE_FILE_MAGIC;
}

export function encodeQueueFile(f: QueueFile): Buffer {
  const head = {
    transaction: f.transaction,
    ts: f.ts,
    serverid: f.serverid,
    sender: f.sender,
    bodies: f.bodies.map((b) => b.length),
    entries: f.entries.map((e) => encodeEntry(e)),
  };
  // JSON.stringify escapes every control character, so the header is one line.
  return Buffer.concat([Buffer.from(QUEUE_FILE_MAGIC, 'latin1'), Buffer.from(JSON.stringify(head), 'utf8'), CRLF, ...f.bodies]);
}

export function decodeQueueFile(data: Buffer): QueueFile {
  if (!isQueueFile(data)) throw new QueueFileError(`it does not start with "${QUEUE_FILE_MAGIC.trim()}"`);
  const start = QUEUE_FILE_MAGIC.length;
  const eol = data.indexOf(CRLF, start);
  if (eol < 0) throw new QueueFileError('the header line does not end');
  let head: unknown;
  try {
    head = JSON.parse(data.subarray(start, eol).toString('utf8'));
  } catch (err) {
    throw new QueueFileError(`the header line is not JSON (${(err as Error).message})`);
  }
  const h = object(head, 'the header line');
  const transaction = text(h.transaction, 'transaction').toLowerCase();
  if (!UUID.test(transaction)) throw new QueueFileError('transaction is not a UUID');
  const bodies = splitBodies(data.subarray(eol + CRLF.length), h.bodies);
  if (!Array.isArray(h.entries) || h.entries.length === 0) throw new QueueFileError('entries must be a non-empty list');
  const entries = h.entries.map((m, i) => entry(transaction, m, i, bodies));
  const queues = new Set(entries.map((e) => e.id.queue));
  if (queues.size !== entries.length) throw new QueueFileError('two entries have the same queue number');
  return { transaction, ts: number(h.ts, 'ts'), serverid: text(h.serverid, 'serverid'), sender: text(h.sender, 'sender'), bodies, entries };
}

function splitBodies(rest: Buffer, lengths: unknown): Buffer[] {
  if (!Array.isArray(lengths) || lengths.length === 0) throw new QueueFileError('bodies must be a non-empty list of byte lengths');
  const out: Buffer[] = [];
  let at = 0;
  for (const n of lengths) {
    if (!Number.isSafeInteger(n) || (n as number) < 0) throw new QueueFileError('a body length is not a whole number');
    if (at + (n as number) > rest.length) throw new QueueFileError('the file ends inside a body (truncated?)');
    out.push(rest.subarray(at, at + (n as number)));
    at += n as number;
  }
  if (at !== rest.length) throw new QueueFileError(`${rest.length - at} bytes follow the last body`);
  return out;
}

function entry(transaction: string, meta: unknown, i: number, bodies: Buffer[]): QueueEntry {
  const m = object(meta, `entry ${i + 1}`);
  const queue = m.queue;
  if (!Number.isSafeInteger(queue) || (queue as number) < 1) throw new QueueFileError(`entry ${i + 1}: queue must be a whole number from 1`);
  let e: QueueEntry;
  try {
    e = decodeEntry(transaction, queue as number, m as Json);
  } catch (err) {
    throw new QueueFileError((err as Error).message);
  }
  if (!Number.isInteger(e.body) || e.body < 0 || e.body >= bodies.length) throw new QueueFileError(`entry ${i + 1}: body ${e.body} is not in the file`);
  // The size is the body's, whatever the file says (it is what quotas and SIZE checks use).
  e.size = bodies[e.body].length;
  return e;
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new QueueFileError(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function text(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new QueueFileError(`${what} is not a string`);
  return v;
}

function number(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new QueueFileError(`${what} is not a number`);
  return v;
}
