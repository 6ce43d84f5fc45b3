/**
 * Public entry points of the configuration system: load and check Halyard's five config files.
 *
 * Inputs: file names (relative names resolve against the process's working directory; paths
 * inside a file resolve against that file's folder).
 * Outputs: deep-frozen, normalised objects (types.ts, queue-files.ts) with defaults filled.
 * Invariants: synchronous (used at start-up and on reload; the files are small); a loader either
 * returns a complete valid config or throws, so a refused reload leaves the caller's current
 * config untouched.
 * Errors: `ConfigInvalidError` carrying every error found in the file — YAML syntax (with line
 * and column), schema (unknown keys with their path, types, ranges), value syntax (durations,
 * sizes, rates, match values), unreadable or unparsable files, duplicate ids, unresolved
 * references — each as `file: key.path: reason`.
 */
import { resolve } from 'node:path';
import type { ConfigError, PkiEntry, RunningConfig, StartupConfig } from './types';
import { ConfigInvalidError } from './types';
import { deepFreeze, Errors, readConfigFile } from './reader';
import type { SchemaName } from './schema';
import { normaliseStartup } from './startup';
import { normaliseRunning } from './running';
import {
  normaliseDelivery,
  normalisePolicy,
  normaliseSuspend,
  type DeliveryConfig,
  type PolicyConfig,
  type SuspendConfig,
} from './queue-files';
import { mergePki } from './pki';

export type { DeliveryConfig, PolicyConfig, SuspendConfig };
export type { QueuesConfig } from './types';

export interface QueueFileOptions {
  /**
   * Grouping ids of the running configuration (`groupingIds(running)`); when given, an `&id`
   * reference to any other id is an error.
   */
  groupings?: Iterable<string>;
}

interface Draft<T> {
  /** Undefined when the file could not be read or parsed at all. */
  config: T | undefined;
  errors: ConfigError[];
}

function finish<T>(draft: Draft<T>): T {
  if (draft.errors.length > 0 || draft.config === undefined) throw new ConfigInvalidError(draft.errors);
  return deepFreeze(draft.config);
}

function draftStartup(file: string): Draft<StartupConfig> {
  const abs = resolve(file);
  const errors = new Errors(abs);
  const read = readConfigFile(abs, 'smtpd', errors, false);
  const config = read.kind === 'ok' ? normaliseStartup(read.root, abs) : undefined;
  return { config, errors: errors.list() };
}

function draftRunning(file: string, startup: StartupConfig | undefined): Draft<RunningConfig> {
  const abs = resolve(file);
  const errors = new Errors(abs);
  const read = readConfigFile(abs, 'smtpd-app', errors, false);
  const config = read.kind === 'ok' ? normaliseRunning(read.root, abs, startup) : undefined;
  return { config, errors: errors.list() };
}

type QueueNormaliser<T> = (root: Parameters<typeof normalisePolicy>[0], file: string, groupings?: ReadonlySet<string>) => T;

function draftQueueFile<T>(file: string, schema: SchemaName, normalise: QueueNormaliser<T>, opts: QueueFileOptions): Draft<T> {
  const abs = resolve(file);
  const errors = new Errors(abs);
  const read = readConfigFile(abs, schema, errors, true);
  const groupings = opts.groupings ? new Set(opts.groupings) : undefined;
  const root = read.kind === 'ok' ? read.root : undefined;
  const config = read.kind === 'failed' ? undefined : normalise(root, abs, groupings);
  return { config, errors: errors.list() };
}

/** Load `smtpd.yaml`. Throws ConfigInvalidError listing every error. */
export function loadStartupConfig(file: string): StartupConfig {
  return finish(draftStartup(file));
}

/** Load `smtpd-app.yaml` and check it against the startup config it will run under. */
export function loadRunningConfig(file: string, startup: StartupConfig): RunningConfig {
  return finish(draftRunning(file, startup));
}

/** Load `smtpd-policy.yaml`; a missing file is an empty config. */
export function loadPolicyConfig(file: string, opts: QueueFileOptions = {}): PolicyConfig {
  return finish(draftQueueFile(file, 'smtpd-policy', normalisePolicy, opts));
}

/** Load `smtpd-suspend.yaml`; a missing file is an empty config. */
export function loadSuspendConfig(file: string, opts: QueueFileOptions = {}): SuspendConfig {
  return finish(draftQueueFile(file, 'smtpd-suspend', normaliseSuspend, opts));
}

/** Load `smtpd-delivery.yaml`; a missing file is an empty config. */
export function loadDeliveryConfig(file: string, opts: QueueFileOptions = {}): DeliveryConfig {
  return finish(draftQueueFile(file, 'smtpd-delivery', normaliseDelivery, opts));
}

/**
 * Check every config file reachable from `smtpd.yaml` (for `--test-config`): returns all errors
 * of all files, empty when everything is valid. When smtpd.yaml is invalid but readable, the
 * other files are still checked on their own (without the checks that need smtpd.yaml).
 */
export function testConfig(startupFile: string): ConfigError[] {
  const startup = draftStartup(startupFile);
  if (!startup.config) return startup.errors;
  const valid = startup.errors.length === 0 ? startup.config : undefined;
  const env = startup.config.environment;
  const running = draftRunning(env.appconf, valid);
  const opts: QueueFileOptions = running.config ? { groupings: groupingIds(running.config) } : {};
  return [
    ...startup.errors,
    ...running.errors,
    ...draftQueueFile(env.policyconf, 'smtpd-policy', normalisePolicy, opts).errors,
    ...draftQueueFile(env.suspendconf, 'smtpd-suspend', normaliseSuspend, opts).errors,
    ...draftQueueFile(env.deliveryconf, 'smtpd-delivery', normaliseDelivery, opts).errors,
  ];
}

/** The grouping ids defined in `queues.grouping.groupings[]`. */
export function groupingIds(running: RunningConfig): Set<string> {
  const q = running.queues;
  return new Set(q.grouping.groupings.map((g) => g.id));
}

/**
 * Key pairs by id as TLS should use them: startup pki merged with running pki, the running
 * file's key or certificate winning for an id present in both (certificate renewal by reload).
 */
export function resolvePki(startup: StartupConfig, running: RunningConfig): ReadonlyMap<string, Readonly<PkiEntry>> {
  const merged = mergePki(startup.pki.private, running.pki.private);
  for (const e of merged.values()) Object.freeze(e);
  return merged;
}
