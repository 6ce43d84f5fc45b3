/**
 * Pickup cost with many suspended or throttled keys, through the real queue manager and
 * traffic-shaping engine (issue #4: "pickup stays cheap with many keys").
 *
 *   node --expose-gc dist/bench/shaping-pickup.js [keys=100000] [mode=suspend|rate]
 *
 * Builds `keys` recipient domains with two ACTIVE entries each (a queue of 2 × keys entries);
 * mode `suspend`: a dynamic suspend per domain (100,000 dynamic suspends); mode `rate`: one policy
 * keyed on recipientdomain with `rate: 1/3600`, so each domain's first message goes and the
 * second waits for an hour (100,000 throttled counters). The delivery agent answers at once.
 * Prints: time until every destination is parked (the first look at each key), heap per key,
 * then the cost of what happens all day long with the keys parked — a pickup pass started by new
 * mail for another domain, and new mail arriving for a parked key — per operation.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { QueueStore } from '../src/queue/store';
import { QueueManager } from '../src/scheduler/manager';
import { createShapingEngine } from '../src/shaping/engine';
import { newQueueEntry, type QueueEntry } from '../src/model/types';
import type { RunningConfig } from '../src/config/types';
import type { AttemptPlan, AttemptReport } from '../src/delivery/attempt';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}
const KEYS = Number(process.argv[2] ?? 100_000);
const MODE = process.argv[3] === 'rate' ? 'rate' : 'suspend';

const config = {
  file: '/bench/smtpd-app.yaml', servers: [], addresses: [],
  transportgroups: [{ id: 'default', retry: { count: 5, intervals: [{ interval: 60, notify: false }], during: 86400 }, transports: [{ id: 'out', group: 'default', connection: { server: '127.0.0.1', port: 25 }, session: { tls: { mode: 'disabled' }, protocol: 'smtp' } }] }],
  queues: { grouping: { groupings: [] }, pooling: { size: 0 }, concurrency: { total: 10_000 } },
  resolver: { cache: { size: 0 } }, scripting: { hooks: {}, timeout: 5 }, pki: { private: [] },
} as unknown as RunningConfig;

let delivered = 0;
const agent = {
  async attempt(plan: AttemptPlan): Promise<AttemptReport> {
    delivered += plan.recipients.length;
    return { recipients: plan.recipients.map(() => ({ outcome: 'delivered' as const, result: { code: 250, enhanced: null, reason: ['ok'], state: 'EOD' as const } })), remotemx: '', remoteip: '127.0.0.1', duration: 0, skipped: [] };
  },
};

function entry(domain: string, i: number): QueueEntry {
  return newQueueEntry({ id: { transaction: randomUUID(), queue: 1 }, sender: 's@example.com', recipient: `u${i}@${domain}`, serverid: 'mx', transportid: 'out', size: 5000, ts: Date.now() / 1000 });
}

async function until(pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setImmediate(r));
  }
}

async function main(): Promise<void> {
  const store = new QueueStore();
  const shaping = createShapingEngine();
  shaping.setGrouping(config.queues.grouping);
  const now = Date.now();
  if (MODE === 'rate') {
    shaping.setPolicies({ file: '/bench/smtpd-policy.yaml', rate: { algorithm: 'tokenbucket' }, policies: [{ fields: ['recipientdomain'], conditions: [], default: { rate: { messages: 1, seconds: 3600 } } }] });
  }
  gc!();
  const heap0 = process.memoryUsage().heapUsed;
  if (MODE === 'suspend') for (let k = 0; k < KEYS; k++) shaping.addSuspend({ recipientdomain: `d${k}.example` }, 3600, {}, now);
  for (let k = 0; k < KEYS; k++) {
    store.add(entry(`d${k}.example`, 0));
    store.add(entry(`d${k}.example`, 1));
  }
  const silent = { info() {}, warn() {}, error() {} };
  const manager = new QueueManager({
    store, spool: { update: async () => undefined, remove: async () => undefined, readBody: async () => Buffer.from('x\r\n') },
    ingress: { commit: async () => undefined, hasSpace: () => true }, runtime: () => ({ config, hooks: {} }), agent,
    resolverFor: () => ({ resolveMx: async () => ({ ok: true, records: [], ttl: 0 }), resolve4: async () => ({ ok: true, records: [], ttl: 0 }), resolve6: async () => ({ ok: true, records: [], ttl: 0 }) }) as never,
    log: silent, hostname: 'bench', newId: randomUUID, shaping,
  });
  const t0 = performance.now();
  manager.start();
  const expectDelivered = MODE === 'rate' ? KEYS : 0;
  await until(() => manager.stats().parked === KEYS && delivered === expectDelivered && manager.stats().inflight === 0, 120_000);
  const firstLook = performance.now() - t0;
  gc!();
  const heap = process.memoryUsage().heapUsed - heap0;

  // All day long: new mail for an unthrottled domain starts a pass; the parked keys are not visited.
  const passes = 2000;
  const t1 = performance.now();
  for (let i = 0; i < passes; i++) {
    store.add(entry(`free${i}.example`, 0));
    const want = expectDelivered + i + 1;
    await until(() => delivered >= want, 10_000);
  }
  const perPass = (performance.now() - t1) / passes;
  // New mail for parked keys: added to its destination, nothing else.
  const adds = 100_000;
  const t2 = performance.now();
  for (let i = 0; i < adds; i++) store.add(entry(`d${i % KEYS}.example`, 2 + i));
  await new Promise((r) => setImmediate(r));
  const perAdd = ((performance.now() - t2) * 1000) / adds;
  await manager.stop(1000);
  const mb = (n: number) => (n / 1048576).toFixed(1);
  process.stdout.write(`mode=${MODE} keys=${KEYS} entries=${2 * KEYS}\n`);
  process.stdout.write(`first look at every key (admit + park): ${firstLook.toFixed(0)} ms (${((firstLook * 1000) / KEYS).toFixed(1)} µs per key)\n`);
  process.stdout.write(`heap for entries + ${MODE === 'rate' ? 'counters' : 'suspends'} + parking: ${mb(heap)} MiB (${Math.round(heap / KEYS)} bytes per key incl. its 2 entries)\n`);
  process.stdout.write(`with ${KEYS} keys parked: a pickup pass delivering one new message ${(perPass * 1000).toFixed(0)} µs; new mail for a parked key ${perAdd.toFixed(2)} µs per entry\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
