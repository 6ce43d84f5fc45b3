/**
 * Deliveries on their own thread: the SMTP client of every attempt runs in a worker thread
 * (delivery-thread.ts) with its own event loop and connection pool, at a lower scheduling
 * priority than the main thread, which keeps reception, the spool, the queue, hooks and DNS.
 *
 * Why (docs/decisions.md B11): one event loop doing both halves makes every SMTP client wait
 * behind delivery work, and a burst of mail then slows reception down to the delivery rate.
 * On its own thread, delivery uses the other core; at a lower priority it gets what reception
 * leaves under load, and all of it when reception is idle. The queue absorbs the difference.
 *
 * Inputs: the pool size (`queues.pooling.size`) and the thread's nice value (0–19).
 * Behaviour: `attempt(plan, resolver)` resolves the next hops here (one DNS cache, the one
 * `resolver clear` empties), then hands plan and hops to the thread and waits for its report;
 * the duration covers both. The thread gets a copy of the body (the spool's cache of recent
 * bodies may still hold the original).
 * Errors: if the thread dies, every attempt it held gets a temporary network failure (the
 * entries are deferred and retried, nothing is lost) and a new thread takes the next ones.
 * `close()` closes the thread's pooled connections and ends the thread.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { everyone, nextHopsOf, type AttemptPlan, type AttemptReport } from './attempt';
import type { NextHop, NextHopResolver } from './nexthop';
import type { PoolCounters } from './client-pool';
import { HopWindow } from './hop-window';
import { merged } from '../util/objects';

export interface WorkerAgentOptions {
  poolSize: number;
  /** Nice value of the delivery thread (Linux: per thread); 0 keeps the main thread's. */
  nice: number;
  log: { error(fields: object, msg: string): void };
}

export interface ThreadAttempt {
  id: number;
  plan: AttemptPlan;
  hops: NextHop[];
}

/**
 * Main thread → delivery thread. Attempts started in one turn of the event loop go in one
 * message (`attempts`): every message wakes the other thread, and on a busy VM a wake-up costs
 * more than the copy it carries.
 */
export type ToThread =
  | { type: 'attempts'; items: ThreadAttempt[] }
  | { type: 'close' };

/** Delivery thread → main thread; reports finished in one turn go together likewise. */
export type FromThread =
  | { type: 'reports'; items: Array<{ id: number; report: AttemptReport }> }
  | { type: 'ready' }
  | { type: 'pool'; stats: PoolCounters | undefined }
  | { type: 'closed' };

export interface ThreadData {
  poolSize: number;
  nice: number;
}

interface Pending {
  plan: AttemptPlan;
  started: number;
  resolve: (r: AttemptReport) => void;
}

const CLOSE_WAIT_MS = 5000;

export class WorkerAgent {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Attempts per first hop: the thread runs at most this many at once (hop-window.ts). */
  private readonly window = new HopWindow();
  private closing = false;
  private onClosed: (() => void) | undefined;
  private readyWaiters: Array<() => void> = [];
  private isReady = false;
  private pool: PoolCounters | undefined;
  /** Attempts waiting for this turn's post (see ToThread) and the bodies they move. */
  private outbox: ThreadAttempt[] = [];
  private moving: ArrayBuffer[] = [];

  constructor(private readonly opts: WorkerAgentOptions) {
    // Started now, not at the first attempt: a thread takes tens of milliseconds to start, which
    // would land between pickup (where shaping counts a connection) and the connection itself.
    this.thread();
  }

  async attempt(plan: AttemptPlan, resolver: NextHopResolver): Promise<AttemptReport> {
    const started = performance.now();
    const hops = await nextHopsOf(plan, resolver);
    if ('error' in hops) return everyone(plan, { error: hops.error }, (performance.now() - started) / 1000);
    return this.window.run(hops.hops, () => this.post(plan, hops.hops, started));
  }

  private post(plan: AttemptPlan, hops: NextHop[], started: number): Promise<AttemptReport> {
    if (this.closing) return Promise.resolve(everyone(plan, { error: { temporary: true, type: 'network', message: 'delivery is shutting down' } }, 0));
    const id = this.nextId++;
    return new Promise<AttemptReport>((resolve) => {
      this.pending.set(id, { plan, started, resolve });
      // A clone of a view copies its whole ArrayBuffer (a pool slab, a segment read): copy the
      // body's bytes alone, once, and move that copy.
      const body = new Uint8Array(plan.body);
      this.outbox.push({ id, plan: merged(plan, { body: body as Buffer }), hops });
      this.moving.push(body.buffer);
      if (this.outbox.length === 1) setImmediate(() => this.flush());
    });
  }

  /** Post this turn's attempts in one message. */
  private flush(): void {
    const items = this.outbox;
    const moving = this.moving;
    this.outbox = [];
    this.moving = [];
    if (items.length === 0) return;
    // close() began in this turn: these never reach a thread (it would start a new one).
    if (this.closing) {
      for (const { id } of items) this.fail(id, 'delivery is shutting down');
      return;
    }
    this.thread().postMessage({ type: 'attempts', items } satisfies ToThread, moving);
  }

  /** Resolves once the thread has loaded and can take attempts (the daemon waits for it at start). */
  ready(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** The thread's connection pool figures, as of its last report (at most a second old). */
  poolStats(): PoolCounters | undefined {
    return this.pool;
  }

  /** Attempts handed to the thread and not yet reported. */
  get inflight(): number {
    return this.pending.size;
  }

  async close(): Promise<void> {
    this.closing = true;
    const w = this.worker;
    if (!w) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CLOSE_WAIT_MS);
      this.onClosed = () => {
        clearTimeout(timer);
        resolve();
      };
      w.postMessage({ type: 'close' } satisfies ToThread);
    });
    this.onClosed = undefined;
    this.worker = undefined;
    await w.terminate();
    this.failAll('delivery thread stopped');
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const data: ThreadData = { poolSize: this.opts.poolSize, nice: this.opts.nice };
    const w = new Worker(path.join(__dirname, 'delivery-thread.js'), { workerData: data });
    w.unref(); // the daemon's listeners keep it alive; a test that forgets close() still exits
    w.on('message', (m: FromThread) => this.onMessage(m));
    w.on('error', (err) => this.opts.log.error({ err: err.message, stack: err.stack }, 'delivery thread failed'));
    w.on('exit', (code) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      if (!this.closing) this.opts.log.error({ code }, 'delivery thread exited; its attempts are deferred and a new thread takes the next ones');
      this.failAll('delivery thread exited');
      this.isReady = false;
      for (const r of this.readyWaiters.splice(0)) r(); // nobody waits on a thread that is gone
    });
    this.worker = w;
    return w;
  }

  private onMessage(m: FromThread): void {
    if (m.type === 'closed') {
      this.onClosed?.();
      return;
    }
    if (m.type === 'pool') {
      this.pool = m.stats;
      return;
    }
    if (m.type === 'ready') {
      this.isReady = true;
      for (const w of this.readyWaiters.splice(0)) w();
      return;
    }
    const now = performance.now();
    for (const { id, report } of m.items) {
      const p = this.pending.get(id);
      if (!p) continue;
      this.pending.delete(id);
      p.resolve(merged(report, { duration: (now - p.started) / 1000 }));
    }
  }

  private failAll(message: string): void {
    // Attempts not posted yet are answered here too; they must not go to the next thread.
    this.outbox = [];
    this.moving = [];
    for (const id of [...this.pending.keys()]) this.fail(id, message);
  }

  /** Answer one attempt as a temporary network failure (deferred and retried, nothing lost). */
  private fail(id: number, message: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.resolve(everyone(p.plan, { error: { temporary: true, type: 'network', message } }, (performance.now() - p.started) / 1000));
  }
}
