/**
 * The pickup filter: the point where traffic shaping (suspends, pickup policies, issue #4) plugs
 * into the pickup loop. The queue manager asks it about each ACTIVE entry before starting an
 * attempt; 'skip' leaves the entry ACTIVE for a later pass.
 *
 * `NO_FILTER` picks everything. `staticSuspendFilter` applies the one rule of smtpd-suspend.yaml
 * that needs no field matching — an empty item (`{}`) suspends everything (halon-core.md §4.5);
 * suspends that name fields are left to the traffic-shaping engine and reported once in the log.
 */
import type { SuspendConfig } from '../config/load';
import type { QueueEntry } from '../model/types';

export type PickupDecision = 'ok' | 'skip';

export interface PickupFilter {
  check(entry: QueueEntry): PickupDecision;
  /** True when nothing at all may be picked now (everything suspended): the pass is skipped. */
  idle?(): boolean;
  /**
   * Called by the manager when an attempt it started ends (counters held by `check` can be
   * released here).
   */
  release?(entries: readonly QueueEntry[]): void;
}

export const NO_FILTER: PickupFilter = Object.freeze({ check: () => 'ok' as const });

export function staticSuspendFilter(config: SuspendConfig, warn: (fields: object, msg: string) => void): PickupFilter {
  const all = config.suspends.some((s) => Object.keys(s.match).length === 0);
  const fielded = config.suspends.filter((s) => Object.keys(s.match).length > 0).length;
  if (fielded > 0) warn({ file: config.file, suspends: fielded }, 'suspends that match fields are not applied yet (traffic shaping); only {} (suspend everything) is');
  if (!all) return NO_FILTER;
  return { check: () => 'skip', idle: () => true };
}
