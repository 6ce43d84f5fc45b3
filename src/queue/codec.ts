/**
 * How a queue entry is written into the spool: the entry minus its transaction id (the spool
 * keys records by transaction already). Pure; `decodeEntry` validates what it reads so a
 * spool written by another version fails loudly instead of loading garbage.
 */
import type { Json } from '../spool/types';
import type { QueueEntry, QueueState } from '../model/types';

const STATES: ReadonlySet<string> = new Set(['ACTIVE', 'DEFER', 'HOLD', 'SENDING', 'UPDATE']);

export function encodeEntry(e: QueueEntry): Json {
  const { id, ...rest } = e;
  return { ...rest, queue: id.queue } as unknown as Json;
}

export function decodeEntry(transaction: string, queue: number, meta: Json): QueueEntry {
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new Error(`entry ${transaction}:${queue}: not an object`);
  const m = meta as Record<string, unknown>;
  if (typeof m.state !== 'string' || !STATES.has(m.state)) throw new Error(`entry ${transaction}:${queue}: bad state`);
  if (typeof m.recipient !== 'string' || typeof m.transportid !== 'string') throw new Error(`entry ${transaction}:${queue}: missing recipient or transportid`);
  const { queue: _q, ...rest } = m;
  const entry = { ...(rest as unknown as Omit<QueueEntry, 'id'>), id: { transaction, queue } };
  // An attempt that was running when the process died is retried (at-least-once delivery).
  if (entry.state === 'SENDING' || entry.state === 'UPDATE') entry.state = 'ACTIVE' as QueueState;
  return entry;
}
