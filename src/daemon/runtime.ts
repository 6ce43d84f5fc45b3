/**
 * The running configuration as one immutable snapshot: the parsed smtpd-app.yaml, its loaded
 * hook modules and its TLS contexts. `reload` builds a complete new snapshot and swaps it in only
 * if every part loaded; new connections take the snapshot current when they open, so existing
 * connections finish on the config they started with (halon-core.md §9.4).
 */
import { loadRunningConfig } from '../config/load';
import { ConfigInvalidError, type ConfigError, type RunningConfig, type RunningServer, type StartupConfig } from '../config/types';
import { loadHooks, type LoadedHooks } from '../hooks/runtime';
import { buildKeyResolver, buildTlsChoosers, type ContextChooser } from './tls';
import type { Logger } from '../util/log';

export interface RuntimeSnapshot {
  generation: number;
  config: RunningConfig;
  hooks: LoadedHooks;
  tls: Map<string, ContextChooser>;
  /** Private key PEM by pki id (DKIM signing in hooks). */
  resolveKey: (id: string) => string | undefined;
}

export type ReloadResult = { ok: true; generation: number } | { ok: false; errors: ConfigError[] };

/** Load a complete snapshot or throw ConfigInvalidError listing every problem found. */
export function loadSnapshot(startup: StartupConfig, log: Logger, generation: number): RuntimeSnapshot {
  const file = startup.environment.appconf;
  const config = loadRunningConfig(file, startup);
  const errors: ConfigError[] = [];
  for (const s of startup.servers) {
    if (!config.servers.some((r) => r.id === s.id)) {
      errors.push({ file, path: 'servers', reason: `no running settings for server "${s.id}" of ${startup.file}` });
    }
  }
  let hooks: LoadedHooks | undefined;
  try {
    hooks = loadHooks(config, log);
  } catch (err) {
    if (err instanceof ConfigInvalidError) errors.push(...err.errors);
    else throw err;
  }
  let tls: Map<string, ContextChooser> | undefined;
  try {
    tls = buildTlsChoosers(startup, config);
  } catch (err) {
    errors.push({ file, path: 'pki', reason: (err as Error).message });
  }
  if (errors.length || !hooks || !tls) throw new ConfigInvalidError(errors);
  return { generation, config, hooks, tls, resolveKey: buildKeyResolver(startup, config) };
}

export class RuntimeHolder {
  private snapshot: RuntimeSnapshot;
  private readonly listeners: Array<(snapshot: RuntimeSnapshot) => void> = [];

  constructor(
    private readonly startup: StartupConfig,
    private readonly log: Logger,
  ) {
    this.snapshot = loadSnapshot(startup, log, 1);
  }

  /** Called with each new snapshot after a successful reload. */
  onReload(fn: (snapshot: RuntimeSnapshot) => void): void {
    this.listeners.push(fn);
  }

  get current(): RuntimeSnapshot {
    return this.snapshot;
  }

  server(id: string): RunningServer {
    const s = this.snapshot.config.servers.find((r) => r.id === id);
    if (!s) throw new Error(`no running settings for server ${id}`);
    return s;
  }

  /** Re-read smtpd-app.yaml; on any error keep the running snapshot and return every error. */
  reload(): ReloadResult {
    try {
      this.snapshot = loadSnapshot(this.startup, this.log, this.snapshot.generation + 1);
      for (const fn of this.listeners) {
        try {
          fn(this.snapshot);
        } catch (err) {
          this.log.error({ err: (err as Error).message }, 'applying the reloaded configuration failed in part');
        }
      }
      this.log.info({ generation: this.snapshot.generation, file: this.startup.environment.appconf }, 'running configuration reloaded');
      return { ok: true, generation: this.snapshot.generation };
    } catch (err) {
      const errors = err instanceof ConfigInvalidError ? err.errors : [{ file: this.startup.environment.appconf, path: '', reason: (err as Error).message }];
      this.log.error({ errors }, 'running configuration refused; the previous one keeps running');
      return { ok: false, errors };
    }
  }
}
