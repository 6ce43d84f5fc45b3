/**
 * Routing facts for pickup: the remote MX and address a destination (transport + recipient
 * domain) will be delivered to, known before the attempt so that pickup policies, suspends and
 * delivery settings keyed on `remotemx`, `remoteip` or a grouping built from them can be
 * applied at pickup (halon-core.md §4.3: these fields "exist after DNS resolution").
 *
 * Inputs: the transport's destination (MX look-up of the domain, or its fixed server and
 * port) and a next-hop resolver. Output: a `Route` — the first next hop's MX name (for an
 * implicit MX, the domain; for a fixed server, the server) and its first address; both '' when
 * resolution failed (the attempt then meets the same failure and reports it as usual).
 * Behaviour: one look-up per key at a time (callers waiting on the same key share it); results
 * are kept ROUTE_TTL_MS, then looked up again (the resolver's own cache answers most). The
 * equal-preference shuffle uses a fixed seed per key, so a destination keeps one primary hop
 * while its route is cached; the attempt is steered to that hop first (plan `prefer`).
 * Invariants: at most MAX_ROUTES entries (oldest dropped first). Errors: none thrown.
 */
import { resolveNextHops, resolveServer, type NextHopResolver } from '../delivery/nexthop';

export interface Route {
  remotemx: string;
  remoteip: string;
}

export interface RouteTarget {
  /** Fixed server of the transport, or undefined for MX look-up of `domain`. */
  server?: string;
  domain: string;
  port: number;
  ipv6: boolean;
}

const ROUTE_TTL_MS = 60_000;
const MAX_ROUTES = 200_000;

interface Cached {
  route: Route;
  expires: number;
}

export class RouteCache {
  private readonly routes = new Map<string, Cached>();
  private readonly pending = new Map<string, Promise<Route>>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The cached route, if fresh. */
  get(key: string): Route | undefined {
    const c = this.routes.get(key);
    if (!c) return undefined;
    if (c.expires > this.now()) return c.route;
    this.routes.delete(key);
    return undefined;
  }

  /** Look the route up (shared with concurrent callers of the same key) and cache it. */
  resolve(key: string, target: RouteTarget, resolver: NextHopResolver): Promise<Route> {
    const running = this.pending.get(key);
    if (running) return running;
    const p = lookup(target, resolver, key).then((route) => {
      this.pending.delete(key);
      if (this.routes.size >= MAX_ROUTES) this.routes.delete(this.routes.keys().next().value as string);
      this.routes.set(key, { route, expires: this.now() + ROUTE_TTL_MS });
      return route;
    });
    this.pending.set(key, p);
    return p;
  }

  clear(): void {
    this.routes.clear();
  }

  get size(): number {
    return this.routes.size;
  }
}

async function lookup(t: RouteTarget, resolver: NextHopResolver, seed: string): Promise<Route> {
  try {
    const opts = { port: t.port, ipv6: t.ipv6, seed };
    const r = t.server === undefined || t.server === 'lookup-mx'
      ? await resolveNextHops(t.domain, resolver, opts)
      : await resolveServer(t.server, t.port, resolver, opts);
    if ('error' in r || r.hops.length === 0) return { remotemx: '', remoteip: '' };
    const hop = r.hops[0];
    return { remotemx: hop.mx || hop.host, remoteip: hop.addresses[0] ?? '' };
  } catch {
    return { remotemx: '', remoteip: '' };
  }
}
