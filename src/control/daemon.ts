/**
 * Glue between the daemon (src/daemon/main.ts) and the control socket: builds the
 * `ControlContext` from the daemon's parts and starts the `ControlServer`.
 *
 * Inputs: the startup config, the running-config holder, the queue store (entry counts), the
 * SMTP servers (connection counts, in the order of `startup.servers` of type smtp), a logger,
 * and optional services the queue engine adds later (`queue`, `shaping`, `resolverClear`,
 * `apply` callbacks for the three queue files).
 * Behaviour: `r` reloads smtpd-app.yaml through RuntimeHolder (refused → every error, old
 * config kept). `p`/`o`/`H` load and check their file with every error reported; a valid file
 * is handed to the matching `apply` callback when the daemon gave one, otherwise the daemon
 * logs that it takes effect at the next start.
 * Errors: `startControlSocket` never throws: a control socket that cannot be set up is logged
 * as an error and the daemon runs on without it (mail flow does not depend on the
 * administration channel; SIGHUP still reloads), and undefined is returned.
 */
import {
  groupingIds,
  loadDeliveryConfig,
  loadPolicyConfig,
  loadSuspendConfig,
  type DeliveryConfig,
  type PolicyConfig,
  type SuspendConfig,
} from '../config/load';
import { mergePki } from '../config/pki';
import { ConfigInvalidError, type ConfigError, type RunningConfig, type RunningServer, type StartupConfig } from '../config/types';
import { InProcessMemoryStore, type MemoryStore } from '../hooks/memory';
import type { QueueState } from '../model/types';
import type { ControlContext, QueueControl, ReloadOutcome, ShapingControl, StatsInput } from './context';
import { ControlServer, type ControlLogger } from './server';

export interface ControlDaemonParts {
  startup: StartupConfig;
  runtime: {
    readonly current: { config: RunningConfig };
    reload(): { ok: true } | { ok: false; errors: ConfigError[] };
    server(id: string): RunningServer;
  };
  store: { count(state: QueueState): number };
  /** The started SMTP servers, in the order of the smtp-type entries of `startup.servers`. */
  servers: ReadonlyArray<{ stats(): { connections: number } }>;
  log: ControlLogger;
  memory?: MemoryStore;
  queue?: QueueControl;
  shaping?: ShapingControl;
  resolverClear?: (domain?: string) => number | Promise<number>;
  /** Traffic-shaping figures for process-stats (`queue.policy`). */
  policyStats?: () => NonNullable<NonNullable<StatsInput['queue']>['policy']>;
  /** Delivery figures for process-stats (`queue.connections`, `queue.delivery`). */
  deliveryStats?: () => Pick<NonNullable<StatsInput['queue']>, 'connections' | 'delivery'>;
  /** Put a reloaded queue file into effect. */
  apply?: { policy?(c: PolicyConfig): void; suspend?(c: SuspendConfig): void; delivery?(c: DeliveryConfig): void };
}

function errorText(e: ConfigError): string {
  return `${e.file}: ${e.path || '(file)'}: ${e.reason}`;
}

function reloadFile<T>(parts: ControlDaemonParts, file: string, load: () => T, apply: ((c: T) => void) | undefined): ReloadOutcome {
  let config: T;
  try {
    config = load();
  } catch (err) {
    const errors = err instanceof ConfigInvalidError ? err.errors.map(errorText) : [`${file}: ${(err as Error).message}`];
    parts.log.error({ file, errors }, 'reload refused; the previous configuration keeps running');
    return { ok: false, errors };
  }
  if (apply) {
    apply(config);
    parts.log.info({ file }, 'reloaded');
  } else {
    parts.log.warn({ file }, 'file is valid, but this daemon cannot apply it while running; it takes effect at the next start');
  }
  return { ok: true };
}

function stats(parts: ControlDaemonParts): StatsInput {
  const ids = parts.startup.servers.filter((s) => s.type === 'smtp').map((s) => s.id);
  return {
    servers: parts.servers.map((srv, i) => {
      const id = ids[i] ?? `#${i}`;
      const limit = ids[i] ? parts.runtime.server(id).limits.connections : 0;
      return { id, connections: srv.stats().connections, maxconnections: Number.isFinite(limit) ? limit : 0 };
    }),
    queue: {
      active: parts.store.count('ACTIVE'),
      defer: parts.store.count('DEFER'),
      hold: parts.store.count('HOLD'),
      update: parts.store.count('UPDATE'),
      ...(parts.policyStats ? { policy: parts.policyStats() } : {}),
      ...(parts.deliveryStats ? parts.deliveryStats() : {}),
    },
  };
}

export function controlContext(parts: ControlDaemonParts): ControlContext {
  const env = parts.startup.environment;
  const groupings = () => ({ groupings: groupingIds(parts.runtime.current.config) });
  return {
    processStats: () => stats(parts),
    reloadRunning: () => {
      const r = parts.runtime.reload();
      return r.ok ? { ok: true } : { ok: false, errors: r.errors.map(errorText) };
    },
    reloadPolicy: () => reloadFile(parts, env.policyconf, () => loadPolicyConfig(env.policyconf, groupings()), parts.apply?.policy),
    reloadSuspend: () => reloadFile(parts, env.suspendconf, () => loadSuspendConfig(env.suspendconf, groupings()), parts.apply?.suspend),
    reloadDelivery: () => reloadFile(parts, env.deliveryconf, () => loadDeliveryConfig(env.deliveryconf, groupings()), parts.apply?.delivery),
    memory: parts.memory ?? new InProcessMemoryStore(),
    ...(parts.resolverClear ? { resolverClear: parts.resolverClear } : {}),
    ...(parts.queue ? { queue: parts.queue } : {}),
    ...(parts.shaping ? { shaping: parts.shaping } : {}),
  };
}

/** Start the control socket; undefined (and an error in the log) when it cannot be set up. */
export async function startControlSocket(parts: ControlDaemonParts): Promise<ControlServer | undefined> {
  const server = new ControlServer({
    socket: parts.startup.environment.controlsocket,
    pki: mergePki(parts.startup.pki.private, []),
    context: controlContext(parts),
    log: parts.log,
  });
  try {
    await server.listen();
  } catch (err) {
    await server.close().catch(() => undefined);
    parts.log.error({ path: parts.startup.environment.controlsocket.path, err: (err as Error).message }, 'control socket not available; halyardctl cannot reach this daemon');
    return undefined;
  }
  parts.log.info(server.addresses(), 'control socket listening');
  return server;
}
