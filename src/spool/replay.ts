/**
 * Replay: folds spool records, in log order, into the final state of every transaction.
 * Pure (no I/O); used by recovery (journal.ts) and by the read-only inspector (inspect.ts).
 *
 * Rules (docs/spool.md §3 explains why they are safe):
 *  - TX for an unknown id creates the transaction with the entries it carries.
 *  - TX for a known id REPLACES it entirely: it is a compaction rewrite carrying the current
 *    state of every live entry, and it is newer than every record it replaces.
 *  - UPDATE replaces the state of a live entry; for an unknown transaction or an entry that is
 *    not live (removed, or never existed) it is a no-op: such a record is older than a rewrite
 *    or refers to an entry that is already finished.
 *  - REMOVE makes an entry dead for good; for an unknown transaction it is a no-op.
 *  - A transaction without live entries is forgotten.
 *
 * Output: `txs`, in order of first appearance: for each transaction the location of its TX
 * record and of each body, and for each live entry its queue number and the location of the
 * record that holds its latest state (so it can be re-read for compaction) — already in the
 * shape of the journal's index (TxIndex): recovery keeps these very objects as its index
 * instead of building a second set. Beside them, until the Replay is dropped, each entry's
 * latest state (`valueOf`, or `textOf` when it was kept as text) and the transaction metadata
 * (`meta(tx)`).
 *
 * Memory (1,000,000 queued recipients, 556,000 transactions; every figure measured): on this
 * machine each GiB of fresh memory costs ~3.5 s to touch, so what recovery allocates is what
 * it costs.
 *  - Records come from the scanner as raw views (decodeRaw). JSON text that must be kept is
 *    copied byte for byte into large off-heap buffers (TextArena) rather than kept as strings
 *    (long-lived strings are copied twice by the young-generation collector and marked by every
 *    full collection), and becomes a string only when read.
 *  - With a decoder (`ReplayOptions.decode`, recovery in the daemon) a TX record's entries are
 *    decoded from their bytes as the record is read and only the decoder's value is kept (the
 *    arena had grown to ~480 MB by the end of the scan). An UPDATE's text still goes to the
 *    arena and is decoded at the end, so an entry updated many times is decoded once for its
 *    TX record and once for its last state, not once per record. `meta: false` keeps no
 *    transaction metadata at all.
 *  - Per transaction the replay allocates only what the index keeps (one TxIndex, its bodies
 *    and durable arrays); the states wait in one replay-wide array indexed by `slot`, a bare
 *    value for a one-entry transaction. Per-entry objects and per-transaction records that die
 *    at the end of recovery were ~200 MB of promoted garbage, holes in the old generation that
 *    kept the process's memory up long after.
 */
import type { RawRecord } from './record';

type RawTx = Extract<RawRecord, { type: 'tx' }>;

/**
 * One transaction as the journal indexes it (journal.ts's TxState is this with S = Segment).
 * Every object of the index has this shape, created whole, so they share one hidden class.
 */
export interface TxIndex<S> {
  readonly id: string;
  /** Segment of the durable TX record (null until a new commit is durable). */
  seg: S | null;
  off: number;
  len: number;
  /** Absolute offset and length of each body: [off0, len0, off1, len1, …]. */
  bodies: number[];
  /** Durably live entries: [queue, segment seq, offset of the record with its latest state, …]. */
  durable: number[];
  /**
   * Logically live entries: durable ones minus queued removes plus a queued commit's; null
   * when they are exactly the durable ones (a recovered transaction, until its first remove).
   */
  live: number[] | null;
  /** Records queued for this transaction and not yet durable. */
  pending: number;
  /** Bumped by each queued update/remove; lets compaction detect a change during its reads. */
  version: number;
  /** Replay only: where its states are in the replay's arrays; -1 once recovered. */
  slot: number;
}

/** A new index object (the one place that creates them, so the shape is always the same). */
export function newTxIndex<S>(id: string, seg: S | null, off: number, len: number, bodies: number[], durable: number[], live: number[] | null, slot: number): TxIndex<S> {
  return { id, seg, off, len, bodies, durable, live, pending: 0, version: 0, slot };
}

/** Arena chunk size; a text longer than this gets a chunk of its own. */
const CHUNK = 16 * 1024 * 1024;

/**
 * Append-only UTF-8 text store in off-heap buffers. `put` returns a position (chunk number ×
 * CHUNK + offset, exact in a double) to give back to `get` with the byte length.
 * A text longer than CHUNK gets a chunk of its own (position: its number × CHUNK).
 */
export class TextArena {
  private readonly chunks: Buffer[] = [];
  private cur: Buffer | null = null;
  private curIndex = -1;
  private pos = 0;

  /**
   * Copy `bytes` (UTF-8 text) in, followed by `spare` unused bytes (room for a later, slightly
   * longer text in the same place: `overwrite`); the position to read it back with.
   */
  put(bytes: Buffer, spare = 0): number {
    const len = bytes.length;
    if (len > CHUNK) {
      this.chunks.push(Buffer.from(bytes));
      return (this.chunks.length - 1) * CHUNK;
    }
    if (this.cur === null || this.pos + len > CHUNK) {
      this.cur = Buffer.allocUnsafe(CHUNK);
      this.chunks.push(this.cur);
      this.curIndex = this.chunks.length - 1;
      this.pos = 0;
    }
    // TypedArray#set: a native copy; Buffer#copy goes through JS argument checks per call.
    this.cur.set(bytes, this.pos);
    const at = this.curIndex * CHUNK + this.pos;
    this.pos = Math.min(CHUNK, this.pos + len + spare);
    return at;
  }

  /** Copy `bytes` over a text put at `at` whose room (length + spare) is at least as long. */
  overwrite(at: number, bytes: Buffer): void {
    this.chunks[Math.floor(at / CHUNK)].set(bytes, at % CHUNK);
  }

  get(at: number, len: number): string {
    return this.bytes(at, len).toString('utf8');
  }

  /** The bytes stored at `at`, as a view (valid while the arena lives). */
  bytes(at: number, len: number): Buffer {
    const chunk = this.chunks[Math.floor(at / CHUNK)];
    const off = at % CHUNK;
    return chunk.subarray(off, off + len);
  }
}

/**
 * Turns an entry's JSON text (UTF-8 bytes, a view valid only during the call) into the value to
 * keep; must not throw (a throw ends the replay).
 */
export type EntryDecoder = (transaction: string, queue: number, text: Buffer) => unknown;

export interface ReplayOptions {
  /** Decode TX records' entries as they are read and keep only the value. */
  decode?: EntryDecoder;
  /** Keep each transaction's metadata text (default true). */
  meta?: boolean;
}

/** The states of a transaction of several entries, in `durable` order (a bare value: one entry). */
class Several {
  constructor(readonly values: unknown[]) {}
}

export class Replay<S = number> {
  readonly txs = new Map<string, TxIndex<S>>();
  private readonly arena = new TextArena();
  private readonly decode: EntryDecoder | undefined;
  private readonly keepMeta: boolean;
  /** By slot: the decoded states (one value, or Several). */
  private readonly values: unknown[] = [];
  /**
   * By slot, only where some state is text: [arena position, byte length, room] per entry
   * (position -1 = decoded). An entry's later UPDATE texts are written over its earlier one
   * when they fit its room, so an entry updated many times holds one text, not one per record.
   */
  private readonly texts = new Map<number, number[]>();
  /** By slot: the metadata's arena position and byte length (keepMeta). */
  private readonly metas: number[] = [];

  constructor(opts: ReplayOptions = {}) {
    this.decode = opts.decode;
    this.keepMeta = opts.meta ?? true;
  }

  /** The transaction metadata as JSON text (null when not kept). */
  meta(tx: TxIndex<S>): string | null {
    const at = this.metas[2 * tx.slot];
    return this.keepMeta && at !== undefined && at >= 0 ? this.arena.get(at, this.metas[2 * tx.slot + 1]) : null;
  }

  /**
   * Entry i's latest state (i in durable order: the entry whose queue is durable[3i]) when it was
   * kept as text, else null; a view valid while the Replay lives.
   */
  textOf(tx: TxIndex<S>, i: number): Buffer | null {
    const texts = this.texts.get(tx.slot);
    return texts !== undefined && texts[3 * i] >= 0 ? this.arena.bytes(texts[3 * i], texts[3 * i + 1]) : null;
  }

  /** Entry i's decoded state (undefined when textOf has it). */
  valueOf(tx: TxIndex<S>, i: number): unknown {
    const v = this.values[tx.slot];
    return v instanceof Several ? v.values[i] : v;
  }

  /** `seg`: the segment object to record (S), `seq`: its sequence number. */
  apply(rec: RawRecord, seg: S, seq: number, off: number, len: number, bodyOffsets: number[]): void {
    switch (rec.type) {
      case 'tx':
        return this.tx(rec, seg, seq, off, len, bodyOffsets);
      case 'update':
        return this.update(rec.id, rec.queue, rec.meta, seq, off);
      case 'remove':
        return this.remove(rec.id, rec.queue);
    }
  }

  private tx(rec: RawTx, seg: S, seq: number, off: number, len: number, bodyOffsets: number[]): void {
    if (rec.entries.length === 0) {
      const known = this.txs.get(rec.id);
      if (known) this.forget(known);
      return;
    }
    // Exact-size arrays, no closure: one of these per queued message, a million at a time.
    const bodies = new Array<number>(2 * rec.bodies.length);
    for (let i = 0; i < rec.bodies.length; i++) {
      bodies[2 * i] = off + bodyOffsets[i];
      bodies[2 * i + 1] = rec.bodies[i].length;
    }
    const slot = this.values.length;
    this.values.push(undefined);
    const durable = this.entries(rec, seq, off, slot);
    if (this.keepMeta) {
      this.metas[2 * slot] = this.arena.put(rec.meta);
      this.metas[2 * slot + 1] = rec.meta.length;
    }
    // No lookup first (a million of them, each a few cache misses): a rewrite of a known id
    // replaces the object in place, so the map keeps commit order; what the replaced object's
    // slot still holds is dropped with the Replay.
    this.txs.set(rec.id, newTxIndex<S>(rec.id, seg, off, len, bodies, durable, null, slot));
  }

  /**
   * The durable array of a TX record's entries, their states stored at `slot`. One entry per
   * queue number: a repeated number keeps its first position and takes the later state (encode
   * never writes one).
   */
  private entries(rec: RawTx, seq: number, off: number, slot: number): number[] {
    const list = rec.entries;
    if (list.length === 1) {
      this.values[slot] = this.keep(rec.id, list[0].queue, list[0].meta, slot, 0, 1);
      return [list[0].queue, seq, off];
    }
    const at = new Map<number, number>();
    const queues: number[] = [];
    for (const e of list) {
      if (!at.has(e.queue)) at.set(e.queue, queues.push(e.queue) - 1);
    }
    const values = new Array<unknown>(queues.length);
    for (const e of list) {
      const i = at.get(e.queue)!;
      values[i] = this.keep(rec.id, e.queue, e.meta, slot, i, queues.length);
    }
    this.values[slot] = new Several(values);
    const durable = new Array<number>(3 * queues.length);
    for (let i = 0; i < queues.length; i++) {
      durable[3 * i] = queues[i];
      durable[3 * i + 1] = seq;
      durable[3 * i + 2] = off;
    }
    return durable;
  }

  /** The value to keep for entry i of n: decoded now with a decoder, else its text in the arena. */
  private keep(id: string, queue: number, meta: Buffer, slot: number, i: number, n: number): unknown {
    if (this.decode) {
      this.clearText(slot, i);
      return this.decode(id, queue, meta);
    }
    this.setText(slot, i, n, meta);
    return undefined;
  }

  private setText(slot: number, i: number, n: number, meta: Buffer): void {
    let texts = this.texts.get(slot);
    if (!texts) this.texts.set(slot, (texts = new Array<number>(3 * n).fill(-1)));
    const len = meta.length;
    if (texts[3 * i] >= 0 && len <= texts[3 * i + 2]) {
      this.arena.overwrite(texts[3 * i], meta);
    } else {
      // Room for a state a little longer than this one ("HOLD" -> "ACTIVE", a retry count
      // gaining a digit, a longer error text) without a new copy.
      const spare = Math.min(64, len >> 3);
      const at = this.arena.put(meta, spare);
      texts[3 * i] = at;
      // The room ends with its chunk (a text longer than a chunk has one of exactly its size).
      texts[3 * i + 2] = len > CHUNK ? len : Math.min(len + spare, CHUNK - (at % CHUNK));
    }
    texts[3 * i + 1] = len;
  }

  private clearText(slot: number, i: number): void {
    const texts = this.texts.get(slot);
    if (texts) texts[3 * i] = -1;
  }

  private update(id: string, queue: number, meta: Buffer, seq: number, off: number): void {
    const tx = this.txs.get(id);
    const i = tx ? indexOfQueue(tx.durable, queue) : -1;
    if (!tx || i < 0) return;
    tx.durable[3 * i + 1] = seq;
    tx.durable[3 * i + 2] = off;
    this.setText(tx.slot, i, tx.durable.length / 3, meta);
    const v = this.values[tx.slot];
    if (v instanceof Several) v.values[i] = undefined;
    else this.values[tx.slot] = undefined;
  }

  private remove(id: string, queue: number): void {
    const tx = this.txs.get(id);
    const i = tx ? indexOfQueue(tx.durable, queue) : -1;
    if (!tx || i < 0) return;
    if (tx.durable.length === 3) return this.forget(tx);
    tx.durable.splice(3 * i, 3);
    this.texts.get(tx.slot)?.splice(3 * i, 3);
    const v = this.values[tx.slot];
    if (v instanceof Several) v.values.splice(i, 1);
  }

  /** Drop a transaction and what the replay holds for it. */
  forget(tx: TxIndex<S>): void {
    this.txs.delete(tx.id);
    this.release(tx);
  }

  /** Let go of a transaction's states (once they are handed over). */
  release(tx: TxIndex<S>): void {
    this.values[tx.slot] = undefined;
    this.texts.delete(tx.slot);
  }
}

/** Index i such that durable[3i] === queue, or -1. */
export function indexOfQueue(durable: readonly number[], queue: number): number {
  for (let i = 0; i < durable.length; i += 3) if (durable[i] === queue) return i / 3;
  return -1;
}
