/**
 * An index of rules whose fields are all exact values (dynamic suspends and conditions, plain
 * static suspends): one map per field set, so finding every rule that matches the facts costs
 * one key build and one Map lookup per distinct field set in use, whatever the number of rules.
 *
 * Inputs: (mask, key) pairs from match.ts (`keyOf`, `exactKey`) and the rules themselves.
 * Outputs: the rules stored under the facts' key of each field set.
 * Invariants: a (mask, key) holds one rule or an array of them in insertion order; a field set
 * with no rule left is dropped, so lookups never visit empty maps.
 * Errors: none.
 */
import { keyOf } from './match';

type Slot<E> = E | E[];

export class ExactIndex<E extends object> {
  private masks: number[] = [];
  private maps: Array<Map<string, Slot<E>>> = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(mask: number, key: string, e: E): void {
    let i = this.masks.indexOf(mask);
    if (i < 0) {
      this.masks.push(mask);
      this.maps.push(new Map());
      i = this.masks.length - 1;
    }
    const map = this.maps[i];
    const slot = map.get(key);
    if (slot === undefined) map.set(key, e);
    else if (Array.isArray(slot)) slot.push(e);
    else map.set(key, [slot, e]);
    this.count++;
  }

  remove(mask: number, key: string, e: E): boolean {
    const i = this.masks.indexOf(mask);
    if (i < 0) return false;
    const map = this.maps[i];
    const slot = map.get(key);
    if (slot === e) map.delete(key);
    else if (Array.isArray(slot) && slot.includes(e)) {
      slot.splice(slot.indexOf(e), 1);
      if (slot.length === 1) map.set(key, slot[0]);
    } else return false;
    this.count--;
    if (map.size === 0) {
      this.masks.splice(i, 1);
      this.maps.splice(i, 1);
    }
    return true;
  }

  /** The rules stored at exactly (mask, key), oldest first. */
  at(mask: number, key: string): E[] {
    const i = this.masks.indexOf(mask);
    const slot = i < 0 ? undefined : this.maps[i].get(key);
    return slot === undefined ? [] : Array.isArray(slot) ? slot : [slot];
  }

  /** Visit every rule whose values equal `lower` (lower-cased facts) on its fields; stop when `visit` returns true. */
  visit(lower: readonly string[], visit: (e: E) => boolean): boolean {
    for (let i = 0; i < this.masks.length; i++) {
      const slot = this.maps[i].get(keyOf(this.masks[i], lower));
      if (slot === undefined) continue;
      if (!Array.isArray(slot)) {
        if (visit(slot)) return true;
        continue;
      }
      for (const e of slot) if (visit(e)) return true;
    }
    return false;
  }
}
