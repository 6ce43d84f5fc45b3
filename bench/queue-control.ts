/**
 * The queue commands of the control socket (src/control/queue.ts) over a large in-memory queue:
 * how long a filtered list (first page), a group-by by recipient domain, and a hold of one
 * domain take.
 *
 *   node dist/bench/queue-control.js [entries=1000000]
 *
 * Fills a QueueStore with synthetic entries: 10 % to big.example, the rest over ~1,000 other
 * recipient domains; 1 in 7 DEFER, 1 in 20 HOLD. The spool is a no-op (each write resolves at
 * once), so the figures are the queue engine's own cost: encoding, matching, sorting, store
 * updates; the journal's write and fsync cost is measured by bench/spool-bench.ts.
 * Not a test: nothing is asserted.
 */
import { randomUUID } from 'node:crypto';
import { QueueStore } from '../src/queue/store';
import { queueControl } from '../src/control/queue';
import type { QueueEntry } from '../src/model/types';

const NOW = Date.now();

function sample(i: number): QueueEntry {
  const state = i % 20 === 0 ? 'HOLD' : i % 7 === 0 ? 'DEFER' : 'ACTIVE';
  const domain = i % 10 === 0 ? 'big.example' : `domain${i % 1000}.example`;
  return {
    id: { transaction: randomUUID(), queue: 1 },
    ts: NOW - (i % 86_400) * 1000,
    serverid: 'inbound',
    sender: `sender${i % 5000}@customer${i % 50}.example`,
    senderaddress: { localpart: `sender${i % 5000}`, domain: `customer${i % 50}.example` },
    recipient: `user${i}@${domain}`,
    recipientaddress: { localpart: `user${i}`, domain },
    transportid: i % 3 === 0 ? 'mx' : 'outbound',
    tenantid: '',
    jobid: '',
    priority: 0,
    metadata: {},
    quotas: [],
    tags: [],
    dsn: {},
    state,
    retry: state === 'DEFER' ? 1 + (i % 5) : 0,
    retryts: state === 'DEFER' ? NOW + 60_000 + i : 0,
    body: 0,
    size: 2000 + (i % 50_000),
  };
}

async function time<T>(label: string, f: () => T | Promise<T>): Promise<T> {
  const t = process.hrtime.bigint();
  const r = await f();
  process.stdout.write(`${label}: ${(Number(process.hrtime.bigint() - t) / 1e6).toFixed(1)} ms\n`);
  return r;
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 1_000_000);
  const store = new QueueStore();
  for (let i = 0; i < n; i++) store.add(sample(i));
  process.stdout.write(`${n} entries\n`);
  const q = queueControl({
    store,
    spool: { update: async () => undefined, updateMany: async (items) => items.map(() => undefined), remove: async () => undefined, readBody: async () => Buffer.alloc(0) },
    ingress: { commit: async () => undefined, hasSpace: () => true },
    manager: { wake: () => undefined },
    config: () => ({ transportgroups: [] }) as never,
    hostname: 'bench',
    newId: randomUUID,
    log: { info: () => undefined, error: () => undefined },
  });
  const page = await time('list DEFER of domain7.example, first 100', () =>
    q.list({ conditions: { queues: [{ queue: 'DEFER' }], recipients: [{ domain: { value: 'domain7.example' } }] }, paging: { limit: 100 } }));
  process.stdout.write(`  ${page.items?.length} shown of ${page.paging?.total}\n`);
  const scan = await time('list retrycount >= 3 (full scan), first 100', () => q.list({ conditions: { retrycounts: [{ gte: { value: 3 } }] }, paging: { limit: 100 } }));
  process.stdout.write(`  ${scan.items?.length} shown of ${scan.paging?.total}\n`);
  const groups = await time('groupby recipientdomain', () => q.groupBy({ groupbys: [{ recipientdomain: true }] }));
  process.stdout.write(`  ${groups.paging?.total} groups\n`);
  const held = await time('hold big.example', () => q.update({ conditions: { recipients: [{ domain: { value: 'big.example' } }] }, move: { freeze: 'HOLD' } }));
  process.stdout.write(`  ${held.affected} affected\n`);
}

void main();
