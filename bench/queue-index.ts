/**
 * The queue index over many entries: how long list, group-by and scan take, and what each
 * field index costs in memory.
 *
 *   node --expose-gc dist/bench/queue-index.js [entries=1000000]
 *   node --expose-gc dist/bench/queue-index.js index-cost [entries=100000]
 *
 * Default mode: fills a QueueStore with synthetic entries (~1,000 recipient domains, 100 job
 * ids on a quarter of the entries, 1 % with metadata campaign=spring, 15 % DEFER with the last
 * attempt's hop fields), then times select by recipientdomain (first 100), groupBy
 * recipientdomain, a scan with a metadata predicate (first 100, then the whole queue), and
 * counts the young-generation collections during the full scan (0 means the scan allocated
 * nothing per entry). Prints heap after a full GC.
 * index-cost mode: builds the same entries once with no index and once per field with only
 * that index, and prints the heap difference per entry.
 * Bodies are not in memory (they stay in the spool). Not a test: nothing is asserted.
 */
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { QueueStore, INDEXED_FIELDS, QUEUE_FIELDS, type QueueField } from '../src/queue/store';
import type { QueueEntry } from '../src/model/types';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}

const NOW = Date.now();
const SPRING: Record<string, string> = { campaign: 'spring' };

function sample(i: number): QueueEntry {
  const state = i % 20 === 0 ? 'HOLD' : i % 7 === 0 ? 'DEFER' : 'ACTIVE';
  const domain = `domain${i % 1000}.example`;
  const e: QueueEntry = {
    id: { transaction: Buffer.from(randomUUID(), 'latin1').toString('latin1'), queue: 1 },
    ts: NOW - (i % 86_400) * 1000,
    serverid: i % 10 === 0 ? 'submission' : 'inbound',
    sender: `sender${i % 5000}@customer${i % 50}.example`,
    senderaddress: { localpart: `sender${i % 5000}`, domain: `customer${i % 50}.example` },
    recipient: `user${i}@${domain}`,
    recipientaddress: { localpart: `user${i}`, domain },
    transportid: i % 3 === 0 ? 'mx' : 'outbound',
    tenantid: i % 2 === 0 ? `tenant${i % 20}` : '',
    jobid: i % 4 === 0 ? `job-${i % 100}` : '',
    priority: i % 10 === 0 ? 1 : 0,
    metadata: i % 100 === 0 ? SPRING : {},
    quotas: [],
    tags: [],
    dsn: {},
    state,
    retry: state === 'DEFER' ? 1 + (i % 5) : 0,
    retryts: state === 'DEFER' ? NOW + 60_000 + i : 0,
    body: 0,
    size: 2000 + (i % 50_000),
  };
  if (state === 'DEFER') {
    e.localip = `192.0.2.${1 + (i % 4)}`;
    e.remotemx = `mx${i % 2}.${domain}`;
    e.remoteip = `198.51.100.${i % 250}`;
    e.grouping = domain;
  }
  return e;
}

function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

function fill(n: number, indexed?: readonly QueueField[]): QueueStore {
  const store = new QueueStore(indexed ? { indexed } : {});
  for (let i = 0; i < n; i++) store.add(sample(i));
  return store;
}

function ms(f: () => unknown): { ms: number; result: unknown } {
  const t = process.hrtime.bigint();
  const result = f();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, result };
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** Heap taken by a store's own structures over entries that already exist. */
function structures(entries: QueueEntry[], indexed: readonly QueueField[]): { bytes: number; values: number } {
  const before = heap();
  const store = new QueueStore({ indexed });
  for (const e of entries) store.add(e);
  const bytes = heap() - before;
  const values = indexed.length === 1 ? store.groupBy(indexed[0]).size : 0;
  return { bytes, values };
}

function indexCost(n: number): void {
  const before = heap();
  const entries = Array.from({ length: n }, (_, i) => sample(i));
  new QueueStore({ indexed: [] }).add(entries[0]);
  for (const e of entries) new QueueStore({ indexed: [] }).add(e); // compact once
  const own = heap() - before;
  const bare = structures(entries, []).bytes;
  process.stdout.write(`${n} entries: ${(own / n).toFixed(0)} bytes per entry, store without index ${(bare / n).toFixed(0)} bytes per entry\n`);
  for (const field of QUEUE_FIELDS) {
    if (field === 'state') continue;
    const { bytes, values } = structures(entries, [field]);
    process.stdout.write(`  ${field.padEnd(20)} ${((bytes - bare) / n).toFixed(1).padStart(7)} bytes per entry  (${values} distinct values)\n`);
  }
  const chosen = structures(entries, INDEXED_FIELDS).bytes;
  process.stdout.write(`  all of INDEXED_FIELDS ${((chosen - bare) / n).toFixed(1).padStart(6)} bytes per entry\n`);
}

async function timings(n: number): Promise<void> {
  const before = heap();
  const t0 = process.hrtime.bigint();
  const store = fill(n);
  const fillMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const used = heap() - before;
  process.stdout.write(`${n} entries filled in ${fillMs.toFixed(0)} ms; heap ${mib(used)} (${(used / n).toFixed(0)} bytes per entry)\n`);

  const sel = ms(() => store.select('recipientdomain', 'domain7.example', { limit: 100 }));
  process.stdout.write(`select recipientdomain=domain7.example first 100: ${sel.ms.toFixed(2)} ms (${(sel.result as QueueEntry[]).length} entries)\n`);
  const grp = ms(() => store.groupBy('recipientdomain'));
  process.stdout.write(`groupBy recipientdomain: ${grp.ms.toFixed(2)} ms (${(grp.result as Map<string, number>).size} groups)\n`);
  const spring = (e: QueueEntry) => e.metadata.campaign === 'spring';
  const first = ms(() => store.scan(spring, { limit: 100 }));
  process.stdout.write(`scan metadata campaign=spring first 100: ${first.ms.toFixed(2)} ms (${(first.result as QueueEntry[]).length} entries)\n`);
  const last = `user${n - 1}@domain${(n - 1) % 1000}.example`;
  for (const round of ['cold', 'warm']) {
    const r = ms(() => store.select('recipient', last));
    process.stdout.write(`select recipient (scanned, last entry, ${round}): ${r.ms.toFixed(2)} ms (${(r.result as QueueEntry[]).length} entries)\n`);
  }
  for (const round of ['cold', 'warm']) {
    const r = ms(() => store.groupBy('transportid'));
    process.stdout.write(`groupBy transportid (scanned, ${round}): ${r.ms.toFixed(2)} ms (${(r.result as Map<string, number>).size} groups)\n`);
  }

  // A predicate that never matches visits every entry; count the scavenges it causes.
  let scavenges = 0;
  const obs = new PerformanceObserver((list) => {
    for (const x of list.getEntries()) if ((x as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
  });
  obs.observe({ entryTypes: ['gc'] });
  const big = (e: QueueEntry) => e.size > 1e9 || e.retry > 1000;
  store.scan(big); // warm up (optimise the loop)
  await new Promise((r) => setTimeout(r, 50));
  scavenges = 0;
  const full = ms(() => store.scan(big));
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  process.stdout.write(`scan whole queue (no match): ${full.ms.toFixed(2)} ms, ${scavenges} young-generation GCs during it\n`);
  const all = ms(() => store.scan(spring));
  process.stdout.write(`scan metadata campaign=spring, all: ${all.ms.toFixed(2)} ms (${(all.result as QueueEntry[]).length} entries)\n`);
  process.stdout.write(`heap after: ${mib(heap())}\n`);
  if (store.size !== n) process.exit(1);
}

if (process.argv[2] === 'index-cost') indexCost(Number(process.argv[3] ?? 100_000));
else void timings(Number(process.argv[2] ?? 1_000_000));
