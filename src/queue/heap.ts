/**
 * A binary min-heap of (time, item) pairs: the DEFER queue ordered by next-retry time.
 *
 * Inputs: items with the time they become due (Unix ms). Outputs: the earliest pair first.
 * Invariants: `times[i] <= times[child]` for every node; the two arrays always have the same
 * length. Removal from the middle is not supported: the owner deletes lazily (a popped pair whose
 * item has moved on is skipped by the owner) and calls `rebuild` when stale pairs pile up.
 * Two parallel arrays instead of an array of {time, item} objects save one object per entry.
 * Errors: none.
 */
export class MinHeap<T> {
  private times: number[] = [];
  private items: T[] = [];

  get length(): number {
    return this.times.length;
  }

  push(time: number, item: T): void {
    this.times.push(time);
    this.items.push(item);
    this.up(this.times.length - 1);
  }

  /** The earliest time, or undefined when empty. */
  peekTime(): number | undefined {
    return this.times[0];
  }

  peekItem(): T | undefined {
    return this.items[0];
  }

  /** Remove the earliest pair (call peek first to see it). */
  pop(): void {
    const last = this.times.length - 1;
    if (last < 0) return;
    this.times[0] = this.times[last];
    this.items[0] = this.items[last];
    this.times.pop();
    this.items.pop();
    if (last > 0) this.down(0);
  }

  /** Keep only the pairs `keep` accepts, re-heapified in O(n). */
  rebuild(keep: (time: number, item: T) => boolean): void {
    const times: number[] = [];
    const items: T[] = [];
    for (let i = 0; i < this.times.length; i++) {
      if (!keep(this.times[i], this.items[i])) continue;
      times.push(this.times[i]);
      items.push(this.items[i]);
    }
    this.times = times;
    this.items = items;
    for (let i = (times.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  clear(): void {
    this.times = [];
    this.items = [];
  }

  private up(i: number): void {
    const t = this.times[i];
    const it = this.items[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.times[parent] <= t) break;
      this.times[i] = this.times[parent];
      this.items[i] = this.items[parent];
      i = parent;
    }
    this.times[i] = t;
    this.items[i] = it;
  }

  private down(i: number): void {
    const n = this.times.length;
    const t = this.times[i];
    const it = this.items[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.times[r] < this.times[l] ? r : l;
      if (this.times[c] >= t) break;
      this.times[i] = this.times[c];
      this.items[i] = this.items[c];
      i = c;
    }
    this.times[i] = t;
    this.items[i] = it;
  }
}
