/**
 * The queue commands with 1,000,000 queued entries, through the RUNNING daemon (issue #5):
 * fill a spool (bench/spool-fill.ts), start halyard-smtpd on it with every pickup suspended
 * (`smtpd-suspend.yaml`: `suspends: [{}]`, so nothing is delivered), and time requests on its
 * control socket:
 *  - the first page (100) of a filtered list: DEFER entries of one mid-sized domain (target
 *    < 300 ms), and of a condition no index can answer (retrycount >= 3, a full scan);
 *  - a group-by by recipient domain (target < 1 s);
 *  - a hold of big.example's 100,000 entries, every change written to the journal with fsync
 *    (target < 2 s): the first after start-up (it also pays for the first full collection of
 *    the spool load's garbage), then three release/hold cycles (the command alone).
 * One list is sent as soon as the control socket answers (the queue's field indexes are still
 * being built: it scans), then the bench waits for /ready (monitor on 127.0.0.1:9090).
 * Each read request then runs 5 times (the median counts; the first shows a cold run). For the
 * changes the daemon's CPU time is shown too (from /proc: every thread, GC helpers included),
 * which tells the command's cost apart from waiting for a CPU on a busy machine. Times are from sending the request to the whole reply read, over the Unix socket with
 * Halyard's client; `halyardctl` itself (a new node process) is timed once for comparison.
 *
 *   npm run build && node dist/bench/queue-million.js [--entries N] [--work DIR] [--keep]
 *                                                     [--reuse] [--cpu-prof DIR]
 *
 * `--cpu-prof DIR` runs the daemon with node's --cpu-prof (one .cpuprofile per run, written at
 * shutdown). The work folder (default /tmp/halyard-queue-million) is removed unless --keep;
 * `--reuse` starts on the spool a previous `--keep` run left (no fill: quicker when profiling,
 * though that run's hold and release have been written to it).
 * Output: a Markdown table (figure, target, median, runs, result) and the fill/start figures.
 * Not a test: nothing is asserted; exit 1 only when a step could not run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ControlClient } from '../src/control/client';
import { COMMANDS, type CommandName } from '../src/control/commands';
import { decodeMessage, encodeMessage } from '../src/control/schema';
import type * as M from '../src/control/messages';
import { BIG_DOMAIN } from './spool-fill';

const ROOT = path.resolve(__dirname, '../..');
/** The suite's monitor port (bench/suite.ts): /ready tells when the queue's indexes are built. */
const MONITOR_PORT = 9090;

interface Options {
  entries: number;
  work: string;
  keep: boolean;
  reuse: boolean;
  cpuProf?: string;
}

function options(argv: string[]): Options {
  const o: Options = { entries: 1_000_000, work: '/tmp/halyard-queue-million', keep: false, reuse: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--entries') o.entries = Number(argv[++i]);
    else if (a === '--work') o.work = path.resolve(argv[++i]);
    else if (a === '--keep') o.keep = true;
    else if (a === '--reuse') o.reuse = true;
    else if (a === '--cpu-prof') o.cpuProf = path.resolve(argv[++i]);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isSafeInteger(o.entries) || o.entries < 10) throw new Error('--entries takes a whole number of at least 10');
  return o;
}

function writeConfig(work: string): string {
  fs.writeFileSync(path.join(work, 'smtpd-app.yaml'), `version: "6.8"
servers:
  - id: default
    transport: mx
transportgroups:
  - id: default
    transports:
      - id: mx
`);
  fs.writeFileSync(path.join(work, 'smtpd-suspend.yaml'), 'suspends:\n  - {}\n');
  fs.writeFileSync(path.join(work, 'smtpd.yaml'), `version: "6.8"
servers:
  - id: default
    listeners:
      - port: 0
        address: 127.0.0.1
environment:
  appconf: smtpd-app.yaml
  suspendconf: smtpd-suspend.yaml
  hostname: mx.bench.example
  controlsocket:
    path: smtpd.ctl
spool:
  path: spool
  fsync: true
monitor:
  listener:
    port: ${MONITOR_PORT}
    address: 127.0.0.1
`);
  return path.join(work, 'smtpd.yaml');
}

async function startDaemon(o: Options, config: string): Promise<{ child: ChildProcess; readyMs: number }> {
  const args = [...(o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf] : []), path.join(ROOT, 'bin', 'halyard-smtpd'), '-c', config];
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd: o.work, env: { ...process.env, HALYARD_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] });
  const socket = path.join(o.work, 'smtpd.ctl');
  const deadline = t0 + 300_000;
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the daemon exited (${child.exitCode}) while starting`);
    try {
      const c = await ControlClient.connect({ path: socket }, { timeoutMs: 2000 });
      const r = await c.request('q');
      c.close();
      if (r.status === '+') return { child, readyMs: performance.now() - t0 };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error('the daemon did not answer on its control socket within 300 s');
}

/** Wait for /ready 200 on the monitor listener; milliseconds waited. */
async function waitReady(timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    const status = await new Promise<number>((resolve) => {
      http.get({ host: '127.0.0.1', port: MONITOR_PORT, path: '/ready' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', () => resolve(0));
    });
    if (status === 200) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no /ready 200 within ${timeoutMs / 1000} s`);
}

async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await exited;
  clearTimeout(t);
}

/** CPU time of a process so far (user + system, every thread), ms; Linux clock ticks of 10 ms. */
function cpuMs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

/** One request; its time (ms) and decoded reply. */
async function timed<K extends CommandName>(client: ControlClient, name: K, req: object): Promise<{ ms: number; reply: Record<string, unknown> }> {
  const info = COMMANDS[name] as { letter: string; request?: string; response?: string };
  const body = info.request ? encodeMessage(info.request, req) : undefined;
  const t = performance.now();
  const r = await client.request(info.letter, body);
  const ms = performance.now() - t;
  if (r.status !== '+') throw new Error(`${name}: ${r.payload.toString()}`);
  return { ms, reply: info.response ? decodeMessage(info.response, r.payload) : {} };
}

interface Row {
  figure: string;
  target?: number;
  runs: number[];
  /** The daemon's CPU time per run (ms), where measured. */
  cpu?: number[];
  note: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function table(rows: Row[]): string {
  const lines = ['| Figure | Target | Median | Runs (ms) | Daemon CPU (ms) | Result | Note |', '|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const m = median(r.runs);
    const result = r.target === undefined ? '–' : m < r.target ? 'PASS' : 'FAIL';
    lines.push(`| ${r.figure} | ${r.target === undefined ? '–' : `< ${r.target} ms`} | ${m.toFixed(1)} ms | ${r.runs.map((x) => x.toFixed(1)).join(', ')} | ${r.cpu ? r.cpu.join(', ') : '–'} | ${result} | ${r.note} |`);
  }
  return lines.join('\n');
}

async function repeat(client: ControlClient, name: CommandName, req: object, n: number): Promise<{ runs: number[]; reply: Record<string, unknown> }> {
  const runs: number[] = [];
  let reply: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const r = await timed(client, name, req);
    runs.push(r.ms);
    reply = r.reply;
  }
  return { runs, reply };
}

function cliTime(config: string, args: string[]): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'halyardctl'), '-c', config, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`halyardctl ${args.join(' ')}: ${r.stderr}`);
  return performance.now() - t;
}

async function measure(o: Options, config: string, pid: number): Promise<Row[]> {
  const client = await ControlClient.connect({ path: path.join(o.work, 'smtpd.ctl') }, { timeoutMs: 120_000 });
  try {
    const rows: Row[] = [];
    const domain = 'd7.example';
    const listReq = { conditions: { recipients: [{ domain: { value: domain } }], queues: [{ queue: 'DEFER' }] }, paging: { limit: 100 } } satisfies M.QueueListRequest;
    // The control socket answers from the end of recovery; /ready also waits for the field
    // indexes (docs/decisions.md B4), and a list before then scans the queue instead.
    const early = await timed(client, 'queueList', listReq);
    const readyAfter = await waitReady(120_000);
    rows.push({ figure: `list, first page: DEFER at ${domain}, before /ready`, target: 300, runs: [early.ms], note: `as soon as the control socket answered, while the indexes were built (a scan); /ready ${(readyAfter / 1000).toFixed(1)} s later` });
    const page = await repeat(client, 'queueList', listReq, 5);
    rows.push({ figure: `list, first page: DEFER at ${domain}`, target: 300, runs: page.runs, note: `100 of ${(page.reply.paging as { total?: number })?.total} matches (recipient-domain index)` });
    const scan = await repeat(client, 'queueList', { conditions: { retrycounts: [{ gte: { value: 3 } }] }, paging: { limit: 100 } } satisfies M.QueueListRequest, 5);
    rows.push({ figure: 'list, first page: retrycount >= 3', target: 300, runs: scan.runs, note: `100 of ${(scan.reply.paging as { total?: number })?.total} matches (full scan, no index)` });
    const groups = await repeat(client, 'queueGroupBy', { groupbys: [{ recipientdomain: true }] } satisfies M.QueueGroupByRequest, 5);
    rows.push({ figure: 'group-by recipientdomain', target: 1000, runs: groups.runs, note: `${(groups.reply.paging as { total?: number })?.total} groups` });
    const rssBefore = rssMiB(pid);
    const holdReq = { conditions: { recipients: [{ domain: { value: BIG_DOMAIN } }] }, move: { freeze: 'HOLD' } } satisfies M.QueueUpdateRequest;
    const releaseReq = { conditions: { recipients: [{ domain: { value: BIG_DOMAIN } }], freezes: [{ freeze: 'HOLD' }] }, move: { queue: 'ACTIVE' } } satisfies M.QueueUpdateRequest;
    // The first hold also pays for the first full collection after start-up (the garbage the
    // spool load left); three more release/hold cycles show the command alone.
    const change = async (req: M.QueueUpdateRequest, ms: number[], cpu: number[]): Promise<number> => {
      const c = cpuMs(pid);
      const r = await timed(client, 'queueUpdate', req);
      ms.push(r.ms);
      cpu.push(cpuMs(pid) - c);
      return Number(r.reply.affected);
    };
    const first = { ms: [] as number[], cpu: [] as number[] };
    const affected = await change(holdReq, first.ms, first.cpu);
    rows.push({ figure: `hold ${BIG_DOMAIN}, first after start`, target: 2000, runs: first.ms, cpu: first.cpu, note: `${affected} entries written to the journal (fsync on)` });
    const holds = { ms: [] as number[], cpu: [] as number[] };
    const releases = { ms: [] as number[], cpu: [] as number[] };
    let released = 0;
    for (let i = 0; i < 3; i++) {
      released = await change(releaseReq, releases.ms, releases.cpu);
      await change(holdReq, holds.ms, holds.cpu);
    }
    rows.push({ figure: `hold ${BIG_DOMAIN}`, target: 2000, runs: holds.ms, cpu: holds.cpu, note: `${affected} entries each time, after a release` });
    rows.push({ figure: `release ${BIG_DOMAIN} to ACTIVE`, runs: releases.ms, cpu: releases.cpu, note: `${released} entries (suspended: none is delivered)` });
    await timed(client, 'queueUpdate', releaseReq);
    rows.push({ figure: 'halyardctl queue list (new process)', runs: [cliTime(config, ['queue', 'list', '--recipientdomain', domain, '--state', 'DEFER', '--limit', '100'])], note: 'node start-up included' });
    process.stderr.write(`RSS before the hold ${rssBefore} MiB, after ${rssMiB(pid)} MiB\n`);
    return rows;
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  if (!o.reuse) fs.rmSync(o.work, { recursive: true, force: true });
  fs.mkdirSync(o.work, { recursive: true });
  if (o.cpuProf) fs.mkdirSync(o.cpuProf, { recursive: true });
  const config = writeConfig(o.work);
  if (!o.reuse) {
    const fillT = performance.now();
    const filled = spawnSync(process.execPath, [path.join(__dirname, 'spool-fill.js'), path.join(o.work, 'spool'), String(o.entries)], { encoding: 'utf8' });
    if (filled.status !== 0) throw new Error(`spool-fill failed: ${filled.stderr}`);
    process.stdout.write(`filled: ${filled.stdout.trim()} (${((performance.now() - fillT) / 1000).toFixed(1)} s)\n`);
  }
  const { child, readyMs } = await startDaemon(o, config);
  try {
    process.stdout.write(`daemon answering on its control socket ${(readyMs / 1000).toFixed(1)} s after spawn; RSS ${rssMiB(child.pid!)} MiB\n\n`);
    const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
    const before = load();
    const rows = await measure(o, config, child.pid!);
    process.stdout.write(`${table(rows)}\n\nload average (1/5/15 min) ${before} before, ${load()} after (${os.cpus().length} CPUs)\n`);
  } finally {
    await stopDaemon(child);
    if (!o.keep) fs.rmSync(o.work, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`queue-million: ${err.message}\n`);
  process.exitCode = 1;
});
