/**
 * Delivery hooks: `scripting.hooks.predelivery` and `scripting.hooks.postdelivery`
 * (halon-core.md §5.3, §5.4), loaded with the SMTP-phase hooks of the same configuration
 * generation and run by the queue manager for each queue entry and attempt.
 *
 * `run(input)` calls the hook with the input plus its actions, `SetMetaData`/`GetMetaData` and
 * `log`, and resolves to an outcome; it never rejects for anything the hook does:
 * - the first action wins; a second one throws in the hook and the call ends with the error
 *   outcome even if the hook catches it (fail closed, as the SMTP hooks do: decision H2);
 * - an unknown option or a wrongly typed one is an error (H2);
 * - returning without an action is the implicit outcome: predelivery `Try()`, postdelivery
 *   `Default()`;
 * - throwing, misuse, or running longer than `scripting.timeout` is the error outcome:
 *   predelivery `Queue({ delay: 300, increment_retry: false })`, postdelivery `Default()`;
 * - in postdelivery after a successful delivery, `Queue`, `Bounce` and `Delete` are errors
 *   (Halon's rule): the message was delivered and cannot be taken back.
 * `SetMetaData` replaces the entry's metadata; the outcome carries it (`metadata`) whatever the
 * action, so the caller persists it with the entry's next state.
 */
import type { ConfigError, RunningConfig } from '../config/types';
import type { HookModuleLoader, AnyHookFunction } from './loader';
import { HookUsageError } from './replies';
import type {
  DeliveryAction, DeliveryEndOptions, DeliveryQueueOptions, PostDeliveryHook, PreDeliveryHook, TryOptions,
} from './types';
import { merged } from '../util/objects';

export type DeliveryHookName = 'predelivery' | 'postdelivery';

export type PreDeliveryInput = Pick<PreDeliveryHook, 'arguments' | 'message' | 'context'> & { metadata: Record<string, string> };
export type PostDeliveryInput = Pick<PostDeliveryHook, 'arguments' | 'message' | 'context'> & { metadata: Record<string, string>; delivered: boolean };

export type OutcomeSource = 'action' | 'implicit' | 'error' | 'timeout';

export type PreDeliveryOutcome = (
  | { action: 'Try'; options: TryOptions }
  | { action: 'Queue'; options: DeliveryQueueOptions }
  | { action: 'Bounce'; options: DeliveryEndOptions }
  | { action: 'Delete'; options: DeliveryEndOptions }
) & OutcomeExtras;

export type PostDeliveryOutcome = (
  | { action: 'Default'; options: Record<string, never> }
  | { action: 'Queue'; options: DeliveryQueueOptions }
  | { action: 'Bounce'; options: DeliveryEndOptions }
  | { action: 'Delete'; options: DeliveryEndOptions }
) & OutcomeExtras;

interface OutcomeExtras {
  source: OutcomeSource;
  /** What went wrong, for error and timeout outcomes (for the log). */
  error?: string;
  /** Set when the hook called SetMetaData: the entry's new metadata. */
  metadata?: Record<string, string>;
}

export interface DeliveryHooks {
  predelivery?(input: PreDeliveryInput): Promise<PreDeliveryOutcome>;
  postdelivery?(input: PostDeliveryInput): Promise<PostDeliveryOutcome>;
}

export interface DeliveryHookLogger {
  info(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
}

/** Load both modules (when configured) with `loader`; failures go to `errors`. */
export function loadDeliveryHooks(config: RunningConfig, loader: HookModuleLoader, errors: ConfigError[], log: DeliveryHookLogger, timeoutMs: number): DeliveryHooks {
  const out: DeliveryHooks = {};
  const pre = loadOne(config, 'predelivery', loader, errors);
  const post = loadOne(config, 'postdelivery', loader, errors);
  if (pre) out.predelivery = (input) => new DeliveryCall('predelivery', pre, input, log, timeoutMs).run() as Promise<PreDeliveryOutcome>;
  if (post) out.postdelivery = (input) => new DeliveryCall('postdelivery', post, input, log, timeoutMs).run() as Promise<PostDeliveryOutcome>;
  return out;
}

function loadOne(config: RunningConfig, name: DeliveryHookName, loader: HookModuleLoader, errors: ConfigError[]): AnyHookFunction | undefined {
  const path = config.scripting.hooks[name];
  if (path === undefined) return undefined;
  try {
    return loader.load(path);
  } catch (err) {
    errors.push({ file: config.file, path: `scripting.hooks.${name}`, reason: (err as Error).message });
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Options

type OptionKind = 'string' | 'strings' | 'port' | 'seconds' | 'boolean' | 'tls' | 'protocol' | 'timeouts';

const TRY: Readonly<Record<string, OptionKind>> = {
  server: 'string', port: 'port', sourceip: 'strings', sourceip_random: 'boolean', helo: 'string', tls: 'tls',
  protocol: 'protocol', mx_include: 'strings', mx_exclude: 'strings', sender: 'string', recipient: 'string', timeout: 'timeouts',
};
const QUEUE: Readonly<Record<string, OptionKind>> = {
  delay: 'seconds', hold: 'boolean', reason: 'string', increment_retry: 'boolean', reset_retry: 'boolean', transportid: 'string',
};
const END: Readonly<Record<string, OptionKind>> = { reason: 'string' };

type AnyAction = DeliveryAction['action'];

/** The actions each hook offers, with their options. */
const ACTIONS: Readonly<Record<DeliveryHookName, Partial<Record<AnyAction, Readonly<Record<string, OptionKind>>>>>> = {
  predelivery: { Try: TRY, Queue: QUEUE, Bounce: END, Delete: END },
  postdelivery: { Queue: QUEUE, Bounce: END, Delete: END, Default: {} },
};

const TLS_MODES: ReadonlySet<string> = new Set(['disabled', 'optional', 'optional_verify', 'require', 'require_verify']);
const STATES: ReadonlySet<string> = new Set(['connect', 'BANNER', 'HELO', 'EHLO', 'LHLO', 'STARTTLS', 'MAIL', 'RCPT', 'DATA', 'EOD', 'RSET', 'NOOP', 'QUIT']);

const KIND_TEXT: Record<OptionKind, string> = {
  string: 'a string',
  strings: 'an array of strings',
  port: 'an integer from 1 to 65535',
  seconds: 'a number of seconds (0 or more)',
  boolean: 'a boolean',
  tls: 'one of disabled, optional, optional_verify, require, require_verify',
  protocol: 'smtp or lmtp',
  timeouts: 'an object of state names (or connect) to seconds above 0',
};

function fits(kind: OptionKind, v: unknown): boolean {
  switch (kind) {
    case 'string':
      return typeof v === 'string';
    case 'strings':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'port':
      return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
    case 'seconds':
      return typeof v === 'number' && Number.isFinite(v) && v >= 0;
    case 'boolean':
      return typeof v === 'boolean';
    case 'tls':
      return typeof v === 'string' && TLS_MODES.has(v);
    case 'protocol':
      return v === 'smtp' || v === 'lmtp';
    case 'timeouts':
      return isTimeouts(v);
  }
}

function isTimeouts(v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  return Object.entries(v).every(([k, x]) => STATES.has(k) && typeof x === 'number' && Number.isFinite(x) && x > 0);
}

/** A validated copy of an action's options (copied, so later changes by the hook do not reach us). */
function checkOptions(action: string, allowed: Readonly<Record<string, OptionKind>>, options: unknown): Record<string, unknown> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw new HookUsageError(`${action}(): options must be an object`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    const kind = Object.hasOwn(allowed, key) ? allowed[key] : undefined;
    if (!kind) throw new HookUsageError(`${action}(): unknown option "${key}"`);
    if (value === undefined) continue;
    if (!fits(kind, value)) throw new HookUsageError(`${action}(): option "${key}" must be ${KIND_TEXT[kind]}`);
    out[key] = structuredClone(value);
  }
  return out;
}

function checkMetadata(v: unknown): Record<string, string> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new HookUsageError('SetMetaData(): the argument must be an object of strings');
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string') throw new HookUsageError(`SetMetaData(): value of "${k}" must be a string`);
    out[k] = x;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// One call

type Outcome = PreDeliveryOutcome | PostDeliveryOutcome;
type Input = PreDeliveryInput | PostDeliveryInput;

const TIMEOUT = Symbol('timeout');

/** What predelivery does when its hook fails (halon-core.md §5.3). */
const PRE_ERROR: DeliveryQueueOptions = Object.freeze({ delay: 300, increment_retry: false });

class DeliveryCall {
  private recorded: { action: AnyAction; options: Record<string, unknown> } | null = null;
  private misuse: Error | null = null;
  private finished = false;
  private metadata: Record<string, string> | undefined;

  constructor(
    private readonly name: DeliveryHookName,
    private readonly fn: AnyHookFunction,
    private readonly input: Input,
    private readonly log: DeliveryHookLogger,
    private readonly timeout: number,
  ) {}

  async run(): Promise<Outcome> {
    let result: unknown;
    try {
      result = this.fn(this.context() as never);
      if (isThenable(result)) result = await this.race(result);
    } catch (err) {
      return this.end(this.failure('error', err));
    }
    if (result === TIMEOUT) return this.end(this.failure('timeout', new Error(`hook did not finish within ${this.timeout / 1000} s`)));
    if (!this.recorded && !this.misuse && isAction(result)) this.fromReturned(result);
    if (this.misuse) return this.end(this.failure('error', this.misuse));
    if (this.recorded) return this.end(this.outcome(this.recorded.action, this.recorded.options, 'action'));
    return this.end(this.implicit());
  }

  private context(): PreDeliveryHook | PostDeliveryHook {
    const { arguments: args, message, context } = this.input;
    const base = {
      arguments: args,
      message,
      context,
      SetMetaData: (m: Record<string, string>) => this.guard(() => void (this.metadata = checkMetadata(m))),
      GetMetaData: () => ({ ...(this.metadata ?? this.input.metadata) }),
      log: (msg: string, fields?: Record<string, unknown>) => this.hookLog(msg, fields),
    };
    const act = (action: AnyAction) => (options?: unknown) => this.act(action, options);
    if (this.name === 'predelivery') {
      return merged(base, { Try: act('Try'), Queue: act('Queue'), Bounce: act('Bounce'), Delete: act('Delete') }) as PreDeliveryHook;
    }
    return merged(base, { Queue: act('Queue'), Bounce: act('Bounce'), Delete: act('Delete'), Default: act('Default') }) as PostDeliveryHook;
  }

  private act(action: AnyAction, options: unknown): DeliveryAction {
    if (this.finished) {
      this.log.warn({ ...this.attribution(), action }, 'hook action after the hook ended; ignored');
      return { action };
    }
    return this.guard(() => {
      if (this.recorded) throw new HookUsageError(`${action}(): action already taken (${this.recorded.action})`);
      const allowed = ACTIONS[this.name][action]!;
      if (this.name === 'postdelivery' && action !== 'Default' && (this.input as PostDeliveryInput).delivered) {
        throw new HookUsageError(`${action}(): the message was delivered; only Default() is possible`);
      }
      const checked = checkOptions(action, allowed, options);
      this.recorded = { action, options: checked };
      return { action, options: checked };
    });
  }

  /** Run an API call; a misuse is remembered (the call then ends in the error outcome) and rethrown. */
  private guard<T>(f: () => T): T {
    if (this.finished) return undefined as T;
    try {
      return f();
    } catch (err) {
      this.misuse ??= err as Error;
      throw err;
    }
  }

  /** A hook may `return Try()`, or return an action object it built itself. */
  private fromReturned(a: DeliveryAction): void {
    if (!ACTIONS[this.name][a.action]) return;
    try {
      this.act(a.action, a.options);
    } catch {
      // remembered as misuse by guard()
    }
  }

  private implicit(): Outcome {
    return this.name === 'predelivery' ? this.outcome('Try', {}, 'implicit') : this.outcome('Default', {}, 'implicit');
  }

  private failure(source: 'error' | 'timeout', err: unknown): Outcome {
    const e = err instanceof Error ? err : new Error(`non-Error thrown: ${safeString(err)}`);
    const what = this.name === 'predelivery' ? 'queued for 300 s without counting a retry' : 'taking the default action';
    this.log.error({ ...this.attribution(), error: e.message, stack: e.stack, source }, `${this.name} hook failed; ${what}`);
    const o = this.name === 'predelivery' ? this.outcome('Queue', { ...PRE_ERROR }, source) : this.outcome('Default', {}, source);
    o.error = e.message;
    return o;
  }

  private outcome(action: AnyAction, options: Record<string, unknown>, source: OutcomeSource): Outcome {
    const o = { action, options, source } as Outcome;
    if (this.metadata) o.metadata = this.metadata;
    return o;
  }

  private race(p: PromiseLike<unknown>): Promise<unknown> {
    if (this.timeout <= 0) return Promise.resolve(p);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => resolve(TIMEOUT), this.timeout);
      p.then(
        (v) => (clearTimeout(timer), resolve(v)),
        (e: unknown) => (clearTimeout(timer), reject(e)),
      );
    });
  }

  private end(o: Outcome): Outcome {
    this.finished = true;
    return o;
  }

  private hookLog(message: string, fields?: Record<string, unknown>): void {
    const extra = fields !== null && typeof fields === 'object' ? fields : {};
    this.log.info(merged(extra, this.attribution()), String(message));
  }

  private attribution(): Record<string, unknown> {
    const id = this.input.message.id;
    return { hook: this.name, transactionid: id.transaction, queueid: id.queue };
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

function isAction(v: unknown): v is DeliveryAction {
  const a = (v as { action?: unknown } | null | undefined)?.action;
  return typeof a === 'string';
}

function safeString(v: unknown): string {
  try {
    return String(v);
  } catch {
    return typeof v;
  }
}
