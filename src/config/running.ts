/**
 * Normalises `smtpd-app.yaml` (the running configuration, halon-core.md §3) into
 * `RunningConfig`, and checks it against itself and against the startup configuration.
 *
 * Inputs: the root cursor of the parsed, schema-checked file; the StartupConfig it runs under,
 * or undefined when the startup file is itself invalid (`testConfig` still wants this file's
 * own errors, so the checks that need the startup file are then skipped).
 * Outputs: a RunningConfig with defaults filled, durations in seconds, sizes in bytes, hook
 * paths absolute, each transport's `group` set.
 * Invariants: never throws for bad data; every problem goes to the cursor's error collector.
 * Errors reported here (beyond the schema): duplicate ids (servers, hooks per phase, groups,
 * transports across groups, addresses, groupings, pki); references that do not resolve (server
 * ids in smtpd.yaml, phase hooks, transports, DSN transports, source address ids, TLS
 * certificates, implicit-TLS listener ids); hook files that do not exist; bad match values in
 * groupings; bad name servers; monitor hysteresis with lower > upper.
 */
import { statSync } from 'node:fs';
import { isIP } from 'node:net';
import {
  SMTP_PHASES,
  type HookRef,
  type PkiEntry,
  type QueuesConfig,
  type RetryInterval,
  type RunningConfig,
  type RunningServer,
  type SmtpPhase,
  type StartupConfig,
  type TransportConfig,
  type TransportGroupConfig,
} from './types';
import { type Cursor, ioReason, reportDuplicates, setIf } from './reader';
import { parseSize } from './syntax';
import { mergePki, pkiProblem, readPki } from './pki';

/** `RunningConfig.queues` as this loader fills it. */
/** Retry schedule used when a transport group gives none (Halon's template, halon-core.md §3.2). */
export const DEFAULT_RETRY_INTERVALS: readonly number[] = [60, 900, 3600, 7200, 10800];
const DEFAULT_RETRY_DURING = 5 * 86400;
const DEFAULT_MAXSIZE = parseSize('50MiB');

export function normaliseRunning(root: Cursor, file: string, startup: StartupConfig | undefined): RunningConfig {
  const config: RunningConfig = {
    file,
    servers: root.get('servers').items().map(readServer),
    transportgroups: root.get('transportgroups').items().map(readGroup),
    addresses: root.get('addresses').items().map(readAddress),
    queues: readQueues(root.get('queues')),
    resolver: readResolver(root.get('resolver')),
    scripting: readScripting(root.get('scripting')),
    monitor: readMonitor(root.get('monitor')),
    pki: { private: readPki(root.get('pki')) },
  };
  setIf(config, 'version', root.get('version').str());
  checkRunning(root, config, startup);
  return config;
}

// ---------------------------------------------------------------------------------------------
// servers[]

function readServer(c: Cursor): RunningServer {
  const phases = c.get('phases');
  const tls = c.get('tls');
  const ext = c.get('extensions');
  return {
    id: c.get('id').str(''),
    transport: c.get('transport').str('mx'),
    hooks: readPhaseHooks(phases),
    limits: {
      connections: c.get('concurrency').get('total').num(1000),
      messages: phases.get('mailfrom').get('maxmessages').num(100),
      recipients: phases.get('rcptto').get('maxrecipients').num(1000),
      maxsize: phases.get('data').get('maxsize').size(DEFAULT_MAXSIZE),
      maxhops: phases.get('data').get('maxhops').num(100),
      linelength: c.get('limits').get('linelength').num(512),
      errors: c.get('limits').get('errors').num(10),
    },
    timeout: {
      idle: positiveDuration(c.get('timeout').get('idle'), 300),
      data: positiveDuration(c.get('timeout').get('data'), 600),
    },
    tls: {
      certs: tls.get('certs').items().map((t) => t.get('cert').str('')),
      implicit: tls.get('implicit').strings(),
      starttls: tls.get('starttls').bool(true),
      minversion: tls.get('minversion').oneOf(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const, 'TLSv1.2'),
    },
    auth: {
      mechanisms: phases.get('auth').get('mechanisms').present
        ? phases.get('auth').get('mechanisms').strings().filter(isMechanism)
        : ['PLAIN', 'LOGIN'],
      requiretls: phases.get('auth').get('requiretls').bool(true),
    },
    extensions: {
      pipelining: ext.get('pipelining').bool(true),
      size: ext.get('size').bool(true),
      '8bitmime': ext.get('8bitmime').bool(true),
      smtputf8: ext.get('smtputf8').bool(true),
      enhancedstatuscodes: ext.get('enhancedstatuscodes').bool(true),
      chunking: ext.get('chunking').bool(true),
      dsn: ext.get('dsn').bool(true),
    },
    apikeys: c.get('apikeys').strings(),
  };
}

function isMechanism(m: string): m is 'PLAIN' | 'LOGIN' {
  return m === 'PLAIN' || m === 'LOGIN';
}

function readPhaseHooks(phases: Cursor): RunningServer['hooks'] {
  const hooks: RunningServer['hooks'] = {};
  for (const phase of SMTP_PHASES) setIf(hooks, phase, phases.get(phase).get('hook').str());
  return hooks;
}

/** A timeout of 0 would close every connection at once; refuse it. */
function positiveDuration(c: Cursor, def: number): number {
  const v = c.duration();
  if (v === undefined) return def; // absent, or already reported as a syntax or type error
  if (v <= 0) c.error('must be longer than 0 seconds');
  return v;
}

// ---------------------------------------------------------------------------------------------
// transportgroups[], addresses[]

function readGroup(c: Cursor): TransportGroupConfig {
  const id = c.get('id').str('');
  const retry = c.get('retry');
  const group: TransportGroupConfig = {
    id,
    retry: {
      count: retry.get('count').num(30),
      intervals: readIntervals(retry.get('intervals')),
      during: retry.get('during').duration(DEFAULT_RETRY_DURING),
    },
    transports: c.get('transports').items().map((t) => readTransport(t, id)),
  };
  const dsn = c.get('dsn').get('transport').str();
  if (dsn !== undefined) group.dsn = { transport: dsn };
  return group;
}

/** Also used by the delivery-settings file, whose retry override has the same shape. */
export function readIntervals(c: Cursor): RetryInterval[] {
  if (!c.present) return DEFAULT_RETRY_INTERVALS.map((interval) => ({ interval, notify: false }));
  return c.items().map((i) => ({
    interval: positiveDuration(i.get('interval'), 0),
    notify: i.get('notify').bool(false),
  }));
}

function readTransport(c: Cursor, group: string): TransportConfig {
  const conn = c.get('connection');
  const connection: TransportConfig['connection'] = { port: conn.get('port').num(25) };
  setIf(connection, 'server', conn.get('server').str());
  const src = conn.get('sourceip');
  if (src.present) {
    const sourceip: { ipv6?: boolean; ids?: string[] } = {};
    if (src.get('ipv6').present) sourceip.ipv6 = src.get('ipv6').bool(true);
    if (src.get('ids').present) sourceip.ids = src.get('ids').strings();
    connection.sourceip = sourceip;
  }
  const session = c.get('session');
  return {
    id: c.get('id').str(''),
    group,
    connection,
    session: {
      tls: { mode: session.get('tls').get('mode').str('optional') },
      protocol: session.get('protocol').oneOf(['smtp', 'lmtp'] as const, 'smtp'),
    },
  };
}

function readAddress(c: Cursor): RunningConfig['addresses'][number] {
  const address = c.get('address').str('');
  if (c.get('address').present && isIP(address) === 0) c.get('address').error(`"${address}" is not an IPv4 or IPv6 address`);
  const out: RunningConfig['addresses'][number] = { id: c.get('id').str(''), address };
  setIf(out, 'helo', c.get('helo').str());
  return out;
}

// ---------------------------------------------------------------------------------------------
// queues, resolver, scripting, monitor

function readQueues(c: Cursor): QueuesConfig {
  const grouping = c.get('grouping');
  const out: QueuesConfig = {
    grouping: { groupings: grouping.get('groupings').items().map(readGrouping) },
    pooling: { size: c.get('pooling').get('size').num(1000) },
    concurrency: { total: c.get('concurrency').get('total').num(10000) },
  };
  setIf(out.grouping, 'default', grouping.get('default').oneOf(['recipientdomain', 'remotemx', ''] as const, '') || undefined);
  return out;
}

/** A grouping's lists are match values; they cannot refer to other groupings. */
function readGrouping(c: Cursor): QueuesConfig['grouping']['groupings'][number] {
  const none = new Set<string>();
  const g: QueuesConfig['grouping']['groupings'][number] = { id: c.get('id').str('') };
  setIf(g, 'remotemx', c.get('remotemx').match(none));
  setIf(g, 'recipientdomain', c.get('recipientdomain').match(none));
  setIf(g, 'remoteip', c.get('remoteip').match(none, { ip: true }));
  return g;
}

function readResolver(c: Cursor): RunningConfig['resolver'] {
  const out: RunningConfig['resolver'] = { cache: { size: c.get('cache').get('size').num(10000) } };
  const ns = c.get('nameservers');
  if (ns.present) {
    out.nameservers = ns.items().map((n) => {
      const s = n.str('');
      if (!isNameserver(s)) n.error(`"${s}" is not a name server address: use "ip", "ipv4:port" or "[ipv6]:port"`);
      return s;
    });
  }
  return out;
}

/** "192.0.2.1", "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]:5353". */
function isNameserver(s: string): boolean {
  if (isIP(s) !== 0) return true;
  const m = /^(?:\[([^\]]+)\]|([\d.]+)):(\d{1,5})$/.exec(s);
  if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) return false;
  return m[1] !== undefined ? isIP(m[1]) === 6 : isIP(m[2]) === 4;
}

function readScripting(c: Cursor): RunningConfig['scripting'] {
  const h = c.get('hooks');
  const hooks: RunningConfig['scripting']['hooks'] = {};
  for (const phase of SMTP_PHASES) {
    if (h.get(phase).present) hooks[phase] = h.get(phase).items().map(readHook);
  }
  setIf(hooks, 'predelivery', existingFile(h.get('predelivery')));
  setIf(hooks, 'postdelivery', existingFile(h.get('postdelivery')));
  return { hooks, timeout: positiveDuration(c.get('timeout'), 30) };
}

function readHook(c: Cursor): HookRef {
  return { id: c.get('id').str(''), path: existingFile(c.get('path')) ?? '' };
}

/** The absolute path of a file that must exist (a hook module). */
function existingFile(c: Cursor): string | undefined {
  const abs = c.filePath();
  if (abs === undefined) return undefined;
  try {
    if (!statSync(abs).isFile()) c.error(`${abs} is not a file`);
  } catch (e) {
    c.error(`cannot read ${abs}: ${ioReason(e)}`);
  }
  return abs;
}

function readMonitor(c: Cursor): RunningConfig['monitor'] {
  const mm = c.get('healthy').get('maxmessages');
  const upper = mm.get('upper').num(Number.POSITIVE_INFINITY);
  const lower = mm.get('lower').num(upper);
  if (lower > upper) mm.get('lower').error(`must not be greater than upper (${upper})`);
  return { apikeys: c.get('apikeys').strings(), healthy: { maxmessages: { upper, lower } } };
}

// ---------------------------------------------------------------------------------------------
// Cross-references

function checkRunning(root: Cursor, config: RunningConfig, startup: StartupConfig | undefined): void {
  checkUniqueIds(root);
  checkServerHooks(root, config);
  checkTransports(root, config);
  if (!startup) return;
  checkServersAgainstStartup(root, config, startup);
  checkServerTls(root, config, startup, mergePki(startup.pki.private, config.pki.private));
}

function ids(list: Cursor, what: string, key = 'id'): void {
  reportDuplicates(list.items().map((c) => ({ value: c.get(key).str(''), cursor: c.get(key) })), what);
}

function checkUniqueIds(root: Cursor): void {
  ids(root.get('servers'), 'server id');
  ids(root.get('transportgroups'), 'transport group id');
  ids(root.get('addresses'), 'address id');
  ids(root.get('queues').get('grouping').get('groupings'), 'grouping id');
  const transports = root.get('transportgroups').items().flatMap((g) => g.get('transports').items());
  reportDuplicates(transports.map((t) => ({ value: t.get('id').str(''), cursor: t.get('id') })), 'transport id');
  for (const phase of SMTP_PHASES) ids(root.get('scripting').get('hooks').get(phase), `${phase} hook id`);
}

function checkServerHooks(root: Cursor, config: RunningConfig): void {
  root.get('servers').items().forEach((s, i) => {
    const hooks = config.servers[i].hooks;
    for (const phase of Object.keys(hooks) as SmtpPhase[]) {
      const defined = (config.scripting.hooks[phase] ?? []).some((h) => h.id === hooks[phase]);
      if (!defined) {
        s.get('phases').get(phase).get('hook').error(`hook "${hooks[phase]}" is not defined in scripting.hooks.${phase}[]`);
      }
    }
  });
}

function checkTransports(root: Cursor, config: RunningConfig): void {
  const transports = new Set(config.transportgroups.flatMap((g) => g.transports.map((t) => t.id)));
  const missing = (id: string) => `transport "${id}" is not defined in transportgroups[].transports[]`;
  root.get('servers').items().forEach((s, i) => {
    const t = config.servers[i].transport;
    if (!transports.has(t)) s.get('transport').error(s.get('transport').present ? missing(t) : `${missing(t)} (default transport; set servers[].transport)`);
  });
  const addresses = new Set(config.addresses.map((a) => a.id));
  root.get('transportgroups').items().forEach((g, i) => {
    const dsn = config.transportgroups[i].dsn?.transport;
    if (dsn !== undefined && !transports.has(dsn)) g.get('dsn').get('transport').error(missing(dsn));
    for (const t of g.get('transports').items()) {
      for (const a of t.get('connection').get('sourceip').get('ids').items()) {
        if (!addresses.has(a.str(''))) a.error(`address "${a.str('')}" is not defined in addresses[]`);
      }
    }
  });
}

function checkServersAgainstStartup(root: Cursor, config: RunningConfig, startup: StartupConfig): void {
  const declared = new Set(startup.servers.map((s) => s.id));
  root.get('servers').items().forEach((s, i) => {
    const id = config.servers[i].id;
    if (!declared.has(id)) s.get('id').error(`server "${id}" is not declared in servers[] of ${startup.file}`);
  });
  const configured = new Set(config.servers.map((s) => s.id));
  for (const s of startup.servers) {
    if (!configured.has(s.id)) root.get('servers').error(`server "${s.id}" of ${startup.file} has no entry here`);
  }
}

function checkServerTls(root: Cursor, config: RunningConfig, startup: StartupConfig, pki: Map<string, PkiEntry>): void {
  root.get('servers').items().forEach((s, i) => {
    const server = config.servers[i];
    const decl = startup.servers.find((d) => d.id === server.id);
    const tls = s.get('tls');
    tls.get('certs').items().forEach((c, j) => {
      const problem = pkiProblem(pki, server.tls.certs[j], 'smtpd.yaml or smtpd-app.yaml');
      if (problem) c.get('cert').error(problem);
    });
    const listenerIds = new Set(decl?.listeners.flatMap((l) => l.id ?? []) ?? []);
    tls.get('implicit').items().forEach((c) => {
      if (decl && !listenerIds.has(c.str(''))) c.error(`listener id "${c.str('')}" is not defined in servers[].listeners[] of server "${server.id}" in ${startup.file}`);
    });
    const needsCert = decl?.type === 'https' || server.tls.implicit.length > 0;
    if (needsCert && server.tls.certs.length === 0) {
      tls.get('certs').error(decl?.type === 'https' ? 'an https server needs a certificate' : 'implicit TLS needs a certificate');
    }
  });
}
