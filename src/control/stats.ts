/**
 * `q` (process-stats): map the daemon's figures (`StatsInput`) onto Halon's
 * ProcessStatsResponse (halon-api.md §5.6). Pure.
 *
 * Invariants: every sub-message is present and every counter is a number (0 when the daemon
 * has no such figure yet), so clients see the complete tree — `queue.queue.active.size: 0`
 * rather than a missing line — and metric names do not come and go. Server scripts and queue
 * scripts report Halyard's hook calls (`threads` is 1: hooks run on the event loop).
 */
import type { ResolverFigures, ScriptCounters, StatsInput } from './context';
import type { ProcessStatsResponse, ScriptStats, ServerHook } from './messages';

export interface ProcessFigures {
  pid: number;
  /** Seconds since start. */
  runtime: number;
  version: { major: number; minor: number; patch: number };
}

const SERVER_HOOKS: readonly ServerHook[] = ['connect', 'proxy', 'helo', 'auth', 'mailfrom', 'rcptto', 'eod', 'disconnect'];

function n(v: number | undefined): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0;
}

function script(c: ScriptCounters | undefined): ScriptStats {
  return { pending: n(c?.pending), running: n(c?.running), finished: n(c?.finished), errors: n(c?.errors), threads: 1, suspended: 0, threadid: '' };
}

function resolver(r: ResolverFigures | undefined): NonNullable<ProcessStatsResponse['resolver']> {
  const c = r?.cache;
  return {
    pending: n(r?.pending),
    dedup: n(r?.dedup),
    running: n(r?.running),
    maxrunning: n(r?.maxrunning),
    cache: { maxsize: n(c?.maxsize), size: n(c?.size), hits: n(c?.hits), misses: n(c?.misses), expires: n(c?.expires), evicts: n(c?.evicts), skips: n(c?.skips) },
    domain: { cache: { maxsize: 0, size: 0, hits: 0, misses: 0, expires: 0, evicts: 0 } },
  };
}

function pooling(p: NonNullable<NonNullable<StatsInput['queue']>['connections']>['pooling']): NonNullable<NonNullable<ProcessStatsResponse['queue']>['connections']>['pooling'] {
  return { size: n(p?.size), maxsize: n(p?.maxsize), hits: n(p?.hits), misses: n(p?.misses), expires: n(p?.expires), evicts: n(p?.evicts), skips: 0 };
}

function servers(list: StatsInput['servers']): NonNullable<ProcessStatsResponse['servers']> {
  return (list ?? []).map((s) => ({
    serverid: s.id,
    connections: { concurrent: n(s.connections), maxconcurrent: n(s.maxconnections) },
    scripts: Object.fromEntries(SERVER_HOOKS.map((h) => [h, script(s.scripts?.[h])])),
  }));
}

function queue(q: StatsInput['queue']): NonNullable<ProcessStatsResponse['queue']> {
  const p = q?.policy;
  return {
    loader: { count: 0, pending: 0, active: 0, maxactive: 0 },
    scripts: { predelivery: script(q?.scripts?.predelivery), postdelivery: script(q?.scripts?.postdelivery) },
    queue: {
      defer: { size: n(q?.defer) },
      active: { size: n(q?.active), priorities: (q?.priorities ?? []).map((size) => ({ size: n(size) })) },
    },
    freeze: { hold: { size: n(q?.hold) }, update: { size: n(q?.update), pending: 0 } },
    policy: {
      concurrency: { counters: n(p?.concurrency?.counters), suspends: n(p?.concurrency?.suspends) },
      rate: { buckets: n(p?.rate?.buckets), suspends: n(p?.rate?.suspends) },
      dynamic: { suspends: n(p?.dynamic?.suspends), conditions: n(p?.dynamic?.conditions) },
    },
    pickup: { count: n(q?.pickup?.count), skips: n(q?.pickup?.skips), misses: n(q?.pickup?.misses), pending: n(q?.pickup?.pending) },
    connections: {
      concurrent: n(q?.connections?.concurrent),
      maxconcurrent: n(q?.connections?.maxconcurrent),
      pooling: pooling(q?.connections?.pooling),
    },
    quota: { size: 0 },
    delivery: { delivered: n(q?.delivery?.delivered), delayed: n(q?.delivery?.delayed), failed: n(q?.delivery?.failed) },
    release: { pending: 0 },
  };
}

export function buildProcessStats(input: StatsInput, proc: ProcessFigures): ProcessStatsResponse {
  return {
    process: { pid: proc.pid, runtime: proc.runtime, version: { ...proc.version } },
    resolver: resolver(input.resolver),
    servers: servers(input.servers),
    queue: queue(input.queue),
    threads: { scripts: [] },
  };
}

/** `0.1.0` → {0, 1, 0}; anything unparsable counts as 0. */
export function parseVersion(version: string): ProcessFigures['version'] {
  const [major, minor, patch] = version.split(/[.+-]/).map((x) => Number.parseInt(x, 10));
  return { major: n(major), minor: n(minor), patch: n(patch) };
}
