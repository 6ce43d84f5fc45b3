/**
 * halyardctl's subcommands as a table (halon-api.md §9): the words that name each one, its
 * options and arguments, how its request is built, and how a '+' reply is printed.
 *
 * Inputs: parsed arguments (options.ts). Outputs: a request object for the control command
 * (commands.ts) and, for the reply, text on stdout plus an exit code.
 * Invariants: building a request never touches the network (so `--json-request` shows it
 * without sending); `render` only formats. New subcommands (the queue commands) are new rows:
 * `conditionOptions()` gives them the condition flags and `conditionOf(args)` the Condition.
 * Errors: `UsageError` (exit 2) for arguments that do not fit; a reply that means "not found"
 * returns exit code 1 from `render`.
 */
import type { CommandName } from '../control/commands';
import { messageType, decodeMessage } from '../control/schema';
import type * as M from '../control/messages';
import { buildCondition, CONDITION_FLAGS, isConditionFlag } from './conditions';
import { single, UsageError, type OptionSpec, type ParsedArgs } from './options';
import { flattenMessage, openMetrics, textLines } from './stats-format';
import { QUEUE_SUBCOMMANDS } from './queue-commands';
import { SHAPING_SUBCOMMANDS } from './shaping-commands';

export interface Output {
  out(text: string): void;
  err(text: string): void;
  /** Raw bytes on stdout (an exported message); falls back to `out` as latin1 text when absent. */
  bytes?(data: Buffer): void;
}

export interface Subcommand {
  words: string[];
  summary: string;
  /** Positional arguments as shown in help, e.g. ['KEY', 'VALUE']; `[X]` = optional. */
  args: string[];
  options: OptionSpec[];
  command: CommandName;
  /** The request message (undefined for commands without a body). */
  request(args: ParsedArgs): object | undefined;
  /** Print a '+' reply; returns the exit code. */
  render(payload: Buffer, args: ParsedArgs, io: Output): number;
}

/** The condition flags as options (every one repeatable: repetition is OR). */
export function conditionOptions(): OptionSpec[] {
  return CONDITION_FLAGS.map((f) => ({ name: f.name, value: f.value, repeat: true, help: f.help }));
}

/** The Condition of the condition flags given (in order). */
export function conditionOf(args: ParsedArgs): M.Condition {
  return buildCondition(args.ordered.filter((o) => isConditionFlag(o.name)).map((o) => ({ flag: o.name, value: o.value })));
}

function positionals(args: ParsedArgs, names: string[]): string[] {
  const min = names.filter((n) => !n.startsWith('[')).length;
  if (args.positionals.length < min || args.positionals.length > names.length) {
    throw new UsageError(`expected ${names.join(' ') || 'no arguments'}, got ${args.positionals.length ? args.positionals.map((p) => JSON.stringify(p)).join(' ') : 'none'}`);
  }
  return args.positionals;
}

function count(n: number | undefined, one: string, many: string): string {
  const k = n ?? 0;
  return `${k} ${k === 1 ? one : many}`;
}

function quiet(): number {
  return 0;
}

function reload(words: string[], command: CommandName, file: string): Subcommand {
  return { words, summary: `reload ${file}; on errors the running configuration is kept`, args: [], options: [], command, request: () => undefined, render: quiet };
}

function uint(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} takes a whole number`);
  return Number(v);
}

function checkJson(value: string): void {
  try {
    JSON.parse(value);
  } catch {
    throw new UsageError(`VALUE must be JSON, e.g. 42, true, '"text"' or '{"a":1}'; got ${JSON.stringify(value)}`);
  }
}

const processStats: Subcommand = {
  words: ['process-stats'],
  summary: 'process statistics as `path: value` lines, or OpenMetrics text',
  args: [],
  options: [{ name: 'openmetrics', help: 'print OpenMetrics (Prometheus) text with halon_ metric names' }],
  command: 'processStats',
  request: () => undefined,
  render: (payload, args, io) => {
    const obj = decodeMessage('ProcessStatsResponse', payload, 'full');
    const samples = flattenMessage(messageType('ProcessStatsResponse'), obj);
    io.out(args.flags.has('openmetrics') ? openMetrics(samples) : textLines(samples));
    return 0;
  },
};

const memoryStore: Subcommand = {
  words: ['hsl', 'memory', 'store'],
  summary: 'store a JSON value under KEY in the shared memory of hooks',
  args: ['KEY', 'VALUE'],
  options: [{ name: 'return', help: 'print the value KEY held before' }],
  command: 'memoryStore',
  request: (args) => {
    const [key, value] = positionals(args, memoryStore.args);
    checkJson(value);
    return { key, value, ...(args.flags.has('return') ? { return: true } : {}) } satisfies M.HSLMemoryStoreRequest;
  },
  render: (payload, _args, io) => {
    const res = decodeMessage<M.HSLMemoryStoreResponse>('HSLMemoryStoreResponse', payload);
    if (res.value) io.out(`${res.value}\n`);
    return 0;
  },
};

const memoryFetch: Subcommand = {
  words: ['hsl', 'memory', 'fetch'],
  summary: 'print the JSON value stored under KEY (exit 1 when there is none)',
  args: ['KEY'],
  options: [],
  command: 'memoryFetch',
  request: (args) => ({ key: positionals(args, memoryFetch.args)[0] }) satisfies M.HSLMemoryRequest,
  render: (payload, args, io) => {
    const res = decodeMessage<M.HSLMemoryResponse>('HSLMemoryResponse', payload);
    if (!res.value) {
      io.err(`halyardctl: no such key: ${args.positionals[0]}\n`);
      return 1;
    }
    io.out(`${res.value}\n`);
    return 0;
  },
};

const memoryDelete: Subcommand = {
  words: ['hsl', 'memory', 'delete'],
  summary: 'delete KEY from the shared memory',
  args: ['KEY'],
  options: [{ name: 'return', help: 'print the value KEY held' }],
  command: 'memoryDelete',
  request: (args) => ({ key: positionals(args, memoryDelete.args)[0], ...(args.flags.has('return') ? { return: true } : {}) }) satisfies M.HSLMemoryDeleteRequest,
  render: (payload, _args, io) => {
    const res = decodeMessage<M.HSLMemoryDeleteResponse>('HSLMemoryDeleteResponse', payload);
    if (res.value) io.out(`${res.value}\n`);
    io.out(`${count(res.affected, 'key', 'keys')} deleted\n`);
    return 0;
  },
};

const memoryList: Subcommand = {
  words: ['hsl', 'memory', 'list'],
  summary: 'list the keys of the shared memory, one per line',
  args: [],
  options: [
    { name: 'key', value: 'PATTERN', help: 'only keys equal to PATTERN (see --partial, --regex)' },
    { name: 'partial', help: 'PATTERN matches anywhere in the key' },
    { name: 'regex', help: 'PATTERN is a regular expression' },
    { name: 'caseless', help: 'ignore case' },
    { name: 'offset', value: 'N', help: 'skip the first N keys' },
    { name: 'limit', value: 'N', help: 'print at most N keys' },
  ],
  command: 'memoryList',
  request: (args) => {
    positionals(args, []);
    const pattern = single(args, 'key');
    if (args.flags.has('partial') && args.flags.has('regex')) throw new UsageError('give --partial or --regex, not both');
    if (pattern === undefined && ['partial', 'regex', 'caseless'].some((f) => args.flags.has(f))) throw new UsageError('--partial, --regex and --caseless need --key');
    const type = args.flags.has('regex') ? 'REGEX' : args.flags.has('partial') ? 'PARTIAL' : 'EXACT';
    const offset = uint('offset', single(args, 'offset'));
    const limit = uint('limit', single(args, 'limit'));
    const req: M.HSLMemoryListRequest = {};
    if (pattern !== undefined) req.condition = { key: { value: pattern, type, ...(args.flags.has('caseless') ? { caseless: true } : {}) } };
    if (offset !== undefined || limit !== undefined) req.paging = { ...(offset !== undefined ? { offset } : {}), ...(limit !== undefined ? { limit } : {}) };
    return req;
  },
  render: (payload, _args, io) => {
    const res = decodeMessage<M.HSLMemoryListResponse>('HSLMemoryListResponse', payload);
    io.out((res.keys ?? []).map((k) => `${k}\n`).join(''));
    return 0;
  },
};

const resolverClear: Subcommand = {
  words: ['resolver', 'clear'],
  summary: 'empty the DNS cache of the daemon',
  args: [],
  options: [{ name: 'domain', value: 'DOMAIN', help: 'only the entries of DOMAIN' }],
  command: 'resolverCacheClear',
  request: (args) => {
    positionals(args, []);
    const domain = single(args, 'domain');
    return (domain !== undefined ? { domain: { value: domain } } : {}) satisfies M.ResolverCacheClearRequest;
  },
  render: (payload, _args, io) => {
    const res = decodeMessage<M.ResolverCacheClearResponse>('ResolverCacheClearResponse', payload);
    io.out(`${count(res.affected, 'entry', 'entries')} cleared\n`);
    return 0;
  },
};

/** Every subcommand. */
export const SUBCOMMANDS: readonly Subcommand[] = [
  processStats,
  reload(['config', 'reload'], 'configReload', 'smtpd-app.yaml (with hooks and certificates)'),
  reload(['queue', 'policy', 'reload'], 'policyReload', 'smtpd-policy.yaml'),
  reload(['queue', 'suspend', 'reload'], 'suspendReload', 'smtpd-suspend.yaml'),
  reload(['queue', 'delivery', 'reload'], 'deliveryReload', 'smtpd-delivery.yaml'),
  memoryStore,
  memoryFetch,
  memoryDelete,
  memoryList,
  resolverClear,
  ...QUEUE_SUBCOMMANDS,
  ...SHAPING_SUBCOMMANDS,
];

/** The subcommand named by the longest matching run of leading words. */
export function findSubcommand(words: readonly string[]): { sub: Subcommand; rest: string[] } | undefined {
  let best: Subcommand | undefined;
  for (const sub of SUBCOMMANDS) {
    if (sub.words.every((w, i) => words[i] === w) && (!best || sub.words.length > best.words.length)) best = sub;
  }
  return best && { sub: best, rest: words.slice(best.words.length) };
}

/** Subcommands whose names start with these words (for "did you mean" help). */
export function subcommandsUnder(words: readonly string[]): Subcommand[] {
  return SUBCOMMANDS.filter((s) => words.every((w, i) => s.words[i] === w));
}
