/**
 * The in-memory queue: every live queue entry, keyed by `<transaction>:<queue>`, with counts per
 * state. Bodies are not here (they stay in the spool). The queue engine (scheduler, pickup,
 * index by field) builds on this; the receivers only add to it through the ingress.
 *
 * Invariant: an entry is in the store iff it is live in the spool (committed, not removed).
 */
import type { QueueEntry, QueueState } from '../model/types';

export class QueueStore {
  private readonly entries = new Map<string, QueueEntry>();
  private readonly byState: Record<QueueState, number> = { ACTIVE: 0, DEFER: 0, HOLD: 0, SENDING: 0, UPDATE: 0 };

  add(entry: QueueEntry): void {
    const key = `${entry.id.transaction}:${entry.id.queue}`;
    const old = this.entries.get(key);
    if (old) this.byState[old.state]--;
    this.entries.set(key, entry);
    this.byState[entry.state]++;
  }

  get(key: string): QueueEntry | undefined {
    return this.entries.get(key);
  }

  delete(key: string): boolean {
    const old = this.entries.get(key);
    if (!old) return false;
    this.byState[old.state]--;
    return this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  count(state: QueueState): number {
    return this.byState[state];
  }

  values(): IterableIterator<QueueEntry> {
    return this.entries.values();
  }
}
