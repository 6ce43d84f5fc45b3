/**
 * The queue commands of the control socket (`F` list, `D` group-by, `G` update, `E` import,
 * `I` quota, `J` unload, `0` export) over the in-memory queue (QueueStore), the spool and the
 * queue manager.
 *
 * Inputs: decoded requests (messages.ts). Outputs: response objects.
 * Behaviour:
 * - Matching: the Condition is compiled once per request (condition.ts); when it implies an
 *   exact value of an indexed field the index gives the candidates, otherwise one scan of the
 *   store does.
 * - List: every match is found (paging.total is the number of matches), sorted by the
 *   sortings in order (ties keep queue order), then the page is cut.
 * - Group-by: one key per entry made of the requested fields; counts per key (entries, or
 *   bytes when `return` is BYTES), plus one column per `counts` item; sorted and paged.
 * - Update: entries being delivered (SENDING) are left alone and counted in `working`. The
 *   others are first claimed (queue-claim.ts: UPDATE in memory, never picked up, so the
 *   scheduler cannot take them while the spool is written), then every change is written with
 *   `spool.updateMany` (a batch of entries whose addresses stay: one block, one write) or
 *   `spool.update` / `spool.remove`, and only once that write succeeded is the store changed;
 *   an entry whose write failed goes back to its previous state and is not counted. Bounces
 *   queue their DSN (scheduler/bounce.ts) through the ingress before the entries are removed.
 *   Entries moved to ACTIVE wake the queue manager. Removed entries (delete, bounce) then get
 *   the post-delivery hook (queue-hooks.ts) before the reply.
 * - Import (queue-import.ts), unload (queue-unload.ts): see there.
 * - Quota: entries carrying the quota name, with their bytes (the store's counters).
 * - Export: the stored message of one entry (RFC 5322 bytes as received, not a queue file).
 * Errors: `ControlError` for requests that cannot be carried out (unknown transport, bad
 * priority, DSN not queued, unknown id on export, bad import data, no unload folder).
 */
import type { RunningConfig } from '../config/types';
import type { Ingress } from '../model/ingress';
import { joinAddress, type QueueEntry, type QueueState } from '../model/types';
import { encodeEntry } from '../queue/codec';
import type { EntryPatch, QueueField, QueueStore } from '../queue/store';
import { dsnTransaction } from '../scheduler/bounce';
import { findTransport } from '../scheduler/plan';
import type { Json, Spool } from '../spool/types';
import type { DeliveryHooks } from '../hooks/delivery';
import { compileCondition, narrowing, type EntryPredicate } from './condition';
import { ControlError, type QueueControl } from './context';
import type * as M from './messages';
import { Claims, type Taken } from './queue-claim';
import { notifyPostdelivery, type AdminRemoval } from './queue-hooks';
import { importMessage } from './queue-import';
import { unload } from './queue-unload';

export interface QueueControlOptions {
  store: QueueStore;
  spool: Pick<Spool, 'update' | 'updateMany' | 'remove' | 'readBody'>;
  ingress: Ingress;
  manager: { wake(): void };
  config: () => RunningConfig;
  hostname: string;
  newId: () => string;
  log: { info(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
  now?: () => number;
  random?: () => number;
  /** The delivery hooks in force (postdelivery runs after administrative deletes and bounces). */
  deliveryHooks?: () => DeliveryHooks;
  /** Folder for `J` unload's queue files; absent = unload answers "not available". */
  unloadDir?: string;
}

/**
 * Spool writes per batch during an update; two batches are in flight (carryOut). The journal
 * writes and fsyncs each batch at once (~200 fsyncs for 100,000 changes). Larger batches keep
 * more garbage alive across scavenges: measured with 1,000,000 entries loaded, 1,024 or more
 * promoted 70–100 MB per 100,000 changes and set off full collections of the whole heap
 * (hold 5–9 s), 512 promoted 20 MB and none (2.0–2.6 s), 256 paid for its fsyncs (3.3–4.3 s).
 */
const WRITE_BATCH = 512;

export function queueControl(opts: QueueControlOptions): QueueControl {
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  /** Entries an update or unload is writing now; another request counts them as working. */
  const claims = new Claims(opts.store);

  function matches(c: M.Condition | undefined, t: number): QueueEntry[] {
    const pred = compileCondition(c, t, random);
    const narrow = narrowing(c);
    if (!narrow) return opts.store.scan(pred);
    return opts.store.select(narrow.field, narrow.value).filter(pred);
  }

  return {
    list(req) {
      const t = now();
      const cmp = sorter(req.sortings ?? []);
      const offset = req.paging?.offset ?? 0;
      const limit = req.paging?.limit || Infinity;
      if (!cmp && !narrowing(req.conditions)) {
        // Queue order and no index: one pass counts the matches and keeps only the page, so a
        // condition matching half of a million entries does not build a half-million array.
        const pred = compileCondition(req.conditions, t, random);
        const page: QueueEntry[] = [];
        let total = 0;
        opts.store.scan((e) => {
          if (!pred(e)) return false;
          if (total >= offset && total - offset < limit) page.push(e);
          total++;
          return false;
        });
        return { items: page.map((e) => toItem(e, t)), paging: { total } };
      }
      const found = matches(req.conditions, t);
      if (cmp) found.sort(cmp);
      return { items: found.slice(offset, offset + limit).map((e) => toItem(e, t)), paging: { total: found.length } };
    },
    groupBy(req) {
      const fast = indexedGroupBy(opts.store, req);
      return fast ?? groupBy(req, matches(req.conditions, now()), now());
    },
    update: (req) => update(opts, req, matches(req.conditions, now()), now, random, claims),
    // The store keeps the counters (the same that queue_quota() reads), no scan.
    quota: (req) => opts.store.quota(req.quota ?? ''),
    import: (req) => importMessage({ ingress: opts.ingress, store: opts.store, config: opts.config, hostname: opts.hostname, newId: opts.newId, now, log: opts.log }, req),
    /** The message as stored (RFC 5322, CRLF), not Halon's HQF format. */
    async export(req) {
      const e = opts.store.find({ transaction: (req.id?.transaction ?? '').toLowerCase(), queue: req.id?.queue ?? 0 });
      if (!e) throw new ControlError('no such queue entry');
      return opts.spool.readBody(e.id.transaction, e.body);
    },
    unload: (req) => unload({ store: opts.store, spool: opts.spool, claims, dir: opts.unloadDir, log: opts.log }, req, matches(req.conditions, now())),
  };
}

// ---- list ------------------------------------------------------------------------------------

type Cmp = (a: QueueEntry, b: QueueEntry) => number;

function by(get: (e: QueueEntry) => number | string, order: M.Order | undefined): Cmp {
  const sign = order === 'DESC' ? -1 : 1;
  return (a, b) => {
    const x = get(a);
    const y = get(b);
    return x < y ? -sign : x > y ? sign : 0;
  };
}

/**
 * The member set in a oneof. proto3 leaves a zero value out of the decoded object (ASC, ACTIVE
 * and DELETE are enum value 0), but the decoder names the set member under the oneof's name.
 */
function member<T extends object>(o: T, oneof: string): string | undefined {
  const named = (o as Record<string, unknown>)[oneof];
  if (typeof named === 'string') return named;
  return Object.keys(o).find((k) => k !== oneof && (o as Record<string, unknown>)[k] !== undefined);
}

function sortingCmp(s: M.QueueListRequest_Sorting): Cmp | undefined {
  switch (member(s, 'Sorting')) {
    case 'ts':
      return by((e) => e.ts, s.ts);
    case 'retryts':
      return by((e) => e.retryts, s.retryts);
    case 'size':
      return by((e) => e.size, s.size);
    case 'retrycount':
      return by((e) => e.retry, s.retrycount);
    case 'sender':
      return member(s.sender ?? {}, 'SortingMailAddress') === 'domain' ? by((e) => e.senderaddress.domain.toLowerCase(), s.sender?.domain) : by((e) => e.senderaddress.localpart, s.sender?.localpart);
    case 'recipient':
      return member(s.recipient ?? {}, 'SortingMailAddress') === 'domain' ? by((e) => e.recipientaddress.domain.toLowerCase(), s.recipient?.domain) : by((e) => e.recipientaddress.localpart, s.recipient?.localpart);
    default:
      // working.duration: attempt durations are not kept per entry, so every entry ties.
      return undefined;
  }
}

/** The sortings as one comparator (first sorting first); undefined = queue order. */
function sorter(sortings: M.QueueListRequest_Sorting[]): Cmp | undefined {
  const cmps = sortings.map(sortingCmp).filter((c): c is Cmp => c !== undefined);
  if (cmps.length === 0) return undefined;
  return (a, b) => {
    for (const c of cmps) {
      const r = c(a, b);
      if (r !== 0) return r;
    }
    return 0;
  };
}

function stateOf(e: QueueEntry): Pick<M.QueueItem, 'queue' | 'freeze' | 'working'> {
  switch (e.state) {
    case 'ACTIVE':
    case 'DEFER':
      return { queue: { queue: e.state } };
    case 'HOLD':
    case 'UPDATE':
      return { freeze: { freeze: e.state } };
    case 'SENDING':
      return { working: { working: 'SENDING' } };
  }
}

function toItem(e: QueueEntry, t: number): M.QueueItem {
  const dsn: NonNullable<M.QueueItem['dsn']> = {};
  if (e.dsn.envid !== undefined) dsn.envid = e.dsn.envid;
  if (e.dsn.ret !== undefined) dsn.ret = e.dsn.ret;
  if (e.dsn.notify !== undefined) dsn.notify = e.dsn.notify.join(',');
  if (e.dsn.orcpt !== undefined) dsn.orcpt = e.dsn.orcpt;
  return {
    id: { transaction: e.id.transaction, queue: e.id.queue },
    ...stateOf(e),
    ts: e.ts / 1000,
    hold: e.state === 'HOLD',
    jobid: e.jobid,
    grouping: e.grouping ?? '',
    metadata: { ...e.metadata },
    serverid: e.serverid,
    transportid: e.transportid,
    sender: { ...e.senderaddress },
    recipient: { ...e.recipientaddress },
    retrycount: e.retry,
    retrydelay: e.state === 'DEFER' ? Math.max(0, (e.retryts - t) / 1000) : 0,
    size: e.size,
    localips: e.localip ? [e.localip] : [],
    remoteip: e.remoteip ?? '',
    remotemx: e.remotemx ?? '',
    tags: [...e.tags],
    quotas: [...e.quotas],
    dsn,
    priority: e.priority,
  };
}

// ---- group-by --------------------------------------------------------------------------------

type Getter = (e: QueueEntry) => string;

function groupGetter(g: M.QueueGroupByRequest_GroupBy): Getter {
  if (g.metadata !== undefined) {
    const key = g.metadata;
    return (e) => e.metadata[key] ?? '';
  }
  if (g.transportid) return (e) => e.transportid;
  if (g.recipientdomain) return (e) => e.recipientaddress.domain.toLowerCase();
  if (g.senderdomain) return (e) => e.senderaddress.domain.toLowerCase();
  if (g.jobid) return (e) => e.jobid;
  if (g.grouping) return (e) => e.grouping ?? '';
  if (g.remoteip) return (e) => e.remoteip ?? '';
  if (g.remotemx) return (e) => (e.remotemx ?? '').toLowerCase();
  if (g.localip) return (e) => e.localip ?? '';
  // senderip is not kept per entry.
  if (g.senderip) return () => '';
  throw new ControlError('each groupby needs one field');
}

interface CountColumn {
  test: EntryPredicate;
  bytes: boolean;
  unique?: Getter;
}

function countColumn(c: M.QueueGroupByRequest_Counts, t: number): CountColumn {
  const cond: M.Condition = {};
  const { return: _ret, ...typeOnly } = c;
  switch (member(typeOnly, 'type')) {
    case 'queue':
      cond.queues = [{ queue: c.queue ?? 'ACTIVE' }];
      break;
    case 'freeze':
      cond.freezes = [{ freeze: c.freeze ?? 'HOLD' }];
      break;
    case 'working':
      cond.workings = [{ working: c.working ?? 'UNKNOWN' }];
      break;
    case 'ts':
      cond.tss = [c.ts!];
      break;
    case 'retryts':
      cond.retrytss = [c.retryts!];
      break;
    case 'retrycount':
      cond.retrycounts = [c.retrycount!];
      break;
    case 'priority':
      cond.priorities = [c.priority!];
      break;
  }
  const unique = c.return?.unique;
  return {
    test: compileCondition(cond, t),
    bytes: c.return?.type === 'BYTES',
    ...(unique ? { unique: groupGetter(unique) } : {}),
  };
}

interface Group {
  keys: string[];
  total: number;
  counts: number[];
  uniques: Array<Set<string> | undefined>;
}

/** Fields whose group-by the store answers from its own structures (domains lower-case there too). */
const STORE_GROUPS: ReadonlyArray<keyof M.QueueGroupByRequest_GroupBy & QueueField> = ['transportid', 'recipientdomain', 'senderdomain', 'jobid', 'grouping', 'remoteip', 'remotemx', 'localip'];

/**
 * Without a condition, counts or bytes, one group-by field is the store's own `groupBy` (from
 * its index when the field has one, else one allocation-free pass). Entries with an empty value
 * are not counted there, so they are counted here separately only when needed.
 */
function indexedGroupBy(store: QueueStore, req: M.QueueGroupByRequest): M.QueueGroupByResponse | undefined {
  const conditions = req.conditions && Object.keys(req.conditions).length > 0;
  const groupbys = req.groupbys ?? [];
  if (conditions || groupbys.length !== 1 || (req.counts ?? []).length > 0 || req.return === 'BYTES') return undefined;
  const field = STORE_GROUPS.find((f) => groupbys[0][f] === true);
  if (!field || Object.keys(groupbys[0]).filter((k) => k !== 'GroupUnique').length !== 1) return undefined;
  const counts = store.groupBy(field);
  let counted = 0;
  for (const v of counts.values()) counted += v;
  const groups: Group[] = [...counts].map(([v, total]) => ({ keys: [v], total, counts: [], uniques: [] }));
  if (counted < store.size) groups.push({ keys: [''], total: store.size - counted, counts: [], uniques: [] });
  return pageGroups(req, groups);
}

function pageGroups(req: M.QueueGroupByRequest, list: Group[]): M.QueueGroupByResponse {
  list.sort(groupSorter(req.sortings ?? []));
  const offset = req.paging?.offset ?? 0;
  const limit = req.paging?.limit || Infinity;
  return {
    items: list.slice(offset, offset + limit).map((g) => ({ groupbys: g.keys, counts: g.counts, total: g.total })),
    paging: { total: list.length },
  };
}

function groupBy(req: M.QueueGroupByRequest, found: QueueEntry[], t: number): M.QueueGroupByResponse {
  const getters = (req.groupbys ?? []).map(groupGetter);
  const columns = (req.counts ?? []).map((c) => countColumn(c, t));
  const bytes = req.return === 'BYTES';
  const groups = new Map<string, Group>();
  for (const e of found) {
    // U+0000 cannot occur in the values (addresses, ids), so the joined key is unambiguous.
    const id = getters.length === 1 ? getters[0](e) : getters.map((g) => g(e)).join('\u0000');
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { keys: getters.map((get) => get(e)), total: 0, counts: columns.map(() => 0), uniques: columns.map((c) => (c.unique ? new Set<string>() : undefined)) }));
    g.total += bytes ? e.size : 1;
    columns.forEach((c, i) => {
      if (!c.test(e)) return;
      if (c.unique) g!.uniques[i]!.add(c.unique(e));
      else g!.counts[i] += c.bytes ? e.size : 1;
    });
  }
  const list = [...groups.values()];
  for (const g of list) g.uniques.forEach((u, i) => u && (g.counts[i] = u.size));
  return pageGroups(req, list);
}

/** Default: largest total first, then by key; the request's sortings come first. */
function groupSorter(sortings: NonNullable<M.QueueGroupByRequest['sortings']>): (a: Group, b: Group) => number {
  const cmps = sortings.map((s) => {
    const sign = s.order === 'DESC' ? -1 : 1;
    const kind = member({ groupby: s.groupby, total: s.total, count: s.count, SortingType: (s as { SortingType?: string }).SortingType }, 'SortingType');
    if (kind === 'groupby') {
      const i = s.groupby ?? 0;
      return (a: Group, b: Group) => sign * (a.keys[i] ?? '').localeCompare(b.keys[i] ?? '');
    }
    if (kind === 'count') {
      const i = s.count ?? 0;
      return (a: Group, b: Group) => sign * ((a.counts[i] ?? 0) - (b.counts[i] ?? 0));
    }
    return (a: Group, b: Group) => sign * (a.total - b.total);
  });
  cmps.push((a, b) => b.total - a.total, (a, b) => a.keys.join('\u0000').localeCompare(b.keys.join('\u0000')));
  return (a, b) => {
    for (const c of cmps) {
      const r = c(a, b);
      if (r !== 0) return r;
    }
    return 0;
  };
}

// ---- update ----------------------------------------------------------------------------------

/** What happens to each selected entry. */
type Plan =
  | { kind: 'change'; patch: EntryPatch; envelope?: { sender?: string; recipient?: string } }
  | { kind: 'delete' }
  | { kind: 'bounce'; status: string; diagnostic: string };

function timeMs(v: M.TimeValue | undefined, t: number): number {
  if (!v) return t;
  if (v.relative !== undefined) return t + v.relative * 1000;
  return (v.absolute ?? 0) * 1000;
}

function addressPart(old: { localpart: string; domain: string }, change: { localpart?: M.StringValue; domain?: M.StringValue } | undefined): string | undefined {
  if (!change || (change.localpart === undefined && change.domain === undefined)) return undefined;
  return joinAddress({ localpart: change.localpart ? change.localpart.value ?? '' : old.localpart, domain: change.domain ? change.domain.value ?? '' : old.domain });
}

function planOf(opts: QueueControlOptions, req: M.QueueUpdateRequest, t: number, random: () => number): (e: QueueEntry) => Plan {
  // DELETE is enum value 0: present only as the oneof's name, or as an Action without type.
  const task = req.task ?? (req.action ? 'action' : req.actiontype !== undefined ? 'actiontype' : req.move ? 'move' : undefined);
  const action = task === 'action' ? req.action?.type ?? 'DELETE' : task === 'actiontype' ? req.actiontype ?? 'DELETE' : undefined;
  if (action === 'DELETE') return () => ({ kind: 'delete' });
  if (action === 'BOUNCE') {
    const s = req.action?.dsn?.status;
    const status = s && (s.class || s.subject || s.detail) ? `${s.class ?? 5}.${s.subject ?? 0}.${s.detail ?? 0}` : '5.0.0';
    if (!/^[245]\.\d{1,3}\.\d{1,3}$/.test(status)) throw new ControlError(`DSN status ${status} is not class 2, 4 or 5 (RFC 3463 §2)`);
    const diagnostic = req.action?.dsn?.diagnosticcode || 'bounced by the administrator';
    return () => ({ kind: 'bounce', status, diagnostic });
  }
  if (req.transportid?.value !== undefined && !findTransport(opts.config(), req.transportid.value)) {
    throw new ControlError(`no transport ${JSON.stringify(req.transportid.value)} in the running configuration`);
  }
  if (req.priority && (req.priority.value ?? 0) > 1) throw new ControlError('priority is 0 or 1');
  const changes = [req.transportid, req.retrycount, req.priority, req.sender, req.recipient].some((x) => x !== undefined) || Object.keys(req.metadata ?? {}).length > 0;
  if (task !== 'move' && !changes) throw new ControlError('the update changes nothing: give a move, an action or a field to change');
  const move = task === 'move' ? req.move ?? {} : undefined;
  const destination = move ? (move as { Destination?: string }).Destination ?? (move.queue !== undefined ? 'queue' : move.freeze !== undefined ? 'freeze' : undefined) : undefined;
  if (move && destination === 'queue') move.queue ??= 'ACTIVE';
  if (move && destination === 'freeze') move.freeze ??= 'HOLD';
  const retryts = move?.queue === 'DEFER' ? timeMs(move.retryts, t) : undefined;
  const jitter = (move?.retrytsjitter?.value ?? 0) * 1000;
  // The fields every entry gets alike; per entry only jitter, merged metadata and addresses.
  const base: EntryPatch = {};
  if (move?.queue !== undefined) base.state = move.queue;
  else if (move?.freeze !== undefined) base.state = move.freeze;
  if (base.state === 'ACTIVE') base.retryts = 0;
  if (retryts !== undefined) base.retryts = Math.round(retryts);
  if (req.transportid?.value !== undefined) base.transportid = req.transportid.value;
  if (req.retrycount) base.retry = req.retrycount.value ?? 0;
  if (req.priority) base.priority = req.priority.value === 1 ? 1 : 0;
  const metadata = req.metadata && Object.keys(req.metadata).length > 0 ? req.metadata : undefined;
  // A million-entry hold shares one plan object instead of making two per entry.
  if (jitter === 0 && !metadata && !req.sender && !req.recipient) {
    const shared: Plan = { kind: 'change', patch: Object.freeze(base) };
    return () => shared;
  }
  return (e) => {
    const patch: EntryPatch = { ...base };
    if (retryts !== undefined && jitter > 0) patch.retryts = Math.round(retryts + random() * jitter);
    if (metadata) patch.metadata = { ...e.metadata, ...metadata };
    const sender = addressPart(e.senderaddress, req.sender);
    const recipient = addressPart(e.recipientaddress, req.recipient);
    const envelope = sender !== undefined || recipient !== undefined ? { ...(sender !== undefined ? { sender } : {}), ...(recipient !== undefined ? { recipient } : {}) } : undefined;
    return { kind: 'change', patch, ...(envelope ? { envelope } : {}) };
  };
}

/**
 * The spool form of an entry after a change without new addresses — what `encodeEntry` of the
 * changed entry gives, built as one literal instead of two spread copies (a hold of 100,000
 * entries makes 100,000 of these). The type lists every field of QueueEntry but `id`, so a
 * field added to QueueEntry fails to compile here instead of being lost on disk.
 */
function encodeChanged(e: QueueEntry, p: EntryPatch, previous: QueueState): Json {
  const o: { [K in Exclude<keyof QueueEntry, 'id'>]-?: QueueEntry[K] | undefined } & { queue: number } = {
    ts: e.ts,
    serverid: e.serverid,
    sender: e.sender,
    senderaddress: e.senderaddress,
    recipient: e.recipient,
    recipientaddress: e.recipientaddress,
    transportid: p.transportid ?? e.transportid,
    tenantid: e.tenantid,
    jobid: e.jobid,
    priority: p.priority ?? e.priority,
    metadata: p.metadata ?? e.metadata,
    quotas: e.quotas,
    tags: e.tags,
    dsn: e.dsn,
    state: p.state ?? previous,
    retry: p.retry ?? e.retry,
    retryts: p.retryts ?? e.retryts,
    body: e.body,
    size: e.size,
    // Absent hop fields stay absent: JSON leaves undefined out, as encodeEntry does.
    localip: p.localip ?? e.localip,
    remotemx: p.remotemx ?? e.remotemx,
    remoteip: p.remoteip ?? e.remoteip,
    grouping: p.grouping ?? e.grouping,
    queue: e.id.queue,
  };
  return o as unknown as Json;
}

/** The entry as it will be after a change (a copy; the live entry is not touched). */
function changed(e: QueueEntry, plan: Change, previous: QueueState): QueueEntry {
  const next: QueueEntry = { ...e, id: { ...e.id }, state: previous, ...plan.patch } as QueueEntry;
  if (plan.envelope?.sender !== undefined) {
    next.sender = plan.envelope.sender;
    next.senderaddress = splitKeep(plan.envelope.sender);
  }
  if (plan.envelope?.recipient !== undefined) {
    next.recipient = plan.envelope.recipient;
    next.recipientaddress = splitKeep(plan.envelope.recipient);
  }
  return next;
}

function splitKeep(a: string): { localpart: string; domain: string } {
  const at = a.lastIndexOf('@');
  return at < 0 ? { localpart: a, domain: '' } : { localpart: a.slice(0, at), domain: a.slice(at + 1) };
}

async function update(
  opts: QueueControlOptions,
  req: M.QueueUpdateRequest,
  found: QueueEntry[],
  now: () => number,
  random: () => number,
  claims: Claims,
): Promise<M.QueueUpdateResponse> {
  const t = now();
  const plan = planOf(opts, req, t, random);
  // Synchronously (no await): take every entry out of reach of the scheduler.
  const { taken, working } = claims.take(found, req.paging?.limit || Infinity);
  const planned: Planned[] = taken.map((x) => ({ e: x.e, previous: x.previous, plan: plan(x.e) }));
  try {
    return await carryOut(opts, req, planned, found.length, working, t);
  } finally {
    // Only after an unexpected failure can an entry still be in UPDATE without asking for it.
    claims.release(planned, (x) => (x as Planned).plan.kind === 'change' && ((x as Planned).plan as Extract<Plan, { kind: 'change' }>).patch.state === 'UPDATE');
  }
}

type Planned = Taken & { plan: Plan };
type Applied = 'affected' | 'active' | 'removed' | 'failed';

async function carryOut(opts: QueueControlOptions, req: M.QueueUpdateRequest, taken: Planned[], matched: number, working: number, t: number): Promise<M.QueueUpdateResponse> {
  const bounced = await queueBounces(opts, taken.filter((x) => x.plan.kind === 'bounce'), t);
  let affected = 0;
  let woke = false;
  const removed: AdminRemoval[] = [];
  const tally = (batch: Planned[], results: Applied[]): void => {
    results.forEach((r, k) => {
      if (r !== 'failed') affected++;
      if (r === 'active') woke = true;
      if (r === 'removed') removed.push(removal(batch[k]));
    });
  };
  // Two batches in flight: the next batch is encoded (CPU) while the journal writes and
  // fsyncs the previous one (I/O), instead of one waiting for the other.
  let previous: Promise<void> | undefined;
  for (let i = 0; i < taken.length; i += WRITE_BATCH) {
    const batch = taken.slice(i, i + WRITE_BATCH);
    const done = applyBatch(opts, batch, bounced).then((results) => tally(batch, results));
    // Let the journal start this batch's write before the previous one is awaited.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await previous;
    previous = done;
  }
  await previous;
  if (woke) opts.manager.wake();
  opts.log.info({ affected, working, matched, task: req.task ?? 'change' }, 'queue updated by the control socket');
  await notifyPostdelivery(opts.deliveryHooks?.(), removed, opts.log);
  return { affected, working };
}

function removal(x: Planned): AdminRemoval {
  return x.plan.kind === 'bounce' ? { e: x.e, action: 'BOUNCE', status: x.plan.status, diagnostic: x.plan.diagnostic } : { e: x.e, action: 'DELETE' };
}

type Change = Extract<Plan, { kind: 'change' }>;

/** One batch: the changes that keep the addresses in one spool write, the rest one by one. */
async function applyBatch(opts: QueueControlOptions, batch: Planned[], bounced: ReadonlySet<QueueEntry>): Promise<Applied[]> {
  const results = new Array<Applied>(batch.length);
  const simple: number[] = [];
  const work: Array<Promise<void>> = [];
  batch.forEach((x, k) => {
    if (x.plan.kind === 'change' && !x.plan.envelope) simple.push(k);
    else work.push(apply(opts, x, bounced).then((r) => void (results[k] = r)));
  });
  if (simple.length > 0) {
    const list = simple.map((k) => batch[k]);
    work.push(applyChanges(opts, list).then((rs) => rs.forEach((r, i) => void (results[simple[i]] = r))));
  }
  await Promise.all(work);
  return results;
}

/** Changes without new addresses: written together (spool.updateMany), then to the store. */
async function applyChanges(opts: QueueControlOptions, list: Planned[]): Promise<Applied[]> {
  let refused: Array<Error | undefined>;
  try {
    refused = await opts.spool.updateMany(list.map(({ e, plan, previous }) => ({ transaction: e.id.transaction, queue: e.id.queue, meta: encodeChanged(e, (plan as Change).patch, previous) })));
  } catch (err) {
    refused = list.map(() => err as Error);
  }
  return list.map((x, i) => (refused[i] ? failed(opts, x, refused[i]!) : storeChange(opts, x.e, (x.plan as Change).patch, x.previous)));
}

/** The store side of a written change; whether the entry is now ACTIVE. */
function storeChange(opts: QueueControlOptions, e: QueueEntry, patch: EntryPatch, previous: QueueState): Applied {
  opts.store.update(e, patch);
  if (patch.state === undefined) opts.store.setState(e, previous);
  return e.state === 'ACTIVE' ? 'active' : 'affected';
}

/** An entry whose write failed keeps its previous state (and is not counted). */
function failed(opts: QueueControlOptions, x: Planned, err: Error): Applied {
  const { e, previous } = x;
  if (opts.store.has(e)) opts.store.setState(e, previous);
  opts.log.error({ id: `${e.id.transaction}:${e.id.queue}`, err: err.message }, 'queue update of an entry failed; it keeps its previous state');
  return 'failed';
}

/**
 * A removal or a change of addresses, one entry at a time: written to the spool, then to the
 * store; 'failed' restores its state. Other changes go in batches (applyChanges).
 */
async function apply(opts: QueueControlOptions, x: Planned, bounced: ReadonlySet<QueueEntry>): Promise<Applied> {
  const { e, previous, plan } = x;
  try {
    if (plan.kind === 'delete' || plan.kind === 'bounce') {
      if (plan.kind === 'bounce' && !bounced.has(e)) throw new Error('DSN not queued');
      await opts.spool.remove(e.id.transaction, e.id.queue);
      opts.store.delete(e);
      return 'removed';
    }
    // Envelope fields are fixed while an entry is queued (store.ts): replace the entry.
    const next = changed(e, plan, previous);
    await opts.spool.update(e.id.transaction, e.id.queue, encodeEntry(next));
    opts.store.delete(e);
    opts.store.add(next);
    return next.state === 'ACTIVE' ? 'active' : 'affected';
  } catch (err) {
    return failed(opts, x, err as Error);
  }
}

/**
 * Queue one DSN per transaction and body for the entries to bounce (sender '' gets none,
 * RFC 5321 §4.5.5), on the DSN transport of the entry's transport group, as the scheduler does.
 * Returns the entries that may now be removed: those whose DSN was queued or needs none.
 */
async function queueBounces(opts: QueueControlOptions, list: Array<{ e: QueueEntry; plan: Plan }>, t: number): Promise<Set<QueueEntry>> {
  const done = new Set<QueueEntry>();
  const groups = new Map<string, { transportid: string; items: Array<{ e: QueueEntry; plan: Extract<Plan, { kind: 'bounce' }> }> }>();
  const config = opts.config();
  for (const x of list) {
    if (x.plan.kind !== 'bounce') continue;
    const dsnTransport = findTransport(config, x.e.transportid)?.group.dsn?.transport;
    if (x.e.sender === '' || dsnTransport === undefined) {
      done.add(x.e);
      continue;
    }
    const key = `${x.e.id.transaction}:${x.e.body}:${dsnTransport}`;
    const g = groups.get(key) ?? { transportid: dsnTransport, items: [] };
    g.items.push({ e: x.e, plan: x.plan });
    groups.set(key, g);
  }
  for (const g of groups.values()) {
    const first = g.items[0].e;
    try {
      const original = await opts.spool.readBody(first.id.transaction, first.body);
      const tx = dsnTransaction({
        facts: g.items.map(({ e, plan }) => ({ entry: e, action: 'failed', status: plan.status, diagnostic: { type: 'x-error', text: plan.diagnostic } })),
        original,
        hostname: opts.hostname,
        now: t,
        newId: opts.newId,
        transportid: g.transportid,
      });
      if (tx) await opts.ingress.commit(tx);
      for (const { e } of g.items) done.add(e);
      if (tx) opts.log.info({ transactionid: first.id.transaction, dsn: tx.id, recipients: g.items.length, to: tx.entries[0].recipient }, 'DSN queued (bounced by the control socket)');
    } catch (err) {
      opts.log.error({ transactionid: first.id.transaction, err: (err as Error).message }, 'DSN could not be queued; the entries are left queued');
    }
  }
  return done;
}
