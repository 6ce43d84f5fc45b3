/**
 * The queue manager (Postfix's qmgr, Halon's queue engine): moves DEFER entries to ACTIVE when
 * they fall due, picks ACTIVE entries up, and runs their attempts (run.ts).
 *
 * Inputs: the in-memory queue (QueueStore), the spool, the ingress (for DSNs), a function giving
 * the current configuration snapshot (config + delivery hooks), the delivery agent, a resolver
 * per resolver configuration, a logger, the host name and an id generator.
 * Behaviour:
 * - Timer: one timer, armed for the earliest `retryts` in DEFER (re-armed when an earlier one
 *   arrives); when it fires, every due entry moves to ACTIVE. No polling.
 * - Pickup: a pass runs (coalesced, on setImmediate) whenever entries become ACTIVE or an attempt
 *   ends. It walks ACTIVE in order (priority 1 first, oldest first) while fewer than
 *   `queues.concurrency.total` attempts run, asks the pickup filter (pickup.ts: the hook point of
 *   suspends and policies), and takes the entry together with the ACTIVE entries of the same
 *   transaction, transport, body and recipient domain (at most `maxRecipients`), marking them
 *   SENDING. SENDING is in memory only: the spool keeps the last durable state, so after a crash
 *   an attempt that was in flight is simply made again (at-least-once).
 * - HOLD entries are never picked; UPDATE is reserved for administrative changes.
 * - `stop(grace)`: no new pickups, the timer is cleared, attempts in flight get `grace` ms to
 *   finish; pooled connections are closed. Resolves with the number still in flight.
 * Errors: none escape; an attempt that fails unexpectedly is logged and its entries are put
 * back in DEFER (in memory) so they are retried.
 */
import type { RunningConfig } from '../config/types';
import type { Ingress } from '../model/ingress';
import type { QueueEntry } from '../model/types';
import type { Spool } from '../spool/types';
import type { DeliveryHooks } from '../hooks/delivery';
import type { NextHopResolver } from '../delivery/nexthop';
import type { QueueStore } from '../queue/store';
import { NO_FILTER, type PickupFilter } from './pickup';
import { runGroup, type Attempter, type RunContext, type RunLogger } from './run';

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
  pickupFilter?: PickupFilter;
  /** Most recipients in one SMTP transaction. Default 100 (RFC 5321 §4.5.3.1.8). */
  maxRecipients?: number;
}

export interface ManagerStats {
  inflight: number;
  attempts: number;
  /** Next timer time (Unix ms), if armed. */
  timer?: number;
}

/** Entries a pass may skip (pickup filter) before it yields to the event loop. */
const MAX_SKIPS_PER_PASS = 10_000;
/** Milliseconds before the next pass after a pass that hit MAX_SKIPS_PER_PASS. */
const SKIP_RETRY_MS = 1000;
/** setTimeout's largest delay. */
const MAX_TIMER = 2 ** 31 - 1;
/** Seconds an entry waits after an unexpected failure of its attempt. */
const CRASH_DELAY = 300;

export class QueueManager {
  private readonly store: QueueStore;
  private readonly filter: PickupFilter;
  private readonly now: () => number;
  private readonly maxRecipients: number;
  private running = false;
  private stopping = false;
  private passQueued = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt: number | undefined;
  private inflight = 0;
  private attempts = 0;
  private drained: (() => void) | undefined;

  constructor(private readonly opts: ManagerOptions) {
    this.store = opts.store;
    this.filter = opts.pickupFilter ?? NO_FILTER;
    this.now = opts.now ?? Date.now;
    this.maxRecipients = Math.max(1, opts.maxRecipients ?? 100);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.store.subscribe({ active: () => this.schedulePass(), deferred: (ts) => this.onDeferred(ts) });
    this.fire();
    this.schedulePass();
  }

  /** Ask for a pickup pass (e.g. when a suspend ends). */
  wake(): void {
    this.schedulePass();
  }

  stats(): ManagerStats {
    return { inflight: this.inflight, attempts: this.attempts, ...(this.timerAt !== undefined ? { timer: this.timerAt } : {}) };
  }

  async stop(graceMs: number): Promise<number> {
    this.stopping = true;
    this.running = false;
    this.store.subscribe(undefined);
    this.clearTimer();
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
    this.store.promoteDue(this.now());
    const next = this.store.nextRetryTs();
    if (next !== undefined) this.arm(next);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = undefined;
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
    if (!this.running || this.filter.idle?.()) return;
    const limit = this.concurrency();
    let skips = 0;
    for (const entry of this.store.active()) {
      if (this.inflight >= limit) return;
      if (entry.state !== 'ACTIVE') continue;
      if (this.filter.check(entry) === 'skip') {
        if (++skips >= MAX_SKIPS_PER_PASS) return this.passLater();
        continue;
      }
      const group = this.collect(entry);
      for (const e of group) this.store.setState(e, 'SENDING');
      this.launch(group);
    }
  }

  /** Many entries skipped: look again shortly rather than spin (the filter may also wake us). */
  private passLater(): void {
    setTimeout(() => this.schedulePass(), SKIP_RETRY_MS).unref();
  }

  private concurrency(): number {
    const total = this.opts.runtime().config.queues.concurrency?.total;
    return typeof total === 'number' && total > 0 ? total : Number.POSITIVE_INFINITY;
  }

  /** The entry and the ACTIVE entries that can share its SMTP transaction. */
  private collect(head: QueueEntry): QueueEntry[] {
    const group = [head];
    const domain = head.recipientaddress.domain.toLowerCase();
    for (const e of this.store.transaction(head.id.transaction)) {
      if (group.length >= this.maxRecipients) break;
      if (e === head || e.state !== 'ACTIVE' || e.transportid !== head.transportid || e.body !== head.body) continue;
      if (e.recipientaddress.domain.toLowerCase() !== domain) continue;
      if (this.filter.check(e) === 'ok') group.push(e);
    }
    return group;
  }

  private launch(group: QueueEntry[]): void {
    this.inflight++;
    this.attempts++;
    const snap = this.opts.runtime();
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
    };
    runGroup(ctx, group)
      .catch((err: unknown) => this.opts.log.error({ err: (err as Error).message, stack: (err as Error).stack, transactionid: group[0].id.transaction }, 'delivery attempt failed unexpectedly'))
      .finally(() => this.finish(group));
  }

  private finish(group: QueueEntry[]): void {
    this.inflight--;
    this.filter.release?.(group);
    // Whatever happened, no entry may stay SENDING in a running queue.
    for (const e of group) {
      if (e.state === 'SENDING' && this.store.has(e)) this.store.update(e, { state: 'DEFER', retryts: this.now() + CRASH_DELAY * 1000 });
    }
    if (this.inflight === 0) this.drained?.();
    this.schedulePass();
  }
}
