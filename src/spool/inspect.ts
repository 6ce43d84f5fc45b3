/**
 * Read-only spool inspection, for `halyard-spoolcat` (the counterpart of Halon's hqfcat).
 *
 * Input: a spool directory. Output: the transactions that recovery would load (live entries
 * only, each with its latest state), in commit order; `inspectSpool` also lists the torn or
 * corrupt records it stopped at. It takes no lock and never writes, truncates or renames: it is
 * safe on the spool of a running daemon (a record being appended at that moment shows up as a
 * torn tail of the newest segment and is simply not listed).
 *
 * Errors: I/O errors reject (unreadable directory or segment); unparsable metadata (cannot
 * happen for records this code wrote) is shown as null.
 */
import { open } from 'node:fs/promises';
import { readExactly } from './handles';
import { Replay } from './replay';
import { listSegments, scanBuffers, scanSegment, segmentPath } from './segment-file';
import type { Json } from './types';

export interface DumpedTransaction {
  id: string;
  meta: Json;
  bodySizes: number[];
  entries: { queue: number; meta: Json }[];
}

export interface SpoolInspection {
  transactions: DumpedTransaction[];
  problems: Array<{ file: string; offset: number; reason: string }>;
  segments: number;
}

function parse(text: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch {
    return null;
  }
}

export async function inspectSpool(dir: string): Promise<SpoolInspection> {
  const replay = new Replay();
  const problems: SpoolInspection['problems'] = [];
  const seqs = await listSegments(dir);
  const buffers = scanBuffers();
  for (const seq of seqs) {
    const file = segmentPath(dir, seq);
    const res = await scanSegment(file, (rec, off, len, bodies) => replay.apply(rec, seq, seq, off, len, bodies), buffers);
    if (res.problem) problems.push({ file, ...res.problem });
  }
  const transactions = [...replay.txs.values()].map((t) => ({
    id: t.id,
    meta: parse(replay.meta(t) ?? ''),
    bodySizes: t.bodies.filter((_, i) => i % 2 === 1),
    entries: t.durable.filter((_, i) => i % 3 === 0).map((queue, i) => ({ queue, meta: parse(replay.textOf(t, i)?.toString('utf8') ?? '') })),
  }));
  return { transactions, problems, segments: seqs.length };
}

export async function dumpSpool(dir: string): Promise<DumpedTransaction[]> {
  return (await inspectSpool(dir)).transactions;
}

/** A body of a live transaction, read-only (for an hqfeml-like tool); null if not found. */
export async function readSpoolBody(dir: string, id: string, body: number): Promise<Buffer | null> {
  const replay = new Replay();
  const buffers = scanBuffers();
  for (const seq of await listSegments(dir)) {
    await scanSegment(segmentPath(dir, seq), (rec, off, len, bodies) => replay.apply(rec, seq, seq, off, len, bodies), buffers);
  }
  const tx = replay.txs.get(id);
  if (!tx || tx.seg === null || !Number.isInteger(body) || body < 0 || body * 2 >= tx.bodies.length) return null;
  const fh = await open(segmentPath(dir, tx.seg), 'r');
  try {
    return await readExactly(fh, tx.bodies[body * 2], tx.bodies[body * 2 + 1]);
  } finally {
    await fh.close();
  }
}
