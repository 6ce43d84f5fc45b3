/**
 * Next-hop selection for outbound delivery: which hosts and addresses to try, in which order,
 * for a recipient domain (MX look-up, RFC 5321 §5.1) or for a transport's fixed
 * `connection.server`.
 *
 * Inputs: the recipient domain (a name, or an address literal `[192.0.2.1]` /
 * `[IPv6:2001:db8::1]`, RFC 5321 §4.1.3) or a server and port; a resolver; options from the
 * transport and the pre-delivery `Try()` (seed/retry, sourceip.ipv6, mx_include/mx_exclude).
 * Outputs: `{ hops }` — hosts in the order to try, each with its addresses in the order to try —
 * or `{ error }` with Halon's `attempt.error.dns` value (halon-core.md §5.4) and whether the
 * failure is temporary (retry later) or permanent (bounce, §4.8).
 *
 * Rules:
 * - MX hosts are tried by ascending preference; hosts of equal preference are shuffled (RFC 5321
 *   §5.1 "randomize"). With `seed` the shuffle is a pure function of (seed, retry), like Halon's
 *   `halonctl resolver query --seed <transaction id> --retry n`: one message sees the same order
 *   on a re-run, and a different rotation on each retry.
 * - A null MX (RFC 7505: the only MX is ".") is a permanent 'nullmx'. MX "." records mixed with
 *   real ones violate RFC 7505 §3; the "." records are ignored and the real ones used.
 * - NXDOMAIN for the domain is a permanent 'nxdomain'. No MX records (NODATA) means the domain
 *   itself is the implicit MX with preference 0 (RFC 5321 §5.1), reported with mx ''.
 * - If no host ends up with an address: temporary 'other' when any look-up failed temporarily
 *   (the answer may change), temporary 'ipfamily' when addresses exist only in a disabled family,
 *   permanent 'nxdomain' when every host name does not exist (dangling MX), otherwise permanent
 *   'nodata' (RFC 5321 §5.1: no usable MX/implicit MX is an error).
 * - Hosts whose address look-ups fail are skipped (listed in `skipped` for the log) when other
 *   hosts resolve: a backup MX is a valid destination (RFC 5321 §5.1).
 * - mx_include keeps only matching MX hosts, mx_exclude drops matching ones (config match syntax:
 *   exact or `*.example.com`); the implicit MX is matched by the domain name. Nothing left is a
 *   permanent 'excluded'. Address literals have no name and are never filtered.
 * - Addresses: IPv6 before IPv4 unless `preferIpv6: false`; order within a family follows the
 *   same seeded shuffle (address rotation across retries). `ipv6: false` (sourceip.ipv6) drops
 *   IPv6 addresses. At most `maxHosts` (default 10) MX hosts are resolved, bounding DNS work.
 * - Loopback and private addresses are not special: tests deliver to 127.0.0.1.
 *
 * Errors: DNS failures are results, not exceptions. A bad mx_include/mx_exclude pattern throws
 * ValueSyntaxError (the caller validates Try options and reports a config error).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { compileMatch, type Matcher } from '../config/syntax';
import { normalizeName, type DnsAnswer, type DnsError, type MxRecord } from './resolver';
import { merged } from '../util/objects';

/** What nexthop needs from a resolver (the Resolver class, or a stub in tests). */
export interface NextHopResolver {
  resolveMx(domain: string): Promise<DnsAnswer<MxRecord>>;
  resolve4(host: string): Promise<DnsAnswer<string>>;
  resolve6(host: string): Promise<DnsAnswer<string>>;
}

export type NextHopDnsError = 'nxdomain' | 'nullmx' | 'nodata' | 'other' | 'ipfamily' | 'excluded';

export interface NextHopError {
  temporary: boolean;
  /** Halon's `attempt.error.dns`. */
  dns: NextHopDnsError;
  /** For the log and DSN diagnostics; contains only names from DNS, no resolver internals. */
  message: string;
}

export interface NextHop {
  /** The MX host name; '' for the implicit MX and for address literals; a fixed server as configured (lower-case). */
  mx: string;
  /** The name whose addresses were looked up (the domain for an implicit MX; '' for literals). */
  host: string;
  preference: number;
  /** In the order to try. Never empty. */
  addresses: string[];
  port: number;
}

export type NextHopResult =
  | { hops: NextHop[]; /** Hosts left out because their look-ups failed. */ skipped: Array<{ host: string; message: string }> }
  | { error: NextHopError };

export interface NextHopOptions {
  /** Destination port (transport connection.port). Default 25. */
  port?: number;
  /** Seed for the equal-preference shuffle, e.g. the transaction id. */
  seed?: string;
  /** Retry count, mixed into the seed so each retry rotates. Default 0. */
  retry?: number;
  /** A random source in [0, 1) used when no seed is given. Default Math.random. */
  random?: () => number;
  /** false (sourceip.ipv6: false): use IPv4 addresses only. Default true. */
  ipv6?: boolean;
  /** false: IPv4 addresses before IPv6. Default true. */
  preferIpv6?: boolean;
  /** Try option mx_include: only these MX hosts. */
  mxInclude?: readonly string[];
  /** Try option mx_exclude: never these MX hosts. */
  mxExclude?: readonly string[];
  /** Most MX hosts resolved and returned. Default 10. */
  maxHosts?: number;
}

interface Settled {
  port: number;
  random: () => number;
  ipv6: boolean;
  preferIpv6: boolean;
  allowed: Matcher;
  maxHosts: number;
}

interface Candidate {
  mx: string;
  host: string;
  preference: number;
}

/** One candidate's address look-ups: addresses found, and the errors met on the way. */
interface Resolved {
  candidate: Candidate;
  v4: string[];
  v6: string[];
  errors: DnsError[];
}

const DEFAULT_PORT = 25;
const DEFAULT_MAX_HOSTS = 10;

/** Hops for delivering to `domain` by MX look-up. */
export async function resolveNextHops(domain: string, resolver: NextHopResolver, opts: NextHopOptions = {}): Promise<NextHopResult> {
  const o = settle(opts);
  if (domain.startsWith('[')) return literalHops(domain, o);
  const name = normalizeName(domain);
  if (name === '') return failure(false, 'other', `invalid recipient domain ${show(domain)}`);
  const mx = await resolver.resolveMx(name);
  if (mx.ok) return mxHops(name, mx.records, resolver, o);
  switch (mx.error.kind) {
    case 'nxdomain':
      return failure(false, 'nxdomain', `${name}: domain does not exist (NXDOMAIN)`);
    case 'nodata':
      return implicitMx(name, resolver, o);
    case 'other':
      return failure(mx.error.temporary, 'other', `${name}: MX look-up failed (${mx.error.code})`);
    default:
      return assertNever(mx.error.kind);
  }
}

/**
 * Hops for a fixed server (transport connection.server): an IP address (bare or in brackets) or
 * a host name looked up as A/AAAA, never MX. Every DNS failure here is temporary: the name is
 * the operator's configuration, and a typo or outage there must not bounce mail. `localhost`
 * is loopback without a query (RFC 6761 §6.3).
 */
export async function resolveServer(server: string, port: number, resolver: NextHopResolver, opts: NextHopOptions = {}): Promise<NextHopResult> {
  const o = settle(merged(opts, { port }));
  const bare = server.startsWith('[') && server.endsWith(']') ? server.slice(1, -1) : server;
  if (isIP(bare)) return addressHop(bare, bare, o);
  const name = normalizeName(bare);
  if (name === '') return failure(true, 'other', `invalid server name ${show(server)}`);
  if (name === 'localhost' || name.endsWith('.localhost')) return localhostHop(name, o);
  const result = await addressesFor([{ mx: name, host: name, preference: 0 }], resolver, o);
  if ('hops' in result) return result;
  return { error: { ...result.error, temporary: true } };
}

// ---------------------------------------------------------------------------------------------
// MX

async function mxHops(domain: string, records: MxRecord[], resolver: NextHopResolver, o: Settled): Promise<NextHopResult> {
  const real = records.filter((r) => r.exchange !== '');
  if (real.length === 0) return failure(false, 'nullmx', `${domain}: domain accepts no mail (null MX, RFC 7505)`);
  const ordered = orderByPreference(dedupeExchanges(real), o.random);
  const kept = ordered.filter((r) => o.allowed(r.exchange));
  if (kept.length === 0) return failure(false, 'excluded', `${domain}: every MX host is excluded by mx_include/mx_exclude`);
  const candidates = kept.slice(0, o.maxHosts).map((r) => ({ mx: r.exchange, host: r.exchange, preference: r.preference }));
  return addressesFor(candidates, resolver, o, `${domain}: no MX host has a usable address`);
}

async function implicitMx(domain: string, resolver: NextHopResolver, o: Settled): Promise<NextHopResult> {
  if (!o.allowed(domain)) return failure(false, 'excluded', `${domain}: the implicit MX is excluded by mx_include/mx_exclude`);
  return addressesFor([{ mx: '', host: domain, preference: 0 }], resolver, o, `${domain}: no MX and no A/AAAA records`);
}

/** Keep the first (lowest-preference) record of an exchange listed more than once. */
function dedupeExchanges(records: MxRecord[]): MxRecord[] {
  const best = new Map<string, MxRecord>();
  for (const r of records) {
    const seen = best.get(r.exchange);
    if (!seen || r.preference < seen.preference) best.set(r.exchange, r);
  }
  return [...best.values()];
}

/** Ascending preference; equal preferences shuffled. Sorting by name first makes the input order irrelevant. */
function orderByPreference(records: MxRecord[], random: () => number): MxRecord[] {
  const sorted = [...records].sort((a, b) => a.preference - b.preference || (a.exchange < b.exchange ? -1 : 1));
  const out: MxRecord[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j < sorted.length && sorted[j].preference === sorted[i].preference) j++;
    out.push(...shuffle(sorted.slice(i, j), random));
    i = j;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Addresses

async function addressesFor(candidates: Candidate[], resolver: NextHopResolver, o: Settled, noneMessage?: string): Promise<NextHopResult> {
  // All look-ups run at once (the resolver bounds concurrency); ordering is applied afterwards
  // in candidate order so the seeded random stream is consumed deterministically.
  const resolved = await Promise.all(candidates.map((c) => lookupAddresses(c, resolver, o.ipv6)));
  const hops: NextHop[] = [];
  const skipped: Array<{ host: string; message: string }> = [];
  for (const r of resolved) {
    const addresses = orderAddresses(r, o);
    if (addresses.length > 0) hops.push(merged(r.candidate, { addresses, port: o.port }));
    else skipped.push({ host: r.candidate.host, message: describe(r) });
  }
  if (hops.length > 0) return { hops, skipped };
  return noAddresses(resolved, candidates, resolver, o, noneMessage ?? `${candidates[0].host}: no A/AAAA records`);
}

async function lookupAddresses(candidate: Candidate, resolver: NextHopResolver, ipv6: boolean): Promise<Resolved> {
  const [a, aaaa] = await Promise.all([
    resolver.resolve4(candidate.host),
    ipv6 ? resolver.resolve6(candidate.host) : Promise.resolve(undefined),
  ]);
  const errors: DnsError[] = [];
  const take = (ans: DnsAnswer<string> | undefined): string[] => {
    if (!ans) return [];
    if (ans.ok) return ans.records;
    errors.push(ans.error);
    return [];
  };
  return { candidate, v4: take(a), v6: take(aaaa), errors };
}

function orderAddresses(r: Resolved, o: Settled): string[] {
  const v4 = shuffle(unique(r.v4), o.random);
  const v6 = o.ipv6 ? shuffle(unique(r.v6), o.random) : [];
  return o.preferIpv6 ? [...v6, ...v4] : [...v4, ...v6];
}

/** Classify "no host has an address" (see the rules in the module comment). */
async function noAddresses(resolved: Resolved[], candidates: Candidate[], resolver: NextHopResolver, o: Settled, message: string): Promise<NextHopResult> {
  const temp = resolved.flatMap((r) => r.errors).find((e) => e.temporary);
  if (temp) return failure(true, 'other', `${message} (temporary DNS failure: ${temp.code})`);
  if (!o.ipv6) {
    // Only now ask for AAAA, to tell "wrong family" from "nothing at all" without doubling
    // the queries of every IPv4-only delivery.
    const v6 = await Promise.all(candidates.map((c) => resolver.resolve6(c.host)));
    if (v6.some((a) => a.ok && a.records.length > 0)) {
      return failure(true, 'ipfamily', `${message}: only IPv6 addresses, and IPv6 is disabled (sourceip.ipv6)`);
    }
  }
  // Every host's look-ups said the name does not exist: say so (a dangling MX, a mistyped server).
  const errors = resolved.flatMap((r) => r.errors);
  if (errors.length > 0 && errors.every((e) => e.kind === 'nxdomain')) return failure(false, 'nxdomain', `${message} (NXDOMAIN)`);
  return failure(false, 'nodata', message);
}

function literalHops(literal: string, o: Settled): NextHopResult {
  const address = parseAddressLiteral(literal);
  if (address === undefined) return failure(false, 'other', `unsupported address literal ${show(literal)}`);
  return addressHop(address, '', o);
}

/** `[192.0.2.1]` → '192.0.2.1', `[IPv6:2001:db8::1]` → '2001:db8::1' (RFC 5321 §4.1.3); else undefined. */
export function parseAddressLiteral(literal: string): string | undefined {
  if (!literal.startsWith('[') || !literal.endsWith(']')) return undefined;
  const inner = literal.slice(1, -1);
  if (isIP(inner) === 4) return inner;
  // The "IPv6:" tag is matched case-insensitively, as ABNF strings are (RFC 5234 §2.3).
  if (inner.slice(0, 5).toLowerCase() === 'ipv6:' && isIP(inner.slice(5)) === 6) return inner.slice(5).toLowerCase();
  return undefined;
}

function addressHop(address: string, mx: string, o: Settled): NextHopResult {
  if (isIP(address) === 6 && !o.ipv6) {
    return failure(true, 'ipfamily', `${address}: IPv6 destination, and IPv6 is disabled (sourceip.ipv6)`);
  }
  return { hops: [{ mx, host: '', preference: 0, addresses: [address], port: o.port }], skipped: [] };
}

function localhostHop(name: string, o: Settled): NextHopResult {
  const v6 = o.ipv6 ? ['::1'] : [];
  const addresses = o.preferIpv6 ? [...v6, '127.0.0.1'] : ['127.0.0.1', ...v6];
  return { hops: [{ mx: name, host: name, preference: 0, addresses, port: o.port }], skipped: [] };
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness

/**
 * A deterministic random stream in [0, 1) from a seed string: SHA-256 in counter mode, four
 * bytes per number. Not for secrets; for reproducible next-hop order.
 */
export function seededRandom(seed: string): () => number {
  let counter = 0;
  let block = Buffer.alloc(0);
  let offset = 0;
  return () => {
    if (offset + 4 > block.length) {
      block = createHash('sha256').update(seed).update('\0').update(String(counter++)).digest();
      offset = 0;
    }
    const v = block.readUInt32BE(offset);
    offset += 4;
    return v / 0x1_0000_0000;
  };
}

/** Fisher-Yates shuffle into a new array. */
export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function settle(opts: NextHopOptions): Settled {
  const random = opts.seed !== undefined ? seededRandom(`${opts.seed}:${opts.retry ?? 0}`) : (opts.random ?? Math.random);
  return {
    port: opts.port ?? DEFAULT_PORT,
    random,
    ipv6: opts.ipv6 ?? true,
    preferIpv6: opts.preferIpv6 ?? true,
    allowed: mxFilter(opts.mxInclude, opts.mxExclude),
    maxHosts: Math.max(1, opts.maxHosts ?? DEFAULT_MAX_HOSTS),
  };
}

function mxFilter(include: readonly string[] | undefined, exclude: readonly string[] | undefined): Matcher {
  const inc = include && include.length > 0 ? compileMatch([...include]) : undefined;
  const exc = exclude && exclude.length > 0 ? compileMatch([...exclude]) : undefined;
  return (host) => (!inc || inc(host)) && !(exc && exc(host));
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

function describe(r: Resolved): string {
  if (r.errors.length === 0) return 'no addresses';
  return r.errors.map((e) => `${e.kind}${e.temporary ? ' (temporary)' : ''}: ${e.code}`).join('; ');
}

function failure(temporary: boolean, dns: NextHopDnsError, message: string): NextHopResult {
  return { error: { temporary, dns, message } };
}

function show(s: string): string {
  return JSON.stringify(s.length > 80 ? s.slice(0, 80) + '…' : s);
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}
