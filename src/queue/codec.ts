/**
 * How a queue entry is written into the spool: the entry minus its transaction id (the spool
 * keys records by transaction already). Pure; `decodeEntry` validates what it reads so a
 * spool written by another version fails loudly instead of loading garbage.
 *
 * Memory: `decodeEntry` builds the entry as one object literal with a fixed field order (every
 * entry shares one of two V8 hidden classes, never attempted or with the last attempt's hop
 * fields, fields in-object), with repeated strings interned and empty
 * containers shared (compact.ts).
 *
 * At-least-once: an entry stored as SENDING or UPDATE (written by an older version, or by an
 * administrative change interrupted by a crash) loads as ACTIVE, so it is tried again.
 */
import type { Json } from '../spool/types';
import type { Address, DsnParams, QueueEntry, QueueState } from '../model/types';
import { EMPTY_DSN, EMPTY_LIST, EMPTY_RECORD, intern } from './compact';
import { merged } from '../util/objects';

const STATES: ReadonlySet<string> = new Set(['ACTIVE', 'DEFER', 'HOLD', 'SENDING', 'UPDATE']);


export function encodeEntry(e: QueueEntry): Json {
  const { id, ...rest } = e;
  return merged(rest, { queue: id.queue }) as unknown as Json;
}

export function decodeEntry(transaction: string, queue: number, meta: Json): QueueEntry {
  const where = (): string => `entry ${transaction}:${queue}`;
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new Error(`${where()}: not an object`);
  const m = meta as Record<string, unknown>;
  if (typeof m.state !== 'string' || !STATES.has(m.state)) throw new Error(`${where()}: bad state`);
  if (typeof m.recipient !== 'string' || typeof m.transportid !== 'string') throw new Error(`${where()}: missing recipient or transportid`);
  const sender = intern(str(m.sender));
  const state = m.state === 'SENDING' || m.state === 'UPDATE' ? 'ACTIVE' : (m.state as QueueState);
  const base: QueueEntry = {
    id: { transaction, queue },
    ts: num(m.ts),
    serverid: intern(str(m.serverid)),
    sender,
    senderaddress: readAddress(m.senderaddress, sender),
    recipient: m.recipient,
    recipientaddress: readAddress(m.recipientaddress, m.recipient),
    transportid: intern(m.transportid),
    tenantid: intern(str(m.tenantid)),
    jobid: intern(str(m.jobid)),
    priority: m.priority === 1 ? 1 : 0,
    metadata: readRecord(m.metadata),
    quotas: readList(m.quotas),
    tags: readList(m.tags),
    dsn: readDsn(m.dsn),
    state,
    retry: num(m.retry),
    retryts: num(m.retryts),
    body: num(m.body),
    size: num(m.size),
  };
  return attempted(m) ? withHop(base, m) : base;
}

const HOP_FIELDS = ['localip', 'remotemx', 'remoteip', 'grouping'] as const;

function attempted(m: Record<string, unknown>): boolean {
  return HOP_FIELDS.some((f) => typeof m[f] === 'string');
}

/**
 * An attempted entry: the same fields plus the last attempt's hop, built as one literal so the
 * four fields are in-object too (adding them one by one would move them to a separate property
 * array). A never-attempted entry keeps the shorter shape and pays nothing for them.
 */
function withHop(b: QueueEntry, m: Record<string, unknown>): QueueEntry {
  return {
    id: b.id, ts: b.ts, serverid: b.serverid, sender: b.sender, senderaddress: b.senderaddress,
    recipient: b.recipient, recipientaddress: b.recipientaddress, transportid: b.transportid,
    tenantid: b.tenantid, jobid: b.jobid, priority: b.priority, metadata: b.metadata, quotas: b.quotas,
    tags: b.tags, dsn: b.dsn, state: b.state, retry: b.retry, retryts: b.retryts, body: b.body, size: b.size,
    localip: intern(str(m.localip)),
    remotemx: intern(str(m.remotemx)),
    remoteip: intern(str(m.remoteip)),
    grouping: intern(str(m.grouping)),
  };
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/** An address as decodeEntry reads it: the stored parts, or split from the whole address. */
export function readAddress(v: unknown, whole: string): Address {
  const a = v as Partial<Address> | null | undefined;
  if (a && typeof a.localpart === 'string' && typeof a.domain === 'string') return { localpart: a.localpart, domain: intern(a.domain) };
  const at = whole.lastIndexOf('@');
  return at < 0 ? { localpart: whole, domain: '' } : { localpart: whole.slice(0, at), domain: intern(whole.slice(at + 1)) };
}

/** Metadata as decodeEntry reads it: the string-valued keys; EMPTY_RECORD when none. */
export function readRecord(v: unknown): Record<string, string> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return EMPTY_RECORD;
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => typeof x === 'string');
  return entries.length === 0 ? EMPTY_RECORD : (Object.fromEntries(entries) as Record<string, string>);
}

/** Quotas and tags as decodeEntry reads them: the string elements; EMPTY_LIST for []. */
export function readList(v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0) return EMPTY_LIST;
  return v.filter((x): x is string => typeof x === 'string');
}

/** DSN parameters as decodeEntry reads them; EMPTY_DSN when none. */
export function readDsn(v: unknown): DsnParams {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return EMPTY_DSN;
  const d = v as Record<string, unknown>;
  const out: DsnParams = {};
  if (typeof d.envid === 'string') out.envid = d.envid;
  if (d.ret === 'FULL' || d.ret === 'HDRS') out.ret = d.ret;
  if (Array.isArray(d.notify)) out.notify = d.notify.filter((x): x is string => typeof x === 'string');
  if (typeof d.orcpt === 'string') out.orcpt = d.orcpt;
  return Object.keys(out).length === 0 ? EMPTY_DSN : out;
}
