/**
 * The post-delivery hook after an administrative delete or bounce (`G` update with DELETE or
 * BOUNCE): halon-core.md §4.9 and §5.4 — postdelivery "runs after every attempt, and also when
 * a message is deleted/bounced by admin". Called once per entry the update removed, after its
 * removal is on disk (an entry whose removal failed is still queued and gets no call).
 *
 * What the hook sees: `arguments.action` DELETE or BOUNCE, `retry` (the entry's count),
 * `expired` false, `grouping` (of its last attempt, '' if none), no `attempt` (nothing was
 * tried), `dsn` for a bounce (action failed, the status and diagnostic of the request),
 * `policy` empty; `message` as in delivery hooks; a fresh empty `context` (no predelivery ran).
 * The operator's command is final: the hook's action, or SetMetaData, cannot undo or change
 * it (the entry is gone and the reply already counts it); an action other than Default() is
 * logged and ignored. Hook failures and timeouts are logged by the hook runner.
 * Calls run at most `CONCURRENCY` at a time and the update answers after all of them.
 */
import type { DeliveryHooks } from '../hooks/delivery';
import type { DeliveryDsnInfo } from '../hooks/types';
import type { QueueEntry } from '../model/types';
import { deliveryMessage } from '../scheduler/facts';

export type AdminRemoval = { e: QueueEntry; action: 'DELETE' } | { e: QueueEntry; action: 'BOUNCE'; status: string; diagnostic: string };

const CONCURRENCY = 64;

export async function notifyPostdelivery(hooks: DeliveryHooks | undefined, removed: readonly AdminRemoval[], log: { info(obj: object, msg?: string): void }): Promise<void> {
  const hook = hooks?.postdelivery;
  if (!hook || removed.length === 0) return;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < removed.length) {
      const r = removed[next++];
      const o = await hook({
        arguments: {
          retry: r.e.retry,
          expired: false,
          action: r.action,
          grouping: r.e.grouping ?? '',
          policy: { tags: [], policies: [] },
          ...(r.action === 'BOUNCE' ? { dsn: dsnInfo(r.status, r.diagnostic) } : {}),
          queue: {},
        },
        message: deliveryMessage(r.e),
        context: {},
        metadata: r.e.metadata,
        delivered: false,
      });
      if (o.action !== 'Default') {
        log.info({ transactionid: r.e.id.transaction, queueid: r.e.id.queue, action: o.action, removedby: r.action }, 'postdelivery action after an administrative removal ignored: the entry is already removed');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, removed.length) }, worker));
}

function dsnInfo(status: string, diagnostic: string): DeliveryDsnInfo {
  return { action: 'failed', status: status.split('.').map(Number) as [number, number, number], diagnostictype: 'x-error', diagnosticcode: diagnostic };
}
