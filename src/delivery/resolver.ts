/**
 * The DNS resolver used for outbound delivery (halon-core.md §3.5, §6.4): MX, A and AAAA
 * look-ups through node:dns/promises (c-ares), with Halon's cache, request de-duplication and
 * concurrency limit in front of it.
 *
 * Inputs: a domain or host name (ASCII or UTF-8; UTF-8 is converted to A-labels, RFC 5890).
 * Outputs: a `DnsAnswer` — records and the TTL they were cached for, or a classified `DnsError`.
 * No method throws for a DNS failure; the caller switches on `error.kind`.
 *
 * Invariants:
 * - At most `maxRunning` queries are on the wire; the rest wait in FIFO order (`pending`).
 * - Concurrent identical queries (same type and name) share one wire query (`dedup`).
 * - The cache holds at most `cacheSize` entries (LRU eviction); an entry lives for its TTL,
 *   clamped to [ttlMin, ttlMax]. Size 0 disables caching.
 * - Positive A/AAAA entries live for the smallest TTL of the answer (RFC 2181 §5.2: the records
 *   of an RRset share a TTL; taking the minimum is safe when they do not).
 * - MX entries live for `mxTtl` seconds (default 300): Node's resolveMx does not report TTLs.
 * - NXDOMAIN and NODATA are cached for `negativeTtl` seconds (default 60; RFC 2308 permits
 *   negative caching, and the SOA minimum is not visible through node:dns). Temporary errors
 *   (SERVFAIL, timeouts, refused connections) are never cached, so a retry asks again.
 * - `clear()` empties the cache (`halonctl resolver clear`); queries in flight are not touched.
 *
 * Errors (classification of c-ares codes, see `classify`):
 * - ENOTFOUND (NXDOMAIN)         → kind 'nxdomain', permanent
 * - ENODATA (NOERROR, no answer) → kind 'nodata',   permanent
 * - EBADNAME / invalid name      → kind 'other',    permanent (the name can never resolve)
 * - everything else              → kind 'other',    temporary (SERVFAIL, ETIMEOUT, ECONNREFUSED,
 *   EREFUSED, EBADRESP, ECANCELLED, …: the answer may differ next time)
 */
import { Resolver as NodeResolver } from 'node:dns/promises';
import { domainToASCII } from 'node:url';
import { merged } from '../util/objects';

export type DnsErrorKind = 'nxdomain' | 'nodata' | 'other';

export interface DnsError {
  kind: DnsErrorKind;
  /** True when asking again later may give a different answer. */
  temporary: boolean;
  /** The c-ares code (ENOTFOUND, ESERVFAIL, ETIMEOUT, …) or 'EBADNAME' for a refused name. */
  code: string;
  /** For the log; never shown to a peer verbatim. */
  message: string;
}

export type DnsAnswer<T> =
  | { ok: true; records: T[]; /** Seconds the answer is cached for (0 = not cached). */ ttl: number }
  | { ok: false; error: DnsError };

export interface MxRecord {
  /** Lower-case host name without the trailing dot; '' for the root (null MX, RFC 7505). */
  exchange: string;
  preference: number;
}

export type RecordType = 'MX' | 'A' | 'AAAA';

export interface ResolverOptions {
  /** Name servers: "ip", "ip:port" or "[v6]:port". Absent or empty: the system's resolv.conf. */
  servers?: readonly string[];
  /** Maximum cache entries (`resolver.cache.size`); 0 disables the cache. Default 10000. */
  cacheSize?: number;
  /** Lower bound for cached TTLs in seconds (`resolver.cache.ttl.min`). Default 0. */
  ttlMin?: number;
  /** Upper bound for cached TTLs in seconds. Default 86400. */
  ttlMax?: number;
  /** TTL for positive MX answers in seconds (node:dns gives none). Default 300. */
  mxTtl?: number;
  /** TTL for NXDOMAIN/NODATA answers in seconds. Default 60. */
  negativeTtl?: number;
  /** Maximum queries on the wire at once (`resolver.concurrency`). Default 100. */
  maxRunning?: number;
  /** Milliseconds c-ares waits for one server answer. Default 5000. */
  timeoutMs?: number;
  /** Attempts per server before c-ares gives up. Default 2. */
  tries?: number;
  /** Clock in milliseconds, for tests. Default Date.now. */
  now?: () => number;
}

export interface ResolverStats {
  /** Queries waiting for a free slot. */
  pending: number;
  /** Requests (cumulative) answered by joining an identical query already in flight. */
  dedup: number;
  /** Queries on the wire now. */
  running: number;
  /** The concurrency limit. */
  maxrunning: number;
  cache: {
    maxsize: number;
    size: number;
    hits: number;
    misses: number;
    /** Entries dropped because their TTL ran out. */
    expires: number;
    /** Entries dropped to keep the cache within maxsize. */
    evicts: number;
  };
}

interface CacheEntry {
  answer: DnsAnswer<unknown>;
  expiresAt: number;
}

type Wire = (name: string) => Promise<DnsAnswer<unknown>>;

const DEFAULTS = {
  cacheSize: 10000,
  ttlMin: 0,
  ttlMax: 86400,
  mxTtl: 300,
  negativeTtl: 60,
  maxRunning: 100,
  timeoutMs: 5000,
  tries: 2,
};

/** c-ares codes that say something definite about the name (permanent). */
const PERMANENT: Readonly<Record<string, DnsErrorKind>> = {
  ENOTFOUND: 'nxdomain',
  ENODATA: 'nodata',
  EBADNAME: 'other',
};

/** Map a node:dns error to a DnsError. Unknown codes are temporary: never bounce on a guess. */
export function classify(err: unknown): DnsError {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : 'EUNKNOWN';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const kind = PERMANENT[code];
  return kind ? { kind, temporary: false, code, message } : { kind: 'other', temporary: true, code, message };
}

/**
 * Normalise a name for querying and cache keys: lower-case, one trailing dot removed, UTF-8
 * converted to A-labels. Returns '' for a name that cannot be queried.
 */
export function normalizeName(name: string): string {
  let n = name.endsWith('.') ? name.slice(0, -1) : name;
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(n)) n = domainToASCII(n);
  n = n.toLowerCase();
  // RFC 1035 §2.3.4: 253 characters of text, labels 1-63 octets.
  if (n === '' || n.length > 253 || n.split('.').some((l) => l.length === 0 || l.length > 63)) return '';
  return n;
}

export class Resolver {
  private readonly node: NodeResolver;
  private readonly opts: Required<Omit<ResolverOptions, 'servers'>>;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<DnsAnswer<unknown>>>();
  private readonly waiting: Array<() => void> = [];
  private running = 0;
  private counters = { dedup: 0, hits: 0, misses: 0, expires: 0, evicts: 0 };
  private readonly wire: Readonly<Record<RecordType, Wire>>;

  constructor(options: ResolverOptions = {}) {
    this.opts = {
      cacheSize: nonNegative(options.cacheSize, DEFAULTS.cacheSize, 'cacheSize'),
      ttlMin: nonNegative(options.ttlMin, DEFAULTS.ttlMin, 'ttlMin'),
      ttlMax: nonNegative(options.ttlMax, DEFAULTS.ttlMax, 'ttlMax'),
      mxTtl: nonNegative(options.mxTtl, DEFAULTS.mxTtl, 'mxTtl'),
      negativeTtl: nonNegative(options.negativeTtl, DEFAULTS.negativeTtl, 'negativeTtl'),
      maxRunning: Math.max(1, nonNegative(options.maxRunning, DEFAULTS.maxRunning, 'maxRunning')),
      timeoutMs: nonNegative(options.timeoutMs, DEFAULTS.timeoutMs, 'timeoutMs'),
      tries: Math.max(1, nonNegative(options.tries, DEFAULTS.tries, 'tries')),
      now: options.now ?? Date.now,
    };
    this.node = new NodeResolver({ timeout: this.opts.timeoutMs, tries: this.opts.tries });
    // setServers throws ERR_INVALID_IP_ADDRESS for a bad entry: a config error, shown at start.
    if (options.servers && options.servers.length > 0) this.node.setServers([...options.servers]);
    this.wire = {
      MX: (n) => this.queryMx(n),
      A: (n) => this.queryAddress(n, 4),
      AAAA: (n) => this.queryAddress(n, 6),
    };
  }

  /** The name servers in use, as node:dns reports them. */
  servers(): string[] {
    return this.node.getServers();
  }

  /** MX records of `domain`, unsorted (ordering is next-hop policy, see nexthop.ts). */
  resolveMx(domain: string): Promise<DnsAnswer<MxRecord>> {
    return this.lookup('MX', domain) as Promise<DnsAnswer<MxRecord>>;
  }

  /** IPv4 addresses of `host`. */
  resolve4(host: string): Promise<DnsAnswer<string>> {
    return this.lookup('A', host) as Promise<DnsAnswer<string>>;
  }

  /** IPv6 addresses of `host`. */
  resolve6(host: string): Promise<DnsAnswer<string>> {
    return this.lookup('AAAA', host) as Promise<DnsAnswer<string>>;
  }

  /** Empty the cache (`halonctl resolver clear`). Counters and queries in flight are kept. */
  clear(): void {
    this.cache.clear();
  }

  /** Cancel every query on the wire (they answer ECANCELLED, temporary); queued ones still run. */
  cancel(): void {
    this.node.cancel();
  }

  stats(): ResolverStats {
    return {
      pending: this.waiting.length,
      dedup: this.counters.dedup,
      running: this.running,
      maxrunning: this.opts.maxRunning,
      cache: {
        maxsize: this.opts.cacheSize,
        size: this.cache.size,
        hits: this.counters.hits,
        misses: this.counters.misses,
        expires: this.counters.expires,
        evicts: this.counters.evicts,
      },
    };
  }

  // -------------------------------------------------------------------------------------------
  // Cache → in-flight → wire. The bookkeeping up to the wire is synchronous, so stats() right
  // after a call already counts it (tests rely on this; so does `halonctl resolver queue`).

  private lookup(type: RecordType, rawName: string): Promise<DnsAnswer<unknown>> {
    const name = normalizeName(rawName);
    if (name === '') return Promise.resolve(badName(rawName));
    const key = `${type} ${name}`;
    const cached = this.fromCache(key);
    if (cached) return Promise.resolve(cached);
    const shared = this.inflight.get(key);
    if (shared) {
      this.counters.dedup++;
      return shared;
    }
    const p = this.limited(() => this.wire[type](name))
      // Wire queries do not reject; this keeps a surprise from leaving the key in flight forever.
      .catch((err: unknown): DnsAnswer<unknown> => ({ ok: false, error: classify(err) }))
      .then((answer) => {
        this.inflight.delete(key);
        return this.store(key, answer);
      });
    this.inflight.set(key, p);
    return p;
  }

  private fromCache(key: string): DnsAnswer<unknown> | undefined {
    const entry = this.cache.get(key);
    if (!entry) {
      this.counters.misses++;
      return undefined;
    }
    if (entry.expiresAt <= this.opts.now()) {
      this.cache.delete(key);
      this.counters.expires++;
      this.counters.misses++;
      return undefined;
    }
    // Re-insert to mark as most recently used (Map keeps insertion order).
    this.cache.delete(key);
    this.cache.set(key, entry);
    this.counters.hits++;
    return remaining(entry, this.opts.now());
  }

  /** Cache `answer` for its TTL (if cacheable) and return it with the TTL it was given. */
  private store(key: string, answer: DnsAnswer<unknown>): DnsAnswer<unknown> {
    const ttl = this.cacheTtl(answer);
    const result = answer.ok ? merged(answer, { ttl }) : answer;
    if (ttl <= 0 || this.opts.cacheSize === 0) return result;
    this.cache.delete(key);
    this.cache.set(key, { answer: result, expiresAt: this.opts.now() + ttl * 1000 });
    while (this.cache.size > this.opts.cacheSize) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
      this.counters.evicts++;
    }
    return result;
  }

  private cacheTtl(answer: DnsAnswer<unknown>): number {
    if (!answer.ok && answer.error.temporary) return 0;
    if (!answer.ok && answer.error.kind === 'other') return 0; // a refused name: nothing to cache
    const raw = answer.ok ? answer.ttl : this.opts.negativeTtl;
    return Math.min(this.opts.ttlMax, Math.max(this.opts.ttlMin, raw));
  }

  /** Run `fn` when fewer than maxRunning queries are on the wire; FIFO otherwise. */
  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.opts.maxRunning) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // Hand the slot straight to the next waiter so `running` never dips below the limit.
      if (next) next();
      else this.running--;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Wire queries. Each returns an answer, never throws.

  private async queryMx(name: string): Promise<DnsAnswer<MxRecord>> {
    try {
      const rrs = await this.node.resolveMx(name);
      if (rrs.length === 0) return nodata(name, 'MX');
      const records = rrs.map((r) => ({ exchange: normalizeExchange(r.exchange), preference: r.priority }));
      return { ok: true, records, ttl: this.opts.mxTtl };
    } catch (err) {
      return { ok: false, error: classify(err) };
    }
  }

  private async queryAddress(name: string, family: 4 | 6): Promise<DnsAnswer<string>> {
    try {
      const rrs = family === 4
        ? await this.node.resolve4(name, { ttl: true })
        : await this.node.resolve6(name, { ttl: true });
      if (rrs.length === 0) return nodata(name, family === 4 ? 'A' : 'AAAA');
      const ttl = Math.min(...rrs.map((r) => r.ttl));
      return { ok: true, records: rrs.map((r) => r.address), ttl };
    } catch (err) {
      return { ok: false, error: classify(err) };
    }
  }
}

function remaining(entry: CacheEntry, now: number): DnsAnswer<unknown> {
  if (!entry.answer.ok) return entry.answer;
  return merged(entry.answer, { ttl: Math.max(0, Math.ceil((entry.expiresAt - now) / 1000)) });
}

/** c-ares gives the root as ''; some servers' answers carry a trailing dot. */
function normalizeExchange(exchange: string): string {
  const e = exchange.toLowerCase();
  return e === '.' ? '' : e.endsWith('.') ? e.slice(0, -1) : e;
}

function nodata(name: string, type: RecordType): DnsAnswer<never> {
  return { ok: false, error: { kind: 'nodata', temporary: false, code: 'ENODATA', message: `no ${type} records for ${name}` } };
}

function badName(raw: string): DnsAnswer<never> {
  const shown = JSON.stringify(raw.length > 80 ? raw.slice(0, 80) + '…' : raw);
  return { ok: false, error: { kind: 'other', temporary: false, code: 'EBADNAME', message: `invalid domain name ${shown}` } };
}

function nonNegative(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`resolver ${what} must be a non-negative number, not ${v}`);
  return v;
}
