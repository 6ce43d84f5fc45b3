/**
 * Taking queue entries out of the scheduler's reach while a control request changes them
 * (update, unload): each taken entry is put in UPDATE (in memory; the scheduler never picks
 * UPDATE entries) and remembered as busy, so a second request counts it as `working` instead
 * of touching it too. Entries being delivered (SENDING) are never taken.
 *
 * Invariants: `take` is synchronous, so between the selection and the claim no delivery can
 * start; `release` puts every entry that is still in UPDATE, still queued and was not meant to
 * stay in UPDATE back in its previous state (after an unexpected failure).
 */
import type { QueueEntry, QueueState } from '../model/types';
import type { QueueStore } from '../queue/store';

export interface Taken {
  e: QueueEntry;
  previous: QueueState;
}

export class Claims {
  private readonly busy = new Set<QueueEntry>();

  constructor(private readonly store: Pick<QueueStore, 'setState' | 'setStateOfLive' | 'has'>) {}

  /** Whether another request holds the entry, or it is being delivered. */
  working(e: QueueEntry): boolean {
    return e.state === 'SENDING' || this.busy.has(e);
  }

  /** Claim the entries that are not working, at most `limit`; counts the working ones. */
  take(found: readonly QueueEntry[], limit = Infinity): { taken: Taken[]; working: number } {
    const taken: Taken[] = [];
    let working = 0;
    for (const e of found) {
      if (taken.length >= limit) break;
      if (this.working(e)) {
        working++;
        continue;
      }
      taken.push(this.claim(e));
    }
    return { taken, working };
  }

  /** Claim one queued entry that is not working (the caller checked both, synchronously). */
  claim(e: QueueEntry): Taken {
    const t = { e, previous: e.state };
    this.busy.add(e);
    this.store.setStateOfLive(e, 'UPDATE');
    return t;
  }

  release(taken: readonly Taken[], staysInUpdate: (t: Taken) => boolean = () => false): void {
    for (const x of taken) {
      this.busy.delete(x.e);
      if (x.e.state === 'UPDATE' && !staysInUpdate(x) && this.store.has(x.e)) this.store.setState(x.e, x.previous);
    }
  }
}
