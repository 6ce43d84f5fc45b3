/**
 * Idle outbound connections kept for reuse (Halon's delivery `pooling`, halon-core.md §4.6).
 *
 * Inputs: sessions released after a transaction, each with its pool key (SmtpConnection.key:
 * local address, remote address, port, TLS mode, HELO name, protocol) and a policy
 * {timeout (idle seconds), transactions (most per session), evictable}.
 * Outputs: `acquire(key)` → an idle usable session for that key, or undefined; counters
 * {size, maxsize, hits, misses, expires, evicts} with Halon's pooling metric names.
 *
 * Invariants:
 * - At most `maxsize` idle sessions. Releasing into a full pool evicts the least recently
 *   released evictable session (QUIT); when none is evictable the released one is not kept.
 * - A session is handed out at most once: acquire removes it from the pool.
 * - Idle sessions are checked on the way out (still open, no unsolicited reply such as a 421
 *   idle time-out, not past its idle time); a session closed by the peer leaves the pool at
 *   once. One timer, due at the earliest idle deadline, QUITs the expired ones; it is unref'd,
 *   so the pool never keeps the process alive.
 * - A session that has reached its transaction limit or is unusable is QUIT instead of kept.
 * Errors: none thrown.
 */
import type { SmtpConnection } from './client-connection';

export interface PoolPolicy {
  /** Idle seconds before a session is closed. */
  timeout: number;
  /** Most transactions per session before it is closed. */
  transactions: number;
  /** May be closed to make room for another. */
  evictable: boolean;
}

export interface PoolOptions extends Partial<PoolPolicy> {
  /** Most idle sessions kept. Default 100. */
  maxsize?: number;
}

export interface PoolCounters {
  size: number;
  maxsize: number;
  hits: number;
  misses: number;
  expires: number;
  evicts: number;
}

/** Defaults: Halon documents the keys but not their values; these are ours (docs/decisions.md). */
export const DEFAULT_POOL_POLICY: PoolPolicy = Object.freeze({ timeout: 60, transactions: 1000, evictable: true });
const DEFAULT_MAXSIZE = 100;

interface Idle {
  conn: SmtpConnection;
  evictable: boolean;
  deadline: number;
  unsubscribe: () => void;
}

export class ConnectionPool {
  private readonly policy: PoolPolicy;
  private readonly max: number;
  /** Insertion order = release order: the first entry is the least recently released. */
  private readonly idle = new Map<SmtpConnection, Idle>();
  /**
   * The same sessions by pool key, each list in release order (newest last), so acquire looks
   * at one key only and takes from the end: O(1) however many sessions a busy host has idle.
   */
  private readonly byKey = new Map<string, Idle[]>();
  private readonly counters = { hits: 0, misses: 0, expires: 0, evicts: 0 };
  /**
   * One timer for the whole pool, due at the earliest idle deadline, instead of a timer per
   * idle session: sessions usually leave long before their deadline, and arming and clearing a
   * timer on every release and take was a visible part of each attempt.
   */
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepAt = Number.POSITIVE_INFINITY;

  constructor(opts: PoolOptions = {}) {
    this.policy = {
      timeout: opts.timeout ?? DEFAULT_POOL_POLICY.timeout,
      transactions: opts.transactions ?? DEFAULT_POOL_POLICY.transactions,
      evictable: opts.evictable ?? DEFAULT_POOL_POLICY.evictable,
    };
    this.max = Math.max(0, Math.floor(opts.maxsize ?? DEFAULT_MAXSIZE));
  }

  get size(): number {
    return this.idle.size;
  }

  stats(): PoolCounters {
    return { size: this.idle.size, maxsize: this.max, ...this.counters };
  }

  /** The most recently released healthy session for `key`, removed from the pool; else undefined. */
  acquire(key: string): SmtpConnection | undefined {
    const now = Date.now();
    const list = this.byKey.get(key);
    let found: Idle | undefined;
    // Newest first; a stale one met on the way leaves (older ones leave on their own timers).
    while (list && list.length > 0) {
      const entry = list[list.length - 1];
      if (entry.deadline > now && entry.conn.usable) {
        found = entry;
        break;
      }
      this.drop(entry, 'expires');
      if (list[list.length - 1] === entry) list.pop(); // not ours any more: never loop on it
    }
    if (!found) {
      this.counters.misses++;
      return undefined;
    }
    this.take(found);
    this.counters.hits++;
    return found.conn;
  }

  /** Keep a session after a transaction, or QUIT it. Returns true when kept. */
  release(conn: SmtpConnection, policy: Partial<PoolPolicy> = {}): boolean {
    const timeout = policy.timeout ?? this.policy.timeout;
    if (this.idle.has(conn)) return true;
    if (!conn.usable || conn.transactions >= (policy.transactions ?? this.policy.transactions) || timeout <= 0 || this.max === 0) {
      void conn.quit();
      return false;
    }
    if (this.idle.size >= this.max && !this.evictOne()) {
      void conn.quit();
      return false;
    }
    const entry: Idle = { conn, evictable: policy.evictable ?? this.policy.evictable, deadline: Date.now() + timeout * 1000, unsubscribe: () => undefined };
    this.idle.set(conn, entry);
    this.sweepBy(entry.deadline);
    let list = this.byKey.get(conn.key);
    if (!list) this.byKey.set(conn.key, (list = []));
    list.push(entry);
    // Closed by the peer (or an error) while idle: leave at once, counted as an expiry.
    entry.unsubscribe = conn.onClose(() => this.drop(entry, 'expires'));
    return true;
  }

  /** QUIT every idle session. */
  async close(): Promise<void> {
    clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    this.sweepAt = Number.POSITIVE_INFINITY;
    const all = [...this.idle.values()];
    for (const e of all) this.take(e);
    await Promise.all(all.map((e) => e.conn.quit()));
  }

  /** Make sure the sweep runs no later than `deadline`. */
  private sweepBy(deadline: number): void {
    if (deadline >= this.sweepAt) return;
    clearTimeout(this.sweepTimer);
    this.sweepAt = deadline;
    this.sweepTimer = setTimeout(() => this.sweep(), Math.max(0, deadline - Date.now()));
    this.sweepTimer.unref();
  }

  /** QUIT the sessions past their idle time; come back at the next deadline. */
  private sweep(): void {
    this.sweepTimer = undefined;
    this.sweepAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const entry of [...this.idle.values()]) {
      if (entry.deadline <= now) this.drop(entry, 'expires');
      else if (entry.deadline < next) next = entry.deadline;
    }
    if (next !== Number.POSITIVE_INFINITY) this.sweepBy(next);
  }

  private evictOne(): boolean {
    for (const entry of this.idle.values()) {
      if (!entry.evictable) continue;
      this.drop(entry, 'evicts');
      return true;
    }
    return false;
  }

  private drop(entry: Idle, counter: 'expires' | 'evicts'): void {
    if (this.idle.get(entry.conn) !== entry) return;
    this.take(entry);
    this.counters[counter]++;
    void entry.conn.quit();
  }

  private take(entry: Idle): void {
    entry.unsubscribe();
    this.idle.delete(entry.conn);
    const list = this.byKey.get(entry.conn.key);
    if (!list) return;
    // Usually the newest (acquire); an expiry, eviction or peer close may take one from within.
    if (list[list.length - 1] === entry) list.pop();
    else {
      const at = list.indexOf(entry);
      if (at >= 0) list.splice(at, 1);
    }
    if (list.length === 0) this.byKey.delete(entry.conn.key);
  }
}
