/**
 * /metrics scrape time (issue #6): K sequential `GET /metrics` against a running daemon's
 * monitor (fill its queue first, e.g. with bench/http-submission.ts and deliveries suspended).
 *
 * Usage: node dist/bench/metrics-scrape.js [--port 9090] [--host 127.0.0.1] [--scrapes 50]
 *          [--key <monitor api key>] [--min-queued 0]
 * Output: one JSON line {scrapes, queued, bytes, series, p50_ms, p99_ms, max_ms, mean_ms,
 *   fsyncs, fsync_mean_ms, fsync_max_ms} (the last three: the daemon's spool figures since start);
 *   `queued` is the sum of the queue size gauges read from the last scrape, `bytes` its size,
 *   `series` its sample lines. Latency = request start → whole body (a fresh connection each
 *   time, as a Prometheus scraper without keep-alive would do).
 * Errors: exit 1 on any non-200 answer, or when fewer than --min-queued entries are queued.
 * Loopback only.
 */
import http from 'node:http';

interface Args {
  host: string;
  port: number;
  scrapes: number;
  key?: string;
  minQueued: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { host: '127.0.0.1', port: 9090, scrapes: 50, minQueued: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--host': a.host = v; break;
      case '--port': a.port = Number(v); break;
      case '--scrapes': a.scrapes = Number(v); break;
      case '--key': a.key = v; break;
      case '--min-queued': a.minQueued = Number(v); break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!/^127\.|^::1$|^localhost$/.test(a.host)) throw new Error('loopback only');
  return a;
}

function scrape(a: Args): Promise<{ status: number; body: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const headers: Record<string, string> = { Accept: 'application/openmetrics-text; version=1.0.0' };
    if (a.key) headers['X-API-Key'] = a.key;
    const req = http.get({ host: a.host, port: a.port, path: '/metrics', agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

const QUEUE_GAUGES = ['halon_queue_queue_active_size', 'halon_queue_queue_defer_size', 'halon_queue_freeze_hold_size', 'halon_queue_freeze_update_size'];

/** Sum of the per-state queue size gauges in one scrape. */
export function queuedIn(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) {
    const [name, value] = line.split(' ');
    if (QUEUE_GAUGES.includes(name)) n += Number(value);
  }
  return n;
}

/** Spool fsync figures of one scrape (the grouped commit's cost shows here). */
export function fsyncIn(text: string): { fsyncs: number; fsync_mean_ms: number; fsync_max_ms: number } {
  const value = (name: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.split(' ')[1]) : NaN;
  };
  return {
    fsyncs: value('halon_spool_fsyncs_total'),
    fsync_mean_ms: Math.round(value('halon_spool_fsync_latency_mean_seconds') * 1e5) / 100,
    fsync_max_ms: Math.round(value('halon_spool_fsync_latency_max_seconds') * 1e5) / 100,
  };
}

const round = (x: number): number => Math.round(x * 100) / 100;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const times: number[] = [];
  let last = '';
  for (let i = 0; i < a.scrapes; i++) {
    const r = await scrape(a);
    if (r.status !== 200) throw new Error(`scrape ${i} answered ${r.status}: ${r.body.slice(0, 200)}`);
    times.push(r.ms);
    last = r.body;
  }
  const queued = queuedIn(last);
  const sorted = [...times].sort((x, y) => x - y);
  const out = {
    scrapes: a.scrapes,
    queued,
    bytes: Buffer.byteLength(last),
    series: last.split('\n').filter((l) => l && !l.startsWith('#')).length,
    p50_ms: round(pct(sorted, 50)),
    p99_ms: round(pct(sorted, 99)),
    max_ms: round(sorted[sorted.length - 1]),
    mean_ms: round(times.reduce((s, x) => s + x, 0) / times.length),
    ...fsyncIn(last),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  if (queued < a.minQueued) {
    process.stderr.write(`metrics-scrape: only ${queued} entries queued, expected at least ${a.minQueued}\n`);
    process.exitCode = 1;
  }
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`metrics-scrape: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
