/**
 * Where the counters live: one Map per counter field set (policy), keyed by the values only, so
 * a lookup for a one-field policy hashes the fact's own string (no key to build) and a policy
 * that survives a reload finds its map again by its field set.
 *
 * Inputs: field masks, counter keys (match.ts `keyOf`), an idleness test for `sweep`.
 * Outputs: the map of a field set; every counter; bounded sweeping.
 * Invariants: a map outlives its policy while it holds counters (attempts admitted before a
 * reload that removed the policy still release into it); `sweep` drops idle counters and then
 * empty maps of field sets no policy uses.
 * Errors: none.
 */
import type { Counter } from './counters';

export class CounterTable {
  private readonly maps = new Map<number, Map<string, Counter>>();
  /** Sweep position: the field sets left to visit, and the counters left in the current one. */
  private pending: number[] = [];
  private current: { mask: number; it: IterableIterator<Counter> } | undefined;

  /** The map of this field set, made when missing. */
  mapFor(mask: number): Map<string, Counter> {
    let m = this.maps.get(mask);
    if (!m) this.maps.set(mask, (m = new Map()));
    return m;
  }

  *all(): IterableIterator<Counter> {
    for (const m of this.maps.values()) yield* m.values();
  }

  /** Look at up to `budget` counters from where the last call stopped; drop the idle ones. */
  sweep(budget: number, isIdle: (c: Counter) => boolean, inUse: (mask: number) => boolean): void {
    let left = budget;
    while (left > 0) {
      if (!this.current) {
        if (this.pending.length === 0) {
          this.pending = [...this.maps.keys()];
          if (this.pending.length === 0) return;
        }
        const mask = this.pending.pop()!;
        const m = this.maps.get(mask);
        if (!m) continue;
        this.current = { mask, it: m.values() };
      }
      const { mask, it } = this.current;
      const m = this.maps.get(mask)!;
      for (; left > 0; left--) {
        const next = it.next();
        if (next.done) {
          this.current = undefined;
          if (m.size === 0 && !inUse(mask)) this.maps.delete(mask);
          if (this.pending.length === 0) return;
          break;
        }
        if (isIdle(next.value)) m.delete(next.value.values);
      }
    }
  }
}
