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
 * state as JSON text, the location of its TX record and of each body, and for each entry the
 * location of the record that holds its latest state (so it can be re-read for compaction).
 */
import type { SpoolRecord, TxRecord } from './record';

export interface ReplayEntry {
  queue: number;
  /** Latest state as JSON text. */
  meta: string;
  /** Segment and offset of the record holding that state. */
  seg: number;
  off: number;
}

export interface ReplayTx {
  id: string;
  meta: string;
  seg: number;
  off: number;
  len: number;
  /** Absolute file offset and length of each body, flattened: [off0, len0, off1, len1, …]. */
  bodies: number[];
  entries: ReplayEntry[];
}

export class Replay {
  readonly txs = new Map<string, ReplayTx>();

  apply(rec: SpoolRecord, seg: number, off: number, len: number, bodyOffsets: number[]): void {
    switch (rec.type) {
      case 'tx':
        return this.tx(rec, seg, off, len, bodyOffsets);
      case 'update': {
        const entry = this.txs.get(rec.id)?.entries.find((e) => e.queue === rec.queue);
        if (entry) Object.assign(entry, { meta: rec.meta, seg, off });
        return;
      }
      case 'remove':
        return this.remove(rec.id, rec.queue);
    }
  }

  private tx(rec: TxRecord, seg: number, off: number, len: number, bodyOffsets: number[]): void {
    const entries = new Map<number, ReplayEntry>();
    for (const e of rec.entries) entries.set(e.queue, { queue: e.queue, meta: e.meta, seg, off });
    if (entries.size === 0) {
      this.txs.delete(rec.id);
      return;
    }
    const bodies: number[] = [];
    rec.bodies.forEach((b, i) => bodies.push(off + bodyOffsets[i], b.length));
    // Map.set on an existing key keeps its position: a rewrite stays in original commit order.
    this.txs.set(rec.id, { id: rec.id, meta: rec.meta, seg, off, len, bodies, entries: [...entries.values()] });
  }

  private remove(id: string, queue: number): void {
    const tx = this.txs.get(id);
    if (!tx) return;
    tx.entries = tx.entries.filter((e) => e.queue !== queue);
    if (tx.entries.length === 0) this.txs.delete(id);
  }
}
