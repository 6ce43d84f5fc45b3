/**
 * Glue between halyard-smtpd (src/daemon/main.ts) and the monitor listener: builds the
 * MonitorServer from the startup config and starts it before the spool is loaded, so `/ready`
 * answers 503 while the daemon starts. `attach` hands over the queue, spool and SMTP servers
 * once they exist; `/metrics` then shows the same figures as `halyardctl process-stats`
 * (src/control/daemon.ts `controlContext`) plus queue age and spool figures.
 *
 * TLS (`monitor.type: https`): the first `pki.private[]` entry (startup, then running config)
 * that has both a private key and a certificate — Halon's own key shape for this
 * (`monitor.tls.certs`) is not pinned down (halon-api.md §12.9).
 * Errors: `startMonitor` rejects when the port cannot be bound or https has no certificate;
 * the daemon then exits 1 (a monitor that was asked for and is missing would make every probe
 * fail, which is worse than a clear start-up error).
 */
import fs from 'node:fs';
import { resolvePki } from '../config/load';
import type { StartupConfig } from '../config/types';
import { controlContext, type ControlDaemonParts } from '../control/daemon';
import { findPackageFile } from '../control/schema';
import { buildProcessStats, parseVersion } from '../control/stats';
import type { Spool } from '../spool/types';
import type { QueueStore } from '../queue/store';
import type { RuntimeHolder } from '../daemon/runtime';
import type { Logger } from '../util/log';
import { MonitorServer } from './monitor';

export interface MonitorParts {
  store: QueueStore;
  spool: Spool;
  /** The started SMTP servers (same array the control socket gets; filled as they start). */
  servers: ReadonlyArray<{ stats(): { connections: number } }>;
  /** The same figures the control socket's process-stats has (src/control/daemon.ts). */
  policyStats?: ControlDaemonParts['policyStats'];
  deliveryStats?: ControlDaemonParts['deliveryStats'];
}

export interface Monitor {
  server: MonitorServer;
  attach(parts: MonitorParts): void;
}

function version(): { major: number; minor: number; patch: number } {
  try {
    const pkg = JSON.parse(fs.readFileSync(findPackageFile('package.json'), 'utf8')) as { version?: string };
    return parseVersion(pkg.version ?? '');
  } catch {
    return { major: 0, minor: 0, patch: 0 };
  }
}

function monitorTls(startup: StartupConfig, runtime: RuntimeHolder): { key: string; cert: string } {
  for (const p of resolvePki(startup, runtime.current.config).values()) {
    if (p.privatekey && p.certificate) return { key: p.privatekey.data, cert: p.certificate.data };
  }
  throw new Error('monitor.type is https but pki.private has no entry with both a private key and a certificate');
}

/** Start the monitor listener when smtpd.yaml has `monitor`; undefined otherwise. */
export async function startMonitor(startup: StartupConfig, runtime: RuntimeHolder, log: Logger): Promise<Monitor | undefined> {
  const m = startup.monitor;
  if (!m) return undefined;
  let parts: MonitorParts | undefined;
  const v = version();
  const server = new MonitorServer({
    listener: m.listener,
    ...(m.type === 'https' ? { tls: monitorTls(startup, runtime) } : {}),
    settings: () => runtime.current.config.monitor,
    queued: () => parts?.store.size ?? 0,
    collect: async () => {
      if (!parts) return undefined;
      const p = parts;
      const input = await controlContext({
        startup, runtime, store: p.store, servers: p.servers, log,
        ...(p.policyStats ? { policyStats: p.policyStats } : {}),
        ...(p.deliveryStats ? { deliveryStats: p.deliveryStats } : {}),
      }).processStats();
      const stats = buildProcessStats(input, { pid: process.pid, runtime: process.uptime(), version: v });
      return { stats, oldest: await p.store.oldestByState(), spool: p.spool.stats() };
    },
    log,
  });
  const address = await server.listen();
  log.info({ address: address.address, port: address.port, type: m.type }, 'monitor listening');
  return { server, attach: (p) => (parts = p) };
}
