/**
 * halyard-smtpd: start-up, reload and shutdown of the MTA process.
 *
 * Start: load smtpd.yaml (startup, restart to change) → open and recover the spool → load the
 * running snapshot (smtpd-app.yaml, hooks, TLS) → start the queue manager (delivery) → bind
 * every listener → log `ready`.
 * SIGHUP reloads the running configuration (refused reloads keep the old one). SIGTERM/SIGINT
 * stop accepting, let in-flight transactions finish within a grace period, flush the spool and
 * exit 0. Exit 1 with every error listed when the configuration is invalid.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { groupingIds, loadDeliveryConfig, loadPolicyConfig, loadStartupConfig, loadSuspendConfig, testConfig } from '../config/load';
import { ConfigInvalidError, type ConfigError, type RunningConfig, type StartupConfig } from '../config/types';
import { openSpool } from '../spool/journal';
import type { Spool } from '../spool/types';
import { QueueStore } from '../queue/store';
import { DeliveryAgent } from '../delivery/attempt';
import { WorkerAgent } from '../delivery/worker-agent';
import { Resolver } from '../delivery/resolver';
import { QueueManager } from '../scheduler/manager';
import { createShapingEngine } from '../shaping/engine';
import type { ShapingEngine } from '../shaping/types';
import { bindHookServices } from '../hooks/services';
import { InProcessMemoryStore } from '../hooks/memory';
import { SmtpServer } from '../smtp/server';
import { makeIdGenerator } from '../util/ids';
import { createLogger, type Logger } from '../util/log';
import { SpoolIngress } from './ingress';
import { loadSnapshot, RuntimeHolder } from './runtime';
import { parseArgs, USAGE } from './args';
import { startControlSocket } from '../control/daemon'; // control socket (issue 5)
import { queueControl } from '../control/queue'; // queue commands of the control socket (issue 5)
import { shapingControl } from '../control/shaping'; // suspend and policy commands (issue 4/5)
import { startMonitor } from '../http/monitor-daemon'; // monitor listener (issue 6)
import { startSubmissionServer } from '../http/submission-daemon'; // HTTP submission (issue 6)
import type { SubmissionServer } from '../http/submission'; // HTTP submission (issue 6)

export interface Daemon {
  startup: StartupConfig;
  runtime: RuntimeHolder;
  store: QueueStore;
  spool: Spool;
  manager: QueueManager;
  shaping: ShapingEngine;
  servers: SmtpServer[];
  shutdown(reason: string): Promise<void>;
}

function printErrors(errors: ConfigError[]): void {
  for (const e of errors) process.stderr.write(`${e.file}: ${e.path || '(file)'}: ${e.reason}\n`);
}

/** `--test-config`: every config file, every hook module and every certificate; 0 = valid. */
export function runTestConfig(file: string): number {
  const errors = testConfig(file);
  if (errors.length === 0) {
    try {
      const startup = loadStartupConfig(file);
      loadSnapshot(startup, createLogger({ level: 'silent' }), 0);
    } catch (err) {
      if (err instanceof ConfigInvalidError) errors.push(...err.errors);
      else errors.push({ file, path: '', reason: (err as Error).message });
    }
  }
  if (errors.length) {
    printErrors(errors);
    process.stderr.write(`${errors.length} error${errors.length === 1 ? '' : 's'} found\n`);
    return 1;
  }
  process.stdout.write(`${file}: configuration is valid\n`);
  return 0;
}

function applyEnvironment(startup: StartupConfig, log: Logger): void {
  if (startup.environment.umask) process.umask(parseInt(startup.environment.umask, 8));
  if (startup.environment.rlimit?.nofile) {
    log.info({ nofile: startup.environment.rlimit.nofile }, 'environment.rlimit.nofile is applied by the service manager (LimitNOFILE=); Node.js cannot raise it itself');
  }
}

function dropPrivileges(startup: StartupConfig, log: Logger): void {
  const p = startup.environment.privdrop;
  if (!p || typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  if (p.group) process.setgid?.(p.group);
  if (p.user) process.setuid?.(p.user);
  log.info({ user: p.user, group: p.group }, 'privileges dropped');
}

/** One resolver per resolver configuration (name servers, cache size): a reload that changes them gets a new one. */
function resolverCache(): (config: RunningConfig) => Resolver {
  let key = '';
  let current: Resolver | undefined;
  return (config) => {
    const k = JSON.stringify(config.resolver);
    if (!current || k !== key) {
      current = new Resolver({ cacheSize: config.resolver.cache.size, ...(config.resolver.nameservers ? { servers: config.resolver.nameservers } : {}) });
      key = k;
    }
    return current;
  };
}

/**
 * The traffic-shaping engine with the three queue files (smtpd-policy.yaml, smtpd-suspend.yaml,
 * smtpd-delivery.yaml) and the groupings of the running configuration. A file that is invalid
 * at start stops the start with every error (as smtpd-app.yaml does); later each reloads on its
 * own through the control socket.
 */
function startShaping(startup: StartupConfig, runtime: RuntimeHolder): ShapingEngine {
  const config = runtime.current.config;
  const opts = { groupings: groupingIds(config) };
  const env = startup.environment;
  const shaping = createShapingEngine();
  shaping.setGrouping(config.queues.grouping);
  shaping.setPolicies(loadPolicyConfig(env.policyconf, opts));
  shaping.setSuspends(loadSuspendConfig(env.suspendconf, opts));
  shaping.setDelivery(loadDeliveryConfig(env.deliveryconf, opts));
  return shaping;
}

async function startManager(startup: StartupConfig, runtime: RuntimeHolder, spool: Spool, store: QueueStore, ingress: SpoolIngress, log: Logger, newId: () => string, shaping: ShapingEngine): Promise<{ manager: QueueManager; agent: WorkerAgent | DeliveryAgent }> {
  const config = runtime.current.config;
  const queues = config.queues;
  const agent = startup.queues.threads.event === 1
    ? new WorkerAgent({ poolSize: queues.pooling.size, nice: startup.queues.threads.nice, log })
    : new DeliveryAgent({ poolSize: queues.pooling.size });
  if (agent instanceof WorkerAgent) {
    await agent.ready(); // pickup counts connections (connectinterval) as they start
    log.info({ nice: startup.queues.threads.nice }, 'delivery thread ready');
  }
  const manager = new QueueManager({
    store,
    spool,
    ingress,
    runtime: () => ({ config: runtime.current.config, hooks: runtime.current.hooks.delivery ?? {} }),
    agent,
    resolverFor: resolverCache(),
    log,
    hostname: startup.environment.hostname || os.hostname(),
    newId,
    shaping,
  });
  manager.start();
  return { manager, agent };
}

export async function startDaemon(file: string, log: Logger): Promise<Daemon> {
  const startup = loadStartupConfig(file);
  applyEnvironment(startup, log);
  const runtime = new RuntimeHolder(startup, log);
  // ---- monitor listener (issue 6, src/http/monitor-daemon.ts): up before the spool is loaded
  // so /ready and /healthy answer 503 while the daemon starts; marked ready once every
  // listener is bound, shutting down at SIGTERM, closed last.
  const monitor = await startMonitor(startup, runtime, log);
  // ---- end monitor listener
  const spool = await openSpool({ path: startup.spool.path, fsync: startup.spool.fsync, corrupt: startup.spool.corrupt, minfree: startup.spool.minfree, log });
  const store = new QueueStore();
  const ingress = new SpoolIngress(spool, store, log);
  const loaded = await ingress.recover();
  log.info({ path: startup.spool.path, ...loaded }, 'spool loaded');
  const newId = makeIdGenerator(startup.environment.uuid.version);
  const shaping = startShaping(startup, runtime);
  const memory = new InProcessMemoryStore();
  bindHookServices({ shaping, memory, quota: (name) => store.quota(name) });
  const { manager, agent } = await startManager(startup, runtime, spool, store, ingress, log, newId, shaping);
  // A new smtpd-app.yaml may bring other groupings; every destination is looked at again.
  runtime.onReload((snap) => {
    shaping.setGrouping(snap.config.queues.grouping);
    manager.clearRoutes();
    manager.wake();
  });
  const servers: SmtpServer[] = [];
  const httpServers: SubmissionServer[] = []; // HTTP submission (issue 6)
  for (const s of startup.servers) {
    if (s.type !== 'smtp') {
      // ---- HTTP submission (issue 6, src/http/submission-daemon.ts): servers of type http|https
      httpServers.push(await startSubmissionServer(startup, s, runtime, ingress, log, startup.environment.hostname || os.hostname(), newId));
      continue;
      // ---- end HTTP submission
    }
    const server = new SmtpServer({
      startup: s,
      runtime: () => {
        const snap = runtime.current;
        return { server: runtime.server(s.id), hooks: snap.hooks, secureContext: snap.tls.get(s.id) ?? (() => undefined), resolveKey: snap.resolveKey };
      },
      ingress,
      log,
      hostname: startup.environment.hostname || os.hostname(),
      newId,
    });
    await server.listen();
    log.info({ serverid: s.id, listeners: server.addresses() }, 'listening');
    servers.push(server);
  }
  // ---- control socket (issue 5, src/control/daemon.ts): after the listeners, before privdrop
  // (the socket folder and its group may need root); a socket that cannot be set up is logged
  // and the daemon runs on without it. Closed first at shutdown (below).
  const queue = queueControl({
    store, spool, ingress, manager, config: () => runtime.current.config, hostname: startup.environment.hostname || os.hostname(), newId, log,
    deliveryHooks: () => runtime.current.hooks.delivery ?? {}, // postdelivery after admin delete/bounce
    unloadDir: path.join(startup.spool.path, 'unloaded'), // J unload's queue files
  });
  const policyStats = () => {
    const st = shaping.stats(Date.now());
    return { concurrency: st.concurrency, rate: st.rate, dynamic: st.dynamic };
  };
  const deliveryStats = () => {
    const st = manager.stats();
    const pool = agent.poolStats();
    const total = runtime.current.config.queues.concurrency?.total;
    return {
      connections: {
        concurrent: st.inflight,
        ...(typeof total === 'number' && Number.isFinite(total) ? { maxconcurrent: total } : {}),
        ...(pool ? { pooling: pool } : {}),
      },
      delivery: st.outcomes,
    };
  };
  const control = await startControlSocket({
    startup, runtime, store, servers, log, queue, memory,
    shaping: shapingControl(shaping),
    policyStats,
    deliveryStats,
    apply: {
      policy: (c) => shaping.setPolicies(c),
      suspend: (c) => shaping.setSuspends(c),
      delivery: (c) => shaping.setDelivery(c),
    },
  });
  // ---- end control socket
  monitor?.attach({ store, spool, servers, policyStats, deliveryStats }); // monitor listener (issue 6)
  dropPrivileges(startup, log);
  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log.info({ reason }, 'shutting down');
      monitor?.server.markShuttingDown(); // monitor listener (issue 6): /healthy 503 while draining
      await control?.close(); // control socket (issue 5)
      // Stop picking up first, then let receptions and attempts in flight finish (bounded),
      // and only then close the spool both write to.
      const [left] = await Promise.all([manager.stop(10_000), ...servers.map((srv) => srv.close(10_000)), ...httpServers.map((srv) => srv.close(10_000))]);
      if (left > 0) log.warn({ inflight: left }, 'delivery attempts still running at shutdown; they will be made again after restart');
      await spool.close();
      await monitor?.server.close(); // monitor listener (issue 6)
      log.info({}, 'stopped');
    })();
    return stopping;
  };
  // The list/group-by field indexes of the loaded queue, a slice per turn (a query meanwhile
  // scans the queue instead): docs/decisions.md, start-up with a large queue.
  if (store.indexing) {
    const started = performance.now();
    await store.buildIndexes();
    log.info({ ms: Math.round(performance.now() - started) }, 'queue indexes built');
  }
  monitor?.server.markReady(); // monitor listener (issue 6): spool loaded, every listener bound
  log.info({ queued: store.size, active: store.count('ACTIVE'), defer: store.count('DEFER'), hold: store.count('HOLD') }, 'ready');
  return { startup, runtime, store, spool, manager, shaping, servers, shutdown };
}

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if ('error' in args) {
    process.stderr.write(`halyard-smtpd: ${args.error}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.testConfig) return runTestConfig(args.config);
  const log = createLogger();
  let daemon: Daemon;
  try {
    daemon = await startDaemon(args.config, log);
  } catch (err) {
    if (err instanceof ConfigInvalidError) printErrors(err.errors);
    else process.stderr.write(`halyard-smtpd: ${(err as Error).message}\n`);
    log.flush();
    return 1;
  }
  process.on('SIGHUP', () => daemon.runtime.reload());
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => void daemon.shutdown(sig).then(resolve);
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log.flush();
  return 0;
}
