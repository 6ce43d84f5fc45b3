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

/** A window of the file held in memory: `buf[0..len)` holds file bytes from `start`. */
interface Window {
  buf: Buffer;
  start: number;
  len: number;
}

async function refill(fh: fsp.FileHandle, w: Window, from: number, need: number, size: number): Promise<void> {
  const keep = w.start + w.len - from;
  if (need > w.buf.length) {
    const bigger = Buffer.allocUnsafe(Math.max(need, CHUNK));
    w.buf.copy(bigger, 0, from - w.start, w.len);
    w.buf = bigger;
  } else {
    w.buf.copy(w.buf, 0, from - w.start, w.len);
  }
  w.start = from;
  w.len = keep;
  const want = Math.min(w.buf.length, size - from);
  while (w.len < want) {
    const { bytesRead } = await fh.read(w.buf, w.len, want - w.len, from + w.len);
    if (bytesRead === 0) break;
    w.len += bytesRead;
  }
}

export async function scanSegment(file: string, onRecord: OnRecord): Promise<ScanResult> {
  const fh = await fsp.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const w: Window = { buf: Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, HEADER_SIZE))), start: 0, len: 0 };
    let pos = 0;
    while (pos < size) {
      const view = w.buf.subarray(0, w.len);
      const res = decodeRaw(view, pos - w.start);
      if (res.kind === 'record') {
        onRecord(res.record, pos, res.next - (pos - w.start), res.bodyOffsets);
        pos = w.start + res.next;
        continue;
      }
      if (res.kind === 'corrupt') return { size, good: pos, problem: { offset: pos, reason: res.reason } };
      if (w.start + w.len >= size || pos + res.need > size) {
        return { size, good: pos, problem: { offset: pos, reason: 'torn record: the file ends inside it' } };
      }
      await refill(fh, w, pos, res.need, size);
    }
    return { size, good: pos, problem: null };
  } finally {
    await fh.close();
  }
}
