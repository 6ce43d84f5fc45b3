/**
 * Keeping queue entries small in memory (target: well under 1 KB per queued recipient with
 * millions queued; measured by bench/queue-memory.ts).
 *
 * - `intern`: values that repeat across many entries (server and transport ids, job and tenant
 *   ids, domains, senders, the last attempt's localip/remotemx/remoteip/grouping) share one string instead of one copy per entry. The table is
 *   bounded: once full, new values are simply not shared (correct, only less compact).
 * - Empty `metadata`, `quotas`, `tags` and `dsn` share one frozen instance each. Code that changes
 *   these fields replaces the value (`store.update(entry, { metadata })`), never mutates it.
 * - `compactEntry` applies both to an entry in place (the store does so on `add`).
 */
import type { DsnParams, QueueEntry } from '../model/types';

export const INTERN_MAX = 200_000;
const interned = new Map<string, string>();

export function intern(s: string): string {
  if (s === '') return '';
  const known = interned.get(s);
  if (known !== undefined) return known;
  if (interned.size < INTERN_MAX) interned.set(s, s);
  return s;
}

export const EMPTY_RECORD: Record<string, string> = Object.freeze({}) as Record<string, string>;
export const EMPTY_LIST: string[] = Object.freeze([]) as unknown as string[];
export const EMPTY_DSN: DsnParams = Object.freeze({}) as DsnParams;

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

export function compactEntry(e: QueueEntry): void {
  e.serverid = intern(e.serverid);
  e.sender = intern(e.sender);
  e.senderaddress.domain = intern(e.senderaddress.domain);
  e.recipientaddress.domain = intern(e.recipientaddress.domain);
  e.transportid = intern(e.transportid);
  e.jobid = intern(e.jobid);
  e.tenantid = intern(e.tenantid);
  // Hop fields repeat per destination (a few MXs and addresses for many recipients).
  if (e.localip !== undefined) e.localip = intern(e.localip);
  if (e.remotemx !== undefined) e.remotemx = intern(e.remotemx);
  if (e.remoteip !== undefined) e.remoteip = intern(e.remoteip);
  if (e.grouping !== undefined) e.grouping = intern(e.grouping);
  if (e.metadata !== EMPTY_RECORD && isEmpty(e.metadata)) e.metadata = EMPTY_RECORD;
  if (e.quotas.length === 0) e.quotas = EMPTY_LIST;
  if (e.tags.length === 0) e.tags = EMPTY_LIST;
  if (e.dsn !== EMPTY_DSN && isEmpty(e.dsn)) e.dsn = EMPTY_DSN;
}
