/**
 * The spool's narrow interface: the durable store of accepted transactions and the state of
 * each of their queue entries. Implemented by `journal.ts` (append-only segments with grouped
 * fsync; see docs/spool.md for the durability argument).
 *
 * The spool does not interpret entry metadata: it stores JSON values. The queue gives it the
 * full current state of an entry each time it changes; the last one written wins on recovery.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface SpoolCommit {
  /** Transaction uuid (lower-case, 36 chars). */
  id: string;
  /** Transaction-level metadata (envelope, reception facts). */
  meta: Json;
  /** Message bodies; entries refer to them by index. */
  bodies: Buffer[];
  /** One per recipient: its queue number (1-based) and full state. */
  entries: Array<{ queue: number; meta: Json }>;
}

export interface RecoveredTransaction {
  id: string;
  meta: Json;
  /** Body sizes in bytes, by index. */
  bodySizes: number[];
  /** Live entries only (not removed), each with its most recent state. */
  entries: Array<{ queue: number; meta: Json }>;
}

export interface RecoveryReport {
  transactions: number;
  entries: number;
  /** Records found torn or failing their checksum, and what was done (per `spool.corrupt`). */
  corrupt: Array<{ file: string; offset: number; reason: string; action: 'unlink' | 'rename' | 'ignore' }>;
  durationMs: number;
}

export interface SpoolStats {
  segments: number;
  bytes: number;
  liveTransactions: number;
  fsyncs: number;
  /** Mean and max fsync latency (ms) since start. */
  fsyncMeanMs: number;
  fsyncMaxMs: number;
}

/** Thrown by commit() when `spool.minfree` is reached; the SMTP server answers 452 4.3.1. */
export class SpoolFullError extends Error {
  readonly code = 'SPOOL_FULL';
  constructor(message = 'spool minfree reached') {
    super(message);
  }
}

export interface Spool {
  /** Read every segment, calling `onTransaction` for each transaction with live entries. */
  recover(onTransaction: (tx: RecoveredTransaction) => void): Promise<RecoveryReport>;
  /** Durably write a transaction. Resolves only once it is on disk (fsync, grouped). */
  commit(tx: SpoolCommit): Promise<void>;
  /** Durably replace the state of one entry. */
  update(transaction: string, queue: number, meta: Json): Promise<void>;
  /** Durably mark an entry finished (delivered, bounced, deleted). */
  remove(transaction: string, queue: number): Promise<void>;
  /** Read a body (streamed from disk; bodies are never kept in memory by the spool). */
  readBody(transaction: string, body: number): Promise<Buffer>;
  /** False while `spool.minfree` is reached (checked with statfs, refreshed at least every second). */
  hasSpace(): boolean;
  stats(): SpoolStats;
  /** Flush pending writes and close files. */
  close(): Promise<void>;
}

export interface SpoolOptions {
  path: string;
  fsync: boolean;
  corrupt: 'unlink' | 'rename' | 'ignore';
  minfree: { bytes: number; inodes: number };
  /** Segment size at which a new segment is started (default 64 MiB). */
  segmentSize?: number;
  /** Logger with pino's signature (obj, msg). */
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
}
