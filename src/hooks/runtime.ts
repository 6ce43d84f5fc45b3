/**
 * Hook runtime: loads the hook modules a running config names and runs them for the servers.
 *
 * `loadHooks(config, log)` loads every module of `scripting.hooks.<phase>[]` (one loader
 * generation, so a reload reads changed files again) and maps (server id, phase) to a module
 * through `servers[].hooks`. It throws ConfigInvalidError listing every module that failed.
 *
 * `run(serverid, phase, input)` calls the hook with the input plus `Accept`/`Reject`/`Defer`
 * and `log`, and resolves to a `HookOutcome` — it never rejects for anything the hook does:
 * - the first action wins; a second one throws "action already taken" in the hook and the
 *   call ends with the error outcome even if the hook catches it (fail closed);
 * - returning without an action is the phase's implicit outcome (auth: Reject, eod: Defer);
 * - throwing, misusing an action (a 2xx/4xx code on Reject, unknown option) or running longer
 *   than `scripting.timeout` seconds is the phase's error outcome: Defer with a bland reason,
 *   and one log line with the details;
 * - after the eod phase ends the message is closed: a late `mail.queue()` throws.
 * Reply codes and texts come from `replies.ts` (docs/hooks.md has the table). A 421 reply
 * always sets `disconnect`, since RFC 5321 §4.2.2 defines 421 as closing the channel.
 *
 * Cost per call: one context object, four closures, and a timer only when the hook returns a
 * promise. A synchronous endless loop cannot be interrupted in-process (documented).
 */
import { ConfigInvalidError, SMTP_PHASES, type ConfigError, type RunningConfig, type SmtpPhase } from '../config/types';
import { HookModuleLoader, type AnyHookFunction } from './loader';
import { EodMail } from './mail';
import { loadDeliveryHooks, type DeliveryHooks } from './delivery';
import { applyReplyCodes, HookUsageError, PHASE_REPLIES, reasonLines, type Enhanced, type PhaseReplies } from './replies';
import type { HookAction, HookContextByPhase, Reason, RejectOptions } from './types';
import { merged } from '../util/objects';

export interface HookOutcome {
  action: 'Accept' | 'Reject' | 'Defer';
  code: number;
  enhanced: [number, number, number];
  /** Reply lines; empty means "the server's default text". */
  reason: string[];
  disconnect: boolean;
  /** Accept's options as the hook gave them (validated, not copied). */
  options: Record<string, unknown>;
  source: 'action' | 'implicit' | 'error' | 'timeout';
  /** For error and timeout outcomes: what went wrong (for logs, never for the peer). */
  error?: string;
}

/** The phase's context without what the runtime adds. */
export type HookInput<P extends SmtpPhase> = Omit<HookContextByPhase[P], 'Accept' | 'Reject' | 'Defer' | 'log'>;

export interface LoadedHooks {
  has(serverid: string, phase: SmtpPhase): boolean;
  run<P extends SmtpPhase>(serverid: string, phase: P, input: HookInput<P>): Promise<HookOutcome>;
  /** predelivery / postdelivery (delivery.ts); absent in test doubles of the SMTP hooks. */
  readonly delivery?: DeliveryHooks;
}

/** The part of a pino logger the runtime uses. */
export interface HookLogger {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

interface BoundHook {
  id: string;
  phase: SmtpPhase;
  fn: AnyHookFunction;
}

export function loadHooks(config: RunningConfig, log: HookLogger): LoadedHooks {
  const errors: ConfigError[] = [];
  const loader = new HookModuleLoader();
  const modules = loadModules(config, loader, errors);
  const table = bindServers(config, modules, errors);
  const delivery = loadDeliveryHooks(config, loader, errors, log, timeoutMs(config.scripting.timeout));
  if (errors.length) throw new ConfigInvalidError(errors);
  return new HookSet(table, timeoutMs(config.scripting.timeout), log, delivery);
}

/** Every module of every phase, by phase and hook id; failures go to `errors`. */
function loadModules(config: RunningConfig, loader: HookModuleLoader, errors: ConfigError[]): Map<SmtpPhase, Map<string, BoundHook | null>> {
  const modules = new Map<SmtpPhase, Map<string, BoundHook | null>>();
  for (const phase of SMTP_PHASES) {
    const byId = new Map<string, BoundHook | null>();
    (config.scripting.hooks[phase] ?? []).forEach((ref, i) => {
      try {
        byId.set(ref.id, { id: ref.id, phase, fn: loader.load(ref.path) });
      } catch (err) {
        byId.set(ref.id, null);
        errors.push({ file: config.file, path: `scripting.hooks.${phase}.${i}.path`, reason: (err as Error).message });
      }
    });
    modules.set(phase, byId);
  }
  return modules;
}

function bindServers(
  config: RunningConfig,
  modules: Map<SmtpPhase, Map<string, BoundHook | null>>,
  errors: ConfigError[],
): Map<string, Partial<Record<SmtpPhase, BoundHook>>> {
  const table = new Map<string, Partial<Record<SmtpPhase, BoundHook>>>();
  config.servers.forEach((server, i) => {
    const row: Partial<Record<SmtpPhase, BoundHook>> = {};
    for (const phase of SMTP_PHASES) {
      const id = server.hooks[phase];
      if (id === undefined) continue;
      const hook = modules.get(phase)?.get(id);
      if (hook) row[phase] = hook;
      // A module that failed to load is reported once, above; an unknown id is reported here.
      else if (hook === undefined) errors.push({ file: config.file, path: `servers.${i}.phases.${phase}.hook`, reason: `no ${phase} hook with id "${id}" in scripting.hooks.${phase}` });
    }
    table.set(server.id, row);
  });
  return table;
}

function timeoutMs(seconds: number): number {
  return Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds * 1000) : 0;
}

class HookSet implements LoadedHooks {
  constructor(
    private readonly table: Map<string, Partial<Record<SmtpPhase, BoundHook>>>,
    private readonly timeout: number,
    private readonly log: HookLogger,
    readonly delivery: DeliveryHooks,
  ) {}

  has(serverid: string, phase: SmtpPhase): boolean {
    return this.table.get(serverid)?.[phase] !== undefined;
  }

  run<P extends SmtpPhase>(serverid: string, phase: P, input: HookInput<P>): Promise<HookOutcome> {
    const hook = this.table.get(serverid)?.[phase];
    if (!hook) return Promise.reject(new Error(`no ${phase} hook configured for server ${serverid}`));
    return new HookCall(hook, serverid, input as CallInput, this.log, this.timeout).run();
  }
}

interface CallInput {
  arguments?: { mail?: unknown };
  connection?: { id?: string };
  transaction?: { id?: string };
  context?: Record<string, unknown>;
}

/** What an action function produced, before it is known whether it stands. */
type Recorded = { outcome: HookOutcome; token: HookAction };

const TIMEOUT = Symbol('timeout');

/** One invocation of one hook. */
class HookCall {
  private recorded: Recorded | null = null;
  private misuse: Error | null = null;
  private finished = false;
  private readonly replies: PhaseReplies;

  constructor(
    private readonly hook: BoundHook,
    private readonly serverid: string,
    private readonly input: CallInput,
    private readonly log: HookLogger,
    private readonly timeout: number,
  ) {
    this.replies = PHASE_REPLIES[hook.phase];
  }

  async run(): Promise<HookOutcome> {
    let result: unknown;
    try {
      result = this.hook.fn(this.context() as never);
      if (isThenable(result)) result = await this.race(result);
    } catch (err) {
      return this.end(this.errorOutcome(err));
    }
    if (result === TIMEOUT) return this.end(this.timeoutOutcome());
    return this.end(this.decide(result));
  }

  /**
   * The context the hook sees: the input's four fields plus actions and log. A literal with a
   * fixed shape (not a spread) keeps this cheap on the per-command path.
   */
  private context(): object {
    const { arguments: args, connection, transaction, context } = this.input;
    const log = (message: string, fields?: Record<string, unknown>): void => this.hookLog(message, fields);
    if (this.hook.phase === 'disconnect') return { arguments: args, connection, transaction, context, log };
    return {
      arguments: args,
      connection,
      transaction,
      context,
      log,
      Accept: (options?: Record<string, unknown>) => this.act('Accept', () => this.accept(options)),
      Reject: (reason?: Reason, options?: RejectOptions) => this.act('Reject', () => this.refuse('Reject', reason, options)),
      Defer: (reason?: Reason, options?: RejectOptions) => this.act('Defer', () => this.refuse('Defer', reason, options)),
    };
  }

  /** Record an action; the first wins, a second or an invalid one is misuse. */
  private act(action: HookAction['action'], build: () => HookOutcome): HookAction {
    // After the phase ended (timeout, or a callback firing later) an action changes nothing; it
    // must not throw either, since a throw in a detached callback would end the process.
    if (this.finished) return this.late(action);
    if (this.recorded) return this.fail(new HookUsageError(`${action}(): action already taken (${this.recorded.token.action})`));
    let outcome: HookOutcome;
    try {
      outcome = build();
    } catch (err) {
      return this.fail(err as Error);
    }
    const token: HookAction = { action, options: outcome.options };
    this.recorded = { outcome, token };
    return token;
  }

  private late(action: HookAction['action']): HookAction {
    this.log.warn({ ...this.attribution(), action }, 'hook action after its phase ended; ignored');
    return { action };
  }

  private fail(err: Error): never {
    this.misuse ??= err;
    throw err;
  }

  private accept(options: unknown): HookOutcome {
    const opts = checkAcceptOptions(this.hook.phase, options);
    const base = this.replies.accept;
    return outcome('Accept', base.code, base.enhanced, reasonLines(opts.reason as Reason | undefined, base.text), false, opts, 'action');
  }

  private refuse(action: 'Reject' | 'Defer', reason: Reason | undefined, options: RejectOptions | undefined): HookOutcome {
    const opts = checkRefuseOptions(options);
    const base = action === 'Reject' ? this.replies.reject : this.replies.defer;
    const { code, enhanced } = applyReplyCodes(base, opts.reply_codes, action === 'Reject' ? 5 : 4);
    return outcome(action, code, enhanced, reasonLines(reason, base.text), opts.disconnect === true, {}, 'action');
  }

  /** The outcome once the hook returned normally. */
  private decide(result: unknown): HookOutcome {
    if (this.misuse) return this.errorOutcome(this.misuse);
    if (this.recorded) return this.recorded.outcome;
    if (isReturnedAction(result) && this.hook.phase !== 'disconnect') return this.fromReturned(result);
    return this.implicitOutcome();
  }

  /** A hook may return an action object it built itself (`return { action: 'Accept' }`). */
  private fromReturned(a: HookAction): HookOutcome {
    try {
      if (a.action === 'Accept') return this.accept(a.options);
      return this.refuse(a.action, a.reason, a.options as RejectOptions | undefined);
    } catch (err) {
      return this.errorOutcome(err);
    }
  }

  private implicitOutcome(): HookOutcome {
    const action = this.replies.implicit;
    const base = action === 'Accept' ? this.replies.accept : action === 'Reject' ? this.replies.reject : this.replies.defer;
    return outcome(action, base.code, base.enhanced, base.text ? [base.text] : [], false, {}, 'implicit');
  }

  private errorOutcome(err: unknown): HookOutcome {
    const e = err instanceof Error ? err : new Error(`non-Error thrown: ${safeString(err)}`);
    this.log.error({ ...this.attribution(), error: e.message, stack: e.stack }, 'hook failed; answering with a temporary failure');
    return this.failure('error', e.message);
  }

  private timeoutOutcome(): HookOutcome {
    const seconds = this.timeout / 1000;
    this.log.error({ ...this.attribution(), timeout: seconds }, 'hook timed out; answering with a temporary failure');
    return this.failure('timeout', `hook did not finish within ${seconds} s`);
  }

  private failure(source: 'error' | 'timeout', error: string): HookOutcome {
    const base = this.replies.error;
    const action = this.hook.phase === 'disconnect' ? 'Accept' : 'Defer';
    const o = outcome(action, base.code, base.enhanced, base.text ? [base.text] : [], false, {}, source);
    o.error = error;
    return o;
  }

  /** Wait for the hook's promise, at most `timeout` ms; a late result is ignored. */
  private race(p: PromiseLike<unknown>): Promise<unknown> {
    if (this.timeout === 0) return Promise.resolve(p);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => resolve(TIMEOUT), this.timeout);
      p.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  private end(o: HookOutcome): HookOutcome {
    this.finished = true;
    if (this.hook.phase === 'eod') {
      const mail = this.input.arguments?.mail;
      if (mail instanceof EodMail) mail.close();
    }
    return o;
  }

  private hookLog(message: string, fields?: Record<string, unknown>): void {
    const extra = fields !== null && typeof fields === 'object' ? fields : {};
    // Attribution last, so a hook cannot pass itself off as another.
    this.log.info(merged(extra, this.attribution()), String(message));
  }

  private attribution(): Record<string, unknown> {
    return {
      hook: this.hook.id,
      phase: this.hook.phase,
      serverid: this.serverid,
      connection: this.input.connection?.id,
      transaction: this.input.transaction?.id,
    };
  }
}

function outcome(
  action: HookOutcome['action'],
  code: number,
  enhanced: Enhanced,
  reason: string[],
  disconnect: boolean,
  options: Record<string, unknown>,
  source: HookOutcome['source'],
): HookOutcome {
  return { action, code, enhanced: [enhanced[0], enhanced[1], enhanced[2]], reason, disconnect: disconnect || code === 421, options, source };
}

type OptionKind = 'string' | 'strings' | 'reason';

/** Accept's options per phase (halon-core.md §5.1); anything else is a hook error. */
const ACCEPT_OPTIONS: Readonly<Record<SmtpPhase, Readonly<Record<string, OptionKind>>>> = {
  connect: { reason: 'reason', remoteip: 'string', remoteptr: 'string' },
  helo: { reason: 'reason', extensions: 'strings', host: 'string' },
  auth: { reason: 'reason', username: 'string' },
  mailfrom: { reason: 'reason', sender: 'string' },
  rcptto: { reason: 'reason', recipient: 'string', transportid: 'string' },
  eod: { reason: 'reason' },
  disconnect: {},
};

function checkAcceptOptions(phase: SmtpPhase, options: unknown): Record<string, unknown> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw new HookUsageError('Accept(): options must be an object');
  const allowed = ACCEPT_OPTIONS[phase];
  for (const [key, value] of Object.entries(options)) {
    const kind = Object.hasOwn(allowed, key) ? allowed[key] : undefined;
    if (!kind) throw new HookUsageError(`Accept(): unknown option "${key}" in the ${phase} phase`);
    if (value !== undefined && !fitsKind(kind, value)) throw new HookUsageError(`Accept(): option "${key}" must be ${KIND_TEXT[kind]}`);
  }
  return options as Record<string, unknown>;
}

const KIND_TEXT: Record<OptionKind, string> = {
  string: 'a string',
  strings: 'an array of strings',
  reason: 'a string or an array of strings',
};

function fitsKind(kind: OptionKind, v: unknown): boolean {
  const isStrings = Array.isArray(v) && v.every((x) => typeof x === 'string');
  switch (kind) {
    case 'string':
      return typeof v === 'string';
    case 'strings':
      return isStrings;
    case 'reason':
      return typeof v === 'string' || isStrings;
  }
}

function checkRefuseOptions(options: unknown): RejectOptions {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw new HookUsageError('options must be an object {reply_codes, disconnect}');
  for (const key of Object.keys(options)) {
    if (key !== 'reply_codes' && key !== 'disconnect') throw new HookUsageError(`unknown option "${key}" (known: reply_codes, disconnect)`);
  }
  const o = options as RejectOptions;
  if (o.disconnect !== undefined && typeof o.disconnect !== 'boolean') throw new HookUsageError('option "disconnect" must be a boolean');
  return o;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

function isReturnedAction(v: unknown): v is HookAction {
  const a = (v as { action?: unknown } | null | undefined)?.action;
  return a === 'Accept' || a === 'Reject' || a === 'Defer';
}

function safeString(v: unknown): string {
  try {
    return String(v);
  } catch {
    return typeof v;
  }
}
