/**
 * The delivery thread (worker-agent.ts starts it): runs the SMTP part of each attempt with its
 * own connection pool, at the nice value it was given.
 *
 * Protocol: `attempts` messages in (plan + resolved next hops each); a `report` out for each
 * attempt, in whatever order they finish, those of one turn in one `reports` message; `close`
 * closes the pooled connections and answers `closed`; `pool` (the connection pool's figures)
 * once a second when they changed.
 * Errors: an attempt that throws (it should not: the client reports network and protocol
 * failures as outcomes) is reported as a temporary network failure of every recipient.
 */
import fs from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { DeliveryAgent, everyone, type AttemptReport } from './attempt';
import type { FromThread, ThreadAttempt, ThreadData, ToThread } from './worker-agent';

const data = workerData as ThreadData;
const agent = new DeliveryAgent({ poolSize: data.poolSize });

/**
 * Linux schedules threads, and setpriority() on a thread id changes that thread alone. Elsewhere
 * (or without /proc) the thread keeps the process's priority.
 */
function lowerPriority(nice: number): void {
  if (nice <= 0) return;
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, Math.min(19, os.getPriority(tid) + nice));
  } catch {
    // not Linux, or not allowed: run at the process's priority
  }
}

lowerPriority(data.nice);

const port = parentPort!;

/** Reports finished in this turn of the event loop, posted together (see ToThread). */
let outbox: Array<{ id: number; report: AttemptReport }> = [];
function flush(): void {
  const items = outbox;
  outbox = [];
  port.postMessage({ type: 'reports', items } satisfies FromThread);
}
function report(id: number, r: AttemptReport): void {
  outbox.push({ id, report: r });
  if (outbox.length === 1) setImmediate(flush);
}

function start(a: ThreadAttempt): void {
  // The plan is this thread's own copy (structured clone): make its body a Buffer view in place.
  const plan = a.plan;
  plan.body = Buffer.from(plan.body.buffer, plan.body.byteOffset, plan.body.byteLength);
  agent
    .deliverTo(a.hops, plan)
    .catch((err: unknown) => everyone(plan, { error: { temporary: true, type: 'network', message: (err as Error).message } }, 0))
    .then((r) => report(a.id, r));
}

port.on('message', (m: ToThread) => {
  if (m.type === 'close') {
    void agent.close().finally(() => port.postMessage({ type: 'closed' } satisfies FromThread));
    return;
  }
  for (const a of m.items) start(a);
});
port.postMessage({ type: 'ready' } satisfies FromThread);

// The pool's figures for process-stats, once a second when they changed.
let sent = '';
setInterval(() => {
  const stats = agent.poolStats();
  const text = JSON.stringify(stats);
  if (text === sent) return;
  sent = text;
  port.postMessage({ type: 'pool', stats } satisfies FromThread);
}, 1000).unref();
