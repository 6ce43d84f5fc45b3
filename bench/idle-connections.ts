/**
 * Idle SMTP connections: opens N connections to an SMTP server on loopback, reads each greeting
 * and sends EHLO (so every session is past its connect phase, as a real idle client is), then
 * holds them open and idle. Used by the suite (bench/suite.ts) to read the server's memory with
 * 10,000 idle connections; also a stand-alone tool.
 *
 *   node dist/bench/idle-connections.js --port 2525 --connections 10000 [--pid <server pid>] [--hold 10]
 *
 * Output (CLI): one JSON line {opened, failed, seconds, rssBeforeMiB, rssMiB} once every
 * connection is established (RSS read from /proc/<pid>/status when --pid is given), then it holds
 * the connections for --hold seconds and closes them.
 * Inputs/limits: at most `parallel` (default 100) handshakes in flight, so the server's listen
 * backlog is never the limit; each connection needs one file descriptor here and one in the
 * server (raise `ulimit -n` first: bench/run.sh does). Loopback only.
 * Errors: a connection refused, reset, or answered with anything but 220 / 250 counts as failed;
 * the tool never throws on one failed connection.
 */
import fs from 'node:fs';
import net from 'node:net';

export interface IdleOptions {
  port: number;
  host?: string;
  connections: number;
  /** Handshakes in flight at once. */
  parallel?: number;
  /** Give up on one handshake after this long. */
  timeoutMs?: number;
}

export interface IdleHold {
  opened: number;
  failed: number;
  seconds: number;
  /** First few failure reasons, for the report. */
  errors: string[];
  close(): Promise<void>;
}

/** Resident set size of a process in MiB (Linux /proc), or NaN when it cannot be read. */
export function rssMiB(pid: number): number {
  return procStatusMiB(pid, 'VmRSS');
}

/** Peak resident set size of a process in MiB (VmHWM), or NaN. */
export function peakRssMiB(pid: number): number {
  return procStatusMiB(pid, 'VmHWM');
}

function procStatusMiB(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** One connection: greeting, EHLO, then idle. Resolves with the socket, rejects on failure. */
function openOne(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let buf = '';
    let step = 0; // 0: waiting for 220, 1: waiting for the EHLO reply
    const fail = (why: string): void => {
      clearTimeout(timer);
      s.destroy();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail('timeout'), timeoutMs);
    s.setEncoding('latin1');
    s.on('error', (err) => fail(err.message));
    s.on('close', () => fail('closed by the server'));
    const onData = (d: string): void => {
      buf += d;
      // A complete reply ends with a line "ddd " (the last line of a multi-line reply).
      const m = /(?:^|\n)(\d{3}) [^\n]*\n$/.exec(buf);
      if (!m) return;
      buf = '';
      if (step === 0) {
        if (m[1] !== '220') return fail(`greeting ${m[1]}`);
        step = 1;
        s.write('EHLO idle.bench.local\r\n');
        return;
      }
      if (m[1] !== '250') return fail(`EHLO answered ${m[1]}`);
      clearTimeout(timer);
      s.removeListener('data', onData);
      s.removeAllListeners('close');
      s.removeAllListeners('error');
      s.on('error', () => undefined); // the server may time the idle session out later
      resolve(s);
    };
    s.on('data', onData);
  });
}

/** Open `connections` idle sessions; resolves once every one is established or has failed. */
export async function holdIdle(o: IdleOptions): Promise<IdleHold> {
  const host = o.host ?? '127.0.0.1';
  if (!/^127\.|^::1$|^localhost$/.test(host)) throw new Error('loopback only');
  const parallel = Math.max(1, o.parallel ?? 100);
  const timeoutMs = o.timeoutMs ?? 10_000;
  const sockets: net.Socket[] = [];
  const errors: string[] = [];
  let failed = 0;
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < o.connections) {
      next++;
      try {
        sockets.push(await openOne(host, o.port, timeoutMs));
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, o.connections) }, worker));
  const seconds = (performance.now() - t0) / 1000;
  return {
    opened: sockets.length,
    failed,
    seconds,
    errors,
    close: async () => {
      await Promise.all(sockets.map((s) => new Promise<void>((resolve) => {
        if (s.destroyed) return resolve();
        s.once('close', () => resolve());
        s.destroy();
      })));
      sockets.length = 0;
    },
  };
}

function parse(argv: string[]): { port: number; connections: number; pid: number; hold: number } {
  const o = { port: 2525, connections: 10_000, pid: 0, hold: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '') as keyof typeof o;
    if (!(k in o)) throw new Error(`unknown option ${argv[i]}`);
    o[k] = Number(argv[i + 1]);
  }
  return o;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const before = o.pid ? rssMiB(o.pid) : NaN;
  const h = await holdIdle({ port: o.port, connections: o.connections });
  await new Promise((r) => setTimeout(r, 1000)); // let the server settle after the last handshake
  const after = o.pid ? rssMiB(o.pid) : NaN;
  console.log(JSON.stringify({ opened: h.opened, failed: h.failed, errors: h.errors, seconds: Number(h.seconds.toFixed(2)), rssBeforeMiB: Math.round(before), rssMiB: Math.round(after) }));
  if (o.hold > 0) await new Promise((r) => setTimeout(r, o.hold * 1000));
  await h.close();
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  });
}
