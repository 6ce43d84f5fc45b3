/**
 * Suspends (halon-core.md §4.5): static ones from smtpd-suspend.yaml and dynamic ones added by
 * hooks (`queue_suspend`) and the control socket.
 *
 * Inputs: `SuspendConfig` (compiled against the groupings), exact field values with TTL and
 * options, facts as raw and lower-cased value arrays (match.ts).
 * Outputs: the suspend that holds the facts (with its tag and, for a TTL, its end), listings.
 * Invariants:
 * - A static suspend matches when each of its fields matches (`{}` matches everything). Those
 *   made of plain strings sit in an `ExactIndex`; only the others (regex, wildcard, IP,
 *   `&id`) are scanned per check.
 * - Dynamic suspends are all exact and all indexed, so a check costs one lookup per field set
 *   in use, not one test per suspend. A suspend whose TTL has passed no longer holds, even
 *   before `expire` removes it.
 * - Adding a suspend with the same fields and values as an existing one updates that one
 *   (TTL, tag, properties) and returns its id, unless `update: false`.
 * Errors: `ShapingError` for an id that is already taken by another suspend.
 */
import { randomUUID } from 'node:crypto';
import type { Properties, Suspend, SuspendConfig } from '../config/queue-files';
import { QUEUE_FIELDS } from '../config/queue-files';
import { ExactIndex } from './exact-index';
import { ExpiryQueue, type Expiring } from './expiry';
import { compileFieldMatch, exactKey, flat, matches, valuesOfKey, FIELD_COUNT, type CompiledMatch, type GroupingTable } from './match';
import { ShapingError, type FieldValues, type SuspendOptions } from './types';

/** What holds the facts: a suspend's tag, and when it ends (absent = until removed). */
export interface SuspendHold {
  tag?: string;
  until?: number;
}

// ---- static ------------------------------------------------------------------------------------

interface StaticSuspend {
  index: number;
  match: CompiledMatch;
  source: Suspend;
}

export class StaticSuspends {
  private readonly exact = new ExactIndex<StaticSuspend>();
  private readonly scanned: StaticSuspend[] = [];
  readonly items: readonly StaticSuspend[];
  /** Union of the fields the suspends name. */
  readonly fieldMask: number;

  constructor(config: SuspendConfig, groupings: GroupingTable) {
    this.items = config.suspends.map((source, index) => ({ index, match: compileFieldMatch(source.match, groupings), source }));
    let mask = 0;
    for (const s of this.items) {
      mask |= s.match.mask;
      if (s.match.exactKeys) for (const key of s.match.exactKeys) this.exact.add(s.match.mask, key, s);
      else this.scanned.push(s);
    }
    this.fieldMask = mask;
  }

  /** Some suspend is looked up by lower-cased values. */
  get indexed(): boolean {
    return this.exact.size > 0;
  }

  /** The first suspend (file order among the scanned ones) that matches, if any. */
  check(raw: readonly string[], lower: readonly string[]): SuspendHold | undefined {
    let found: StaticSuspend | undefined;
    this.exact.visit(lower, (s) => ((found = s), true));
    if (!found) for (const s of this.scanned) if (matches(s.match, raw)) { found = s; break; }
    if (!found) return undefined;
    return found.source.tag !== undefined ? { tag: found.source.tag } : {};
  }

  /** The values as written; a list is shown comma-separated. */
  static matchOf(s: Suspend): FieldValues {
    const out: FieldValues = {};
    for (const f of QUEUE_FIELDS) {
      const v = s.match[f];
      if (v !== undefined) out[f] = Array.isArray(v) ? v.join(',') : String(v);
    }
    return out;
  }
}

// ---- dynamic -----------------------------------------------------------------------------------

export interface DynamicSuspend extends Expiring {
  readonly id: string;
  readonly mask: number;
  readonly key: string;
  tag: string | undefined;
  properties: Properties | undefined;
}

export class DynamicSuspends {
  private readonly byId = new Map<string, DynamicSuspend>();
  private readonly index = new ExactIndex<DynamicSuspend>();
  private readonly ttl = new ExpiryQueue<DynamicSuspend>();
  /** Suspends naming each field (needsRouting without a scan). */
  private readonly perField = new Array<number>(FIELD_COUNT).fill(0);

  get size(): number {
    return this.byId.size;
  }

  get fieldMask(): number {
    let m = 0;
    this.perField.forEach((n, i) => (m |= n > 0 ? 1 << i : 0));
    return m;
  }

  /** Returns the id, and whether an existing suspend's TTL got earlier (a reason to wake). */
  add(values: FieldValues, ttl: number, opts: SuspendOptions, now: number): { id: string; earlier: boolean } {
    const { mask, key } = exactKey(values);
    const expires = ttl > 0 ? now + ttl * 1000 : 0;
    const same = opts.update === false ? undefined : this.index.at(mask, key).at(-1);
    if (same) {
      const earlier = expires !== 0 && (same.expires === 0 || expires < same.expires);
      this.setExpiry(same, expires);
      if (opts.tag !== undefined) same.tag = opts.tag || undefined;
      if (opts.properties !== undefined) same.properties = opts.properties;
      return { id: same.id, earlier };
    }
    const id = flat(opts.id ?? randomUUID());
    const taken = this.byId.get(id);
    if (taken) throw new ShapingError(`a suspend with id ${id} already exists with other fields`);
    const s: DynamicSuspend = { id, mask, key: flat(key), tag: opts.tag || undefined, properties: opts.properties, expires, heapAt: 0, live: true };
    this.byId.set(id, s);
    this.index.add(mask, key, s);
    for (let i = 0; i < FIELD_COUNT; i++) if (mask & (1 << i)) this.perField[i]++;
    this.ttl.schedule(s);
    return { id, earlier: false };
  }

  update(id: string, change: { ttl?: number; tag?: string }, now: number): boolean {
    const s = this.byId.get(id);
    if (!s || !this.alive(s, now)) return false;
    if (change.ttl !== undefined) this.setExpiry(s, change.ttl > 0 ? now + change.ttl * 1000 : 0);
    if (change.tag !== undefined) s.tag = change.tag || undefined;
    return true;
  }

  delete(id: string): boolean {
    const s = this.byId.get(id);
    if (!s) return false;
    this.unlink(s);
    this.ttl.forget(s);
    return true;
  }

  /** The hold of the dynamic suspends on the facts: none with a TTL wins over the latest end. */
  check(lower: readonly string[], now: number): SuspendHold | undefined {
    let hold: SuspendHold | undefined;
    this.index.visit(lower, (s) => {
      if (!this.alive(s, now)) return false;
      if (s.expires === 0) {
        hold = s.tag !== undefined ? { tag: s.tag } : {};
        return true;
      }
      if (hold === undefined || s.expires > hold.until!) hold = s.tag !== undefined ? { tag: s.tag, until: s.expires } : { until: s.expires };
      return false;
    });
    return hold;
  }

  /** Remove the suspends whose TTL ended; how many. */
  expire(now: number): number {
    const due = this.ttl.due(now);
    for (const s of due) this.unlink(s);
    return due.length;
  }

  next(): number | undefined {
    return this.ttl.next();
  }

  get(id: string, now: number): DynamicSuspend | undefined {
    const s = this.byId.get(id);
    return s && this.alive(s, now) ? s : undefined;
  }

  *live(now: number): IterableIterator<DynamicSuspend> {
    for (const s of this.byId.values()) if (this.alive(s, now)) yield s;
  }

  static matchOf(s: DynamicSuspend): FieldValues {
    return valuesOfKey(s.mask, s.key);
  }

  private alive(s: DynamicSuspend, now: number): boolean {
    return s.live && (s.expires === 0 || s.expires > now);
  }

  private setExpiry(s: DynamicSuspend, expires: number): void {
    s.expires = expires;
    this.ttl.schedule(s);
  }

  private unlink(s: DynamicSuspend): void {
    if (this.byId.get(s.id) !== s) return;
    this.byId.delete(s.id);
    this.index.remove(s.mask, s.key, s);
    for (let i = 0; i < FIELD_COUNT; i++) if (s.mask & (1 << i)) this.perField[i]--;
  }
}
