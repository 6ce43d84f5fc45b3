/**
 * From queue entries, their transport and the predelivery `Try()` options to an `AttemptPlan`
 * for the delivery agent. PURE (config and entries in, a plan or a config error out).
 *
 * Rules:
 * - Destination: `Try({server})`, else the transport's `connection.server`, else MX look-up of
 *   the recipient domain (`server: "lookup-mx"` forces MX even on a fixed-server transport).
 * - Port: `Try({port})`, else the transport's `connection.port` — for MX hosts too, so a site
 *   (or a test) can deliver to MX targets on another port than 25.
 * - Source addresses: `Try({sourceip})` (addresses[] ids or literal IPs), else the transport's
 *   `connection.sourceip.ids`; each with its HELO name from addresses[], else `Try({helo})`,
 *   else the host name. `sourceip.ipv6: false` keeps IPv6 out of next-hop selection.
 * - Envelope: `Try({sender})` and `Try({recipient})` override per attempt; DSN parameters
 *   (RFC 3461) come from the entries; ENVID and RET are per transaction.
 * - The equal-preference MX shuffle is seeded by the transaction id and the retry count (D4).
 * - Traffic shaping (the admission of pickup): the source address pickup counted the attempt
 *   against is the only one used (when it is among the sources), the hop it counted first is
 *   tried first, and the matching smtpd-delivery.yaml settings override the transport and
 *   Try() (halon-core.md §4.6): `tls.mode`, `tls.protocols`, `pooling`, `timeout`.
 * Errors: `{ error }` when the transport does not exist or a source id is unknown — a
 * temporary 'config' failure, since an operator can fix it by reloading.
 */
import { isIP } from 'node:net';
import type { RunningConfig, TransportConfig, TransportGroupConfig } from '../config/types';
import type { QueueEntry } from '../model/types';
import type { TryOptions } from '../hooks/types';
import { DEFAULT_RETRY_INTERVALS } from '../config/running';
import { clientTlsMode, type AttemptPlan, type TlsVersionName } from '../delivery/attempt';
import type { DeliverySettings } from '../config/queue-files';
import type { Admission } from './run';
import type { RetryPolicy } from '../queue/retry';
import { merged } from '../util/objects';

export interface ResolvedTransport {
  transport: TransportConfig;
  group: TransportGroupConfig;
}

export function findTransport(config: RunningConfig, id: string): ResolvedTransport | undefined {
  for (const group of config.transportgroups) {
    const transport = group.transports.find((t) => t.id === id);
    if (transport) return { transport, group };
  }
  return undefined;
}

/** The retry policy of an entry's transport group; built-in defaults when the transport is unknown. */
export function retryPolicyOf(config: RunningConfig, transportid: string): RetryPolicy {
  const found = findTransport(config, transportid);
  if (found) return found.group.retry;
  return { count: 30, intervals: DEFAULT_RETRY_INTERVALS.map((interval) => ({ interval, notify: false })), during: 5 * 86400 };
}

export interface PlanInput {
  config: RunningConfig;
  /** Entries of one transaction, one transport, one body, one recipient domain. */
  entries: readonly QueueEntry[];
  /** Per entry, the recipient override of its Try(), if any. */
  recipients: readonly string[];
  options: TryOptions;
  body: Buffer;
  hostname: string;
  admission?: Admission;
}

export type PlanResult = { plan: AttemptPlan; transport: ResolvedTransport } | { error: string };

export function buildPlan(input: PlanInput): PlanResult {
  const first = input.entries[0];
  const found = findTransport(input.config, first.transportid);
  if (!found) return { error: `transport "${first.transportid}" is not defined in transportgroups[].transports[]` };
  const o = input.options;
  const conn = found.transport.connection;
  const sources = sourcesFor(input.config, o.sourceip ?? conn.sourceip?.ids ?? []);
  if ('error' in sources) return sources;
  const server = o.server ?? conn.server;
  const plan: AttemptPlan = {
    destination: server === undefined || server === 'lookup-mx' ? { kind: 'mx', domain: first.recipientaddress.domain } : { kind: 'server', server },
    port: o.port ?? conn.port,
    nexthop: { seed: first.id.transaction, retry: first.retry, ipv6: conn.sourceip?.ipv6 ?? true },
    sender: o.sender ?? first.sender,
    recipients: input.entries.map((e, i) => ({ address: input.recipients[i], ...(hasRcptDsn(e) ? { dsn: e.dsn } : {}) })),
    body: input.body,
    helo: o.helo ?? input.hostname,
    sources: o.helo !== undefined ? sources.list.map((s) => merged(s, { helo: o.helo })) : sources.list,
    sourceRandom: o.sourceip_random ?? true,
    tls: clientTlsMode(o.tls ?? found.transport.session.tls.mode),
    protocol: o.protocol ?? found.transport.session.protocol,
  };
  if (o.mx_include) plan.nexthop.mxInclude = o.mx_include;
  if (o.mx_exclude) plan.nexthop.mxExclude = o.mx_exclude;
  if (o.timeout) plan.timeouts = o.timeout;
  if (first.dsn.envid !== undefined) plan.envid = first.dsn.envid;
  if (first.dsn.ret !== undefined) plan.ret = first.dsn.ret;
  if (input.admission) admit(plan, input.admission);
  return { plan, transport: found };
}

/** Apply pickup's admission: its source address and hop, and the delivery settings. */
function admit(plan: AttemptPlan, a: Admission): void {
  const { localip, remotemx, remoteip } = a.facts;
  if (localip !== '') {
    const only = plan.sources.filter((s) => s.address === localip);
    if (only.length > 0) plan.sources = only;
  }
  if (remoteip !== '') plan.prefer = { remotemx, remoteip };
  applySettings(plan, a.settings);
}

export function applySettings(plan: AttemptPlan, s: DeliverySettings): void {
  if (s.tls?.mode !== undefined) plan.tls = clientTlsMode(s.tls.mode);
  if (s.tls?.protocols !== undefined) {
    const range = protocolRange(s.tls.protocols);
    if (range) plan.tlsVersions = range;
  }
  if (s.pooling) plan.pooling = { ...s.pooling };
  if (s.timeout) {
    const t: NonNullable<AttemptPlan['timeouts']> = { ...(plan.timeouts ?? {}) };
    if (s.timeout.connect !== undefined) t.connect = s.timeout.connect;
    for (const [state, v] of Object.entries(s.timeout.smtp ?? {})) if (v !== undefined) (t as Record<string, number>)[state] = v;
    plan.timeouts = t;
  }
}

const VERSIONS: readonly TlsVersionName[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/**
 * An OpenSSL-style protocol list (`!SSLv2,!SSLv3,!TLSv1,!TLSv1.1`, or `TLSv1.2,TLSv1.3`) as
 * the lowest and highest TLS version allowed: listed versions when any is listed without `!`,
 * else every version not excluded. SSL versions are never offered. undefined = nothing allowed
 * (the config then leaves the default range).
 */
export function protocolRange(text: string): { min: TlsVersionName; max: TlsVersionName } | undefined {
  const tokens = text.split(',').map((t) => t.trim()).filter(Boolean);
  const plus = tokens.filter((t) => !t.startsWith('!'));
  const minus = new Set(tokens.filter((t) => t.startsWith('!')).map((t) => t.slice(1)));
  const allowed = VERSIONS.filter((v) => (plus.length > 0 ? plus.includes(v) : true) && !minus.has(v));
  if (allowed.length === 0) return undefined;
  return { min: allowed[0], max: allowed[allowed.length - 1] };
}

function hasRcptDsn(e: QueueEntry): boolean {
  return e.dsn.notify !== undefined || e.dsn.orcpt !== undefined;
}

type Source = AttemptPlan['sources'][number];

/** addresses[] ids (or literal IP addresses) to source addresses with their HELO names. */
function sourcesFor(config: RunningConfig, ids: readonly string[]): { list: Source[] } | { error: string } {
  const list: Source[] = [];
  for (const id of ids) {
    const a = config.addresses.find((x) => x.id === id);
    if (a) list.push({ id: a.id, address: a.address, ...(a.helo ? { helo: a.helo } : {}) });
    else if (isIpLiteral(id)) list.push({ address: id });
    else return { error: `source address "${id}" is not defined in addresses[]` };
  }
  return { list };
}

function isIpLiteral(s: string): boolean {
  return isIP(s) !== 0;
}
