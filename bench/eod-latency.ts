/**
 * Measures the time from the end of DATA (the client's CRLF.CRLF) to the server's 250 reply,
 * over S concurrent sessions with a new connection per message, optionally paced to a target
 * rate. Prints throughput and latency percentiles. Loopback only.
 *
 *   node dist/bench/eod-latency.js --port 2525 --messages 5000 --sessions 50 --size 5120 [--rate 1000]
 */
import { payload, sendOne } from './smtp-load';

interface Opts { host: string; port: number; messages: number; sessions: number; size: number; rate: number }

function parse(argv: string[]): Opts {
  const o: Opts = { host: '127.0.0.1', port: 2525, messages: 5000, sessions: 50, size: 5120, rate: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '') as keyof Opts;
    if (!(k in o)) throw new Error(`unknown option ${argv[i]}`);
    (o as unknown as Record<string, string | number>)[k] = k === 'host' ? argv[i + 1] : Number(argv[i + 1]);
  }
  if (!/^127\.|^::1$|^localhost$/.test(o.host)) throw new Error('loopback only');
  return o;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const data = payload(o.size);
  const lat: number[] = [];
  let next = 0;
  let errors = 0;
  const start = process.hrtime.bigint();
  const interval = o.rate > 0 ? 1000 / o.rate : 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= o.messages) return;
      if (interval) {
        const due = Number(start / 1_000_000n) + i * interval;
        const wait = due - Number(process.hrtime.bigint() / 1_000_000n);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      try {
        lat.push(await sendOne(o.port, data, o.host));
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: o.sessions }, worker));
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  lat.sort((a, b) => a - b);
  const pct = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))].toFixed(2) : 'n/a');
  console.log(JSON.stringify({ messages: lat.length, errors, seconds: Number(secs.toFixed(2)), rate: Math.round(lat.length / secs), p50_ms: pct(50), p90_ms: pct(90), p99_ms: pct(99), max_ms: pct(100) }));
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
