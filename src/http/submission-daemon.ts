/**
 * Glue between halyard-smtpd (src/daemon/main.ts) and an HTTP submission server: builds and
 * binds the SubmissionServer of one `type: http|https` entry of smtpd.yaml.
 *
 * TLS (`https`): the server's first `tls.certs` entry of the running config is the default
 * certificate (clients connecting by IP send no SNI); with SNI the same chooser as SMTP picks
 * by name from the current snapshot, so reloaded certificates apply to new connections.
 * Errors: rejects when a listener cannot be bound or https has no certificate (the daemon
 * then exits 1, like an SMTP listener that cannot bind). A server without `apikeys` is
 * started but refuses every request (logged as a warning).
 */
import { resolvePki } from '../config/load';
import type { StartupConfig, StartupServer } from '../config/types';
import type { RuntimeHolder } from '../daemon/runtime';
import type { Ingress } from '../model/ingress';
import type { Logger } from '../util/log';
import { SubmissionServer } from './submission';

function defaultCert(startup: StartupConfig, runtime: RuntimeHolder, s: StartupServer): { key: string; cert: string } {
  const id = runtime.server(s.id).tls.certs[0];
  const p = id ? resolvePki(startup, runtime.current.config).get(id) : undefined;
  if (!p?.privatekey || !p.certificate) throw new Error(`HTTP submission server "${s.id}" is of type https but servers[].tls.certs names no certificate with a private key`);
  return { key: p.privatekey.data, cert: p.certificate.data };
}

export async function startSubmissionServer(startup: StartupConfig, s: StartupServer, runtime: RuntimeHolder, ingress: Ingress, log: Logger, hostname: string, newId: () => string): Promise<SubmissionServer> {
  if (runtime.server(s.id).apikeys.length === 0) log.warn({ serverid: s.id }, 'HTTP submission server has no apikeys; every request is refused with 401');
  const server = new SubmissionServer({
    startup: s,
    runtime: () => {
      const snap = runtime.current;
      return { server: runtime.server(s.id), hooks: snap.hooks, resolveKey: snap.resolveKey };
    },
    ingress,
    log,
    hostname,
    newId,
    ...(s.type === 'https' ? { tls: { ...defaultCert(startup, runtime, s), choose: (name: string) => runtime.current.tls.get(s.id)?.(name) } } : {}),
  });
  await server.listen();
  log.info({ serverid: s.id, type: s.type, listeners: server.addresses() }, 'listening');
  return server;
}
