/**
 * Normalises `smtpd.yaml` (the startup configuration, halon-core.md §2) into `StartupConfig`.
 *
 * Inputs: the root cursor of the parsed, schema-checked file. Outputs: a StartupConfig with
 * defaults filled and relative paths made absolute against the file's folder.
 * Invariants: never throws for bad data; every problem goes to the cursor's error collector.
 * Errors reported here (beyond the schema): bad bind addresses and PROXY networks, duplicate
 * server ids, duplicate listener ids within a server, two listeners on the same port and
 * address, monitor port given twice, pki problems, a control-socket certificate that is not
 * usable.
 */
import { hostname } from 'node:os';
import { isIP, isIPv4 } from 'node:net';
import type { ListenerConfig, StartupConfig, StartupServer } from './types';
import { type Cursor, reportDuplicates, setIf } from './reader';
import { parseMatchToken, parseSize, ValueSyntaxError } from './syntax';
import { mergePki, pkiProblem, readPki } from './pki';

/** Production location of the control socket; the shipped config sets its own. */
export const DEFAULT_CONTROL_SOCKET = '/var/run/halyard/smtpd.ctl';
const DEFAULT_MINFREE_BYTES = parseSize('100MiB');
const DEFAULT_MINFREE_INODES = 1000;

export function normaliseStartup(root: Cursor, file: string): StartupConfig {
  const servers = root.get('servers').items().map(readServer);
  const config: StartupConfig = {
    file,
    servers,
    environment: readEnvironment(root.get('environment')),
    spool: readSpool(root.get('spool')),
    queues: readQueues(root.get('queues')),
    pki: { private: readPki(root.get('pki')) },
  };
  setIf(config, 'version', root.get('version').str());
  setIf(config, 'monitor', readMonitor(root.get('monitor')));
  checkStartup(root, config);
  return config;
}

function readServer(c: Cursor): StartupServer {
  const listeners = c.get('listeners').items();
  reportDuplicates(
    listeners.filter((l) => l.get('id').present).map((l) => ({ value: l.get('id').str(''), cursor: l.get('id') })),
    'listener id',
  );
  return {
    id: c.get('id').str(''),
    type: c.get('type').oneOf(['smtp', 'http', 'https'] as const, 'smtp'),
    listeners: listeners.map(readListener),
    proxyprotocol: c.get('proxyprotocol').items().map(readProxyNetwork),
  };
}

function readListener(c: Cursor): ListenerConfig {
  const l: ListenerConfig = { port: c.get('port').num(0) };
  setIf(l, 'id', c.get('id').str());
  setIf(l, 'address', bindAddress(c.get('address')));
  setIf(l, 'backlog', c.get('backlog').num());
  return l;
}

function bindAddress(c: Cursor): string | undefined {
  const a = c.str();
  if (a !== undefined && isIP(a) === 0) c.error(`"${a}" is not an IPv4 or IPv6 address`);
  return a;
}

function readProxyNetwork(c: Cursor): string {
  const s = c.str('');
  try {
    const t = parseMatchToken(s);
    if (t.kind !== 'address' && t.kind !== 'network') c.error(`"${s}" is not an IP address or network`);
  } catch (e) {
    if (!(e instanceof ValueSyntaxError)) throw e;
    c.error(e.message);
  }
  return s;
}

function readEnvironment(c: Cursor): StartupConfig['environment'] {
  const env: StartupConfig['environment'] = {
    appconf: c.get('appconf').filePath('smtpd-app.yaml'),
    policyconf: c.get('policyconf').filePath('smtpd-policy.yaml'),
    suspendconf: c.get('suspendconf').filePath('smtpd-suspend.yaml'),
    deliveryconf: c.get('deliveryconf').filePath('smtpd-delivery.yaml'),
    controlsocket: readControlSocket(c.get('controlsocket')),
    uuid: { version: c.get('uuid').get('version').oneOf([1, 4] as const, 4) },
    hostname: c.get('hostname').str() ?? hostname(),
  };
  setIf(env, 'privdrop', optionalObject(c.get('privdrop'), (p) => {
    const out: { user?: string; group?: string } = {};
    setIf(out, 'user', p.get('user').str());
    setIf(out, 'group', p.get('group').str());
    return out;
  }));
  setIf(env, 'umask', c.get('umask').str());
  setIf(env, 'rlimit', optionalObject(c.get('rlimit'), (r) => {
    const out: { nofile?: number } = {};
    setIf(out, 'nofile', r.get('nofile').num());
    return out;
  }));
  return env;
}

function optionalObject<T>(c: Cursor, read: (c: Cursor) => T): T | undefined {
  return c.present ? read(c) : undefined;
}

function readControlSocket(c: Cursor): StartupConfig['environment']['controlsocket'] {
  const cs: StartupConfig['environment']['controlsocket'] = { path: c.get('path').filePath(DEFAULT_CONTROL_SOCKET) };
  const port = c.get('port').num();
  setIf(cs, 'port', port);
  setIf(cs, 'address', port === undefined ? c.get('address').str() : c.get('address').str('127.0.0.1'));
  setIf(cs, 'group', c.get('group').str());
  setIf(cs, 'chmod', c.get('chmod').str());
  const tls = c.get('tls');
  if (tls.present) {
    if (port === undefined) tls.error('TLS needs a TCP control socket: set environment.controlsocket.port');
    const out: { cert?: string; clientcerts?: Array<{ path?: string; data: string }> } = {};
    setIf(out, 'cert', tls.get('cert').str());
    const clientcerts = tls.get('clientcerts');
    if (clientcerts.present) out.clientcerts = clientcerts.items().flatMap((f) => f.fileData() ?? []);
    cs.tls = out;
  }
  return cs;
}

function readQueues(c: Cursor): StartupConfig['queues'] {
  const t = c.get('threads');
  return { threads: { event: t.get('event').oneOf([0, 1] as const, 1), nice: t.get('nice').num(10) } };
}

function readSpool(c: Cursor): StartupConfig['spool'] {
  const minfree = c.get('minfree');
  return {
    path: c.get('path').filePath(''),
    fsync: c.get('fsync').bool(true),
    minfree: {
      bytes: minfree.get('bytes').size(DEFAULT_MINFREE_BYTES),
      inodes: minfree.get('inodes').num(DEFAULT_MINFREE_INODES),
    },
    corrupt: c.get('corrupt').oneOf(['unlink', 'rename', 'ignore'] as const, 'rename'),
  };
}

/** `monitor.listener{port,address}`, also accepting the older `monitor.port`/`monitor.address`. */
function readMonitor(c: Cursor): StartupConfig['monitor'] {
  if (!c.present) return undefined;
  const listener = c.get('listener');
  const port = either(listener.get('port'), c.get('port'));
  if (port === undefined && !listener.present) c.get('listener').get('port').error('is required (or monitor.port)');
  const monitor: NonNullable<StartupConfig['monitor']> = {
    listener: { port: typeof port === 'number' ? port : 0 },
    type: c.get('type').oneOf(['http', 'https'] as const, 'http'),
  };
  const address = either(listener.get('address'), c.get('address'));
  if (typeof address === 'string') {
    monitor.listener.address = address;
    bindAddress(listener.get('address').present ? listener.get('address') : c.get('address'));
  }
  return monitor;
}

/** The value of the new spelling or the old one; both given is an error on the old one. */
function either(preferred: Cursor, alias: Cursor): unknown {
  if (preferred.present && alias.present) {
    alias.error(`give ${preferred.path} or ${alias.path}, not both`);
  }
  return preferred.present ? preferred.value : alias.value;
}

function checkStartup(root: Cursor, config: StartupConfig): void {
  const servers = root.get('servers').items();
  reportDuplicates(servers.map((s) => ({ value: s.get('id').str(''), cursor: s.get('id') })), 'server id');
  checkPorts(root, config);
  const cert = config.environment.controlsocket.tls?.cert;
  if (cert !== undefined) {
    const problem = pkiProblem(mergePki(config.pki.private, []), cert, 'smtpd.yaml');
    if (problem) root.get('environment').get('controlsocket').get('tls').get('cert').error(problem);
  }
}

interface Socket {
  port: number;
  address?: string;
  cursor: Cursor;
}

/**
 * Two sockets conflict when they use the same TCP port and the same address, or when either
 * binds all addresses (Linux refuses 0.0.0.0:25 beside 127.0.0.1:25 without SO_REUSEPORT).
 * Port 0 (system-chosen) never conflicts.
 */
function checkPorts(root: Cursor, config: StartupConfig): void {
  const sockets: Socket[] = [];
  root.get('servers').items().forEach((s, i) => {
    s.get('listeners').items().forEach((l, j) => {
      const lc = config.servers[i].listeners[j];
      sockets.push({ port: lc.port, address: lc.address, cursor: l.get('port') });
    });
  });
  if (config.monitor) {
    const m = root.get('monitor');
    const cursor = m.get('listener').present ? m.get('listener').get('port') : m.get('port');
    sockets.push({ port: config.monitor.listener.port, address: config.monitor.listener.address, cursor });
  }
  const cs = config.environment.controlsocket;
  if (cs.port !== undefined) {
    sockets.push({ port: cs.port, address: cs.address, cursor: root.get('environment').get('controlsocket').get('port') });
  }
  reportPortClashes(sockets);
}

function reportPortClashes(sockets: Socket[]): void {
  sockets.forEach((s, i) => {
    if (s.port === 0) return;
    const clash = sockets.slice(0, i).find((o) => o.port === s.port && sameAddress(o.address, s.address));
    if (clash) s.cursor.error(`port ${s.port} is already used by ${clash.cursor.path}`);
  });
}

/** Node binds an unset address as '::', which is dual-stack and so takes IPv4 as well. */
function sameAddress(a: string | undefined, b: string | undefined): boolean {
  if (a === b || bindsAll(a) || bindsAll(b)) return true;
  if (a === '0.0.0.0') return isIPv4(b ?? '');
  if (b === '0.0.0.0') return isIPv4(a ?? '');
  return false;
}

function bindsAll(a: string | undefined): boolean {
  return a === undefined || a === '::';
}
