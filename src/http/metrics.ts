/**
 * The monitor's `/metrics` content (pure): ProcessStatsResponse figures as `halon_` + field
 * path families (halon-api.md §1.4), plus what the control socket has no field for — the
 * monitor's own state, the age of the oldest entry per queue state, and spool figures — so a
 * stalled queue or a slow disk shows on a dashboard.
 *
 * Inputs: a ProcessStatsResponse object (control/stats.ts `buildProcessStats`), the ready and
 * healthy flags, the oldest reception time per queue state, and spool stats.
 * Output: metric families (util/openmetrics.ts renders them).
 * Typing: cumulative figures (cache hits…, script `finished`/`errors`, pickup counts, delivery
 * outcomes, fsyncs) are counters; everything else (sizes, levels, limits) is a gauge. Labels
 * are the keys of repeated messages (`serverid`, `priority`, `id`) and `state` for queue age —
 * never a policy key, so the number of series stays bounded however many keys exist.
 */
import { flattenMessage } from '../cli/stats-format';
import { messageType, normalise } from '../control/schema';
import type { ProcessStatsResponse } from '../control/messages';
import type { QueueState } from '../model/types';
import type { SpoolStats } from '../spool/types';
import { familiesFromSamples, type MetricFamily, type MetricType } from '../util/openmetrics';

/** Field names whose values only grow (ProcessStatsResponse). */
const COUNTER_FIELDS = new Set(['hits', 'misses', 'expires', 'evicts', 'skips', 'finished', 'errors', 'delivered', 'delayed', 'failed']);
/** Whole paths that are counters although their last name is generic (loader.count: entries
 * loaded since start; a gauge named `_count` would also read as a summary's count). */
const COUNTER_PATHS = new Set(['queue.pickup.count', 'queue.loader.count']);

export const QUEUE_STATES: readonly QueueState[] = ['ACTIVE', 'DEFER', 'HOLD', 'SENDING', 'UPDATE'];

export function statsTypeOf(path: readonly string[]): MetricType {
  return COUNTER_FIELDS.has(path[path.length - 1]) || COUNTER_PATHS.has(path.join('.')) ? 'counter' : 'gauge';
}

export interface MetricsInput {
  ready: boolean;
  healthy: boolean;
  /** Absent before the spool is loaded: only the monitor's own families are shown then. */
  stats?: ProcessStatsResponse;
  /** Reception time (epoch ms) of the oldest entry per state; absent = no entry in that state. */
  oldest?: Partial<Record<QueueState, number>>;
  spool?: SpoolStats;
  /** Epoch ms of the scrape. */
  now: number;
}

function gauge(name: string, help: string, value: number, labels: Array<[string, string]> = []): MetricFamily {
  return { name, type: 'gauge', help, samples: [{ labels, value: String(value) }] };
}

function monitorFamilies(input: MetricsInput): MetricFamily[] {
  return [
    gauge('halon_monitor_ready', 'The current ready status (ready=1, notready=0)', input.ready ? 1 : 0),
    gauge('halon_monitor_healthy', 'The current health status (healthy=1, unhealthy=0)', input.healthy ? 1 : 0),
  ];
}

function queueAge(oldest: Partial<Record<QueueState, number>>, now: number): MetricFamily {
  return {
    name: 'halon_queue_oldest_age_seconds',
    type: 'gauge',
    help: 'Age of the oldest queue entry per state, seconds since reception (0 when the state is empty)',
    samples: QUEUE_STATES.map((state) => {
      const ts = oldest[state];
      return { labels: [['state', state]] as const, value: String(ts === undefined ? 0 : Math.max(0, (now - ts) / 1000)) };
    }),
  };
}

function spoolFamilies(s: SpoolStats): MetricFamily[] {
  return [
    { name: 'halon_spool_fsyncs', type: 'counter', help: 'Durable spool writes since start (one per batch: an O_DSYNC write, or a write and its fsync)', samples: [{ labels: [], value: String(s.fsyncs) }] },
    gauge('halon_spool_fsync_latency_mean_seconds', 'Mean latency of a durable spool write (write and sync) since start, seconds', s.fsyncMeanMs / 1000),
    gauge('halon_spool_fsync_latency_max_seconds', 'Largest latency of a durable spool write (write and sync) since start, seconds', s.fsyncMaxMs / 1000),
    gauge('halon_spool_segments', 'Spool segment files', s.segments),
    gauge('halon_spool_size_bytes', 'Bytes in spool segment files', s.bytes),
    gauge('halon_spool_transactions', 'Live transactions in the spool', s.liveTransactions),
  ];
}

export function metricFamilies(input: MetricsInput): MetricFamily[] {
  const out = monitorFamilies(input);
  if (input.stats) {
    const full = normalise('ProcessStatsResponse', input.stats, 'full');
    const samples = flattenMessage(messageType('ProcessStatsResponse'), full);
    out.push(...familiesFromSamples(samples, { typeOf: statsTypeOf, helpOf: (p) => `process-stats ${p.join('.')}` }));
  }
  if (input.oldest) out.push(queueAge(input.oldest, input.now));
  if (input.spool) out.push(...spoolFamilies(input.spool));
  return out;
}

