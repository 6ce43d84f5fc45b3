/**
 * PROXY protocol header parser (HAProxy "PROXY protocol" spec, versions 1 and 2): PURE.
 *
 * Input: the bytes received so far on a connection from a trusted proxy.
 * Output: `{incomplete}` (need more bytes), `{error}` (not a valid header: close the
 * connection), or `{header, consumed}` where `consumed` bytes belong to the header and the
 * rest is the client's own stream (SMTP, or a TLS ClientHello on an implicit-TLS listener).
 * Invariants: never reads past the header; bounded: v1 is at most 107 bytes (spec §2.1),
 * v2 at most 16 + 65535 bytes; never throws.
 *
 * LOCAL (v2) and UNKNOWN (v1) headers carry no client address: the caller keeps the real peer
 * addresses, as the spec requires (health checks from the proxy itself).
 */
import { isIPv6 } from 'node:net';

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  /** LOCAL (v2) / UNKNOWN (v1): no addresses, keep the real connection's. */
  command: 'PROXY' | 'LOCAL';
  family: 'TCP4' | 'TCP6' | 'UNKNOWN';
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  /** v2 TLVs by type, value as lower-case hex. */
  tlvs: Record<number, string>;
}

export type ProxyParseResult = { incomplete: true } | { error: string } | { header: ProxyHeader; consumed: number };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_MAX = 107;

/** True when `buf` is a (possibly empty) prefix of `sig`, or starts with all of it. */
function matchesPrefix(buf: Buffer, sig: Buffer): 'full' | 'partial' | 'no' {
  const n = Math.min(buf.length, sig.length);
  if (buf.compare(sig, 0, n, 0, n) !== 0) return 'no';
  return n === sig.length ? 'full' : 'partial';
}

export function parseProxyHeader(buf: Buffer): ProxyParseResult {
  const v2 = matchesPrefix(buf, V2_SIGNATURE);
  if (v2 === 'full') return parseV2(buf);
  const v1 = matchesPrefix(buf, V1_PREFIX);
  if (v1 === 'full') return parseV1(buf);
  if (v1 === 'partial' || v2 === 'partial') return { incomplete: true };
  return { error: 'no PROXY protocol header' };
}

// ---------------------------------------------------------------------------------------------
// v1: "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n"

const PORT = /^(?:0|[1-9]\d{0,4})$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

function parsePort(s: string): number | null {
  if (!PORT.test(s)) return null;
  const n = Number(s);
  return n <= 65535 ? n : null;
}

function parseV1(buf: Buffer): ProxyParseResult {
  const lf = buf.indexOf(0x0a);
  if (lf < 0) return buf.length >= V1_MAX ? { error: 'PROXY v1 line too long' } : { incomplete: true };
  if (lf + 1 > V1_MAX || buf[lf - 1] !== 0x0d) return { error: 'PROXY v1 line malformed' };
  const parts = buf.toString('latin1', 0, lf - 1).split(' ');
  const consumed = lf + 1;
  if (parts[1] === 'UNKNOWN') return { header: { version: 1, command: 'LOCAL', family: 'UNKNOWN', tlvs: {} }, consumed };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) return { error: 'PROXY v1 line malformed' };
  const family = parts[1];
  const valid = family === 'TCP4' ? (a: string) => IPV4.test(a) : isIPv6;
  const sport = parsePort(parts[4]);
  const dport = parsePort(parts[5]);
  if (!valid(parts[2]) || !valid(parts[3]) || sport === null || dport === null) return { error: 'PROXY v1 addresses malformed' };
  return {
    header: { version: 1, command: 'PROXY', family, source: { address: parts[2], port: sport }, destination: { address: parts[3], port: dport }, tlvs: {} },
    consumed,
  };
}

// ---------------------------------------------------------------------------------------------
// v2: 12-byte signature, ver_cmd, fam, len (BE u16), addresses, TLVs

const V2_HEADER = 16;

function parseV2(buf: Buffer): ProxyParseResult {
  if (buf.length < V2_HEADER) return { incomplete: true };
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) return { error: 'PROXY v2 bad version' };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { error: 'PROXY v2 bad command' };
  const len = buf.readUInt16BE(14);
  const consumed = V2_HEADER + len;
  if (buf.length < consumed) return { incomplete: true };
  const body = buf.subarray(V2_HEADER, consumed);
  if (cmd === 0) return { header: { version: 2, command: 'LOCAL', family: 'UNKNOWN', tlvs: {} }, consumed };
  return parseV2Proxy(buf[13], body, consumed);
}

function parseV2Proxy(fam: number, body: Buffer, consumed: number): ProxyParseResult {
  const family = fam >> 4;
  const transport = fam & 0x0f;
  // AF_UNSPEC or a non-stream transport: accept the header, keep the real addresses.
  if (family === 0 || transport !== 1 || family === 3) {
    return { header: { version: 2, command: 'LOCAL', family: 'UNKNOWN', tlvs: {} }, consumed };
  }
  if (family !== 1 && family !== 2) return { error: 'PROXY v2 bad address family' };
  const alen = family === 1 ? 4 : 16;
  const need = alen * 2 + 4;
  if (body.length < need) return { error: 'PROXY v2 address block too short' };
  const fmt = family === 1 ? formatIPv4 : formatIPv6;
  const source = { address: fmt(body.subarray(0, alen)), port: body.readUInt16BE(alen * 2) };
  const destination = { address: fmt(body.subarray(alen, alen * 2)), port: body.readUInt16BE(alen * 2 + 2) };
  const tlvs = parseTlvs(body.subarray(need));
  if (!tlvs) return { error: 'PROXY v2 TLV malformed' };
  return { header: { version: 2, command: 'PROXY', family: family === 1 ? 'TCP4' : 'TCP6', source, destination, tlvs }, consumed };
}

function parseTlvs(b: Buffer): Record<number, string> | null {
  const out: Record<number, string> = {};
  let p = 0;
  while (p < b.length) {
    if (p + 3 > b.length) return null;
    const type = b[p];
    const len = b.readUInt16BE(p + 1);
    if (p + 3 + len > b.length) return null;
    out[type] = b.toString('hex', p + 3, p + 3 + len);
    p += 3 + len;
  }
  return out;
}

function formatIPv4(b: Buffer): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** RFC 5952 text form: lower-case, leading zeros dropped, the longest zero run (≥2) as "::". */
export function formatIPv6(b: Buffer): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
