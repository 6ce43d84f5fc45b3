/**
 * The journal: Halyard's durable spool (interface in types.ts; format and arguments in
 * docs/spool.md).
 *
 * Purpose: store accepted transactions (meta, bodies, one state per recipient entry) so that
 * whatever a promise acknowledged survives a crash, and give them back at start-up.
 *
 * Shape: an append-only log of segment files (`seg-<seq>.hjl`) of self-checking records
 * (record.ts). commit/update/remove encode a record and append it to an in-memory batch; one
 * writer loop writes each batch with pwritev at the end of the current segment, durably: the
 * segment is opened O_DSYNC, so the write returns once its data is on disk, as a write and ONE
 * fdatasync for the whole batch would (group commit). Records arriving while a batch is written
 * form the next batch. Promises resolve only after their batch is written and synced
 * (`spool.fsync: false`: written, not synced).
 *
 * In memory, per transaction: where its TX record and bodies are (segment, offset, length),
 * and for each live entry where the record holding its latest state is. Metadata is never held,
 * nor bodies beyond the latest commits' (recent.ts); readBody reads them back with a positional
 * read.
 *
 * Reclaim: segments are deleted oldest first, once none of their transactions has a live entry,
 * so tombstones (UPDATE/REMOVE) always outlive the TX records they refer to. Compaction re-appends
 * the few live transactions of a sparse oldest segment as TX records carrying their current
 * state, so one long-lived entry cannot pin every later segment.
 *
 * Invariants:
 *  - One writer (the batch loop) per process; a lock file keeps other processes out (lock.ts).
 *  - The in-memory locations change only after the record they point to is durable.
 *  - A transaction is compacted only while nothing for it is queued, and its rewrite is queued
 *    in the same synchronous step that checked so; later records follow it in the log.
 *
 * Errors: commit rejects with SpoolFullError below `spool.minfree` (before writing anything) or
 * on ENOSPC (the segment is truncated back so no half record remains); SpoolError for misuse
 * (codes in errors.ts); SpoolLockedError from openSpool; other I/O errors as is.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { decode, encodeParts, encodeUpdates, EncodedRecord, HEADER_SIZE, SpoolRecord, TxRecord, UpdateRecord } from './record';
import { listSegments, scanBuffers, scanSegment, ScanResult, segmentPath } from './segment-file';
import { indexOfQueue, newTxIndex, Replay, type EntryDecoder, type TxIndex } from './replay';
import { acquireLock, SpoolLockedError } from './lock';
import { SpaceMonitor } from './space';
import { ReadHandles } from './handles';
import { RecentBodies } from './recent';
import { SpoolError } from './errors';
import {
  Json,
  RecoveredTransaction,
  RecoverOptions,
  RecoveryReport,
  Spool,
  SpoolCommit,
  SpoolFullError,
  SpoolOptions,
  SpoolStats,
  SpoolUpdate,
} from './types';

export { SpoolError, SpoolFullError, SpoolLockedError };

const DEFAULT_SEGMENT_SIZE = 64 * 1024 * 1024;
/** Recovered transactions handed over per event-loop turn (loadIndex). */
const LOAD_SLICE = 20_000;
/** Bodies of the latest commits kept for their first delivery (recent.ts): a few seconds of mail. */
const DEFAULT_BODY_CACHE = 16 * 1024 * 1024;
/** Linux IOV_MAX: the most buffers one writev accepts. */
const IOV_MAX = 1024;
/** Compaction reads and rewrites at most this many bytes per round. */
const COMPACT_ROUND_BYTES = 8 * 1024 * 1024;
/** Oldest segment is "sparse" (worth rewriting) below this share of live bytes. */
const SPARSE_SHARE = 0.25;
/** Spool is "bloated" when its bytes exceed this many times the live bytes (plus slack). */
const BLOAT_FACTOR = 2;
const RETRY_MS = 1000;
const TICK_MS = 1000;

type Logger = NonNullable<SpoolOptions['log']>;
const silent: Logger = { info() {}, warn() {}, error() {} };

class Segment {
  size = 0;
  /** Transactions whose current TX record is here and that have a durable live entry. */
  liveTx = 0;
  /** Sum of those TX records' lengths. */
  liveBytes = 0;
  /** A failed write could not be undone: never append here again. */
  broken = false;
  constructor(readonly seq: number, readonly file: string) {}
}

/** One transaction in the index (fields: replay.ts's TxIndex; created only by newTxIndex). */
type TxState = TxIndex<Segment>;

type PendingKind = 'tx' | 'rewrite' | 'update' | 'remove' | 'updates';

interface Pending {
  kind: PendingKind;
  tx: TxState;
  enc: EncodedRecord;
  /** tx/rewrite: the entries carried; update/remove: the one entry; updates: one per record. */
  queues: number[];
  bodySizes: number[];
  /** updates: the transaction and start (inside `enc`) of each record; `tx` is the first. */
  many: { txs: TxState[]; offsets: number[] } | undefined;
  resolve(): void;
  reject(err: Error): void;
}

interface Snapshot {
  version: number;
  off: number;
  enc: EncodedRecord;
  queues: number[];
  bodySizes: number[];
}

type State = 'opened' | 'recovering' | 'ready' | 'closing' | 'closed';

export async function openSpool(opts: SpoolOptions): Promise<Spool> {
  checkOptions(opts);
  await fsp.mkdir(opts.path, { recursive: true, mode: 0o750 });
  const release = await acquireLock(opts.path);
  try {
    const found = await listSegments(opts.path);
    const log = opts.log ?? silent;
    const space = new SpaceMonitor(opts.path, opts.minfree, (o, m) => log.warn(o, m));
    await space.refresh();
    return new Journal(opts, release, found, space);
  } catch (err) {
    await release();
    throw err;
  }
}

function checkOptions(opts: SpoolOptions): void {
  if (!['unlink', 'rename', 'ignore'].includes(opts.corrupt)) throw new TypeError(`spool.corrupt: unknown mode ${String(opts.corrupt)}`);
  const size = opts.segmentSize ?? DEFAULT_SEGMENT_SIZE;
  if (!Number.isSafeInteger(size) || size < 1) throw new TypeError('spool segmentSize must be a positive integer');
}

export class Journal implements Spool {
  private readonly dir: string;
  private readonly sync: boolean;
  private readonly segmentSize: number;
  private readonly log: Logger;
  private readonly handles: ReadHandles;
  private state: State = 'opened';
  /** Oldest first; the last one is the segment being appended (once recovered). */
  private readonly segments: Segment[] = [];
  /** Replaced once, by the replay's map, at the end of recovery (loadIndex). */
  private index = new Map<string, TxState>();
  private writer: fsp.FileHandle | null = null;
  private nextSeq = 1;
  private queue: Pending[] = [];
  private loop: Promise<void> | null = null;
  private reclaiming: Promise<void> | null = null;
  private compaction: Promise<void> | null = null;
  private compactJob: { seg: Segment; victims: TxState[] } | null = null;
  /** A transaction compaction skipped as busy has settled: run compaction again. */
  private compactAgain = false;
  private reclaimRetryAt = 0;
  private compactRetryAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  private recovery: Promise<RecoveryReport> | null = null;
  /** Bodies of the latest commits, read by their first delivery attempt without the disk. */
  private readonly recent: RecentBodies;
  private fsyncs = 0;
  private fsyncTotalMs = 0;
  private fsyncMaxMs = 0;

  constructor(
    private readonly opts: SpoolOptions,
    private readonly releaseLock: () => Promise<void>,
    private readonly found: number[],
    private readonly space: SpaceMonitor,
  ) {
    this.dir = opts.path;
    this.sync = opts.fsync;
    this.segmentSize = opts.segmentSize ?? DEFAULT_SEGMENT_SIZE;
    this.log = opts.log ?? silent;
    this.handles = new ReadHandles((seq) => segmentPath(this.dir, seq));
    this.recent = new RecentBodies<TxState>(opts.bodyCacheBytes ?? DEFAULT_BODY_CACHE);
  }

  // -------------------------------------------------------------------------------------------
  // Recovery

  /**
   * Replays every segment, then calls onTransaction once per transaction with live entries (in
   * commit order, each with its final state). If onTransaction throws, recover rejects with that
   * error and the spool should be closed.
   */
  recover(onTransaction: (tx: RecoveredTransaction) => void): Promise<RecoveryReport>;
  recover<E>(onTransaction: (tx: RecoveredTransaction<E>) => void, opts: RecoverOptions<E>): Promise<RecoveryReport>;
  recover(onTransaction: (tx: RecoveredTransaction<never>) => void, opts?: RecoverOptions<unknown>): Promise<RecoveryReport> {
    if (this.state !== 'opened') return Promise.reject(new SpoolError('SPOOL_INVALID', 'spool: recover() runs once, before any write'));
    this.state = 'recovering';
    this.recovery = this.replayAll(onTransaction, opts);
    return this.recovery;
  }

  private async replayAll(onTransaction: (tx: RecoveredTransaction<never>) => void, opts: RecoverOptions<unknown> | undefined): Promise<RecoveryReport> {
    const started = performance.now();
    const replay = new Replay<Segment>({ decode: opts?.entry, meta: opts?.meta });
    const corrupt: RecoveryReport['corrupt'] = [];
    const buffers = scanBuffers();
    for (const seq of this.found) {
      const seg = new Segment(seq, segmentPath(this.dir, seq));
      const res = await scanSegment(seg.file, (rec, off, len, bodies) => replay.apply(rec, seg, seq, off, len, bodies), buffers);
      seg.size = res.size;
      if (res.problem) corrupt.push(await this.handleProblem(seg, res));
      this.segments.push(seg);
    }
    this.nextSeq = (this.found.at(-1) ?? 0) + 1;
    await this.rotate();
    // Before 'ready' and the timer: reclaim must not see a segment whose live count is not
    // complete yet (it would delete it as finished).
    const counts = await this.loadIndex(replay, onTransaction, opts?.entry);
    this.state = 'ready';
    this.startTimer();
    const report: RecoveryReport = { ...counts, corrupt, durationMs: performance.now() - started };
    this.log.info({ ...counts, corrupt: corrupt.length, segments: this.found.length, ms: Math.round(report.durationMs) }, 'spool recovered');
    this.afterBatch();
    return report;
  }

  private async handleProblem(seg: Segment, res: ScanResult): Promise<RecoveryReport['corrupt'][number]> {
    const { offset, reason } = res.problem!;
    const action = this.opts.corrupt;
    switch (action) {
      case 'rename':
        await saveTail(seg.file, offset, this.sync);
        await truncateFile(seg.file, offset, this.sync);
        seg.size = offset;
        break;
      case 'unlink':
        await truncateFile(seg.file, offset, this.sync);
        seg.size = offset;
        break;
      case 'ignore':
        break;
      default:
        assertNever(action);
    }
    const item = { file: seg.file, offset, reason, action };
    this.log.warn(item, 'spool: torn or corrupt record; the rest of this segment is not loaded');
    return item;
  }

  /**
   * Turns the replay into the index: the replay's map and its objects already are the index
   * (TxIndex), so each transaction is handed to onTransaction, its states released, and its
   * segment's live counts updated; a transaction whose metadata is unparsable is dropped.
   * Yields to the event loop every LOAD_SLICE transactions (with 1,000,000 entries this takes
   * seconds, and the monitor listener, already up, must keep answering /healthy meanwhile).
   * Still no write can see the index half built: the spool is not 'ready' until this returns,
   * so writes are refused, and the reclaim timer has not started.
   */
  private async loadIndex(replay: Replay<Segment>, onTransaction: (tx: RecoveredTransaction<never>) => void, decode: EntryDecoder | undefined): Promise<{ transactions: number; entries: number }> {
    let transactions = 0;
    let entries = 0;
    let n = 0;
    for (const tx of replay.txs.values()) {
      if (++n % LOAD_SLICE === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const recovered = this.parseRecovered(replay, tx, decode);
      if (!recovered) {
        replay.forget(tx);
        continue;
      }
      replay.release(tx);
      tx.slot = -1;
      tx.seg!.liveTx++;
      tx.seg!.liveBytes += tx.len;
      transactions++;
      entries += recovered.entries.length;
      onTransaction(recovered as RecoveredTransaction<never>);
    }
    for (const [id, tx] of this.index) replay.txs.set(id, tx); // empty: nothing is written before recovery
    this.index = replay.txs;
    return { transactions, entries };
  }

  /**
   * The transaction as handed to onTransaction: entry texts parsed (or, with a decoder, decoded)
   * now unless the replay decoded them as it read them. Null when a text is not JSON (without a
   * decoder; a decoder reports a bad entry in its own value).
   */
  private parseRecovered(replay: Replay<Segment>, tx: TxState, decode: EntryDecoder | undefined): RecoveredTransaction<unknown> | null {
    try {
      const text = replay.meta(tx);
      const meta = text === null ? null : (JSON.parse(text) as Json);
      const bodySizes = new Array<number>(tx.bodies.length >> 1);
      for (let i = 0; i < bodySizes.length; i++) bodySizes[i] = tx.bodies[2 * i + 1];
      const n = tx.durable.length / 3;
      const entries = new Array<{ queue: number; meta: unknown }>(n);
      for (let i = 0; i < n; i++) {
        const queue = tx.durable[3 * i];
        const bytes = replay.textOf(tx, i);
        if (bytes === null) entries[i] = { queue, meta: replay.valueOf(tx, i) };
        else entries[i] = { queue, meta: decode ? decode(tx.id, queue, bytes) : JSON.parse(bytes.toString('utf8')) };
      }
      return { id: tx.id, meta, bodySizes, entries };
    } catch (err) {
      this.log.error({ err, transaction: tx.id }, 'spool: unparsable metadata; transaction not loaded');
      return null;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Public write API

  async commit(c: SpoolCommit): Promise<void> {
    this.assertWritable();
    if (!this.space.hasSpace()) throw new SpoolFullError();
    const rec = txRecord(c);
    if (this.index.has(rec.id)) throw new SpoolError('SPOOL_DUPLICATE', `spool: transaction ${rec.id} already exists`);
    const enc = encodeChecked(rec);
    const queues = rec.entries.map((e) => e.queue);
    const tx: TxState = newTxIndex<Segment>(rec.id, null, 0, 0, [], [], [...queues], -1);
    this.index.set(rec.id, tx);
    await this.submit('tx', tx, enc, queues, rec.bodies.map((b) => b.length));
    this.recent.remember(tx, rec.bodies);
  }

  async update(transaction: string, queue: number, meta: Json): Promise<void> {
    this.assertWritable();
    const tx = this.index.get(transaction);
    if (!tx || !isLive(tx, queue)) throw new SpoolError('SPOOL_NOT_FOUND', `spool: no live entry ${transaction}:${queue}`);
    const enc = encodeChecked({ type: 'update', id: transaction, queue, meta: jsonText(meta) });
    tx.version++;
    return this.submit('update', tx, enc, [queue], []);
  }

  async updateMany(items: readonly SpoolUpdate[]): Promise<Array<Error | undefined>> {
    this.assertWritable();
    const refused = new Array<Error | undefined>(items.length).fill(undefined);
    const records: UpdateRecord[] = [];
    const txs: TxState[] = [];
    items.forEach((it, i) => {
      const tx = this.index.get(it.transaction);
      if (!tx || !isLive(tx, it.queue)) {
        refused[i] = new SpoolError('SPOOL_NOT_FOUND', `spool: no live entry ${it.transaction}:${it.queue}`);
        return;
      }
      try {
        records.push({ type: 'update', id: it.transaction, queue: it.queue, meta: jsonText(it.meta) });
        txs.push(tx);
      } catch (err) {
        refused[i] = err as Error;
      }
    });
    if (records.length === 0) return refused;
    let enc: { buf: Buffer; offsets: number[] };
    try {
      enc = encodeUpdates(records);
    } catch (err) {
      throw err instanceof RangeError ? new SpoolError('SPOOL_INVALID', err.message) : err;
    }
    for (const tx of txs) tx.version++;
    const block = { parts: [enc.buf], length: enc.buf.length, bodyOffsets: [] };
    await this.submit('updates', txs[0], block, records.map((r) => r.queue), [], { txs, offsets: enc.offsets });
    return refused;
  }

  async remove(transaction: string, queue: number): Promise<void> {
    this.assertWritable();
    const tx = this.index.get(transaction);
    if (!tx) return;
    const live = liveList(tx);
    const at = live.indexOf(queue);
    // Not live and not durable: already finished (remove is idempotent).
    if (at < 0 && durableAt(tx, queue) < 0) return;
    const enc = encodeChecked({ type: 'remove', id: transaction, queue });
    if (at >= 0) live.splice(at, 1);
    tx.version++;
    return this.submit('remove', tx, enc, [queue], []);
  }

  async readBody(transaction: string, body: number): Promise<Buffer> {
    if (this.state === 'closed') throw new SpoolError('SPOOL_CLOSED', 'spool: closed');
    const kept = this.recent.get(this.index.get(transaction), body);
    if (kept) return kept;
    for (let attempt = 0; ; attempt++) {
      const tx = this.index.get(transaction);
      if (!tx?.seg) throw new SpoolError('SPOOL_NOT_FOUND', `spool: no transaction ${transaction}`);
      if (!Number.isInteger(body) || body < 0 || body * 2 >= tx.bodies.length) {
        throw new SpoolError('SPOOL_NOT_FOUND', `spool: transaction ${transaction} has no body ${body}`);
      }
      const seq = tx.seg.seq;
      try {
        return await this.handles.read(seq, tx.bodies[body * 2], tx.bodies[body * 2 + 1]);
      } catch (err) {
        // Compaction moved it and the old segment is gone: look it up again.
        const moved = this.index.get(transaction)?.seg?.seq !== seq;
        if (attempt < 3 && moved && errno(err) === 'ENOENT') continue;
        throw err;
      }
    }
  }

  hasSpace(): boolean {
    return this.space.hasSpace();
  }

  stats(): SpoolStats {
    let bytes = 0;
    let live = 0;
    for (const s of this.segments) {
      bytes += s.size;
      live += s.liveTx;
    }
    return {
      segments: this.segments.length,
      bytes,
      liveTransactions: live,
      fsyncs: this.fsyncs,
      fsyncMeanMs: this.fsyncs ? this.fsyncTotalMs / this.fsyncs : 0,
      fsyncMaxMs: this.fsyncMaxMs,
    };
  }

  close(): Promise<void> {
    if (!this.closing) this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    await this.recovery?.catch(() => undefined);
    this.state = 'closing';
    if (this.timer) clearInterval(this.timer);
    await this.compaction;
    while (this.loop) await this.loop;
    while (this.reclaiming) await this.reclaiming;
    await this.writer?.close();
    this.writer = null;
    await this.handles.closeAll();
    await this.releaseLock();
    this.state = 'closed';
  }

  private assertWritable(): void {
    if (this.state === 'ready') return;
    if (this.state === 'closing' || this.state === 'closed') throw new SpoolError('SPOOL_CLOSED', 'spool: closed');
    throw new SpoolError('SPOOL_NOT_RECOVERED', 'spool: call recover() before writing');
  }

  // -------------------------------------------------------------------------------------------
  // Group commit

  private submit(kind: PendingKind, tx: TxState, enc: EncodedRecord, queues: number[], bodySizes: number[], many?: Pending['many']): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (many) for (const t of many.txs) t.pending++;
      else tx.pending++;
      this.queue.push({ kind, tx, enc, queues, bodySizes, many, resolve, reject });
      if (!this.loop) this.loop = this.drain();
    });
  }

  /**
   * The single writer. Each batch starts on setImmediate, in the check phase of the event loop:
   * every record submitted during the current turn (by the I/O callbacks that just ran, the
   * write's own completion among them) joins it. Starting the next write straight from the
   * previous one's completion would leave out the records that the rest of that turn's
   * callbacks are about to submit (docs/decisions.md B15). No timer, no added latency.
   */
  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        const batch = this.queue;
        this.queue = [];
        await this.writeBatch(batch);
      }
    } finally {
      this.loop = null;
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    let seg: Segment;
    try {
      seg = await this.writableSegment();
    } catch (err) {
      return this.fail(batch, ioError(err));
    }
    const start = seg.size;
    const parts: Buffer[] = [];
    let total = 0;
    for (const p of batch) {
      for (const part of p.enc.parts) parts.push(part);
      total += p.enc.length;
    }
    try {
      // O_DSYNC when this.sync (rotate): durable once written.
      const t0 = performance.now();
      await writeAll(this.writer!, parts, start);
      seg.size = start + total;
      if (this.sync) this.countSync(performance.now() - t0);
    } catch (err) {
      await this.undoWrite(seg, start, total, err);
      return this.fail(batch, ioError(err));
    }
    this.space.wrote(total);
    let off = start;
    for (const p of batch) {
      this.apply(p, seg, off);
      off += p.enc.length;
      p.resolve();
    }
    this.afterBatch();
  }

  private async writableSegment(): Promise<Segment> {
    const cur = this.segments.at(-1);
    if (cur && this.writer && !cur.broken && cur.size < this.segmentSize) return cur;
    await this.rotate();
    return this.segments.at(-1)!;
  }

  /** Start a new segment: create it exclusively, make its name durable, switch the writer. */
  private async rotate(): Promise<void> {
    const seq = this.nextSeq++;
    const seg = new Segment(seq, segmentPath(this.dir, seq));
    // With fsync on, the segment is opened O_DSYNC: each batch's one writev returns once the
    // data is durable, as writev + fdatasync would, in one thread-pool job instead of two
    // (a batch's wait is one hop shorter, which shows in the EOD -> 250 tail under load).
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (this.sync ? fs.constants.O_DSYNC : 0);
    const fh = await fsp.open(seg.file, flags, 0o600);
    try {
      if (this.sync) await syncDir(this.dir);
    } catch (err) {
      await fh.close();
      await fsp.unlink(seg.file).catch(() => undefined);
      throw err;
    }
    const old = this.writer;
    this.writer = fh;
    this.segments.push(seg);
    if (old) await old.close().catch((err: unknown) => this.log.warn({ err }, 'spool: closing a full segment failed'));
  }

  /** One durable write (an O_DSYNC writev: the write and its fdatasync) took `ms`. */
  private countSync(ms: number): void {
    this.fsyncs++;
    this.fsyncTotalMs += ms;
    if (ms > this.fsyncMaxMs) this.fsyncMaxMs = ms;
  }

  /** A write or sync failed: cut the segment back to the end of the last durable batch. */
  private async undoWrite(seg: Segment, start: number, total: number, err: unknown): Promise<void> {
    const full = isNoSpace(err);
    if (full) this.space.markFull();
    this.log.error({ err, segment: seg.file, offset: start, bytes: total }, 'spool: write failed; batch rejected');
    try {
      await this.writer!.truncate(start);
      if (this.sync) await this.writer!.datasync();
      seg.size = start;
      // After ENOSPC the file is sound; after any other failure start afresh in a new file.
      if (!full) seg.broken = true;
    } catch (cutErr) {
      seg.broken = true;
      seg.size = Math.max(seg.size, start + total);
      this.log.error({ err: cutErr, segment: seg.file }, 'spool: cannot truncate after a failed write; recovery will cut there');
    }
  }

  private fail(batch: Pending[], err: Error): void {
    for (const p of batch) {
      this.rollback(p);
      p.reject(err);
    }
  }

  // -------------------------------------------------------------------------------------------
  // In-memory index: applied once a record is durable, undone when its batch fails

  private apply(p: Pending, seg: Segment, off: number): void {
    if (p.many) {
      p.many.txs.forEach((tx, i) => {
        this.settled(tx);
        this.updated(tx, p.queues[i], seg, off + p.many!.offsets[i]);
        this.forgetIfDead(tx);
      });
      return;
    }
    const tx = p.tx;
    this.settled(tx);
    switch (p.kind) {
      case 'tx':
      case 'rewrite':
        this.place(tx, seg, off, p);
        break;
      case 'update':
        this.updated(tx, p.queues[0], seg, off);
        break;
      case 'remove':
        this.dropDurable(tx, p.queues[0]);
        break;
      case 'updates':
        throw new Error('spool: an updates batch without its records');
      default:
        assertNever(p.kind);
    }
    this.forgetIfDead(tx);
  }

  /** A record of the transaction is written (or failed): one fewer in flight. */
  private settled(tx: TxState): void {
    tx.pending--;
    if (tx.pending === 0 && tx.seg !== null && tx.seg === this.compactJob?.seg) this.compactAgain = true;
  }

  /** The entry's current state is now the UPDATE record at seg/off. */
  private updated(tx: TxState, queue: number, seg: Segment, off: number): void {
    const at = durableAt(tx, queue);
    if (at >= 0) {
      tx.durable[at + 1] = seg.seq;
      tx.durable[at + 2] = off;
    }
  }

  private place(tx: TxState, seg: Segment, off: number, p: Pending): void {
    if (tx.seg && tx.durable.length > 0) this.detach(tx);
    tx.seg = seg;
    tx.off = off;
    tx.len = p.enc.length;
    // Exact-size arrays: push() would over-allocate, and there is one of these per live message.
    tx.bodies = new Array<number>(p.bodySizes.length * 2);
    p.bodySizes.forEach((size, i) => {
      tx.bodies[2 * i] = off + p.enc.bodyOffsets[i];
      tx.bodies[2 * i + 1] = size;
    });
    tx.durable = new Array<number>(p.queues.length * 3);
    p.queues.forEach((q, i) => {
      tx.durable[3 * i] = q;
      tx.durable[3 * i + 1] = seg.seq;
      tx.durable[3 * i + 2] = off;
    });
    if (tx.durable.length === 0) return;
    seg.liveTx++;
    seg.liveBytes += tx.len;
  }

  private dropDurable(tx: TxState, queue: number): void {
    const at = durableAt(tx, queue);
    if (at < 0) return;
    tx.durable.splice(at, 3);
    if (tx.durable.length === 0) this.detach(tx);
  }

  private detach(tx: TxState): void {
    tx.seg!.liveTx--;
    tx.seg!.liveBytes -= tx.len;
  }

  private rollback(p: Pending): void {
    if (p.many) {
      for (const t of p.many.txs) {
        t.pending--;
        this.forgetIfDead(t);
      }
      return;
    }
    const tx = p.tx;
    tx.pending--;
    const queue = p.queues[0];
    if (p.kind === 'tx') tx.live = [];
    if (p.kind === 'remove' && durableAt(tx, queue) >= 0 && !isLive(tx, queue)) liveList(tx).push(queue);
    this.forgetIfDead(tx);
  }

  private forgetIfDead(tx: TxState): void {
    if (tx.durable.length > 0 || (tx.live !== null && tx.live.length > 0) || tx.pending > 0) return;
    if (this.index.get(tx.id) === tx) this.index.delete(tx.id);
    this.recent.forget(tx);
  }

  // -------------------------------------------------------------------------------------------
  // Reclaim: delete dead segments oldest first; compact a sparse oldest segment

  private afterBatch(): void {
    if (this.state !== 'ready') return;
    this.kickReclaim();
    this.maybeCompact();
  }

  private startTimer(): void {
    this.timer = setInterval(() => {
      void this.space.refresh();
      this.afterBatch();
    }, TICK_MS);
    this.timer.unref();
  }

  private deletable(): boolean {
    return this.segments.length > 1 && this.segments[0].liveTx === 0 && Date.now() >= this.reclaimRetryAt;
  }

  private kickReclaim(): void {
    if (!this.reclaiming && this.deletable()) this.reclaiming = this.reclaimLoop();
  }

  private async reclaimLoop(): Promise<void> {
    let deleted = 0;
    try {
      while (this.deletable() && (await this.deleteOldest())) deleted++;
    } finally {
      this.reclaiming = null;
    }
    // A new oldest segment may be worth compacting now.
    if (deleted > 0 && this.state === 'ready') this.maybeCompact();
  }

  /**
   * Delete the oldest segment. Its removal is made durable (directory fsync) before the next
   * one is deleted: if a crash could undo an older deletion but keep a newer one, tombstones in
   * the newer segment would be gone while the TX records they kill came back.
   */
  private async deleteOldest(): Promise<boolean> {
    const seg = this.segments[0];
    try {
      await fsp.unlink(seg.file);
      if (this.sync) await syncDir(this.dir);
    } catch (err) {
      if (errno(err) !== 'ENOENT') {
        this.reclaimRetryAt = Date.now() + RETRY_MS;
        this.log.error({ err, segment: seg.file }, 'spool: cannot delete a finished segment; will retry');
        return false;
      }
    }
    this.segments.shift();
    this.handles.forget(seg.seq);
    if (this.compactJob?.seg === seg) this.compactJob = null;
    return true;
  }

  private maybeCompact(): void {
    if (this.compaction || this.state !== 'ready' || Date.now() < this.compactRetryAt) return;
    const oldest = this.segments[0];
    if (this.segments.length < 2 || oldest.liveTx === 0 || !this.worthCompacting(oldest)) return;
    // Rewriting needs room for the live data first; refuse when the disk cannot take it.
    if (this.space.freeBytes() < 2 * oldest.liveBytes + 1024 * 1024) return;
    this.compaction = this.compact(oldest)
      .catch((err: unknown) => this.log.error({ err }, 'spool: compaction failed'))
      .finally(() => {
        this.compaction = null;
        if (this.compactAgain) this.maybeCompact();
      });
  }

  private worthCompacting(oldest: Segment): boolean {
    if (oldest.liveBytes < SPARSE_SHARE * oldest.size) return true;
    let bytes = 0;
    let live = 0;
    for (const s of this.segments) {
      bytes += s.size;
      live += s.liveBytes;
    }
    return bytes > BLOAT_FACTOR * live + 2 * this.segmentSize;
  }

  /**
   * The transactions of `seg` still to move. Found by one scan of the index per segment; the list
   * only shrinks afterwards (nothing new is ever placed in a segment that is not the last).
   */
  private victims(seg: Segment): TxState[] {
    if (this.compactJob?.seg !== seg) this.compactJob = { seg, victims: [...this.index.values()].filter((tx) => tx.seg === seg) };
    const job = this.compactJob;
    job.victims = job.victims.filter((tx) => tx.seg === seg && tx.durable.length > 0);
    return job.victims;
  }

  private async compact(seg: Segment): Promise<void> {
    this.compactAgain = false;
    const victims = this.victims(seg);
    const outcome = { moved: 0, busy: 0, failed: 0 };
    for (let i = 0; i < victims.length && this.state === 'ready'; ) {
      const round: TxState[] = [];
      for (let bytes = 0; i < victims.length && (round.length === 0 || bytes + victims[i].len <= COMPACT_ROUND_BYTES); i++) {
        bytes += victims[i].len;
        round.push(victims[i]);
      }
      await this.rewriteRound(round, seg, outcome);
    }
    this.log.info({ segment: seg.file, ...outcome, left: seg.liveTx }, 'spool: compacted oldest segment');
    // Busy transactions have records queued: once those are durable, apply() sets compactAgain.
    // Failures (unreadable records) wait before the next attempt.
    if (outcome.failed > 0) this.compactRetryAt = Date.now() + RETRY_MS;
    this.kickReclaim();
  }

  private async rewriteRound(round: TxState[], seg: Segment, outcome: { moved: number; busy: number; failed: number }): Promise<void> {
    const snaps = await Promise.all(round.map((tx) => (tx.pending > 0 ? 'busy' : this.snapshot(tx))));
    const writes: Promise<void>[] = [];
    round.forEach((tx, i) => {
      const snap = snaps[i];
      if (snap === null) outcome.failed++;
      if (snap === null || snap === 'busy') return;
      // Checked and queued in one synchronous step: nothing for tx can slip in between.
      if (!this.unchanged(tx, snap, seg)) {
        outcome.busy++;
        return;
      }
      outcome.moved++;
      const done = this.submit('rewrite', tx, snap.enc, snap.queues, snap.bodySizes);
      writes.push(done.catch((err: unknown) => this.log.warn({ err, transaction: tx.id }, 'spool: rewrite failed')));
    });
    outcome.busy += snaps.filter((s) => s === 'busy').length;
    await Promise.all(writes);
  }

  private unchanged(tx: TxState, snap: Snapshot, seg: Segment): boolean {
    return tx.version === snap.version && tx.pending === 0 && tx.seg === seg && tx.off === snap.off
      && tx.durable.length > 0 && this.index.get(tx.id) === tx;
  }

  /** Read a transaction's current state from disk and encode it as a rewrite TX record. */
  private async snapshot(tx: TxState): Promise<Snapshot | null> {
    if (!tx.seg) return null;
    const { version, off } = tx;
    const seq = tx.seg.seq;
    const durable = tx.durable.slice();
    try {
      const base = await this.readRecord(seq, off, tx.len, tx.id);
      if (base.type !== 'tx') throw new Error('not a TX record');
      const entries: TxRecord['entries'] = [];
      for (let i = 0; i < durable.length; i += 3) {
        const [queue, s, o] = [durable[i], durable[i + 1], durable[i + 2]];
        entries.push({ queue, meta: s === seq && o === off ? txEntryMeta(base, queue) : await this.updateMeta(s, o, tx.id, queue) });
      }
      const rec: TxRecord = { type: 'tx', id: tx.id, meta: base.meta, entries, bodies: base.bodies };
      return { version, off, enc: encodeParts(rec), queues: entries.map((e) => e.queue), bodySizes: base.bodies.map((b) => b.length) };
    } catch (err) {
      this.log.error({ err, transaction: tx.id, segment: seq, offset: off }, 'spool: cannot re-read a transaction for compaction');
      return null;
    }
  }

  private async updateMeta(seq: number, off: number, id: string, queue: number): Promise<string> {
    const head = await this.handles.read(seq, off, HEADER_SIZE);
    const rec = await this.readRecord(seq, off, HEADER_SIZE + head.readUInt32LE(5), id);
    if (rec.type !== 'update' || rec.queue !== queue) throw new Error(`record at ${seq}:${off} is not the update of entry ${queue}`);
    return rec.meta;
  }

  private async readRecord(seq: number, off: number, len: number, id: string): Promise<SpoolRecord> {
    const buf = await this.handles.read(seq, off, len);
    const res = decode(buf, 0);
    if (res.kind !== 'record') throw new Error(`record at ${seq}:${off} is ${res.kind === 'corrupt' ? res.reason : 'incomplete'}`);
    if (res.record.id !== id) throw new Error(`record at ${seq}:${off} belongs to ${res.record.id}`);
    return res.record;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function txEntryMeta(rec: TxRecord, queue: number): string {
  const entry = rec.entries.findLast((e) => e.queue === queue);
  if (!entry) throw new Error(`TX record has no entry ${queue}`);
  return entry.meta;
}

/** Is `queue` logically live (live === null: the durable entries are the live ones)? */
function isLive(tx: TxState, queue: number): boolean {
  return tx.live === null ? indexOfQueue(tx.durable, queue) >= 0 : tx.live.includes(queue);
}

/** The live list, made explicit (from the durable entries) before it is changed. */
function liveList(tx: TxState): number[] {
  if (tx.live === null) {
    const live = new Array<number>(tx.durable.length / 3);
    for (let i = 0; i < live.length; i++) live[i] = tx.durable[3 * i];
    tx.live = live;
  }
  return tx.live;
}

function durableAt(tx: TxState, queue: number): number {
  for (let i = 0; i < tx.durable.length; i += 3) if (tx.durable[i] === queue) return i;
  return -1;
}

function jsonText(value: Json): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new SpoolError('SPOOL_INVALID', `spool: metadata is not JSON: ${(err as Error).message}`);
  }
  if (text === undefined) throw new SpoolError('SPOOL_INVALID', 'spool: metadata is not JSON');
  return text;
}

function txRecord(c: SpoolCommit): TxRecord {
  if (typeof c.id !== 'string' || c.id.length === 0) throw new SpoolError('SPOOL_INVALID', 'spool: transaction id must be a non-empty string');
  const seen = new Set<number>();
  const entries = c.entries.map((e) => {
    if (seen.has(e.queue)) throw new SpoolError('SPOOL_INVALID', `spool: queue number ${e.queue} repeated in ${c.id}`);
    seen.add(e.queue);
    return { queue: e.queue, meta: jsonText(e.meta) };
  });
  const bodies = c.bodies.map((b) => (Buffer.isBuffer(b) ? b : Buffer.from((b as Uint8Array).buffer, (b as Uint8Array).byteOffset, (b as Uint8Array).byteLength)));
  return { type: 'tx', id: c.id, meta: jsonText(c.meta), entries, bodies };
}

function encodeChecked(rec: SpoolRecord): EncodedRecord {
  try {
    return encodeParts(rec);
  } catch (err) {
    if (err instanceof RangeError) throw new SpoolError('SPOOL_INVALID', err.message);
    throw err;
  }
}

async function writeAll(fh: fsp.FileHandle, parts: Buffer[], position: number): Promise<void> {
  let rest = parts.filter((p) => p.length > 0);
  let pos = position;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest.length > IOV_MAX ? rest.slice(0, IOV_MAX) : rest, pos);
    if (bytesWritten <= 0) throw new Error('spool: write made no progress');
    pos += bytesWritten;
    rest = advance(rest, bytesWritten);
  }
}

/** Drop `n` written bytes from the front of a buffer list. */
function advance(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < bufs.length && n >= bufs[i].length) n -= bufs[i++].length;
  const out = bufs.slice(i);
  if (n > 0) out[0] = out[0].subarray(n);
  return out;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function truncateFile(file: string, length: number, sync: boolean): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.truncate(length);
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
}

/** spool.corrupt = rename: keep the unusable tail as `<segment>.corrupt-<offset>`. */
async function saveTail(file: string, offset: number, sync: boolean): Promise<void> {
  const src = await fsp.open(file, 'r');
  const dst = await fsp.open(`${file}.corrupt-${offset}`, 'w', 0o600);
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let pos = offset; ; ) {
      const { bytesRead } = await src.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      await dst.write(buf, 0, bytesRead);
      pos += bytesRead;
    }
    if (sync) await dst.sync();
  } finally {
    await src.close();
    await dst.close();
  }
  if (sync) await syncDir(path.dirname(file));
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function isNoSpace(err: unknown): boolean {
  const code = errno(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function ioError(err: unknown): Error {
  if (isNoSpace(err)) return new SpoolFullError(`spool disk full (${errno(err)})`);
  return err instanceof Error ? err : new Error(String(err));
}

function assertNever(x: never): never {
  throw new Error(`unreachable: ${String(x)}`);
}
