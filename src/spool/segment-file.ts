/**
 * Segment files on disk: naming, listing and a sequential, read-only scanner.
 *
 * Names: `seg-<16-digit zero-padded sequence>.hjl`; sequence numbers only grow, so the
 * lexical order of names is the write order. Other files in the spool directory (the `lock`
 * file, `*.corrupt-<offset>` tails kept by `spool.corrupt: rename`) are never taken for segments.
 *
 * `scanSegment(path, onRecord)` decodes records from offset 0 and calls `onRecord` for each whole
 * record whose checksum matches, in file order. It stops at the first record that is torn (the
 * file ends inside it) or corrupt, and reports where: nothing at or after that offset is ever
 * handed to the caller. Records come from `decodeRaw`: their JSON texts and bodies are views
 * into a reused read buffer and are only valid during the call (copy what must be kept).
 * Reading: the file is read in 4 MiB chunks, the next one read ahead (in libuv's thread pool)
 * while the current one is decoded, so the disk or page-cache copy overlaps the decoding
 * (1,000,000 queued recipients, 2.2 GB of segments: ~1 s of the main thread's waiting). The
 * two chunk buffers can be shared by consecutive scans (`ScanBuffers`): each fresh buffer's
 * pages cost their first touch again.
 * Errors: I/O errors (other than the ones described) reject.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { decodeRaw, HEADER_SIZE, RawRecord } from './record';

const SEGMENT_RE = /^seg-(\d{16})\.hjl$/;
const CHUNK = 4 * 1024 * 1024;

export function segmentName(seq: number): string {
  return `seg-${String(seq).padStart(16, '0')}.hjl`;
}

export function segmentPath(dir: string, seq: number): string {
  return path.join(dir, segmentName(seq));
}

/** Sequence numbers of the segments in `dir`, oldest first. */
export async function listSegments(dir: string): Promise<number[]> {
  const names = await fsp.readdir(dir);
  const seqs: number[] = [];
  for (const name of names) {
    const m = SEGMENT_RE.exec(name);
    if (m) seqs.push(Number(m[1]));
  }
  return seqs.sort((a, b) => a - b);
}

export interface ScanProblem {
  /** Offset of the first byte that could not be used (the start of the bad record). */
  offset: number;
  reason: string;
}

export interface ScanResult {
  /** File size when scanned. */
  size: number;
  /** End of the last good record: everything before it was handed to onRecord. */
  good: number;
  problem: ScanProblem | null;
}

export type OnRecord = (record: RawRecord, offset: number, length: number, bodyOffsets: number[]) => void;

/**
 * Room kept in front of each chunk buffer for the unread tail of the previous chunk (a record
 * that straddles the two), so it can be moved in front of the next chunk without a big copy.
 */
const RESERVE = 256 * 1024;

/** The two read buffers of a scan; give the same ones to consecutive scans to reuse them. */
export interface ScanBuffers {
  bufs: [Buffer, Buffer];
}

export function scanBuffers(): ScanBuffers {
  return { bufs: [Buffer.allocUnsafe(RESERVE + CHUNK), Buffer.allocUnsafe(RESERVE + CHUNK)] };
}

/**
 * The bytes of the file held in memory: `buf[vs..ve)` holds file bytes from `start`; `view` is
 * that range as a Buffer (made once per window, for the decoder).
 */
interface Window {
  buf: Buffer;
  vs: number;
  ve: number;
  start: number;
  view: Buffer;
}

/** Read up to `len` bytes at file offset `at` into buf[off…]; fewer only at the end of the file. */
async function readFull(fh: fsp.FileHandle, buf: Buffer, off: number, len: number, at: number): Promise<number> {
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, off + got, len - got, at + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

function setWindow(w: Window, buf: Buffer, vs: number, ve: number, start: number): void {
  w.buf = buf;
  w.vs = vs;
  w.ve = ve;
  w.start = start;
  w.view = buf.subarray(vs, ve);
}

/** A chunk being read ahead: file bytes from `at` into `buf` at RESERVE. */
interface Ahead {
  buf: Buffer;
  at: number;
  done: Promise<number>;
}

export async function scanSegment(file: string, onRecord: OnRecord, shared: ScanBuffers = scanBuffers()): Promise<ScanResult> {
  const fh = await fsp.open(file, 'r');
  let ahead: Ahead | null = null;
  try {
    const size = (await fh.stat()).size;
    const [a, b] = shared.bufs;
    // Two buffers in turn: the window's and the one read ahead (or a big one for a long record).
    const other = (buf: Buffer): Buffer => (buf === a ? b : a);
    const first = await readFull(fh, a, RESERVE, Math.min(CHUNK, size), 0);
    const w: Window = { buf: a, vs: RESERVE, ve: RESERVE + first, start: 0, view: a.subarray(RESERVE, RESERVE + first) };
    const readAhead = (buf: Buffer, at: number): Ahead | null => {
      if (at >= size) return null;
      const done = readFull(fh, buf, RESERVE, Math.min(CHUNK, size - at), at);
      done.catch(() => undefined); // awaited below or before close; never unhandled
      return { buf, at, done };
    };
    ahead = readAhead(b, first);
    let pos = 0;
    while (pos < size) {
      const res = decodeRaw(w.view, pos - w.start);
      if (res.kind === 'record') {
        onRecord(res.record, pos, res.next - (pos - w.start), res.bodyOffsets);
        pos = w.start + res.next;
        continue;
      }
      if (res.kind === 'corrupt') return { size, good: pos, problem: { offset: pos, reason: res.reason } };
      const end = w.start + (w.ve - w.vs);
      if (end >= size || pos + res.need > size) return torn(size, pos);
      const tail = end - pos;
      if (ahead !== null && ahead.at === end && tail <= RESERVE) {
        // The usual case: the tail moves in front of the chunk read ahead, which becomes the window.
        const got = await ahead.done;
        if (got === 0) return torn(size, pos);
        const next = ahead.buf;
        w.buf.copy(next, RESERVE - tail, w.vs + (pos - w.start), w.ve);
        setWindow(w, next, RESERVE - tail, RESERVE + got, pos);
        ahead = readAhead(other(next), end + got);
        continue;
      }
      // A record longer than what the buffers hold: read it whole into a buffer of its size.
      if (ahead !== null) await ahead.done.catch(() => 0);
      ahead = null;
      const big = Buffer.allocUnsafe(Math.max(res.need, CHUNK));
      const got = await readFull(fh, big, 0, Math.min(big.length, size - pos), pos);
      if (got < Math.min(res.need, size - pos)) return torn(size, pos);
      setWindow(w, big, 0, got, pos);
      ahead = readAhead(a, pos + got);
    }
    return { size, good: pos, problem: null };
  } finally {
    // A read still running must finish before its file handle closes.
    if (ahead !== null) await ahead.done.catch(() => 0);
    await fh.close();
  }
}

function torn(size: number, pos: number): ScanResult {
  return { size, good: pos, problem: { offset: pos, reason: 'torn record: the file ends inside it' } };
}
