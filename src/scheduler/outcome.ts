/**
 * What becomes of a queue entry after an attempt (or after predelivery skipped it): the default
 * action Halon would take, and the final disposition once a hook has spoken. PURE.
 *
 * Default action (halon-core.md §4.8, §5.4 `arguments.action`):
 * - delivered → none (success);
 * - temporary failure → QUEUE, or BOUNCE when the entry is expired (retries or age used up);
 * - permanent failure → BOUNCE;
 * - predelivery Bounce / Delete → BOUNCE / DELETE.
 * Disposition of QUEUE (a hook's `Queue(options)` or the default):
 * - `retry` + 1 unless `increment_retry: false`; `reset_retry: true` starts again at 0;
 * - next attempt after `delay` seconds, else the group's interval for this retry (retry.ts);
 * - `hold: true` parks the entry in HOLD (no next-retry time);
 * - `transportid` moves it to another transport (the caller checks that it exists);
 * - a "delayed" DSN is due when the schedule says so (retry.ts) and the retry was counted.
 */
import type { QueueEntry } from '../model/types';
import type { DeliveryQueueOptions } from '../hooks/types';
import { nextRetry, type RetryPolicy } from '../queue/retry';

export type AttemptKind = 'delivered' | 'temporary' | 'permanent' | 'bounce' | 'delete';
export type DefaultAction = 'QUEUE' | 'BOUNCE' | 'DELETE' | undefined;

export function defaultAction(kind: AttemptKind, expired: boolean): DefaultAction {
  switch (kind) {
    case 'delivered':
      return undefined;
    case 'temporary':
      return expired ? 'BOUNCE' : 'QUEUE';
    case 'permanent':
    case 'bounce':
      return 'BOUNCE';
    case 'delete':
      return 'DELETE';
    default:
      return assertNever(kind);
  }
}

export type Disposition =
  | { kind: 'delivered' }
  | { kind: 'queue'; state: 'DEFER' | 'HOLD'; retry: number; retryts: number; transportid: string; notify: boolean; reason?: string }
  | { kind: 'bounce'; reason?: string }
  | { kind: 'delete'; reason?: string };

/** The action a hook chose ('Default' = take the default). */
export type ChosenAction =
  | { action: 'Default' }
  | { action: 'Queue'; options: DeliveryQueueOptions }
  | { action: 'Bounce'; options: { reason?: string } }
  | { action: 'Delete'; options: { reason?: string } };

export function dispose(entry: QueueEntry, def: DefaultAction, chosen: ChosenAction, policy: RetryPolicy, now: number): Disposition {
  switch (chosen.action) {
    case 'Queue':
      return queueDisposition(entry, chosen.options, policy, now);
    case 'Bounce':
      return withReason({ kind: 'bounce' }, chosen.options.reason);
    case 'Delete':
      return withReason({ kind: 'delete' }, chosen.options.reason);
    case 'Default':
      return fromDefault(entry, def, policy, now);
    default:
      return assertNever(chosen);
  }
}

function fromDefault(entry: QueueEntry, def: DefaultAction, policy: RetryPolicy, now: number): Disposition {
  switch (def) {
    case undefined:
      return { kind: 'delivered' };
    case 'QUEUE':
      return queueDisposition(entry, {}, policy, now);
    case 'BOUNCE':
      return { kind: 'bounce' };
    case 'DELETE':
      return { kind: 'delete' };
    default:
      return assertNever(def);
  }
}

export function queueDisposition(entry: QueueEntry, o: DeliveryQueueOptions, policy: RetryPolicy, now: number): Disposition {
  const counted = o.increment_retry !== false;
  const schedule = nextRetry(policy, entry.retry, now);
  const retry = o.reset_retry ? 0 : counted ? schedule.retry : entry.retry;
  const delay = o.delay ?? schedule.delay;
  const hold = o.hold === true;
  const d: Disposition = {
    kind: 'queue',
    state: hold ? 'HOLD' : 'DEFER',
    retry,
    retryts: hold ? 0 : now + Math.round(delay * 1000),
    transportid: o.transportid ?? entry.transportid,
    notify: schedule.notify && counted && !o.reset_retry && !hold,
  };
  return withReason(d, o.reason);
}

function withReason<D extends Disposition>(d: D, reason: string | undefined): D {
  if (reason !== undefined && d.kind !== 'delivered') (d as { reason?: string }).reason = reason;
  return d;
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}
