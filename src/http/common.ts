/**
 * Small pieces both HTTP listeners (monitor, submission) share: API-key checks and the
 * node:http / node:https server choice.
 *
 * Invariants: keys are compared in constant time (both sides hashed to SHA-256 first, so
 * neither the length nor a common prefix of the secret leaks through timing), and every
 * configured key is compared, not just up to the first match.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

function digest(s: string): Buffer {
  return crypto.createHash('sha256').update(s, 'utf8').digest();
}

/** True when `given` equals one of `keys`. */
/** Digests of a configured key list, computed once per (frozen) list rather than per request. */
const keyDigests = new WeakMap<readonly string[], Buffer[]>();

export function apiKeyMatches(given: string | string[] | undefined, keys: readonly string[]): boolean {
  if (typeof given !== 'string') return false;
  const g = digest(given);
  let digests = keyDigests.get(keys);
  if (!digests) keyDigests.set(keys, (digests = keys.map(digest)));
  let ok = false;
  for (const d of digests) ok = crypto.timingSafeEqual(g, d) || ok;
  return ok;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** An HTTP server, or HTTPS with the given key and certificate. */
export function createServer(handler: Handler, tls?: { key: string; cert: string }): http.Server {
  return tls ? https.createServer({ key: tls.key, cert: tls.cert }, handler) : http.createServer(handler);
}

export function listen(server: http.Server, port: number, address?: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: address }, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Stop accepting, end idle keep-alive connections, and wait (bounded) for open requests. */
export function closeServer(server: http.Server, ms = 5_000): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    const t = setTimeout(() => {
      server.closeAllConnections();
      resolve();
    }, ms);
    t.unref();
    server.close(() => {
      clearTimeout(t);
      resolve();
    });
    server.closeIdleConnections();
  });
}
