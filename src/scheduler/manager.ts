/**
 * The queue manager (Postfix's qmgr, Halon's queue engine): moves DEFER entries to ACTIVE when
 * they fall due, picks ACTIVE entries up through traffic shaping, and runs their attempts
 * (run.ts).
 *
 * Inputs: the in-memory queue (QueueStore), the spool, the ingress (for DSNs), a function giving
 * the current configuration snapshot (config + delivery hooks), the delivery agent, a resolver
 * per resolver configuration, the traffic-shaping engine (src/shaping), a logger, the host name
 * and an id generator.
 * Behaviour:
 * - Timer: one timer, armed for the earliest `retryts` in DEFER (re-armed when an earlier one
 *   arrives); when it fires, every due entry moves to ACTIVE. No polling.
 * - Pickup works on destinations (the store's ACTIVE entries grouped by transport, recipient
 *   domain, tenant and job). Ready destinations are served in turn — those holding priority-1
 *   entries first — while fewer than `queues.concurrency.total` attempts run. Serving one:
 *   when a shaping rule needs remotemx/remoteip, its route is looked up first (routing.ts; the
 *   destination waits for it, the pass goes on); then the facts (with each candidate source
 *   address of the transport, in random order weighted by repetition) are offered to the
 *   shaping engine. Admitted: the head entry and the ACTIVE entries that can share its SMTP
 *   transaction (same transaction, transport, body and destination; at most `maxRecipients`)
 *   become SENDING and are attempted with the admission (facts, ticket, delivery settings).
 *   Refused: the whole destination is parked — until a time (rate, connect interval, suspend
 *   TTL), until a counter releases a slot (concurrency), or until the shaping configuration
 *   changes — so entries behind a suspended or throttled key cost nothing at pickup.
 * - SENDING is in memory only: the spool keeps the last durable state, so after a crash an
 *   attempt that was in flight is simply made again (at-least-once).
 * - HOLD entries are never picked; UPDATE is reserved for administrative changes.
 * - `stop(grace)`: no new pickups, timers cleared, attempts in flight get `grace` ms to finish;
 *   pooled connections are closed. Resolves with the number still in flight.
 * Errors: none escape; an attempt that fails unexpectedly is logged and its entries are put
 * back in DEFER (in memory) so they are retried.
 */
import type { RunningConfig } from '../config/types';
import type { Ingress } from '../model/ingress';
import type { QueueEntry } from '../model/types';
import type { Spool } from '../spool/types';
import type { DeliveryHooks } from '../hooks/delivery';
import type { NextHopResolver } from '../delivery/nexthop';
import { destinationKey, type Destination, type QueueStore } from '../queue/store';
import { MinHeap } from '../queue/heap';
import type { Facts, ShapingEngine, Verdict, WakeScope } from '../shaping/types';
import { runGroup, type Admission, type Attempter, type RunContext, type RunLogger } from './run';
import { findTransport } from './plan';
import { RouteCache, type Route } from './routing';
import type { LogAction } from './facts';
import { merged } from '../util/objects';

export interface ManagerSnapshot {
  config: RunningConfig;
  hooks: DeliveryHooks;
}

export interface ManagerOptions {
  store: QueueStore;
  spool: Pick<Spool, 'update' | 'remove' | 'readBody'>;
  ingress: Ingress;
  runtime: () => ManagerSnapshot;
  agent: Attempter & { close?(): Promise<void> };
  resolverFor: (config: RunningConfig) => NextHopResolver;
  log: RunLogger;
  hostname: string;
  newId: () => string;
  now?: () => number;
  /** Traffic shaping; absent = everything is admitted at once. */
  shaping?: ShapingEngine;
  /** Most recipients in one SMTP transaction. Default 100 (RFC 5321 §4.5.3.1.8). */
  maxRecipients?: number;
}

export interface ManagerStats {
  inflight: number;
  attempts: number;
  /** Next timer time (Unix ms), if armed. */
  timer?: number;
  /** Destinations with ACTIVE entries that wait: shaping refused them, or their route is being looked up. */
  parked: number;
  /** Destinations ready for pickup. */
  ready: number;
  /** Pickups refused by shaping since start. */
  refusals: number;
  /** Entries delivered, queued again (DEFER/HOLD) and bounced since start; removals are not counted. */
  outcomes: { delivered: number; delayed: number; failed: number };
}

/** Launches per pass before yielding to the event loop. */
const MAX_LAUNCHES_PER_PASS = 1000;
/** setTimeout's largest delay. */
const MAX_TIMER = 2 ** 31 - 1;
/** DEFER entries made ACTIVE per timer turn (a few milliseconds of work). */
const PROMOTE_SLICE = 20_000;
/** Seconds an entry waits after an unexpected failure of its attempt. */
const CRASH_DELAY = 300;
/** Milliseconds between sweeps of idle shaping counters. */
const SWEEP_MS = 10_000;

/** The manager's bookkeeping on a destination (Destination.sched). */
interface DestState {
  parked: boolean;
  /** In the ready FIFO / the priority-1 FIFO (maybe stale: checked when taken out). */
  queued?: boolean;
  queuedHi?: boolean;
  /** Bumped at each park, so a stale timed wake-up of an earlier park is ignored. */
  seq: number;
  /** Counter keys this destination waits on (concurrency). */
  keys?: string[];
}

const NO_SHAPING: ShapingEngine | undefined = undefined;

export class QueueManager {
  private readonly store: QueueStore;
  private readonly now: () => number;
  private readonly maxRecipients: number;
  private readonly shaping: ShapingEngine | undefined;
  private readonly routes: RouteCache;
  private running = false;
  private passQueued = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt: number | undefined;
  private inflight = 0;
  private attempts = 0;
  private refusals = 0;
  /** Settled entries by outcome since start (process-stats `queue.delivery`). */
  private readonly outcomes = { delivered: 0, delayed: 0, failed: 0 };
  private readonly tally = (action: LogAction): void => {
    if (action === 'delivered') this.outcomes.delivered++;
    else if (action === 'deferred') this.outcomes.delayed++;
    else if (action === 'bounced') this.outcomes.failed++;
  };
  private drained: (() => void) | undefined;
  /**
   * Destinations that may be served, in turn; `readyHi` those with priority-1 entries. FIFOs
   * with lazy removal (a parked or emptied destination is dropped when it comes up): a JS Set
   * would do, but taking its first element after many deletions from its front costs a scan of
   * the deleted slots (measured: 100,000 parks went quadratic).
   */
  private readonly ready = new Fifo<Destination>();
  private readonly readyHi = new Fifo<Destination>();
  private readonly parked = new Set<Destination>();
  private readonly waiters = new Map<string, Set<Destination>>();
  private readonly wakeups = new MinHeap<{ dest: Destination; seq: number }>();
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt: number | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private expiryAt: number | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ManagerOptions) {
    this.store = opts.store;
    this.now = opts.now ?? Date.now;
    this.maxRecipients = Math.max(1, opts.maxRecipients ?? 100);
    this.shaping = opts.shaping ?? NO_SHAPING;
    this.routes = new RouteCache(this.now);
    this.shaping?.onWake((scope) => this.onWake(scope));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.store.subscribe({ active: (d) => this.onActive(d), deferred: (ts) => this.onDeferred(ts) });
    this.fire();
    for (const d of this.store.destinations()) this.makeReady(d);
    if (this.shaping) {
      this.sweepTimer = setInterval(() => this.shaping?.sweep(this.now()), SWEEP_MS);
      this.sweepTimer.unref();
    }
    this.schedulePass();
  }

  /** Ask for a pickup pass with every destination reconsidered (e.g. after a configuration change). */
  wake(): void {
    this.onWake('all');
  }

  /** Forget cached routes (resolver cache cleared, routing changed). */
  clearRoutes(): void {
    this.routes.clear();
  }

  stats(): ManagerStats {
    return {
      inflight: this.inflight,
      attempts: this.attempts,
      ...(this.timerAt !== undefined ? { timer: this.timerAt } : {}),
      parked: this.parked.size,
      ready: this.ready.length,
      refusals: this.refusals,
      outcomes: { ...this.outcomes },
    };
  }

  async stop(graceMs: number): Promise<number> {
    this.running = false;
    this.store.subscribe(undefined);
    this.clearTimer();
    for (const t of [this.wakeTimer, this.expiryTimer]) if (t) clearTimeout(t);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.inflight > 0) {
      let timeout: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.drained = resolve)),
        new Promise<void>((resolve) => (timeout = setTimeout(resolve, graceMs))),
      ]);
      clearTimeout(timeout);
    }
    await this.opts.agent.close?.();
    return this.inflight;
  }

  // -------------------------------------------------------------------------------------------
  // DEFER → ACTIVE

  private onDeferred(retryts: number): void {
    if (this.timerAt === undefined || retryts < this.timerAt) this.arm(retryts);
  }

  private arm(at: number): void {
    if (!this.running) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), Math.min(MAX_TIMER, Math.max(0, at - this.now())));
    this.timer.unref();
  }

  private fire(): void {
    this.clearTimer();
    // In slices: after a stop of some hours, hundreds of thousands of entries may be due at
    // once, and promoting them in one go held the loop (every session) for ~250 ms.
    if (this.store.promoteDue(this.now(), PROMOTE_SLICE) === PROMOTE_SLICE) return this.arm(this.now());
    const next = this.store.nextRetryTs();
    if (next !== undefined) this.arm(next);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Ready, parked and woken destinations

  private onActive(dest: Destination): void {
    if (stateOf(dest).parked) return;
    this.makeReady(dest);
    this.schedulePass();
  }

  private makeReady(dest: Destination): void {
    const st = stateOf(dest);
    if (!st.queued) {
      st.queued = true;
      this.ready.push(dest);
    }
    if (dest.lanes[1].size > 0 && !st.queuedHi) {
      st.queuedHi = true;
      this.readyHi.push(dest);
    }
  }

  private park(dest: Destination, until: number | undefined, keys: string[]): void {
    const st = stateOf(dest);
    st.parked = true;
    st.seq++;
    this.parked.add(dest);
    if (keys.length) {
      st.keys = keys;
      for (const k of keys) {
        let set = this.waiters.get(k);
        if (!set) this.waiters.set(k, (set = new Set()));
        set.add(dest);
      }
    }
    if (until !== undefined) {
      this.wakeups.push(until, { dest, seq: st.seq });
      if (this.wakeAt === undefined || until < this.wakeAt) this.armWake(until);
    }
  }

  private unpark(dest: Destination): void {
    const st = stateOf(dest);
    if (!st.parked) return;
    st.parked = false;
    st.seq++;
    this.parked.delete(dest);
    for (const k of st.keys ?? []) {
      const set = this.waiters.get(k);
      set?.delete(dest);
      if (set && set.size === 0) this.waiters.delete(k);
    }
    delete st.keys;
    if (dest.lanes[0].size + dest.lanes[1].size > 0) this.makeReady(dest);
  }

  private onWake(scope: WakeScope): void {
    if (scope === 'all') {
      for (const d of [...this.parked]) this.unpark(d);
    } else {
      const set = this.waiters.get(scope.key);
      if (set) for (const d of [...set]) this.unpark(d);
    }
    this.schedulePass();
  }

  private armWake(at: number): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = setTimeout(() => this.wakeDue(), Math.min(MAX_TIMER, Math.max(0, at - this.now())));
    this.wakeTimer.unref();
  }

  private wakeDue(): void {
    this.wakeTimer = undefined;
    this.wakeAt = undefined;
    const now = this.now();
    let woke = false;
    for (;;) {
      const t = this.wakeups.peekTime();
      if (t === undefined) break;
      const { dest, seq } = this.wakeups.peekItem()!;
      const st = stateOf(dest);
      if (st.seq !== seq || !st.parked) {
        this.wakeups.pop();
        continue;
      }
      if (t > now) {
        this.armWake(t);
        break;
      }
      this.wakeups.pop();
      this.unpark(dest);
      woke = true;
    }
    if (woke) this.schedulePass();
  }

  /** Dynamic suspends and conditions end at their TTL: expire them then and reconsider everyone. */
  private armExpiry(): void {
    const next = this.shaping?.nextExpiry();
    if (next === undefined || next === this.expiryAt || !this.running) return;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryAt = next;
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = undefined;
      this.expiryAt = undefined;
      // Something expired: the engine itself wakes everyone ('all').
      this.shaping?.expire(this.now());
      this.armExpiry();
    }, Math.min(MAX_TIMER, Math.max(0, next - this.now())));
    this.expiryTimer.unref();
  }

  // -------------------------------------------------------------------------------------------
  // Pickup

  private schedulePass(): void {
    if (this.passQueued || !this.running) return;
    this.passQueued = true;
    setImmediate(() => this.pass());
  }

  private pass(): void {
    this.passQueued = false;
    if (!this.running) return;
    const limit = this.concurrency();
    let launches = 0;
    for (const hi of [true, false]) {
      const fifo = hi ? this.readyHi : this.ready;
      while (this.inflight < limit && fifo.length > 0) {
        if (launches >= MAX_LAUNCHES_PER_PASS) return this.schedulePass();
        const dest = fifo.shift()!;
        const st = stateOf(dest);
        if (hi) st.queuedHi = false;
        else st.queued = false;
        if (st.parked || dest.lanes[0].size + dest.lanes[1].size === 0) continue;
        if (hi && dest.lanes[1].size === 0) continue;
        // Served: back to the end of the line (makeReady); parked: it leaves the line.
        if (this.serve(dest)) {
          launches++;
          if (!st.parked) this.makeReady(dest);
        }
      }
    }
    this.armExpiry();
  }

  /** Serve one destination: launch one attempt (true) or park it (false). */
  private serve(dest: Destination): boolean {
    const head = firstOf(dest.lanes[1]) ?? firstOf(dest.lanes[0]);
    if (!head) return false;
    const snap = this.opts.runtime();
    if (!this.shaping) {
      this.launch(head, dest, undefined, snap);
      return true;
    }
    const route = this.routeFor(head, dest, snap.config);
    if (!route) return false;
    const now = this.now();
    const domain = head.recipientaddress.domain.toLowerCase();
    const base = {
      tenantid: head.tenantid,
      jobid: head.jobid,
      transportid: head.transportid,
      recipientdomain: domain,
      remotemx: route.remotemx,
      remoteip: route.remoteip,
      grouping: this.shaping.groupingOf(domain, route.remotemx, route.remoteip),
    };
    let until: number | undefined;
    const keys: string[] = [];
    for (const localip of localipCandidates(snap.config, head.transportid)) {
      const facts: Facts = merged(base, { localip });
      const v: Verdict = this.shaping.admit(facts, now);
      if (v.ok) {
        this.launch(head, dest, { facts, ticket: v.ticket, settings: this.shaping.deliverySettings(facts) }, snap);
        return true;
      }
      if (v.until !== undefined) until = until === undefined ? v.until : Math.min(until, v.until);
      else if (v.waitKey !== undefined) keys.push(v.waitKey);
      // Neither: refused until the shaping configuration changes (a wake of 'all').
    }
    this.refusals++;
    // Woken by whichever comes first: a time, a released slot, or a configuration change.
    this.park(dest, until, keys);
    return false;
  }

  /** The route when a rule needs it: cached, or looked up now while the destination waits. */
  private routeFor(head: QueueEntry, dest: Destination, config: RunningConfig): Route | undefined {
    if (!this.shaping?.needsRouting()) return { remotemx: '', remoteip: '' };
    const found = findTransport(config, head.transportid);
    const domain = head.recipientaddress.domain.toLowerCase();
    const key = `${head.transportid}\u0000${domain}`;
    const cached = this.routes.get(key);
    if (cached) return cached;
    this.park(dest, undefined, [`route:${key}`]);
    const conn = found?.transport.connection;
    const target = { domain, port: conn?.port ?? 25, ipv6: conn?.sourceip?.ipv6 ?? true, ...(conn?.server !== undefined ? { server: conn.server } : {}) };
    void this.routes.resolve(key, target, this.opts.resolverFor(config)).then(() => this.onWake({ key: `route:${key}` }));
    return undefined;
  }

  private concurrency(): number {
    const total = this.opts.runtime().config.queues.concurrency?.total;
    return typeof total === 'number' && total > 0 ? total : Number.POSITIVE_INFINITY;
  }

  /** The entry and the ACTIVE entries of its destination that can share its SMTP transaction. */
  private collect(head: QueueEntry, dest: Destination): QueueEntry[] {
    const group = [head];
    for (const e of this.store.transaction(head.id.transaction)) {
      if (group.length >= this.maxRecipients) break;
      if (e === head || e.state !== 'ACTIVE' || e.body !== head.body) continue;
      if (!dest.lanes[e.priority === 1 ? 1 : 0].has(e)) continue;
      group.push(e);
    }
    return group;
  }

  private launch(head: QueueEntry, dest: Destination, admission: Admission | undefined, snap: ManagerSnapshot): void {
    const group = this.collect(head, dest);
    for (const e of group) this.store.setState(e, 'SENDING');
    this.inflight++;
    this.attempts++;
    const ctx: RunContext = {
      config: snap.config,
      hooks: snap.hooks,
      store: this.store,
      spool: this.opts.spool,
      ingress: this.opts.ingress,
      agent: this.opts.agent,
      resolver: this.opts.resolverFor(snap.config),
      log: this.opts.log,
      hostname: this.opts.hostname,
      newId: this.opts.newId,
      now: this.now,
      tally: this.tally,
    };
    const shaping = this.shaping;
    if (shaping) ctx.groupingOf = (d, mx, ip) => shaping.groupingOf(d, mx, ip);
    runGroup(ctx, group, admission)
      .catch((err: unknown) => this.opts.log.error({ err: (err as Error).message, stack: (err as Error).stack, transactionid: group[0].id.transaction }, 'delivery attempt failed unexpectedly'))
      .finally(() => this.finish(group, admission));
  }

  private finish(group: QueueEntry[], admission: Admission | undefined): void {
    this.inflight--;
    if (admission?.ticket) this.shaping?.release(admission.ticket, this.now());
    // Whatever happened, no entry may stay SENDING in a running queue.
    for (const e of group) {
      if (e.state === 'SENDING' && this.store.has(e)) this.store.update(e, { state: 'DEFER', retryts: this.now() + CRASH_DELAY * 1000 });
    }
    if (this.inflight === 0) this.drained?.();
    this.schedulePass();
  }
}

function stateOf(dest: Destination): DestState {
  let st = dest.sched as DestState | undefined;
  if (!st) dest.sched = st = { parked: false, seq: 0 };
  return st;
}

function firstOf(set: Set<QueueEntry>): QueueEntry | undefined {
  return set.values().next().value;
}

/**
 * The source addresses an attempt of this transport may use, in the order to offer them to
 * shaping: random, weighted by repetition (halon-core.md §4.3: "duplicates weight the
 * distribution"), each once. [''] when the transport names none (the system picks).
 */
export function localipCandidates(config: RunningConfig, transportid: string, random: () => number = Math.random): string[] {
  const ids = findTransport(config, transportid)?.transport.connection.sourceip?.ids ?? [];
  if (ids.length === 0) return [''];
  const pool = ids.map((id) => config.addresses.find((a) => a.id === id)?.address ?? id);
  const out: string[] = [];
  while (pool.length > 0) {
    const i = Math.floor(random() * pool.length);
    const ip = pool[i];
    if (!out.includes(ip)) out.push(ip);
    for (let j = pool.length - 1; j >= 0; j--) if (pool[j] === ip) pool.splice(j, 1);
  }
  return out;
}

export { destinationKey };

/** A FIFO on an array with a moving head (amortised O(1) push and shift). */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined as T;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
