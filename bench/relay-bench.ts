/**
 * End-to-end relay throughput: S client sessions submit M messages of a given size to a real
 * halyard-smtpd (fsync on, one new connection per message), which relays them to an SMTP sink
 * on loopback. Prints the submission rate and the relay rate (first submission → last message
 * at the sink). Loopback only; the sink runs in this process.
 *
 *   node dist/bench/relay-bench.js [--messages 5000] [--sessions 50] [--size 5120]
 */
import { payload, sendOne } from './smtp-load';
import { startDaemon, writeConfig, defaultSmtpd } from '../test/e2e/harness';
import { SmtpSink } from '../test/support/smtp-sink';

interface Opts { messages: number; sessions: number; size: number }

function parse(argv: string[]): Opts {
  const o: Opts = { messages: 5000, sessions: 50, size: 5120 };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '') as keyof Opts;
    if (!(k in o)) throw new Error(`unknown option ${argv[i]}`);
    o[k] = Number(argv[i + 1]);
  }
  return o;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const sink = await SmtpSink.start();
  const app = `version: "6.8"
servers:
  - id: default
    transport: out
transportgroups:
  - id: default
    transports:
      - id: out
        connection: { server: 127.0.0.1, port: ${sink.port} }
        session: { tls: { mode: disabled } }
`;
  const cfg = writeConfig({ smtpd: defaultSmtpd(), app, deliver: true });
  const d = await startDaemon(cfg);
  const data = payload(o.size);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: o.sessions }, async () => {
    while (next < o.messages) {
      next++;
      await sendOne(d.port, data);
    }
  }));
  const submitted = performance.now();
  while (sink.transactions.length < o.messages) await new Promise((r) => setTimeout(r, 5));
  const relayed = performance.now();
  const rate = (n: number, ms: number) => ((n / ms) * 1000).toFixed(0);
  process.stdout.write(
    `${o.messages} messages of ${o.size} B over ${o.sessions} sessions, fsync on: ` +
    `submitted in ${(submitted - t0).toFixed(0)} ms (${rate(o.messages, submitted - t0)} msg/s), ` +
    `all at the sink after ${(relayed - t0).toFixed(0)} ms (${rate(o.messages, relayed - t0)} msg/s end to end); ` +
    `sink sessions ${sink.sessions}\n`,
  );
  await d.stop();
  await sink.close();
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
