/**
 * Spool micro-benchmark: commits of 5 KB bodies (2 recipients) from C concurrent "sessions",
 * each awaiting its commit before the next (like SMTP sessions waiting for the 250), then a
 * restart to time recovery. Prints commits/s, fsyncs, mean batch size, latency percentiles.
 *
 * Usage (not part of the build; tsconfig does not include bench/):
 *   npx esbuild bench/spool-bench.ts --bundle --platform=node --outfile=/tmp/spool-bench.js
 *   node /tmp/spool-bench.js [commits=20000] [concurrency=50] [fsync=1] [dir=os.tmpdir()]
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { openSpool } from '../src/spool/journal';

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 20000);
  const concurrency = Number(process.argv[3] ?? 50);
  const fsync = (process.argv[4] ?? '1') === '1';
  const base = process.argv[5] ?? os.tmpdir();
  const dir = await fsp.mkdtemp(path.join(base, 'halyard-spool-bench-'));
  const opts = { path: dir, fsync, corrupt: 'unlink' as const, minfree: { bytes: 0, inodes: 0 } };
  try {
    const spool = await openSpool(opts);
    await spool.recover(() => undefined);
    const body = Buffer.alloc(5 * 1024, 'x');
    const latencies: number[] = [];
    let issued = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const session = async (): Promise<void> => {
      while (issued < total) {
        issued++;
        const s = performance.now();
        await spool.commit({
          id: randomUUID(),
          meta: { sender: 'bench@example.com', received: Date.now() },
          bodies: [body],
          entries: [{ queue: 1, meta: { rcpt: 'a@example.org', state: 'ACTIVE' } }, { queue: 2, meta: { rcpt: 'b@example.org', state: 'ACTIVE' } }],
        });
        latencies.push(performance.now() - s);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, session));
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const st = spool.stats();
    latencies.sort((a, b) => a - b);
    const pct = (p: number): string => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2);
    console.log(JSON.stringify({
      commits: total, concurrency, fsync,
      commitsPerSec: Math.round(total / secs),
      commitsPerCpuSec: Math.round(total / ((cpu.user + cpu.system) / 1e6)),
      fsyncs: st.fsyncs, meanBatch: st.fsyncs ? +(total / st.fsyncs).toFixed(1) : null,
      fsyncMeanMs: +st.fsyncMeanMs.toFixed(2), fsyncMaxMs: +st.fsyncMaxMs.toFixed(2),
      latencyMs: { p50: pct(0.5), p99: pct(0.99), max: pct(1) },
      bytes: st.bytes, segments: st.segments,
    }));
    await spool.close();

    const again = await openSpool(opts);
    let n = 0;
    const report = await again.recover(() => n++);
    console.log(JSON.stringify({ recovered: n, recoveryMs: Math.round(report.durationMs), rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20) }));
    await again.close();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
