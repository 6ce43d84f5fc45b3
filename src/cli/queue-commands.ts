/**
 * halyardctl's queue subcommands: `queue list` (F), `queue groupby` (D), `queue update` (G),
 * `queue quota` (I), `queue import` (E), `queue export` (0), `queue unload` (J).
 *
 * Inputs: parsed arguments with the condition flags (conditions.ts) and each command's own
 * options. Outputs: the request message; for the reply, an aligned text table (list,
 * groupby, quota), "N messages affected" (update), the new transaction id (import), the
 * message bytes (export), the files written (unload) — `--json` is handled by main.ts.
 * Invariants: request building never touches the network (`--json-request` shows it without
 * sending; import reads its FILE then); the update's own change flags are named `--set-…` so
 * they cannot be confused with the condition flags of the same field (`--transportid`
 * selects, `--set-transportid` changes).
 * Import: a queue file (as `queue unload` writes) is sent as `hqf`; a raw message without
 * envelope options is sent as `rfc822` (the daemon reads the envelope from its header
 * fields); with `--sender`, `--recipient`, `--transportid` or `--hold` halyardctl builds a
 * queue file itself, taking what was not given from the header fields the same way, and asks
 * the daemon for a new transaction id.
 * Errors: `UsageError` (exit 2) for unknown fields, conflicting actions, a missing condition
 * on update or unload (give `--all` to mean every entry), an unreadable import file.
 * This module imports only types from subcommands.ts (which imports this one).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import type * as M from '../control/messages';
import { decodeMessage } from '../control/schema';
import { buildCondition, CONDITION_FLAGS, isConditionFlag, parseTimestamp } from './conditions';
import { single, UsageError, type OptionSpec, type ParsedArgs } from './options';
import type { Output, Subcommand } from './subcommands';
import { parseDuration } from '../config/syntax';
import { envelopeFromHeaders } from '../control/header-envelope';
import { decodeQueueFile, encodeQueueFile, isQueueFile, QueueFileError, type QueueFile } from '../control/queue-file';
import { toCrlf } from '../http/submission-parse';
import { newQueueEntry, parseQueueId } from '../model/types';

function conditionFlags(): OptionSpec[] {
  return CONDITION_FLAGS.map((f) => ({ name: f.name, value: f.value, repeat: true, help: f.help }));
}

function condition(args: ParsedArgs): M.Condition {
  return buildCondition(args.ordered.filter((o) => isConditionFlag(o.name)).map((o) => ({ flag: o.name, value: o.value })));
}

function hasCondition(args: ParsedArgs): boolean {
  return args.ordered.some((o) => isConditionFlag(o.name));
}

function noPositionals(args: ParsedArgs): void {
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
}

function uint(args: ParsedArgs, name: string): number | undefined {
  const v = single(args, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} takes a whole number`);
  return Number(v);
}

function paging(args: ParsedArgs): { offset?: number; limit?: number } | undefined {
  const offset = uint(args, 'offset');
  const limit = uint(args, 'limit');
  if (offset === undefined && limit === undefined) return undefined;
  return { ...(offset !== undefined ? { offset } : {}), ...(limit !== undefined ? { limit } : {}) };
}

/** Rows as text columns padded to the widest cell; the header is upper-case. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header.map((h) => h.toUpperCase())), ...rows.map(line)].map((l) => `${l}\n`).join('');
}

// ---- queue list ------------------------------------------------------------------------------

function stateName(item: M.QueueItem): string {
  const kind = item.State ?? (item.freeze ? 'freeze' : item.working ? 'working' : 'queue');
  if (kind === 'freeze') return item.freeze?.freeze ?? 'HOLD';
  if (kind === 'working') return item.working?.working ?? 'UNKNOWN';
  return item.queue?.queue ?? 'ACTIVE';
}

function address(a: { localpart?: string; domain?: string } | undefined): string {
  const l = a?.localpart ?? '';
  const d = a?.domain ?? '';
  return d ? `${l}@${d}` : l || '<>';
}

const LIST_FIELDS: Readonly<Record<string, (i: M.QueueItem) => string>> = {
  id: (i) => `${i.id?.transaction ?? ''}:${i.id?.queue ?? 0}`,
  state: stateName,
  ts: (i) => new Date((i.ts ?? 0) * 1000).toISOString(),
  age: (i) => `${Math.max(0, Math.round(Date.now() / 1000 - (i.ts ?? 0)))}s`,
  sender: (i) => address(i.sender),
  recipient: (i) => address(i.recipient),
  transportid: (i) => i.transportid ?? '',
  serverid: (i) => i.serverid ?? '',
  jobid: (i) => i.jobid ?? '',
  grouping: (i) => i.grouping ?? '',
  retrycount: (i) => String(i.retrycount ?? 0),
  retrydelay: (i) => `${Math.round(i.retrydelay ?? 0)}s`,
  size: (i) => String(i.size ?? 0),
  priority: (i) => String(i.priority ?? 0),
  localip: (i) => (i.localips ?? []).join(','),
  remoteip: (i) => i.remoteip ?? '',
  remotemx: (i) => i.remotemx ?? '',
  metadata: (i) => Object.entries(i.metadata ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
  tags: (i) => (i.tags ?? []).join(','),
  quotas: (i) => (i.quotas ?? []).join(','),
};

const DEFAULT_LIST_FIELDS = ['id', 'state', 'transportid', 'sender', 'recipient', 'retrycount', 'retrydelay', 'size'];

/** `--sort` keys → one Sorting of QueueListRequest. */
const SORTS: Readonly<Record<string, (o: M.Order) => M.QueueListRequest_Sorting>> = {
  ts: (o) => ({ ts: o }),
  retryts: (o) => ({ retryts: o }),
  size: (o) => ({ size: o }),
  retrycount: (o) => ({ retrycount: o }),
  sender: (o) => ({ sender: { localpart: o } }),
  senderdomain: (o) => ({ sender: { domain: o } }),
  recipient: (o) => ({ recipient: { localpart: o } }),
  recipientdomain: (o) => ({ recipient: { domain: o } }),
};

function sorting(v: string): M.QueueListRequest_Sorting {
  const m = /^([a-z]+)(?::(asc|desc))?$/i.exec(v);
  const make = m ? SORTS[m[1].toLowerCase()] : undefined;
  if (!m || !make) throw new UsageError(`--sort takes FIELD[:asc|desc] with FIELD one of ${Object.keys(SORTS).join(', ')}; got ${JSON.stringify(v)}`);
  return make(m[2]?.toLowerCase() === 'desc' ? 'DESC' : 'ASC');
}

function listFields(args: ParsedArgs): string[] {
  const fields = args.values.get('field') ?? DEFAULT_LIST_FIELDS;
  for (const f of fields) if (!LIST_FIELDS[f]) throw new UsageError(`-F takes one of ${Object.keys(LIST_FIELDS).join(', ')}; got ${JSON.stringify(f)}`);
  return fields;
}

/** Rows `queue list` asks for when --limit is not given. */
const LIST_LIMIT = 1000;

const PAGING_OPTIONS: OptionSpec[] = [
  { name: 'offset', value: 'N', help: 'skip the first N results' },
  { name: 'limit', value: 'N', help: 'show at most N results' },
];

export const queueList: Subcommand = {
  words: ['queue', 'list'],
  summary: 'list the queue entries that match the condition flags, as a table',
  args: [],
  options: [
    { name: 'field', short: 'F', value: 'FIELD', repeat: true, help: `column to show: ${Object.keys(LIST_FIELDS).join(', ')}` },
    { name: 'sort', value: 'FIELD[:asc|desc]', repeat: true, help: `sort by ${Object.keys(SORTS).join(', ')}` },
    ...PAGING_OPTIONS,
    ...conditionFlags(),
  ],
  command: 'queueList',
  request: (args) => {
    noPositionals(args);
    listFields(args);
    const req: M.QueueListRequest = { conditions: condition(args) };
    const sorts = (args.values.get('sort') ?? []).map(sorting);
    if (sorts.length) req.sortings = sorts;
    // A whole large queue is no table for a person; the footer says how many there are.
    req.paging = { limit: LIST_LIMIT, ...paging(args) };
    return req;
  },
  render: (payload, args, io) => {
    const res = decodeMessage<M.QueueListResponse>('QueueListResponse', payload);
    const fields = listFields(args);
    const items = res.items ?? [];
    const rows = items.map((i) => fields.map((f) => LIST_FIELDS[f](i)));
    io.out(table(fields, rows));
    const total = res.paging?.total ?? items.length;
    io.out(`${items.length} of ${total} ${total === 1 ? 'entry' : 'entries'}\n`);
    return 0;
  },
};

// ---- queue groupby ---------------------------------------------------------------------------

const GROUP_FIELDS = ['transportid', 'recipientdomain', 'senderdomain', 'jobid', 'grouping', 'senderip', 'remoteip', 'remotemx', 'localip'] as const;

function groupBy(v: string): M.QueueGroupByRequest_GroupBy {
  if (v.startsWith('metadata:') && v.length > 'metadata:'.length) return { metadata: v.slice('metadata:'.length) };
  if ((GROUP_FIELDS as readonly string[]).includes(v)) return { [v]: true };
  throw new UsageError(`--by takes one of ${GROUP_FIELDS.join(', ')} or metadata:KEY; got ${JSON.stringify(v)}`);
}

export const queueGroupBy: Subcommand = {
  words: ['queue', 'groupby'],
  summary: 'count the matching queue entries per value of one or more fields (largest first)',
  args: [],
  options: [
    { name: 'by', value: 'FIELD', repeat: true, help: `group by ${GROUP_FIELDS.join(', ')} or metadata:KEY (default recipientdomain)` },
    { name: 'bytes', help: 'sum message sizes instead of counting entries' },
    ...PAGING_OPTIONS,
    ...conditionFlags(),
  ],
  command: 'queueGroupBy',
  request: (args) => {
    noPositionals(args);
    const by = args.values.get('by') ?? ['recipientdomain'];
    const req: M.QueueGroupByRequest = { conditions: condition(args), groupbys: by.map(groupBy) };
    if (args.flags.has('bytes')) req.return = 'BYTES';
    const p = paging(args);
    if (p) req.paging = p;
    return req;
  },
  render: (payload, args, io) => {
    const res = decodeMessage<M.QueueGroupByResponse>('QueueGroupByResponse', payload);
    const by = args.values.get('by') ?? ['recipientdomain'];
    const rows = (res.items ?? []).map((i) => [...by.map((_, k) => i.groupbys?.[k] || '-'), String(i.total ?? 0)]);
    io.out(table([...by, args.flags.has('bytes') ? 'bytes' : 'count'], rows));
    return 0;
  },
};

// ---- queue update ----------------------------------------------------------------------------

const ACTIONS = ['hold', 'active', 'defer', 'delete', 'bounce'] as const;

/** `--delay` / `--retryts`: when a deferred entry is retried. */
function retryTime(args: ParsedArgs): M.TimeValue | undefined {
  const delay = single(args, 'delay');
  const at = single(args, 'retryts');
  if (delay !== undefined && at !== undefined) throw new UsageError('give --delay or --retryts, not both');
  if (delay !== undefined) {
    const s = /^\d+$/.test(delay) ? Number(delay) : parseDurationOrThrow('delay', delay);
    return { relative: s };
  }
  if (at !== undefined) {
    try {
      return { absolute: parseTimestamp(at) };
    } catch (err) {
      throw new UsageError(`--retryts: ${(err as Error).message}`);
    }
  }
  return undefined;
}

function parseDurationOrThrow(name: string, v: string): number {
  try {
    return parseDuration(v);
  } catch {
    throw new UsageError(`--${name} takes seconds or a duration such as 15m; got ${JSON.stringify(v)}`);
  }
}

function split(v: string, flag: string): { localpart: M.StringValue; domain: M.StringValue } {
  const a = v === '<>' ? '' : v;
  const at = a.lastIndexOf('@');
  if (a !== '' && (at <= 0 || at === a.length - 1)) throw new UsageError(`--${flag} takes user@domain or <>`);
  return at < 0 ? { localpart: { value: '' }, domain: { value: '' } } : { localpart: { value: a.slice(0, at) }, domain: { value: a.slice(at + 1) } };
}

function dsnStatus(v: string): { class: number; subject: number; detail: number } {
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})$/.exec(v);
  if (!m) throw new UsageError(`--status takes an RFC 3463 code such as 5.1.1; got ${JSON.stringify(v)}`);
  return { class: Number(m[1]), subject: Number(m[2]), detail: Number(m[3]) };
}

function task(args: ParsedArgs): Pick<M.QueueUpdateRequest, 'move' | 'action'> {
  const chosen = ACTIONS.filter((a) => args.flags.has(a));
  if (chosen.length > 1) throw new UsageError(`give one of ${ACTIONS.map((a) => `--${a}`).join(', ')}`);
  const when = retryTime(args);
  const jitter = uint(args, 'jitter');
  if ((when !== undefined || jitter !== undefined) && chosen[0] !== 'defer') throw new UsageError('--delay, --retryts and --jitter go with --defer');
  const bounceOnly = ['status', 'reason'].filter((o) => args.values.has(o));
  if (bounceOnly.length && chosen[0] !== 'bounce') throw new UsageError('--status and --reason go with --bounce');
  switch (chosen[0]) {
    case 'hold':
      return { move: { freeze: 'HOLD' } };
    case 'active':
      return { move: { queue: 'ACTIVE' } };
    case 'defer':
      return { move: { queue: 'DEFER', ...(when ? { retryts: when } : {}), ...(jitter !== undefined ? { retrytsjitter: { value: jitter } } : {}) } };
    case 'delete':
      return { action: { type: 'DELETE' } };
    case 'bounce': {
      const status = single(args, 'status');
      const reason = single(args, 'reason');
      const dsn = { ...(status ? { status: dsnStatus(status) } : {}), ...(reason ? { diagnosticcode: reason } : {}) };
      return { action: { type: 'BOUNCE', ...(Object.keys(dsn).length ? { dsn } : {}) } };
    }
    default:
      return {};
  }
}

function changes(args: ParsedArgs): Partial<M.QueueUpdateRequest> {
  const out: Partial<M.QueueUpdateRequest> = {};
  const transport = single(args, 'set-transportid');
  if (transport !== undefined) out.transportid = { value: transport };
  const meta = args.values.get('set-metadata');
  if (meta) {
    out.metadata = {};
    for (const kv of meta) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new UsageError(`--set-metadata takes KEY=VALUE; got ${JSON.stringify(kv)}`);
      out.metadata[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
  }
  const sender = single(args, 'set-sender');
  if (sender !== undefined) out.sender = split(sender, 'set-sender');
  const recipient = single(args, 'set-recipient');
  if (recipient !== undefined) {
    if (recipient === '<>') throw new UsageError('--set-recipient takes user@domain');
    out.recipient = split(recipient, 'set-recipient');
  }
  const retry = uint(args, 'set-retrycount');
  if (retry !== undefined) out.retrycount = { value: retry };
  const prio = uint(args, 'set-priority');
  if (prio !== undefined) {
    if (prio > 1) throw new UsageError('--set-priority takes 0 or 1');
    out.priority = { value: prio };
  }
  return out;
}

export const queueUpdate: Subcommand = {
  words: ['queue', 'update'],
  summary: 'hold, activate, defer, delete, bounce or change the matching entries; prints "N messages affected"',
  args: [],
  options: [
    { name: 'hold', help: 'move to HOLD (never delivered until made active again)' },
    { name: 'active', help: 'move to ACTIVE (delivered as soon as possible)' },
    { name: 'defer', help: 'move to DEFER (see --delay, --retryts, --jitter)' },
    { name: 'delete', help: 'remove from the queue without notice' },
    { name: 'bounce', help: 'remove and send a DSN to the sender (see --status, --reason)' },
    { name: 'delay', value: 'SECONDS', help: 'with --defer: retry after SECONDS or a duration (default now)' },
    { name: 'retryts', value: 'TIME', help: 'with --defer: retry at TIME (ISO-8601 or epoch seconds)' },
    { name: 'jitter', value: 'SECONDS', help: 'with --defer: add up to SECONDS at random to each retry time' },
    { name: 'status', value: 'X.Y.Z', help: 'with --bounce: DSN status (default 5.0.0)' },
    { name: 'reason', value: 'TEXT', help: 'with --bounce: DSN diagnostic text' },
    { name: 'set-transportid', value: 'ID', help: 'change the transport' },
    { name: 'set-metadata', value: 'KEY=VALUE', repeat: true, help: 'set a metadata key' },
    { name: 'set-sender', value: 'ADDRESS', help: 'change the envelope sender (<> for the null sender)' },
    { name: 'set-recipient', value: 'ADDRESS', help: 'change the envelope recipient' },
    { name: 'set-retrycount', value: 'N', help: 'change the retry count' },
    { name: 'set-priority', value: 'N', help: 'change the priority (0 or 1)' },
    { name: 'limit', value: 'N', help: 'change at most N entries' },
    { name: 'all', help: 'allow an update without condition flags (every entry)' },
    ...conditionFlags(),
  ],
  command: 'queueUpdate',
  request: (args) => {
    noPositionals(args);
    if (!hasCondition(args) && !args.flags.has('all')) throw new UsageError('give condition flags (e.g. --recipientdomain example.com), or --all for every entry');
    const req: M.QueueUpdateRequest = { conditions: condition(args), ...task(args), ...changes(args) };
    if (!req.move && !req.action && Object.keys(req).length === 1) throw new UsageError('nothing to do: give --hold, --active, --defer, --delete, --bounce or a --set-… option');
    const limit = uint(args, 'limit');
    if (limit !== undefined) req.paging = { limit };
    return req;
  },
  render: (payload, _args, io) => {
    const res = decodeMessage<M.QueueUpdateResponse>('QueueUpdateResponse', payload);
    const n = res.affected ?? 0;
    io.out(`${n} ${n === 1 ? 'message' : 'messages'} affected\n`);
    if ((res.working ?? 0) > 0) io.out(`${res.working} being delivered, left alone\n`);
    return 0;
  },
};

// ---- queue quota -----------------------------------------------------------------------------

export const queueQuota: Subcommand = {
  words: ['queue', 'quota'],
  summary: 'entries and bytes queued under the quota NAME',
  args: ['NAME'],
  options: [],
  command: 'queueQuota',
  request: (args) => {
    if (args.positionals.length !== 1) throw new UsageError('expected NAME');
    return { quota: args.positionals[0] } satisfies M.QueueQuotaRequest;
  },
  render: (payload, args, io) => {
    const res = decodeMessage<M.QueueQuotaResponse>('QueueQuotaResponse', payload);
    io.out(table(['quota', 'count', 'bytes'], [[args.positionals[0], String(res.count ?? 0), String(res.bytes ?? 0)]]));
    return 0;
  },
};

// ---- queue import ----------------------------------------------------------------------------

function readInput(file: string): Buffer {
  try {
    return fs.readFileSync(file === '-' ? 0 : file);
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function envelopeAddress(v: string, flag: string, nullAllowed: boolean): string {
  if (nullAllowed && v === '<>') return '';
  const at = v.lastIndexOf('@');
  if (at <= 0 || at === v.length - 1 || /[\s<>]/.test(v)) throw new UsageError(`--${flag} takes user@domain${nullAllowed ? ' or <>' : ''}; got ${JSON.stringify(v)}`);
  return v;
}

/** A queue file for a raw message: the options given, the rest from its header fields. */
function wrapMessage(raw: Buffer, args: ParsedArgs): QueueFile {
  const env = envelopeFromHeaders(toCrlf(raw));
  const given = args.values.get('recipient');
  const recipients = given ? given.map((r) => envelopeAddress(r, 'recipient', false)) : env.recipients;
  if (recipients.length === 0) throw new UsageError('the message names no recipient in To, Cc or Bcc: give --recipient');
  const senderOpt = single(args, 'sender');
  const sender = senderOpt !== undefined ? envelopeAddress(senderOpt, 'sender', true) : env.sender;
  const transaction = randomUUID();
  const ts = Date.now();
  const transportid = single(args, 'transportid') ?? '';
  const state = args.flags.has('hold') ? 'HOLD' : 'ACTIVE';
  const entries = recipients.map((recipient, i) => newQueueEntry({ id: { transaction, queue: i + 1 }, ts, serverid: '', sender, recipient, transportid, size: env.message.length, state }));
  return { transaction, ts, serverid: '', sender, bodies: [env.message], entries };
}

function heldCopy(data: Buffer): Buffer {
  try {
    const f = decodeQueueFile(data);
    return encodeQueueFile({ ...f, entries: f.entries.map((e) => ({ ...e, state: 'HOLD' })) });
  } catch (err) {
    if (err instanceof QueueFileError) throw new UsageError(err.message);
    throw err;
  }
}

function importRequest(args: ParsedArgs): M.QueueImportRequest {
  if (args.positionals.length !== 1) throw new UsageError('expected FILE (a message or a queue file; - reads standard input)');
  const data = readInput(args.positionals[0]);
  const envelope = ['sender', 'recipient', 'transportid'].filter((o) => args.values.has(o));
  const reset: NonNullable<M.QueueImportRequest['reset']> = {};
  if (args.flags.has('reset-transactionid')) reset.transactionid = { value: true };
  if (args.flags.has('reset-ts')) reset.ts = { value: true };
  if (args.flags.has('reset-retrycount')) reset.retrycount = { value: true };
  if (isQueueFile(data)) {
    if (envelope.length) throw new UsageError(`a queue file carries its envelope; --${envelope[0]} is for a raw message`);
    const hqf = args.flags.has('hold') ? heldCopy(data) : data;
    return { data: { hqf }, ...(Object.keys(reset).length ? { reset } : {}) };
  }
  if (envelope.length === 0 && !args.flags.has('hold')) return { data: { rfc822: data }, ...(Object.keys(reset).length ? { reset } : {}) };
  // The file is built here; the daemon gives the transaction its own id.
  return { data: { hqf: encodeQueueFile(wrapMessage(data, args)) }, reset: { ...reset, transactionid: { value: true } } };
}

export const queueImport: Subcommand = {
  words: ['queue', 'import'],
  summary: 'queue a message (a raw RFC 5322 message or a queue file from queue unload) from FILE',
  args: ['FILE'],
  options: [
    { name: 'sender', value: 'ADDRESS', help: 'envelope sender of a raw message (<> for the null sender; default from Return-Path, Sender or From)' },
    { name: 'recipient', value: 'ADDRESS', repeat: true, help: 'envelope recipient of a raw message (default: To, Cc and Bcc)' },
    { name: 'transportid', value: 'ID', help: "transport of a raw message (default the first server's)" },
    { name: 'hold', help: 'queue in HOLD (nothing is delivered until queue update --active)' },
    { name: 'reset-transactionid', help: 'give the transaction a new id (needed when the id is still queued)' },
    { name: 'reset-ts', help: 'set the received time to now' },
    { name: 'reset-retrycount', help: 'set the retry count to 0' },
  ],
  command: 'queueImport',
  request: importRequest,
  render: (payload, _args, io) => {
    const res = decodeMessage<M.QueueImportResponse>('QueueImportResponse', payload);
    io.out(`queued as ${res.transactionid ?? ''}\n`);
    return 0;
  },
};

// ---- queue export ----------------------------------------------------------------------------

function writeOutput(file: string, data: Buffer, io: Output): void {
  if (file === '-') {
    if (io.bytes) io.bytes(data);
    else io.out(data.toString('latin1'));
    return;
  }
  try {
    fs.writeFileSync(file, data, { mode: 0o600 });
  } catch (err) {
    throw new UsageError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export const queueExport: Subcommand = {
  words: ['queue', 'export'],
  summary: 'write the message of one queue entry (RFC 5322, as queued) to standard output or a file',
  args: [],
  options: [
    { name: 'id', value: 'UUID:N', help: 'the queue entry (required)' },
    { name: 'output', short: 'o', value: 'FILE', help: 'write to FILE (mode 0600) instead of standard output' },
  ],
  command: 'queueExport',
  request: (args) => {
    noPositionals(args);
    const v = single(args, 'id');
    const id = v === undefined ? undefined : parseQueueId(v);
    if (!id) throw new UsageError(`--id takes <transaction>:<queue>, e.g. 44815e44-05d3-11ea-b388-06f091ceb4dc:1${v === undefined ? '' : `; got ${JSON.stringify(v)}`}`);
    return { id } satisfies M.QueueExportRequest;
  },
  render: (payload, args, io) => {
    writeOutput(single(args, 'output') ?? '-', payload, io);
    return 0;
  },
};

// ---- queue unload ----------------------------------------------------------------------------

export const queueUnload: Subcommand = {
  words: ['queue', 'unload'],
  summary: 'move the matching entries out of the queue into queue files (one per transaction); prints their paths',
  args: [],
  options: [
    { name: 'freeze', help: 'write the entries in HOLD, so importing a file does not deliver them' },
    { name: 'partial', help: 'unload a transaction even when only some of its recipients match' },
    { name: 'all', help: 'allow an unload without condition flags (every entry)' },
    ...conditionFlags(),
  ],
  command: 'queueUnload',
  request: (args) => {
    noPositionals(args);
    if (!hasCondition(args) && !args.flags.has('all')) throw new UsageError('give condition flags (e.g. --recipientdomain example.com), or --all for every entry');
    const req: M.QueueUnloadRequest = { conditions: condition(args) };
    if (args.flags.has('freeze')) req.freeze = true;
    if (args.flags.has('partial')) req.partial = true;
    return req;
  },
  render: (payload, args, io) => {
    const res = decodeMessage<M.QueueUnloadResponse>('QueueUnloadResponse', payload);
    const paths = res.hqfpaths ?? [];
    io.out(paths.map((p) => `${p}\n`).join(''));
    io.out(`${paths.length} ${paths.length === 1 ? 'file' : 'files'} written\n`);
    const partial = res.partial ?? 0;
    if (partial > 0) io.out(`${partial} ${partial === 1 ? 'transaction' : 'transactions'} matched in part: ${args.flags.has('partial') ? 'unloaded in part' : 'left queued (see --partial)'}\n`);
    if ((res.working ?? 0) > 0) io.out(`${res.working} being delivered or changed, left alone\n`);
    return 0;
  },
};

export const QUEUE_SUBCOMMANDS: readonly Subcommand[] = [queueList, queueGroupBy, queueUpdate, queueQuota, queueImport, queueExport, queueUnload];
