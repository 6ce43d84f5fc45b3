/**
 * TTL bookkeeping of dynamic suspends and conditions: which entries end when.
 *
 * Inputs: entries with `expires` (Unix ms, 0 = no TTL), scheduled after each change.
 * Outputs: the entries due at a time (`due`), the earliest end (`next`).
 * Invariants: an entry has at most one node in the heap that counts (`heapAt` names its time);
 * extending a TTL pushes nothing — the node re-schedules itself when it comes up — so a hook
 * that refreshes the same suspend a million times does not grow the heap. Shortening a TTL or
 * deleting an entry leaves a stale node, skipped when it comes up; when stale nodes outnumber
 * live ones the heap is rebuilt (bounded memory under add/delete churn).
 * Errors: none.
 */
import { MinHeap } from '../queue/heap';

export interface Expiring {
  /** Unix ms; 0 = no TTL. */
  expires: number;
  /** Time of this entry's counting heap node; 0 = none. */
  heapAt: number;
  /** False once deleted or expired. */
  live: boolean;
}

/** Stale nodes tolerated before a rebuild, beyond the number of entries. */
const STALE_SLACK = 1024;

export class ExpiryQueue<T extends Expiring> {
  private readonly heap = new MinHeap<T>();
  private stale = 0;

  /** After `e.expires` changed (or `e` was added). */
  schedule(e: T): void {
    if (e.expires === 0) return;
    if (e.heapAt !== 0 && e.heapAt <= e.expires) return;
    if (e.heapAt !== 0) this.stale++;
    e.heapAt = e.expires;
    this.heap.push(e.expires, e);
    this.compact();
  }

  /** After `e` was deleted. */
  forget(e: T): void {
    e.live = false;
    if (e.heapAt !== 0) this.stale++;
    e.heapAt = 0;
    this.compact();
  }

  /** The live entries whose TTL ended at or before `now` (marked not live; the caller unlinks them). */
  due(now: number): T[] {
    const out: T[] = [];
    for (;;) {
      const t = this.heap.peekTime();
      if (t === undefined || t > now) break;
      const e = this.heap.peekItem()!;
      this.heap.pop();
      if (e.heapAt !== t) {
        this.stale = Math.max(0, this.stale - 1);
        continue;
      }
      e.heapAt = 0;
      if (!e.live) continue;
      if (e.expires !== 0 && e.expires <= now) {
        e.live = false;
        out.push(e);
      } else this.schedule(e);
    }
    return out;
  }

  /** The earliest TTL end of a live entry. */
  next(): number | undefined {
    for (;;) {
      const t = this.heap.peekTime();
      if (t === undefined) return undefined;
      const e = this.heap.peekItem()!;
      if (e.heapAt === t && e.live && e.expires === t) return t;
      this.heap.pop();
      if (e.heapAt !== t) {
        this.stale = Math.max(0, this.stale - 1);
        continue;
      }
      e.heapAt = 0;
      if (e.live) this.schedule(e);
    }
  }

  private compact(): void {
    if (this.stale <= this.heap.length - this.stale + STALE_SLACK) return;
    this.heap.rebuild((t, e) => e.live && e.heapAt === t);
    this.stale = 0;
  }
}
