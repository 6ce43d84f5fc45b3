/**
 * HTTP submission load generator (issue #6): N `POST /v1/submission` requests over C
 * keep-alive connections (node:http Agent, keepAlive, maxSockets = C), each a
 * multipart/form-data body with an `options` JSON part and an `rfc822` part of SIZE bytes.
 *
 * Usage: node dist/bench/http-submission.js [--port 8025] [--host 127.0.0.1]
 *          [--requests 10000] [--concurrency 50] [--size 5120] [--key bench-submission-key]
 * Output: one JSON line {requests, concurrency, size, seconds, rps, errors, statuses,
 *   sockets, p50_ms, p90_ms, p99_ms, max_ms}; `sockets` is the number of TCP connections the
 *   agent opened (= concurrency when keep-alive held). Latency = request start → whole answer.
 * Errors: any status other than 200 or a socket error counts as an error (the first few are
 * printed to stderr); the exit code is 1 when any request failed. Loopback only.
 */
import http from 'node:http';

interface Args {
  host: string;
  port: number;
  requests: number;
  concurrency: number;
  size: number;
  key: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { host: '127.0.0.1', port: 8025, requests: 10_000, concurrency: 50, size: 5120, key: 'bench-submission-key' };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--host': a.host = v; break;
      case '--port': a.port = Number(v); break;
      case '--requests': a.requests = Number(v); break;
      case '--concurrency': a.concurrency = Number(v); break;
      case '--size': a.size = Number(v); break;
      case '--key': a.key = v; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!/^127\.|^::1$|^localhost$/.test(a.host)) throw new Error('loopback only');
  return a;
}

/** A message of exactly `size` bytes with CRLF lines (no SMTP dot-termination). */
export function message(size: number): Buffer {
  let s = 'From: bench@example.com\r\nTo: rcpt@example.org\r\nSubject: bench\r\n\r\n';
  while (s.length < size) s += 'x'.repeat(76) + '\r\n';
  return Buffer.from(s.slice(0, size - 2) + '\r\n');
}

/** The multipart/form-data body (RFC 7578): `options` JSON, then `rfc822`. */
export function multipart(size: number): { body: Buffer; type: string } {
  const boundary = '----halyard-bench-boundary-7d1f';
  const options = JSON.stringify({ sender: { localpart: 'bench', domain: 'example.com' }, recipients: [{ localpart: 'rcpt', domain: 'example.org' }], metadata: { bench: '1' } });
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="options"; filename="options.json"\r\nContent-Type: application/json\r\n\r\n${options}\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="rfc822"; filename="message.eml"\r\nContent-Type: message/rfc822\r\n\r\n`),
    message(size),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

function post(agent: http.Agent, a: Args, body: Buffer, type: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent, host: a.host, port: a.port, method: 'POST', path: '/v1/submission', headers: { 'X-API-Key': a.key, 'Content-Type': type, 'Content-Length': body.length } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const round = (x: number): number => Math.round(x * 100) / 100;

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const agent = new http.Agent({ keepAlive: true, maxSockets: a.concurrency });
  let sockets = 0;
  const origCreate = agent.createConnection.bind(agent);
  agent.createConnection = ((...args: Parameters<typeof origCreate>) => {
    sockets++;
    return origCreate(...args);
  }) as typeof agent.createConnection;
  const { body, type } = multipart(a.size);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < a.requests) {
      next++;
      const t0 = process.hrtime.bigint();
      try {
        const r = await post(agent, a, body, type);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        if (r.status !== 200) {
          if (errors < 3) process.stderr.write(`status ${r.status}: ${r.text.slice(0, 200)}\n`);
          errors++;
        }
      } catch (err) {
        if (errors < 3) process.stderr.write(`request failed: ${(err as Error).message}\n`);
        statuses.socket = (statuses.socket ?? 0) + 1;
        errors++;
      }
    }
  };
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: a.concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  latencies.sort((x, y) => x - y);
  const out = {
    requests: a.requests,
    concurrency: a.concurrency,
    size: a.size,
    seconds: round(seconds),
    rps: Math.round(a.requests / seconds),
    errors,
    statuses,
    sockets,
    p50_ms: round(percentile(latencies, 50)),
    p90_ms: round(percentile(latencies, 90)),
    p99_ms: round(percentile(latencies, 99)),
    max_ms: round(latencies[latencies.length - 1] ?? 0),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  if (errors > 0) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`http-submission: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
