/**
 * The benchmark suite of issue #7: runs every performance figure against halyard-smtpd (and
 * Postfix 3.7 where the issue compares with it) and prints ONE table — figure, target,
 * Halyard, Postfix, ratio, result — plus the details behind each figure.
 *
 *   npm run bench                       # bench/run.sh: build, peers, ulimit -n, then this
 *   npm run bench -- --quick            # small counts: a smoke test, not a measurement
 *   node dist/bench/suite.js [--quick] [--only ceiling,relay,postfix,latency,idle,http,queued,receive]
 *                            [--profile <dir>] [--work /tmp/halyard-suite] [--shared ../shared]
 *
 * Parts (5 KB messages, 50 sessions, a new connection per message, fsync on, loopback only;
 * each part starts its own daemon on a fresh spool and is bounded in time):
 *  - ceiling: smtp-source straight into smtp-sink, no MTA: how fast the harness itself is in
 *             this run (an information row; the VM's speed moves by minutes).
 *  - relay:   smtp-source → Halyard → smtp-sink with ../shared/bench/relay-bench.sh: ingest
 *             msg/s (until every 250) and end to end msg/s (until the spool is empty), after
 *             an unmeasured warm-up pass of the same kind (20,000 messages, queue empty again).
 *  - postfix: the same against Postfix 3.7 (../shared/bench/peer-postfix.sh), same run, same
 *             warm-up.
 *  - latency: bench/eod-latency.ts paced at half of Halyard's ingest rate from `relay`
 *             (or of a full-speed eod-latency pass when `relay` did not run): p99 EOD → 250,
 *             after the relay part's warm-up pass and 1,000 paced messages, not counted.
 *  - idle:    bench/idle-connections.ts holds 10,000 sessions (greeting + EHLO) open; the
 *             daemon's RSS from /proc.
 *  - http:    bench/http-submission.ts with bench/config-http/ (keep-alive, 50 connections),
 *             after a warm-up pass.
 *  - queued:  bench/spool-fill.ts fills a spool with 1,000,000 recipients; the daemon starts on
 *             it with every entry suspended: spawn → /ready 200 time, RSS once ready.
 *  - receive: ingest with every entry suspended, nothing delivered — the SMTP receive path
 *             alone (an information row: where the ingest figure's CPU goes).
 * The smtp-source figures (ceiling, relay, postfix, receive) are the median of 3 measured passes
 * (10,000 messages each) on the same warm MTA, and the restart time the median of 3 starts on
 * the same spool (its memory the largest of them): on this shared VM a single pass says which
 * minute it ran in (B16). Every pass is listed in the details.
 * The relay and receive rows also give the daemon's CPU time per message (from /proc): on a
 * shared machine it moves much less than the rates do.
 * Outputs: the table on stdout (Markdown, so it can be pasted into BENCHMARKS.md), the
 * daemons' logs and profiles under the work folder. Exit code 0 when every part ran (whatever
 * the results), 1 when a part could not run or failed outright.
 * Invariants: every child process is started here and ended here by its pid (process group
 * for the shell scripts); Postfix is stopped again only when this run started it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { holdIdle, peakRssMiB, rssMiB } from './idle-connections';

// ---------------------------------------------------------------------------------------------
// Options and sizes

type PartName = 'ceiling' | 'relay' | 'postfix' | 'latency' | 'idle' | 'http' | 'queued' | 'receive';
const ALL_PARTS: PartName[] = ['ceiling', 'relay', 'postfix', 'latency', 'idle', 'http', 'queued', 'receive'];

interface Sizes {
  messages: number;
  /** Messages of the unmeasured pass before each smtp-source measurement (every MTA gets one). */
  relayWarmup: number;
  latencyMessages: number;
  latencyWarmup: number;
  idle: number;
  httpRequests: number;
  httpWarmup: number;
  queued: number;
  /**
   * Measured passes of each smtp-source figure (ceiling, relay, Postfix, receive) and starts on
   * the 1,000,000-entry spool; the table gives the median (B16).
   */
  passes: number;
  /** Seconds each part may take before it is stopped. */
  relayTimeout: number;
  partTimeout: number;
  fillTimeout: number;
}

const FULL: Sizes = { messages: 10_000, relayWarmup: 20_000, latencyMessages: 10_000, latencyWarmup: 1_000, idle: 10_000, httpRequests: 10_000, httpWarmup: 2_000, queued: 1_000_000, passes: 3, relayTimeout: 300, partTimeout: 180, fillTimeout: 1_200 };
const QUICK: Sizes = { messages: 1_000, relayWarmup: 200, latencyMessages: 1_000, latencyWarmup: 200, idle: 1_000, httpRequests: 1_000, httpWarmup: 200, queued: 20_000, passes: 1, relayTimeout: 60, partTimeout: 60, fillTimeout: 120 };

const SESSIONS = 50;
const SIZE = 5120;
const PORTS = { smtp: 2525, sink: 2526, postfix: 2600, monitor: 9090 } as const;
const ROOT = path.resolve(__dirname, '..', '..');

interface Options {
  quick: boolean;
  parts: PartName[];
  profile: string | null;
  work: string;
  shared: string;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { quick: false, parts: ALL_PARTS, profile: null, work: '/tmp/halyard-suite', shared: path.resolve(ROOT, '..', 'shared') };
  for (let i = 0; i < argv.length; i++) {
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${argv[i - 1]} needs a value`);
      return v;
    };
    switch (argv[i]) {
      case '--quick': o.quick = true; break;
      case '--only': o.parts = value().split(',').map(partName); break;
      case '--profile': o.profile = path.resolve(value()); break;
      case '--work': o.work = path.resolve(value()); break;
      case '--shared': o.shared = path.resolve(value()); break;
      default: throw new Error(`unknown option ${argv[i]}`);
    }
  }
  return o;
}

function partName(s: string): PartName {
  const p = ALL_PARTS.find((x) => x === s.trim());
  if (!p) throw new Error(`unknown part "${s}" (parts: ${ALL_PARTS.join(', ')})`);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and ended by its pid

const children = new Set<ChildProcess>();

function endChild(c: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return;
  try {
    process.kill(-c.pid, signal); // detached: the child leads its own process group
  } catch {
    try { c.kill(signal); } catch { /* already gone */ }
  }
}

function endAll(): void {
  for (const c of children) endChild(c, 'SIGKILL');
}

interface RunResult { code: number | null; stdout: string; stderr: string; timedOut: boolean; ms: number }

/** Run a command to completion, bounded by `timeoutS`; its output is collected. */
function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutS: number }): Promise<RunResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const c = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...opts.env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(c);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    c.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      endChild(c, 'SIGKILL');
    }, opts.timeoutS * 1000);
    c.on('error', (err) => (stderr += err.message));
    c.on('close', (code) => {
      clearTimeout(timer);
      children.delete(c);
      resolve({ code, stdout, stderr, timedOut, ms: performance.now() - t0 });
    });
  });
}

function sh(command: string): { ok: boolean; out: string } {
  const r = spawnSync('bash', ['-c', command], { cwd: ROOT, encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The daemon under test

interface DaemonConfig {
  name: string;
  spool: string;
  /** Suspend every entry: nothing is delivered. */
  suspend: boolean;
}

/** Write smtpd.yaml + smtpd-app.yaml (+ suspend file) for one part; returns the smtpd.yaml path. */
function writeConfig(dir: string, c: DaemonConfig): string {
  fs.mkdirSync(dir, { recursive: true });
  const app = `# Written by bench/suite.ts. concurrency.total is above the 10,000 idle connections.
version: "6.8"
servers:
  - id: default
    transport: mx
    concurrency:
      total: 20000
transportgroups:
  - id: default
    transports:
      - id: mx
        connection:
          server: 127.0.0.1
          port: ${PORTS.sink}
`;
  const smtpd = `# Written by bench/suite.ts: fsync on, log level from HALYARD_LOG_LEVEL (warn).
version: "6.8"
servers:
  - id: default
    listeners:
      - port: ${PORTS.smtp}
        address: 127.0.0.1
        backlog: 1024
environment:
  appconf: smtpd-app.yaml
${c.suspend ? '  suspendconf: smtpd-suspend.yaml\n' : ''}spool:
  path: ${c.spool}
  fsync: true
monitor:
  listener:
    port: ${PORTS.monitor}
    address: 127.0.0.1
`;
  fs.writeFileSync(path.join(dir, 'smtpd-app.yaml'), app);
  fs.writeFileSync(path.join(dir, 'smtpd.yaml'), smtpd);
  if (c.suspend) fs.writeFileSync(path.join(dir, 'smtpd-suspend.yaml'), 'suspends:\n  - {}\n');
  return path.join(dir, 'smtpd.yaml');
}

class Daemon {
  private child: ChildProcess | null = null;
  private started = 0;
  readonly log: string;

  constructor(private readonly config: string, private readonly o: Options, name: string) {
    this.log = path.join(o.work, `${name}.log`);
  }

  get pid(): number {
    return this.child?.pid ?? 0;
  }

  start(): void {
    const prof = this.o.profile ? ['--cpu-prof', '--cpu-prof-dir', this.o.profile] : [];
    const out = fs.openSync(this.log, 'w');
    this.started = performance.now();
    this.child = spawn(process.execPath, [...prof, 'bin/halyard-smtpd', '-c', this.config], {
      cwd: ROOT, env: { ...process.env, HALYARD_LOG_LEVEL: process.env.HALYARD_LOG_LEVEL ?? 'warn' }, detached: true, stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    children.add(this.child);
  }

  /** Milliseconds from spawn to the first /ready 200; throws after `timeoutS` or if it exits. */
  async ready(timeoutS: number, port: number = PORTS.monitor): Promise<number> {
    const until = performance.now() + timeoutS * 1000;
    while (performance.now() < until) {
      if (!this.alive()) throw new Error(`daemon exited: ${tail(this.log)}`);
      if ((await httpStatus(port, '/ready')) === 200) return performance.now() - this.started;
      await sleep(50);
    }
    throw new Error(`daemon not ready after ${timeoutS} s`);
  }

  alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM, wait (bounded: the profile is written on a clean exit), then SIGKILL. */
  async stop(graceS = 30): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.child = null;
    const exited = new Promise<void>((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve())));
    endChild(c, 'SIGTERM');
    await Promise.race([exited, sleep(graceS * 1000)]);
    endChild(c, 'SIGKILL');
    await exited;
    children.delete(c);
  }
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}

async function httpStatus(port: number, p: string): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

async function metric(port: number, name: string): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) });
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(await res.text());
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds used so far by a process, and by its main thread (Linux /proc; NaN elsewhere). */
function cpuSeconds(pid: number): { all: number; main: number } {
  const ticks = (file: string): number => {
    try {
      const f = fs.readFileSync(file, 'latin1');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' '); // fields from 3 on: state is rest[0]
      return (Number(rest[11]) + Number(rest[12])) / 100; // utime + stime (fields 14, 15), USER_HZ 100
    } catch {
      return NaN;
    }
  };
  return { all: ticks(`/proc/${pid}/stat`), main: ticks(`/proc/${pid}/task/${pid}/stat`) };
}

function cpuNote(before: { all: number; main: number }, after: { all: number; main: number }, messages: number): string {
  const per = (s: number): string => fmt((s * 1000) / messages, 2);
  return `daemon CPU ${per(after.all - before.all)} ms per message (main thread ${per(after.main - before.main)} ms)`;
}

/** The spool's fsync figures from /metrics: how much of a message's wait is the disk. */
async function fsyncNote(): Promise<string> {
  const [n, mean, max] = await Promise.all(['halon_spool_fsyncs_total', 'halon_spool_fsync_latency_mean_seconds', 'halon_spool_fsync_latency_max_seconds'].map((m) => metric(PORTS.monitor, m)));
  return Number.isFinite(n) ? `spool: ${n} fsyncs, mean ${fmt(mean * 1000, 1)} ms, max ${fmt(max * 1000, 1)} ms` : 'spool figures unavailable';
}

/** Start a daemon on a fresh spool for one part; the caller stops it. */
async function freshDaemon(o: Options, name: string, suspend: boolean, keepSpool = false): Promise<Daemon> {
  const dir = path.join(o.work, name);
  const spool = path.join(dir, 'spool');
  if (!keepSpool) fs.rmSync(spool, { recursive: true, force: true });
  const d = new Daemon(writeConfig(dir, { name, spool, suspend }), o, name);
  d.start();
  try {
    await d.ready(60);
  } catch (err) {
    await d.stop();
    throw err;
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// Figures

type Result = 'PASS' | 'FAIL' | 'not run' | 'incomplete' | 'info';

interface Row {
  figure: string;
  target: string;
  halyard: string;
  postfix: string;
  ratio: string;
  result: Result;
  detail: string;
}

interface Ctx {
  o: Options;
  s: Sizes;
  rows: Map<FigId, Row>;
  /** Raw values other parts use. */
  halyardIngest?: number;
  halyardE2e?: number;
  postfix?: Passes;
  /** The relay part's notes for the ingest and end-to-end rows (Postfix's passes are added). */
  ingestNote?: string;
  e2eNote?: string;
  haveSmtpSource: boolean;
  root: boolean;
}

type FigId = 'ingest' | 'e2e' | 'latency' | 'idle' | 'queuedMem' | 'queuedReady' | 'http' | 'receive' | 'ceiling';

/** The table's rows in order: label (with this run's counts) and target. */
function initialRows(s: Sizes): Map<FigId, Row> {
  const k = (n: number): string => n.toLocaleString('en-US');
  const defs: Array<[FigId, string, string]> = [
    ['ingest', 'Ingest, msg/s', '≥ 2,000 and ≥ 3× Postfix'],
    ['e2e', 'End to end to smtp-sink, msg/s', '≥ 1,000 and ≥ 2× Postfix'],
    ['latency', 'p99 EOD → 250 at half the max rate, ms', '≤ 15'],
    ['idle', `RSS with ${k(s.idle)} idle SMTP connections, MiB`, '≤ 400'],
    ['queuedMem', `RSS with ${k(s.queued)} queued recipients, MiB`, '≤ 1,536'],
    ['queuedReady', 'Restart to /ready with them, s', '≤ 20'],
    ['http', 'HTTP submission, keep-alive, req/s', '≥ 2,500'],
  ];
  return new Map(defs.map(([id, figure, target]) => [id, { figure, target, halyard: '–', postfix: '–', ratio: '–', result: 'not run' as Result, detail: '' }]));
}

function setRow(ctx: Ctx, id: FigId, patch: Partial<Row>): void {
  const base = ctx.rows.get(id) ?? { figure: INFO_ROWS[id] ?? id, target: '–', halyard: '–', postfix: '–', ratio: '–', result: 'not run' as Result, detail: '' };
  ctx.rows.set(id, { ...base, ...patch });
}

/** Information rows: shown only when their part ran. */
const INFO_ROWS: Partial<Record<FigId, string>> = {
  receive: 'Ingest with delivery suspended (info), msg/s',
  ceiling: 'smtp-source straight into smtp-sink, no MTA (info), msg/s',
};

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–');
const verdict = (ok: boolean): Result => (ok ? 'PASS' : 'FAIL');

// ---------------------------------------------------------------------------------------------
// Parts

interface RelayFigures { ingest: number; e2e: number; raw: string }

function parseRelayBench(out: string): RelayFigures {
  const ingest = /ingest: \d+ msgs in [\d.]+s = (\d+) msg\/s/.exec(out);
  const e2e = /end-to-end: [\d.]+s = (\d+) msg\/s/.exec(out);
  return { ingest: ingest ? Number(ingest[1]) : NaN, e2e: e2e ? Number(e2e[1]) : NaN, raw: out.trim() };
}

async function relayBench(ctx: Ctx, port: number, queueEmpty: string, messages = ctx.s.messages): Promise<RelayFigures> {
  const r = await run('bash', [path.join(ctx.o.shared, 'bench', 'relay-bench.sh')], {
    env: { PORT: String(port), N: String(messages), S: String(SESSIONS), SIZE: String(SIZE), QUEUE_EMPTY_CMD: queueEmpty },
    timeoutS: ctx.s.relayTimeout,
  });
  if (r.timedOut) throw new Error(`relay-bench.sh did not finish within ${ctx.s.relayTimeout} s`);
  if (r.code !== 0) throw new Error(`relay-bench.sh exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  return parseRelayBench(r.stdout);
}

/**
 * The same pass, smaller and not counted, first: an MTA that has run for a while (JIT-compiled
 * code, started processes, warm caches) is what the figures are about, and each MTA gets the
 * same. The queue is empty again (or, with nothing delivering, just bigger) when it returns.
 */
async function warmUp(ctx: Ctx, port: number, queueEmpty: string): Promise<void> {
  await relayBench(ctx, port, queueEmpty, ctx.s.relayWarmup);
}

function warmNote(ctx: Ctx): string {
  return `after a ${ctx.s.relayWarmup.toLocaleString('en-US')}-message warm-up pass, not counted`;
}

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

interface Passes { ingest: number; e2e: number; ingests: number[]; e2es: number[] }

/**
 * `ctx.s.passes` measured smtp-source passes, one after the other on the same (warm) MTA, and
 * their medians: on this shared VM one pass measures the minute it ran in as much as the MTA
 * (B16). The passes are listed in the table's detail.
 */
async function relayPasses(ctx: Ctx, port: number, queueEmpty: string): Promise<Passes> {
  const ingests: number[] = [];
  const e2es: number[] = [];
  for (let i = 0; i < ctx.s.passes; i++) {
    const f = await relayBench(ctx, port, queueEmpty);
    ingests.push(f.ingest);
    e2es.push(f.e2e);
  }
  return { ingest: median(ingests), e2e: median(e2es), ingests, e2es };
}

/** "median of 3 passes: 1,890 / 1,640 / 1,720" (or nothing for a single pass). */
function passNote(xs: number[], digits = 0, what = 'passes', unit = ''): string {
  return xs.length > 1 ? `median of ${xs.length} ${what}: ${xs.map((x) => fmt(x, digits)).join(' / ')}${unit}` : '';
}

const joinNotes = (...notes: string[]): string => notes.filter((n) => n.length > 0).join('; ');

const POSTFIX_EMPTY = 'mailq | grep -q "Mail queue is empty"';
const HALYARD_EMPTY = `curl -s http://127.0.0.1:${PORTS.monitor}/metrics | grep -qx 'halon_spool_transactions 0'`;

async function partRelay(ctx: Ctx): Promise<void> {
  if (!ctx.haveSmtpSource) throw new Error('smtp-source is missing (Debian package postfix; run as root to install it)');
  const d = await freshDaemon(ctx.o, 'relay', false);
  try {
    await warmUp(ctx, PORTS.smtp, HALYARD_EMPTY);
    const cpu0 = cpuSeconds(d.pid);
    const f = await relayPasses(ctx, PORTS.smtp, HALYARD_EMPTY);
    const cpu = cpuNote(cpu0, cpuSeconds(d.pid), ctx.s.messages * ctx.s.passes);
    ctx.halyardIngest = f.ingest;
    ctx.halyardE2e = f.e2e;
    ctx.ingestNote = joinNotes(`smtp-source, ${ctx.s.messages} messages per pass ${warmNote(ctx)} (Postfix likewise); Halyard delivers to smtp-sink while receiving`, passNote(f.ingests), await fsyncNote());
    ctx.e2eNote = joinNotes('first submission → spool empty (halon_spool_transactions 0)', passNote(f.e2es), `${cpu}, receiving and delivering`);
    setRow(ctx, 'ingest', { halyard: fmt(f.ingest) });
    setRow(ctx, 'e2e', { halyard: fmt(f.e2e) });
  } finally {
    await d.stop();
  }
  compare(ctx);
}

async function partPostfix(ctx: Ctx): Promise<void> {
  if (!ctx.haveSmtpSource) throw new Error('Postfix is missing (run as root: bench/run.sh installs it)');
  if (!ctx.root) throw new Error('Postfix is started as root only (peer-postfix.sh writes /etc/postfix)');
  const wasRunning = sh('postfix status').ok;
  const up = await run('bash', [path.join(ctx.o.shared, 'bench', 'peer-postfix.sh')], { env: { SINK_PORT: String(PORTS.sink), POSTFIX_PORT: String(PORTS.postfix) }, timeoutS: 300 });
  if (up.code !== 0) throw new Error(`peer-postfix.sh exited ${up.code}: ${up.stderr.trim().slice(0, 300)}`);
  try {
    if (!sh('mailq | grep -q "Mail queue is empty"').ok) process.stderr.write('note: Postfix\'s queue was not empty before its run\n');
    await warmUp(ctx, PORTS.postfix, POSTFIX_EMPTY);
    const f = await relayPasses(ctx, PORTS.postfix, POSTFIX_EMPTY);
    ctx.postfix = f;
    setRow(ctx, 'ingest', { postfix: fmt(f.ingest) });
    setRow(ctx, 'e2e', { postfix: fmt(f.e2e) });
  } finally {
    if (!wasRunning) sh('postfix stop');
  }
  compare(ctx);
}

/** Fill in ratio and result for the two figures compared with Postfix. */
function compare(ctx: Ctx): void {
  const one = (fig: FigId, h: number | undefined, p: number | undefined, min: number, times: number): void => {
    if (h === undefined) return;
    if (p === undefined || !Number.isFinite(p) || p <= 0) {
      setRow(ctx, fig, { result: Number.isFinite(h) && h >= min ? 'incomplete' : 'FAIL' });
      return;
    }
    const ratio = h / p;
    setRow(ctx, fig, { ratio: `${fmt(ratio, 1)}×`, result: verdict(h >= min && ratio >= times) });
  };
  const postfix = (xs: number[] | undefined): string => (xs && xs.length > 1 ? `Postfix ${passNote(xs)}` : '');
  if (ctx.ingestNote !== undefined) setRow(ctx, 'ingest', { detail: joinNotes(ctx.ingestNote, postfix(ctx.postfix?.ingests)) });
  if (ctx.e2eNote !== undefined) setRow(ctx, 'e2e', { detail: joinNotes(ctx.e2eNote, postfix(ctx.postfix?.e2es)) });
  one('ingest', ctx.halyardIngest, ctx.postfix?.ingest, 2000, 3);
  one('e2e', ctx.halyardE2e, ctx.postfix?.e2e, 1000, 2);
}

interface EodFigures { messages: number; errors: number; rate: number; p50_ms: string; p90_ms: string; p99_ms: string; max_ms: string }

async function eodLatency(ctx: Ctx, messages: number, rate: number): Promise<EodFigures> {
  const args = ['dist/bench/eod-latency.js', '--port', String(PORTS.smtp), '--messages', String(messages), '--sessions', String(SESSIONS), '--size', String(SIZE)];
  if (rate > 0) args.push('--rate', String(rate));
  const r = await run(process.execPath, args, { timeoutS: ctx.s.partTimeout });
  if (r.timedOut || r.code !== 0) throw new Error(`eod-latency ${r.timedOut ? 'timed out' : `exited ${r.code}`}: ${r.stderr.trim().slice(0, 300)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as EodFigures;
}

async function partLatency(ctx: Ctx): Promise<void> {
  const d = await freshDaemon(ctx.o, 'latency', false);
  try {
    let max = ctx.halyardIngest;
    let source = 'Halyard\'s smtp-source ingest rate in this run';
    if (max === undefined || !Number.isFinite(max)) {
      max = (await eodLatency(ctx, ctx.s.messages, 0)).rate;
      source = 'a full-speed eod-latency pass';
    }
    const rate = Math.max(1, Math.round(max / 2));
    // The same warm-up pass as the relay part (B13), then a short paced one at the measured
    // rate: a running daemon at that load, not its first seconds (B3).
    await warmUp(ctx, PORTS.smtp, HALYARD_EMPTY);
    await eodLatency(ctx, ctx.s.latencyWarmup, rate);
    const f = await eodLatency(ctx, ctx.s.latencyMessages, rate);
    const p99 = Number(f.p99_ms);
    setRow(ctx, 'latency', {
      halyard: fmt(p99, 1),
      result: verdict(f.errors === 0 && p99 <= 15),
      detail: `paced at ${rate} msg/s (half of ${fmt(max)}, ${source}), achieved ${f.rate} msg/s; p50 ${f.p50_ms} / p90 ${f.p90_ms} / max ${f.max_ms} ms; ${f.messages} messages, ${f.errors} errors`,
    });
  } finally {
    await d.stop();
  }
}

/** The soft open-files limit of this process (inherited by the daemon). */
function openFilesLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'latin1'));
    return !m ? NaN : m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return NaN;
  }
}

async function partIdle(ctx: Ctx): Promise<void> {
  const n = ctx.s.idle;
  const limit = openFilesLimit();
  if (limit < n + 500) throw new Error(`ulimit -n is ${limit}; ${n} idle connections need more than ${n + 500} (run through bench/run.sh, which raises it)`);
  const d = await freshDaemon(ctx.o, 'idle', true);
  try {
    await sleep(500);
    const before = rssMiB(d.pid);
    const h = await holdIdle({ port: PORTS.smtp, connections: n });
    try {
      await sleep(1000); // the last handshakes' garbage is still there; the figure is the held state
      const held = await metric(PORTS.monitor, 'halon_servers_connections_concurrent');
      const rss = rssMiB(d.pid);
      setRow(ctx, 'idle', {
        halyard: fmt(rss),
        result: h.opened === n ? verdict(rss <= 400) : 'FAIL',
        detail: `${h.opened} of ${n} held (greeting + EHLO, then idle), opened in ${fmt(h.seconds, 1)} s${h.failed ? `, ${h.failed} failed (${h.errors.join('; ')})` : ''}; RSS before ${fmt(before)} MiB, ${fmt((rss - before) * 1024 / Math.max(1, h.opened), 1)} KiB per connection${Number.isFinite(held) ? `; daemon counts ${held}` : ''}`,
      });
    } finally {
      await h.close();
    }
  } finally {
    await d.stop();
  }
}

interface HttpFigures { requests: number; rps: number; errors: number; sockets: number; p50_ms: string; p99_ms: string }

async function httpPass(ctx: Ctx, requests: number): Promise<HttpFigures> {
  const r = await run(process.execPath, ['dist/bench/http-submission.js', '--requests', String(requests), '--concurrency', String(SESSIONS), '--size', String(SIZE)], { timeoutS: ctx.s.partTimeout });
  if (r.timedOut) throw new Error('http-submission timed out');
  const last = r.stdout.trim().split('\n').at(-1);
  if (!last) throw new Error(`http-submission exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  return JSON.parse(last) as HttpFigures;
}

async function partHttp(ctx: Ctx): Promise<void> {
  // bench/config-http/ as bench/http.sh uses it: submission on 8025, monitor on 9090, all suspended.
  fs.rmSync('/tmp/halyard-bench-http', { recursive: true, force: true });
  fs.mkdirSync('/tmp/halyard-bench-http', { recursive: true });
  const d = new Daemon(path.join(ROOT, 'bench', 'config-http', 'smtpd.yaml'), ctx.o, 'http');
  d.start();
  try {
    await d.ready(60);
    await httpPass(ctx, ctx.s.httpWarmup);
    const f = await httpPass(ctx, ctx.s.httpRequests);
    setRow(ctx, 'http', {
      halyard: fmt(f.rps),
      result: verdict(f.errors === 0 && f.rps >= 2500),
      detail: `${f.requests} requests over ${f.sockets} keep-alive connections after ${ctx.s.httpWarmup} warm-up requests; p50 ${f.p50_ms} / p99 ${f.p99_ms} ms; ${f.errors} errors`,
    });
  } finally {
    await d.stop();
  }
}

async function partQueued(ctx: Ctx): Promise<void> {
  const fill = path.join(ROOT, 'dist', 'bench', 'spool-fill.js');
  if (!fs.existsSync(fill)) throw new Error('bench/spool-fill.ts is not there yet (dist/bench/spool-fill.js missing)');
  const dir = path.join(ctx.o.work, 'queued');
  const spool = path.join(dir, 'spool');
  fs.rmSync(spool, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const filled = await run(process.execPath, [fill, spool, String(ctx.s.queued)], { timeoutS: ctx.s.fillTimeout });
  if (filled.timedOut || filled.code !== 0) throw new Error(`spool-fill ${filled.timedOut ? 'timed out' : `exited ${filled.code}`}: ${filled.stderr.trim().slice(0, 300)}`);
  const config = writeConfig(dir, { name: 'queued', spool, suspend: true });
  // Several starts on the same spool, one after the other (B16): the time is the median, the
  // memory the largest, and every start must load every entry.
  const starts: { readyMs: number; rss: number; peak: number; loaded: number }[] = [];
  try {
    for (let i = 0; i < ctx.s.passes; i++) {
      const d = new Daemon(config, ctx.o, 'queued');
      d.start();
      try {
        const readyMs = await d.ready(ctx.s.partTimeout);
        await sleep(1000);
        const states = await Promise.all(['halon_queue_queue_active_size', 'halon_queue_queue_defer_size', 'halon_queue_freeze_hold_size'].map((m) => metric(PORTS.monitor, m)));
        starts.push({ readyMs, rss: rssMiB(d.pid), peak: peakRssMiB(d.pid), loaded: states.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0) });
      } finally {
        await d.stop(60);
      }
    }
  } finally {
    fs.rmSync(spool, { recursive: true, force: true }); // gigabytes at full size
  }
  const rss = Math.max(...starts.map((x) => x.rss));
  const peak = Math.max(...starts.map((x) => x.peak));
  const loaded = Math.min(...starts.map((x) => x.loaded));
  const readyMs = median(starts.map((x) => x.readyMs));
  const complete = loaded >= ctx.s.queued;
  const each = starts.length > 1 ? `; largest of ${starts.length} starts: ${starts.map((x) => fmt(x.rss)).join(' / ')} MiB` : '';
  setRow(ctx, 'queuedMem', { halyard: fmt(rss), result: complete ? verdict(rss <= 1536) : 'FAIL', detail: `${fmt(loaded)} entries loaded (ACTIVE + DEFER + HOLD), all suspended; peak RSS ${fmt(peak)} MiB${each}; spool filled in ${fmt(filled.ms / 1000, 1)} s` });
  setRow(ctx, 'queuedReady', { halyard: fmt(readyMs / 1000, 1), result: complete ? verdict(readyMs <= 20_000) : 'FAIL', detail: joinNotes('daemon spawn → first /ready 200 (spool recovery and queue load included)', passNote(starts.map((x) => x.readyMs / 1000), 1, 'starts', ' s')) });
}

async function partReceive(ctx: Ctx): Promise<void> {
  if (!ctx.haveSmtpSource) throw new Error('smtp-source is missing');
  const d = await freshDaemon(ctx.o, 'receive', true);
  try {
    await warmUp(ctx, PORTS.smtp, '');
    const cpu0 = cpuSeconds(d.pid);
    const f = await relayPasses(ctx, PORTS.smtp, '');
    const cpu = cpuNote(cpu0, cpuSeconds(d.pid), ctx.s.messages * ctx.s.passes);
    setRow(ctx, 'receive', { target: '–', halyard: fmt(f.ingest), result: 'info', detail: joinNotes(`every entry suspended: the SMTP receive path and the spool only, ${warmNote(ctx)}`, passNote(f.ingests), cpu, await fsyncNote()) });
  } finally {
    await d.stop();
  }
}

/**
 * The harness alone, just before the MTAs: smtp-source into smtp-sink with the same counts. On
 * this shared VM the machine's speed moves by minutes; this row says how fast it was in this
 * run (../shared/bench/README.md quotes 3,640 msg/s for its reference machine).
 */
async function partCeiling(ctx: Ctx): Promise<void> {
  if (!ctx.haveSmtpSource) throw new Error('smtp-source is missing');
  const f = await relayPasses(ctx, PORTS.sink, '');
  setRow(ctx, 'ceiling', { target: '–', halyard: fmt(f.ingest), result: 'info', detail: joinNotes(`the same smtp-source pass (${ctx.s.messages} messages) against smtp-sink on ${PORTS.sink}, no MTA: the harness's own limit on this machine in this run`, passNote(f.ingests)) });
}

const PARTS: Record<PartName, (ctx: Ctx) => Promise<void>> = {
  ceiling: partCeiling,
  relay: partRelay,
  postfix: partPostfix,
  latency: partLatency,
  idle: partIdle,
  http: partHttp,
  queued: partQueued,
  receive: partReceive,
};

const PART_ROWS: Record<PartName, FigId[]> = {
  ceiling: ['ceiling'],
  relay: ['ingest', 'e2e'],
  postfix: ['ingest', 'e2e'],
  latency: ['latency'],
  idle: ['idle'],
  http: ['http'],
  queued: ['queuedMem', 'queuedReady'],
  receive: ['receive'],
};

// ---------------------------------------------------------------------------------------------
// Sink, report, main

/** smtp-sink on the sink port, unless something listens there already. */
async function startSink(ctx: Ctx): Promise<void> {
  if (!ctx.haveSmtpSource) return;
  const busy = await new Promise<boolean>((resolve) => {
    const s = net.connect(PORTS.sink, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
  if (busy) {
    process.stderr.write(`note: something already listens on 127.0.0.1:${PORTS.sink}; using it as the sink\n`);
    return;
  }
  const args = [...(ctx.root ? ['-u', 'nobody'] : []), `127.0.0.1:${PORTS.sink}`, '1000'];
  const c = spawn('smtp-sink', args, { detached: true, stdio: 'ignore' });
  children.add(c);
  await sleep(300);
}

function header(o: Options, s: Sizes, loadStart: string): string {
  const commit = sh('git rev-parse --short HEAD 2>/dev/null').out || '?';
  const postfix = sh('postconf -h mail_version 2>/dev/null').out || 'not installed';
  const lines = [
    `Halyard benchmark suite — ${new Date().toISOString()} — commit ${commit}${o.quick ? ' — QUICK SMOKE RUN: small counts, not a measurement' : ''}`,
    `machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${fmt(os.totalmem() / 2 ** 30, 0)} GiB; node ${process.version}; Postfix ${postfix}; ulimit -n ${openFilesLimit()}`,
    `load average at start: ${loadStart}; at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    `${SIZE} B messages, ${SESSIONS} sessions, a new connection per message, fsync on, loopback; ${s.messages} messages per SMTP pass`,
  ];
  return lines.join('\n');
}

function table(rows: Row[]): string {
  const out = ['| figure | target | Halyard | Postfix 3.7 | ratio | result |', '|---|---|---|---|---|---|'];
  for (const r of rows) out.push(`| ${r.figure} | ${r.target} | ${r.halyard} | ${r.postfix} | ${r.ratio} | ${r.result} |`);
  out.push('', 'Details:');
  for (const r of rows) if (r.detail) out.push(`- ${r.figure}: ${r.detail}`);
  return out.join('\n');
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const s = o.quick ? QUICK : FULL;
  fs.mkdirSync(o.work, { recursive: true });
  if (o.profile) fs.mkdirSync(o.profile, { recursive: true });
  const loadStart = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const ctx: Ctx = { o, s, rows: initialRows(s), haveSmtpSource: sh('command -v smtp-source && command -v bc').ok, root: process.getuid?.() === 0 };
  let failures = 0;
  await startSink(ctx);
  for (const part of ALL_PARTS.filter((p) => o.parts.includes(p))) {
    process.stderr.write(`== ${part}\n`);
    try {
      await PARTS[part](ctx);
    } catch (err) {
      failures++;
      const why = (err as Error).message;
      process.stderr.write(`   ${part}: ${why}\n`);
      for (const fig of PART_ROWS[part]) setRow(ctx, fig, { detail: `not run: ${why}` });
    }
  }
  endAll();
  process.stdout.write(`${header(o, s, loadStart)}\n\n${table([...ctx.rows.values()])}\n`);
  return failures ? 1 : 0;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    endAll();
    process.exit(130);
  });
}
process.on('exit', endAll);

main().then((code) => (process.exitCode = code), (err: unknown) => {
  endAll();
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
