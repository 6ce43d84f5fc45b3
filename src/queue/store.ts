/**
 * The in-memory queue: every live queue entry, placed by state, with a small index by field.
 * Bodies are not here (they stay in the spool and are read per attempt).
 *
 * Structures (halon-core.md §4.2):
 * - by transaction: `txs` maps a transaction id to its live entries (the primary index; an
 *   entry is found by `<transaction>:<queue>` through it, so no second per-entry key string);
 * - ACTIVE: two FIFO lanes, priority 1 picked before priority 0. A JS Set keeps insertion
 *   order and deletes in O(1), which is what a FIFO with removal from the middle needs;
 * - DEFER: a min-heap by `retryts` with lazy deletion (a pair whose entry has left DEFER or
 *   got a new retry time is dropped when it reaches the top; the heap is rebuilt when stale
 *   pairs outnumber live ones);
 * - HOLD, SENDING, UPDATE: sets;
 * - counts per state;
 * - an index by field (transportid, recipientdomain, jobid, tenantid → set of entries) for
 *   list and group-by. Empty values are not indexed (most entries have no jobid or tenantid;
 *   indexing '' would cost a set membership per entry for a question nobody asks).
 *
 * Invariants:
 * - an entry is in exactly one state structure, the one its `state` names (DEFER: its pair
 *   with time = its `retryts` is in the heap);
 * - an entry is in the store iff it is live in the spool (the caller writes the spool first);
 * - fields that structures depend on (state, retryts, transportid, priority) change only
 *   through `update`/`setState`, never by assigning to the entry directly;
 * - `add` compacts the entry (compact.ts: interned strings, shared frozen empty containers):
 *   metadata, quotas, tags and dsn of a queued entry are replaced, never mutated.
 * Events: `subscribe` receives `active()` when entries become ACTIVE and `deferred(retryts)`
 * when an entry enters DEFER, so the scheduler can wake its pickup loop and re-arm its timer.
 * Errors: none thrown.
 */
import type { QueueEntry, QueueId, QueueState } from '../model/types';
import { MinHeap } from './heap';
import { compactEntry } from './compact';

/** Fields with an index (`select`). */
export type IndexedField = 'transportid' | 'recipientdomain' | 'jobid' | 'tenantid';
export const INDEXED_FIELDS: readonly IndexedField[] = ['transportid', 'recipientdomain', 'jobid', 'tenantid'];

/** What `update` may change. */
export type EntryPatch = Partial<Pick<QueueEntry, 'state' | 'retry' | 'retryts' | 'transportid' | 'metadata' | 'priority'>>;

export interface QueueEvents {
  /** Entries became ACTIVE (called once per change, maybe for several entries). */
  active(): void;
  /** An entry entered DEFER with this next-retry time. */
  deferred(retryts: number): void;
}

const EMPTY: ReadonlySet<QueueEntry> = new Set();

export class QueueStore {
  private readonly txs = new Map<string, QueueEntry[]>();
  /** ACTIVE lanes by priority: lanes[1] is picked first. */
  private readonly lanes: [Set<QueueEntry>, Set<QueueEntry>] = [new Set(), new Set()];
  private readonly defer = new MinHeap<QueueEntry>();
  private readonly sets: Record<'HOLD' | 'SENDING' | 'UPDATE', Set<QueueEntry>> = { HOLD: new Set(), SENDING: new Set(), UPDATE: new Set() };
  private readonly counts: Record<QueueState, number> = { ACTIVE: 0, DEFER: 0, HOLD: 0, SENDING: 0, UPDATE: 0 };
  private readonly index = new Map<IndexedField, Map<string, Set<QueueEntry>>>(INDEXED_FIELDS.map((f) => [f, new Map()]));
  private total = 0;
  private events: QueueEvents | undefined;

  subscribe(events: QueueEvents | undefined): void {
    this.events = events;
  }

  /** Add an entry (new, or recovered from the spool); an entry with the same id is replaced. */
  add(entry: QueueEntry): void {
    const list = this.txs.get(entry.id.transaction);
    const old = list?.find((e) => e.id.queue === entry.id.queue);
    if (old) this.delete(old);
    compactEntry(entry);
    const siblings = this.txs.get(entry.id.transaction);
    if (siblings) {
      // One id string per transaction, shared by its entries.
      entry.id.transaction = siblings[0].id.transaction;
      siblings.push(entry);
    } else {
      entry.id.transaction = flat(entry.id.transaction);
      this.txs.set(entry.id.transaction, [entry]);
    }
    this.total++;
    this.indexEntry(entry, true);
    this.place(entry);
  }

  /** By full id string `<transaction>:<queue>`. */
  get(key: string): QueueEntry | undefined {
    const colon = key.lastIndexOf(':');
    if (colon < 0) return undefined;
    return this.find({ transaction: key.slice(0, colon), queue: Number(key.slice(colon + 1)) });
  }

  find(id: QueueId): QueueEntry | undefined {
    return this.txs.get(id.transaction)?.find((e) => e.id.queue === id.queue);
  }

  /** The live entries of one transaction (do not modify the array). */
  transaction(txid: string): readonly QueueEntry[] {
    return this.txs.get(txid) ?? [];
  }

  has(entry: QueueEntry): boolean {
    return this.txs.get(entry.id.transaction)?.includes(entry) ?? false;
  }

  /** Remove an entry (delivered, bounced, deleted). Accepts the entry or its id string. */
  delete(which: QueueEntry | string): boolean {
    const entry = typeof which === 'string' ? this.get(which) : which;
    if (!entry) return false;
    const list = this.txs.get(entry.id.transaction);
    const at = list ? list.indexOf(entry) : -1;
    if (!list || at < 0) return false;
    this.unplace(entry);
    this.indexEntry(entry, false);
    list.splice(at, 1);
    if (list.length === 0) this.txs.delete(entry.id.transaction);
    this.total--;
    return true;
  }

  /** Move an entry to another state (ACTIVE → SENDING at pickup, …). */
  setState(entry: QueueEntry, state: QueueState): void {
    this.update(entry, { state });
  }

  /** Change fields of a live entry, keeping every structure consistent. */
  update(entry: QueueEntry, patch: EntryPatch): void {
    if (!this.has(entry)) return;
    this.unplace(entry);
    const reindex = patch.transportid !== undefined && patch.transportid !== entry.transportid;
    if (reindex) this.indexEntry(entry, false);
    if (patch.state !== undefined) entry.state = patch.state;
    if (patch.retry !== undefined) entry.retry = patch.retry;
    if (patch.retryts !== undefined) entry.retryts = patch.retryts;
    if (patch.transportid !== undefined) entry.transportid = patch.transportid;
    if (patch.metadata !== undefined) entry.metadata = patch.metadata;
    if (patch.priority !== undefined) entry.priority = patch.priority;
    if (reindex) this.indexEntry(entry, true);
    this.place(entry);
  }

  get size(): number {
    return this.total;
  }

  count(state: QueueState): number {
    return this.counts[state];
  }

  /** Every live entry (transaction order, then queue order within a transaction as added). */
  *values(): IterableIterator<QueueEntry> {
    for (const list of this.txs.values()) yield* list;
  }

  /**
   * ACTIVE entries in pickup order: priority 1 first, then 0, each oldest first. Safe to move
   * entries out of ACTIVE while iterating; entries that become ACTIVE meanwhile come later.
   */
  *active(): IterableIterator<QueueEntry> {
    yield* this.lanes[1];
    yield* this.lanes[0];
  }

  /** Entries whose indexed field has this value (recipientdomain compared lower-case). */
  select(field: IndexedField, value: string): ReadonlySet<QueueEntry> {
    const v = field === 'recipientdomain' ? value.toLowerCase() : value;
    return this.index.get(field)!.get(v) ?? EMPTY;
  }

  /** Distinct values of an indexed field with their entry counts (group-by). */
  groupBy(field: IndexedField): Map<string, number> {
    const out = new Map<string, number>();
    for (const [v, set] of this.index.get(field)!) out.set(v, set.size);
    return out;
  }

  /** The earliest next-retry time in DEFER, or undefined when DEFER is empty. */
  nextRetryTs(): number | undefined {
    this.dropStaleTop();
    return this.defer.peekTime();
  }

  /** Move every DEFER entry due at `now` to ACTIVE; returns how many moved. */
  promoteDue(now: number): number {
    let moved = 0;
    for (;;) {
      this.dropStaleTop();
      const t = this.defer.peekTime();
      if (t === undefined || t > now) break;
      const entry = this.defer.peekItem()!;
      this.defer.pop();
      this.counts.DEFER--;
      entry.state = 'ACTIVE';
      this.lanes[entry.priority === 1 ? 1 : 0].add(entry);
      this.counts.ACTIVE++;
      moved++;
    }
    if (moved > 0) this.events?.active();
    return moved;
  }

  // -------------------------------------------------------------------------------------------

  private place(entry: QueueEntry): void {
    this.counts[entry.state]++;
    switch (entry.state) {
      case 'ACTIVE':
        this.lanes[entry.priority === 1 ? 1 : 0].add(entry);
        this.events?.active();
        return;
      case 'DEFER':
        this.defer.push(entry.retryts, entry);
        this.events?.deferred(entry.retryts);
        return;
      case 'HOLD':
      case 'SENDING':
      case 'UPDATE':
        this.sets[entry.state].add(entry);
        return;
      default:
        assertNever(entry.state);
    }
  }

  private unplace(entry: QueueEntry): void {
    this.counts[entry.state]--;
    switch (entry.state) {
      case 'ACTIVE':
        this.lanes[0].delete(entry);
        this.lanes[1].delete(entry);
        return;
      case 'DEFER':
        // Lazy: the heap pair goes stale (state or retryts no longer match) and is dropped later.
        this.compactIfStale();
        return;
      case 'HOLD':
      case 'SENDING':
      case 'UPDATE':
        this.sets[entry.state].delete(entry);
        return;
      default:
        assertNever(entry.state);
    }
  }

  private live(time: number, entry: QueueEntry): boolean {
    return entry.state === 'DEFER' && entry.retryts === time && this.has(entry);
  }

  private dropStaleTop(): void {
    for (;;) {
      const t = this.defer.peekTime();
      if (t === undefined || this.live(t, this.defer.peekItem()!)) return;
      this.defer.pop();
    }
  }

  /** Stale pairs may pile up when many entries leave DEFER other than by becoming due. */
  private compactIfStale(): void {
    if (this.defer.length > 2 * this.counts.DEFER + 1024) this.defer.rebuild((t, e) => this.live(t, e));
  }

  private indexEntry(entry: QueueEntry, add: boolean): void {
    for (const field of INDEXED_FIELDS) {
      const value = fieldValue(entry, field);
      if (value === '') continue;
      const byValue = this.index.get(field)!;
      let set = byValue.get(value);
      if (add) {
        if (!set) byValue.set(value, (set = new Set()));
        set.add(entry);
      } else if (set) {
        set.delete(entry);
        if (set.size === 0) byValue.delete(value);
      }
    }
  }
}

function fieldValue(entry: QueueEntry, field: IndexedField): string {
  switch (field) {
    case 'transportid':
      return entry.transportid;
    case 'recipientdomain':
      return entry.recipientaddress.domain.toLowerCase();
    case 'jobid':
      return entry.jobid;
    case 'tenantid':
      return entry.tenantid;
    default:
      return assertNever(field);
  }
}

/**
 * A flat copy of a string. Ids built by concatenation (randomUUID's formatting) are V8 "cons
 * strings", trees of fragments that cost about 500 bytes for 36 characters; the flat copy
 * costs about 56.
 */
function flat(s: string): string {
  return /^[\x00-\x7f]*$/.test(s) ? Buffer.from(s, 'latin1').toString('latin1') : s;
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}
