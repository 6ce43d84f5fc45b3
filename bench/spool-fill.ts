/**
 * Fill a spool folder with N queued recipients, fast, for benchmarks that start the daemon on
 * a large queue (bench/queue-million.ts, the `queued` part of bench/suite.ts).
 *
 *   node dist/bench/spool-fill.js <spooldir> <count> [--seed N]
 *
 * Writes through the project's spool API (openSpool + commit, fsync on) exactly what the
 * ingress writes for a received message (transaction meta, body, one encoded entry per
 * recipient), so the daemon loads it like any spool. The folder is created; a folder that
 * already holds spool segments is refused (a benchmark wants a known queue).
 *
 * The queue it makes (deterministic for a seed):
 * - transactions of 1 (60 %), 2 (20 %), 3 (10 %) or 5 (10 %) recipients, ~1.9 on average,
 *   one 1.5–4.5 KB message each; sender `sender<k>@customer<m>.example`, server `default`,
 *   transport `mx` (bench/suite.ts's and queue-million's configs have both);
 * - recipient domains: every 10th recipient is at `big.example` (100,000 of 1,000,000), the
 *   others spread over `d0.example` … `d998.example` with a skew (d0 ≈ 3 % of them, the tail
 *   a few hundred each) — about 1,000 domains in all;
 * - states: 70 % DEFER (retry 1–6, next retry 10 minutes to 6 hours ahead), 25 % ACTIVE,
 *   5 % HOLD; received within the last two days.
 * Output: one JSON line on stdout ({entries, transactions, domains, big, seconds, bytes, …}).
 * Exit codes: 0 done, 2 usage, 1 any failure (message on stderr).
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { openSpool } from '../src/spool/journal';
import { encodeEntry } from '../src/queue/codec';
import { newQueueEntry, type QueueEntry, type QueueState } from '../src/model/types';
import type { Json, Spool } from '../src/spool/types';

export const BIG_DOMAIN = 'big.example';
const OTHER_DOMAINS = 999;
/** Transactions committed together: the journal writes and fsyncs each turn's commits at once. */
const BATCH = 2000;

/** mulberry32: a small seeded PRNG, so two fills with one seed make the same queue. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FILLER = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt\r\n'.repeat(60);

function body(rand: () => number, sender: string, first: string, ts: number, txid: string): Buffer {
  const head = `Received: from client.example ([192.0.2.1]) by mx.bench.example with ESMTP id ${txid}; ${new Date(ts).toUTCString()}\r\n` +
    `From: <${sender}>\r\nTo: <${first}>\r\nSubject: Benchmark message ${txid.slice(0, 8)}\r\nMessage-ID: <${txid}@bench.example>\r\n` +
    `Date: ${new Date(ts).toUTCString()}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n`;
  const size = 1500 + Math.floor(rand() * 3000);
  return Buffer.from(head + FILLER.slice(0, Math.max(0, size - head.length)) + '\r\n', 'latin1');
}

function recipientsIn(rand: () => number): number {
  const r = rand();
  return r < 0.6 ? 1 : r < 0.8 ? 2 : r < 0.9 ? 3 : 5;
}

function domainOf(j: number, rand: () => number): string {
  if (j % 10 === 0) return BIG_DOMAIN;
  // u² leans to small indexes: d0 gets √(1/999) ≈ 3 % of these, d998 ≈ 0.05 %.
  const u = rand();
  return `d${Math.floor(u * u * OTHER_DOMAINS)}.example`;
}

function stateFields(rand: () => number, now: number): Pick<QueueEntry, 'state' | 'retry' | 'retryts'> {
  const r = rand();
  const state: QueueState = r < 0.7 ? 'DEFER' : r < 0.95 ? 'ACTIVE' : 'HOLD';
  if (state !== 'DEFER') return { state, retry: 0, retryts: 0 };
  return { state, retry: 1 + Math.floor(rand() * 6), retryts: now + 600_000 + Math.floor(rand() * 6 * 3_600_000) };
}

interface FillStats {
  entries: number;
  transactions: number;
  big: number;
  domains: Set<string>;
  bytes: number;
}

/** One transaction of `k` recipients starting at global recipient number `j`. */
function transaction(rand: () => number, j: number, k: number, now: number, stats: FillStats) {
  const id = randomUUID();
  const ts = now - Math.floor(rand() * 2 * 86_400_000);
  const who = Math.floor(rand() * 250_000);
  const sender = `sender${who % 5000}@customer${who % 50}.example`;
  const rcpts = Array.from({ length: k }, (_, i) => {
    const domain = domainOf(j + i, rand);
    stats.domains.add(domain);
    if (domain === BIG_DOMAIN) stats.big++;
    return `user${j + i}@${domain}`;
  });
  const message = body(rand, sender, rcpts[0], ts, id);
  stats.bytes += message.length;
  const entries = rcpts.map((recipient, i) =>
    newQueueEntry({ id: { transaction: id, queue: i + 1 }, ts, serverid: 'default', sender, recipient, transportid: 'mx', size: message.length, ...stateFields(rand, now) }));
  const from = { remoteip: '192.0.2.1', remoteport: 40000 + (who % 20000), localip: '127.0.0.1', localport: 25, helo: 'client.example', tls: false };
  return {
    id,
    meta: { ts, serverid: 'default', sender, from } as unknown as Json,
    bodies: [message],
    entries: entries.map((e) => ({ queue: e.id.queue, meta: encodeEntry(e) })),
  };
}

export async function fill(dir: string, count: number, seed = 1): Promise<Omit<FillStats, 'domains'> & { domains: number; seconds: number; fsyncs: number }> {
  if (fs.existsSync(dir) && fs.readdirSync(dir).some((n) => n.endsWith('.hjl'))) throw new Error(`${dir} already holds a spool; give an empty or new folder`);
  const rand = prng(seed);
  const spool: Spool = await openSpool({ path: dir, fsync: true, corrupt: 'rename', minfree: { bytes: 0, inodes: 0 } });
  const stats: FillStats = { entries: 0, transactions: 0, big: 0, domains: new Set(), bytes: 0 };
  const t0 = performance.now();
  const now = Date.now();
  try {
    await spool.recover(() => undefined);
    while (stats.entries < count) {
      const batch: Array<Promise<void>> = [];
      while (batch.length < BATCH && stats.entries < count) {
        const k = Math.min(recipientsIn(rand), count - stats.entries);
        batch.push(spool.commit(transaction(rand, stats.entries, k, now, stats)));
        stats.entries += k;
        stats.transactions++;
      }
      await Promise.all(batch);
    }
  } finally {
    await spool.close();
  }
  const fsyncs = spool.stats().fsyncs;
  return { entries: stats.entries, transactions: stats.transactions, big: stats.big, domains: stats.domains.size, bytes: stats.bytes, seconds: +((performance.now() - t0) / 1000).toFixed(1), fsyncs };
}

async function main(argv: string[]): Promise<number> {
  const seedAt = argv.indexOf('--seed');
  const seed = seedAt >= 0 ? Number(argv[seedAt + 1]) : 1;
  const rest = seedAt >= 0 ? argv.filter((_, i) => i !== seedAt && i !== seedAt + 1) : argv;
  const [dir, n] = rest;
  const count = Number(n);
  if (rest.length !== 2 || !Number.isSafeInteger(count) || count < 1 || !Number.isFinite(seed)) {
    process.stderr.write('usage: node dist/bench/spool-fill.js <spooldir> <count> [--seed N]\n');
    return 2;
  }
  const result = await fill(path.resolve(dir), count, seed);
  process.stdout.write(`${JSON.stringify({ spool: path.resolve(dir), ...result })}\n`);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: Error) => {
      process.stderr.write(`spool-fill: ${err.message}\n`);
      process.exitCode = 1;
    },
  );
}
