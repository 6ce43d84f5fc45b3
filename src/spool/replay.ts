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
 * Output: `txs`, in order of first appearance, each with its meta and every live entry's latest
 * state as JSON text (read with `text(at, len)`), the location of its TX record and of each
 * body, and for each entry the location of the record that holds its latest state (so it can
 * be re-read for compaction).
 *
 * Memory: records come from the scanner as raw views (decodeRaw), and their JSON text is copied
 * byte for byte into large off-heap buffers (TextArena) instead of being kept as a million
 * JavaScript strings until the replay ends: strings that live that long are copied twice by the
 * young-generation collector and then marked by every full collection while the heap grows,
 * which was a third of recovery time and much of its peak memory (1,000,000 queued recipients).
 * Text becomes a string again only when it is read (`text`), just before JSON.parse. The arena
 * holds the text of every TX and UPDATE record replayed, dead ones included, until the Replay
 * is dropped; compaction keeps a spool's dead share bounded.
 */
import type { RawRecord } from './record';

type RawTx = Extract<RawRecord, { type: 'tx' }>;

export interface ReplayEntry {
  queue: number;
  /** Latest state as JSON text: arena position and byte length (Replay.text). */
  metaAt: number;
  metaLen: number;
  /** Segment and offset of the record holding that state. */
  seg: number;
  off: number;
}

export interface ReplayTx {
  id: string;
  /** Transaction metadata as JSON text: arena position and byte length (Replay.text). */
  metaAt: number;
  metaLen: number;
  seg: number;
  off: number;
  len: number;
  /** Absolute file offset and length of each body, flattened: [off0, len0, off1, len1, …]. */
  bodies: number[];
  entries: ReplayEntry[];
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

  /** Copy `bytes` (UTF-8 text) in; the position to read it back with. */
  put(bytes: Buffer): number {
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
    bytes.copy(this.cur, this.pos);
    const at = this.curIndex * CHUNK + this.pos;
    this.pos += len;
    return at;
  }

  get(at: number, len: number): string {
    const chunk = this.chunks[Math.floor(at / CHUNK)];
    const off = at % CHUNK;
    return chunk.toString('utf8', off, off + len);
  }
}

export class Replay {
  readonly txs = new Map<string, ReplayTx>();
  private readonly arena = new TextArena();

  /** The JSON text stored at `at` (a metaAt) with byte length `len` (its metaLen). */
  text(at: number, len: number): string {
    return this.arena.get(at, len);
  }

  apply(rec: RawRecord, seg: number, off: number, len: number, bodyOffsets: number[]): void {
    switch (rec.type) {
      case 'tx':
        return this.tx(rec, seg, off, len, bodyOffsets);
      case 'update': {
        const entry = this.txs.get(rec.id)?.entries.find((e) => e.queue === rec.queue);
        if (!entry) return;
        entry.metaAt = this.arena.put(rec.meta);
        entry.metaLen = rec.meta.length;
        entry.seg = seg;
        entry.off = off;
        return;
      }
      case 'remove':
        return this.remove(rec.id, rec.queue);
    }
  }

  private tx(rec: RawTx, seg: number, off: number, len: number, bodyOffsets: number[]): void {
    if (rec.entries.length === 0) {
      this.txs.delete(rec.id);
      return;
    }
    const entries = this.entriesOf(rec, seg, off);
    // Exact-size arrays, no closure: one of these per queued message, a million at a time.
    const bodies = new Array<number>(2 * rec.bodies.length);
    for (let i = 0; i < rec.bodies.length; i++) {
      bodies[2 * i] = off + bodyOffsets[i];
      bodies[2 * i + 1] = rec.bodies[i].length;
    }
    const metaAt = this.arena.put(rec.meta);
    // Map.set on an existing key keeps its position: a rewrite stays in original commit order.
    this.txs.set(rec.id, { id: rec.id, metaAt, metaLen: rec.meta.length, seg, off, len, bodies, entries });
  }

  /**
   * One entry per queue number: a repeated number keeps its first position and takes the later
   * state (encode never writes one; a Map sorts it out when a record has several entries, the
   * usual one-entry record needs none).
   */
  private entriesOf(rec: RawTx, seg: number, off: number): ReplayEntry[] {
    const entry = (e: RawTx['entries'][number]): ReplayEntry => ({ queue: e.queue, metaAt: this.arena.put(e.meta), metaLen: e.meta.length, seg, off });
    if (rec.entries.length === 1) return [entry(rec.entries[0])];
    const byQueue = new Map<number, ReplayEntry>();
    for (const e of rec.entries) byQueue.set(e.queue, entry(e));
    return [...byQueue.values()];
  }

  private remove(id: string, queue: number): void {
    const tx = this.txs.get(id);
    if (!tx) return;
    tx.entries = tx.entries.filter((e) => e.queue !== queue);
    if (tx.entries.length === 0) this.txs.delete(id);
  }
}
