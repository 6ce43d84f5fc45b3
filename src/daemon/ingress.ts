/**
 * The ingress: the one door through which accepted mail enters the queue (Postfix's cleanup).
 * `commit` writes the transaction and its entries to the spool, waits for the grouped fsync,
 * and only then adds the entries to the in-memory queue and resolves, so a receiver that
 * answers 250 after `commit` resolved has the message on disk.
 */
import type { Ingress } from '../model/ingress';
import type { AcceptedTransaction, QueueEntry } from '../model/types';
import type { Json, Spool } from '../spool/types';
import type { QueueStore } from '../queue/store';
import { encodeEntry } from '../queue/codec';
import { decodeEntryText } from '../queue/entry-text';
import type { Logger } from '../util/log';

export class SpoolIngress implements Ingress {
  constructor(
    private readonly spool: Spool,
    private readonly store: QueueStore,
    private readonly log: Logger,
  ) {}

  async commit(tx: AcceptedTransaction): Promise<void> {
    const meta = { ts: tx.ts, serverid: tx.serverid, sender: tx.sender, from: tx.from } as unknown as Json;
    const entries = tx.entries.map((e) => ({ queue: e.id.queue, meta: encodeEntry(e) }));
    await this.spool.commit({ id: tx.id, meta, bodies: tx.bodies, entries });
    for (const e of tx.entries) this.store.add(e);
  }

  hasSpace(): boolean {
    return this.spool.hasSpace();
  }

  /**
   * Load every live entry from the spool into the queue (start-up). Entries are decoded while
   * the spool is read (RecoverOptions.entry: only the queue entry is kept, not its text) and
   * added with `store.loadTransaction` (decodeEntry's entries are compact already); the transaction
   * metadata is not needed here and is not parsed.
   */
  async recover(): Promise<{ transactions: number; entries: number; corrupt: number; durationMs: number }> {
    let bad = 0;
    const report = await this.spool.recover<QueueEntry | Error>((tx) => {
      let unreadable = 0;
      for (const { queue, meta } of tx.entries) {
        if (!(meta instanceof Error)) continue;
        unreadable++;
        this.log.error({ transaction: tx.id, queue, err: meta.message }, 'spool entry unreadable; left in the spool, not queued');
      }
      bad += unreadable;
      // map: an exact-size array, which the store keeps as the transaction's list.
      const list = tx.entries.map((e) => e.meta);
      this.store.loadTransaction(unreadable === 0 ? (list as QueueEntry[]) : list.filter((e): e is QueueEntry => !(e instanceof Error)));
    }, { entry: decodeOrError, meta: false });
    return { transactions: report.transactions, entries: report.entries - bad, corrupt: report.corrupt.length + bad, durationMs: report.durationMs };
  }
}

/** decodeEntryText for RecoverOptions.entry, which must not throw: a bad entry comes back as its Error. */
function decodeOrError(transaction: string, queue: number, text: Buffer): QueueEntry | Error {
  try {
    return decodeEntryText(transaction, queue, text);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}
