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
  /** Message bodies; entries refer to them by index. Not to be changed once committed. */
  bodies: Buffer[];
  /** One per recipient: its queue number (1-based) and full state. */
  entries: Array<{ queue: number; meta: Json }>;
}

/** `E`: what an entry's state is handed back as (its JSON, or RecoverOptions.entry's value). */
export interface RecoveredTransaction<E = Json> {
  id: string;
  /** Transaction metadata; null when RecoverOptions.meta is false. */
  meta: Json;
  /** Body sizes in bytes, by index. */
  bodySizes: number[];
  /** Live entries only (not removed), each with its most recent state. */
  entries: Array<{ queue: number; meta: E }>;
}

/**
 * How recover hands entries back (spool recovery with a large queue: see docs/spool.md).
 * `entry` turns an entry's JSON text (UTF-8 bytes; a view valid only during the call) into the
 * caller's value while the segments are read, so the spool keeps that value instead of the
 * text. It may be called for states later replaced (a TX record's entry that a later UPDATE or
 * REMOVE supersedes) and must not throw: a throw ends recovery with that error, so a caller
 * reports a bad entry in its value. `meta: false`: transaction metadata is neither kept nor
 * parsed (RecoveredTransaction.meta is null), for a caller that does not read it.
 */
export interface RecoverOptions<E> {
  entry(transaction: string, queue: number, text: Buffer): E;
  meta?: boolean;
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

/** One entry's new state for `Spool.updateMany`. */
export interface SpoolUpdate {
  transaction: string;
  queue: number;
  meta: Json;
}

export interface Spool {
  /** Read every segment, calling `onTransaction` for each transaction with live entries. */
  recover(onTransaction: (tx: RecoveredTransaction) => void): Promise<RecoveryReport>;
  recover<E>(onTransaction: (tx: RecoveredTransaction<E>) => void, opts: RecoverOptions<E>): Promise<RecoveryReport>;
  /** Durably write a transaction. Resolves only once it is on disk (fsync, grouped). */
  commit(tx: SpoolCommit): Promise<void>;
  /** Durably replace the state of one entry. */
  update(transaction: string, queue: number, meta: Json): Promise<void>;
  /**
   * Durably replace the state of many entries, written as one block in one batch. Resolves
   * once written, with an error for each item that was not written (no live entry, metadata
   * not JSON) and `undefined` for the others; rejects when the write itself failed (then none
   * of them was written).
   */
  updateMany(items: readonly SpoolUpdate[]): Promise<Array<Error | undefined>>;
  /** Durably mark an entry finished (delivered, bounced, deleted). */
  remove(transaction: string, queue: number): Promise<void>;
  /**
   * Read a body: from disk, or for a transaction committed moments ago the very buffer given to
   * commit (a bounded number of bytes of the latest commits is kept). Do not change the result.
   */
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
  /** Bytes of recently committed bodies kept in memory for their first read (default 16 MiB; 0 = none). */
  bodyCacheBytes?: number;
  /** Logger with pino's signature (obj, msg). */
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
}
