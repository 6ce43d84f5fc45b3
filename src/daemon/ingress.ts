/**
 * The ingress: the one door through which accepted mail enters the queue (Postfix's cleanup).
 * `commit` writes the transaction and its entries to the spool, waits for the grouped fsync,
 * and only then adds the entries to the in-memory queue and resolves, so a receiver that
 * answers 250 after `commit` resolved has the message on disk.
 */
import type { Ingress } from '../model/ingress';
import type { AcceptedTransaction } from '../model/types';
import type { Json, Spool } from '../spool/types';
import type { QueueStore } from '../queue/store';
import { decodeEntry, encodeEntry } from '../queue/codec';
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

  /** Load every live entry from the spool into the queue (start-up). */
  async recover(): Promise<{ transactions: number; entries: number; corrupt: number; durationMs: number }> {
    let bad = 0;
    const report = await this.spool.recover((tx) => {
      for (const { queue, meta } of tx.entries) {
        try {
          this.store.add(decodeEntry(tx.id, queue, meta));
        } catch (err) {
          bad++;
          this.log.error({ transaction: tx.id, queue, err: (err as Error).message }, 'spool entry unreadable; left in the spool, not queued');
        }
      }
    });
    return { transactions: report.transactions, entries: report.entries - bad, corrupt: report.corrupt.length + bad, durationMs: report.durationMs };
  }
}
