/**
 * A small authoritative DNS responder for tests, on loopback only (UDP and TCP on one port).
 *
 * Inputs: a zone as a plain object, name → records:
 *   { 'example.test': { MX: [{ preference: 10, exchange: 'mx1.example.test' }], A: ['127.0.0.1'] },
 *     'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
 *     'broken.test': { servfail: true } }
 * Outputs: answers to A, AAAA, MX and CNAME questions:
 *   - a name not in the zone → NXDOMAIN;
 *   - a name in the zone without the asked type → NOERROR with no answer (NODATA), with an SOA
 *     in the authority section as real servers send (RFC 2308 §2.2);
 *   - `servfail: true` → SERVFAIL; `refused: true` → REFUSED;
 *   - `drop: true` → no answer at all (to test time-outs);
 *   - `delayMs` → the answer is sent that many milliseconds late;
 *   - `CNAME: 'target'` → the CNAME, followed by the target's records when the target is in the zone;
 *   - a UDP answer longer than the client's limit (512 bytes, or its EDNS payload size) is sent
 *     truncated (TC bit, no records), so the client retries over TCP (RFC 1035 §4.2.1, RFC 7766).
 * Every question is counted (`count(name, type)`, `queries`), so tests can see caching and
 * de-duplication from the outside. Names compare case-insensitively, trailing dot ignored.
 *
 * Invariants: binds 127.0.0.1 or ::1 only, never another address; `close()` releases both sockets
 * and cancels pending delayed answers, so a test run leaves nothing behind.
 * Encoding and decoding use the dns-packet package (no hand-written wire format).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';

export interface MxEntry {
  preference: number;
  exchange: string;
}

export interface ZoneEntry {
  MX?: MxEntry[];
  A?: string[];
  AAAA?: string[];
  CNAME?: string;
  /** TTL of this name's records, seconds; default the server's ttl. */
  ttl?: number;
  servfail?: boolean;
  refused?: boolean;
  drop?: boolean;
  delayMs?: number;
}

export type Zone = Record<string, ZoneEntry>;

export interface DnsServerOptions {
  /** Loopback address to bind: '127.0.0.1' (default) or '::1'. */
  host?: '127.0.0.1' | '::1';
  /** Default record TTL in seconds. Default 300. */
  ttl?: number;
}

export interface QueryLogEntry {
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
}

type Rcode = 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED';

/** RFC 1035 §4.1.1 RCODE values. */
const RCODE: Readonly<Record<Rcode, number>> = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 };
const PLAIN_UDP_LIMIT = 512;
const LOOPBACK = new Set(['127.0.0.1', '::1']);

interface Reply {
  rcode: Rcode;
  answers: dnsPacket.Answer[];
  authorities: dnsPacket.Answer[];
}

export class TestDnsServer {
  readonly queries: QueryLogEntry[] = [];
  private zone = new Map<string, ZoneEntry>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
    readonly host: string,
    readonly port: number,
    private readonly ttl: number,
  ) {}

  /** Start on an ephemeral port of the loopback address; UDP and TCP share the port. */
  static async start(zone: Zone, opts: DnsServerOptions = {}): Promise<TestDnsServer> {
    const host = opts.host ?? '127.0.0.1';
    if (!LOOPBACK.has(host)) throw new Error(`the test DNS server binds loopback only, not ${host}`);
    // Take a UDP port first, then TCP on the same number; retry if TCP's is taken (bounded).
    for (let attempt = 0; attempt < 5; attempt++) {
      const udp = dgram.createSocket(host === '::1' ? 'udp6' : 'udp4');
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(0, host, () => resolve());
      });
      const port = udp.address().port;
      const tcp = net.createServer();
      const ok = await new Promise<boolean>((resolve) => {
        tcp.once('error', () => resolve(false));
        tcp.listen(port, host, () => resolve(true));
      });
      if (!ok) {
        udp.close();
        continue;
      }
      const server = new TestDnsServer(udp, tcp, host, port, opts.ttl ?? 300);
      server.setZone(zone);
      server.listen();
      return server;
    }
    throw new Error('could not bind UDP and TCP on one loopback port');
  }

  /** "127.0.0.1:port" or "[::1]:port", as Resolver's servers option takes it. */
  get address(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  /** Replace the whole zone. */
  setZone(zone: Zone): void {
    this.zone = new Map(Object.entries(zone).map(([k, v]) => [canonical(k), v]));
  }

  /** Add or replace one name. */
  set(name: string, entry: ZoneEntry): void {
    this.zone.set(canonical(name), entry);
  }

  /** Questions received for `name` (and `type`, if given); all questions without arguments. */
  count(name?: string, type?: string): number {
    const n = name === undefined ? undefined : canonical(name);
    return this.queries.filter((q) => (n === undefined || q.name === n) && (type === undefined || q.type === type)).length;
  }

  resetCounts(): void {
    this.queries.length = 0;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
    ]);
  }

  // -------------------------------------------------------------------------------------------

  private listen(): void {
    this.udp.on('message', (msg, rinfo) => {
      this.handle(msg, 'udp', (out) => this.udp.send(out, rinfo.port, rinfo.address));
    });
    this.tcp.on('connection', (sock) => this.serveTcp(sock));
  }

  /** RFC 1035 §4.2.2: over TCP each message is preceded by its two-byte length. */
  private serveTcp(sock: net.Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        this.handle(msg, 'tcp', (out) => {
          if (sock.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(out.length);
          sock.write(Buffer.concat([head, out]));
        });
      }
    });
  }

  private handle(msg: Buffer, transport: 'udp' | 'tcp', send: (out: Buffer) => void): void {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return; // not DNS: ignore, as a real server would
    }
    const question = query.questions?.[0];
    if (!question) return;
    const name = canonical(question.name);
    this.queries.push({ name, type: question.type, transport });
    const entry = this.zone.get(name);
    if (entry?.drop) return;
    const out = this.encode(query, this.reply(name, question.type), transport);
    const delay = entry?.delayMs ?? 0;
    if (delay <= 0) return send(out);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      send(out);
    }, delay);
    this.timers.add(timer);
  }

  private reply(name: string, type: string): Reply {
    const entry = this.zone.get(name);
    if (!entry) return { rcode: 'NXDOMAIN', answers: [], authorities: [this.soa(name)] };
    if (entry.servfail) return { rcode: 'SERVFAIL', answers: [], authorities: [] };
    if (entry.refused) return { rcode: 'REFUSED', answers: [], authorities: [] };
    const answers = this.records(name, entry, type);
    if (entry.CNAME && type !== 'CNAME') {
      const target = canonical(entry.CNAME);
      const cname: dnsPacket.Answer = { type: 'CNAME', name, ttl: this.ttlOf(entry), data: target };
      const t = this.zone.get(target);
      return { rcode: 'NOERROR', answers: [cname, ...(t ? this.records(target, t, type) : [])], authorities: [] };
    }
    return { rcode: 'NOERROR', answers, authorities: answers.length === 0 ? [this.soa(name)] : [] };
  }

  private records(name: string, entry: ZoneEntry, type: string): dnsPacket.Answer[] {
    const ttl = this.ttlOf(entry);
    switch (type) {
      case 'A':
        return (entry.A ?? []).map((data) => ({ type: 'A', name, ttl, data }));
      case 'AAAA':
        return (entry.AAAA ?? []).map((data) => ({ type: 'AAAA', name, ttl, data }));
      case 'MX':
        return (entry.MX ?? []).map((mx) => ({ type: 'MX', name, ttl, data: { preference: mx.preference, exchange: mx.exchange } }));
      case 'CNAME':
        return entry.CNAME ? [{ type: 'CNAME', name, ttl, data: canonical(entry.CNAME) }] : [];
      default:
        return [];
    }
  }

  private soa(name: string): dnsPacket.Answer {
    const apex = name.split('.').slice(-2).join('.');
    return {
      type: 'SOA', name: apex, ttl: this.ttl,
      data: { mname: `ns.${apex}`, rname: `hostmaster.${apex}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60 },
    };
  }

  private ttlOf(entry: ZoneEntry): number {
    return entry.ttl ?? this.ttl;
  }

  private encode(query: dnsPacket.DecodedPacket, reply: Reply, transport: 'udp' | 'tcp'): Buffer {
    const flags = dnsPacket.AUTHORITATIVE_ANSWER | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) | RCODE[reply.rcode];
    const base = { type: 'response' as const, id: query.id, questions: query.questions };
    const full = dnsPacket.encode({ ...base, flags, answers: reply.answers, authorities: reply.authorities });
    if (transport === 'tcp' || full.length <= udpLimit(query)) return full;
    return dnsPacket.encode({ ...base, flags: flags | dnsPacket.TRUNCATED_RESPONSE, answers: [] });
  }
}

/** The client's UDP limit: its EDNS payload size (RFC 6891 §6.2.3), else 512 (RFC 1035 §4.2.1). */
function udpLimit(query: dnsPacket.DecodedPacket): number {
  const opt = query.additionals?.find((a): a is dnsPacket.OptAnswer => a.type === 'OPT');
  return opt ? Math.max(PLAIN_UDP_LIMIT, opt.udpPayloadSize) : PLAIN_UDP_LIMIT;
}

function canonical(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}
