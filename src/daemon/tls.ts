/**
 * TLS material for the SMTP servers: a SecureContext per `pki.private[]` id, and per server a
 * chooser that picks the certificate whose names match the client's SNI (falling back to the
 * server's first certificate). Keys may live in the startup config (restart to change) and
 * certificates in the running config (reloadable), as Halon allows; entries merge by id
 * (`resolvePki`).
 */
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { resolvePki } from '../config/load';
import type { PkiEntry, RunningServer, StartupConfig, RunningConfig } from '../config/types';

interface CertContext {
  context: tls.SecureContext;
  names: string[];
}

export type ContextChooser = (servername?: string) => tls.SecureContext | undefined;

function certNames(pem: string): string[] {
  const cert = new X509Certificate(pem);
  const alt = (cert.subjectAltName ?? '').split(',').map((s) => s.trim()).filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase());
  const cn = /CN=([^\n,]+)/.exec(cert.subject)?.[1]?.toLowerCase();
  return alt.length ? alt : cn ? [cn] : [];
}

function nameMatches(pattern: string, name: string): boolean {
  if (pattern === name) return true;
  if (!pattern.startsWith('*.')) return false;
  const dot = name.indexOf('.');
  return dot > 0 && name.slice(dot + 1) === pattern.slice(2);
}

/** Build the chooser for every server of the running config. Throws on a bad key/certificate. */
export function buildTlsChoosers(startup: StartupConfig, running: RunningConfig): Map<string, ContextChooser> {
  const pki: ReadonlyMap<string, Readonly<PkiEntry>> = resolvePki(startup, running);
  const choosers = new Map<string, ContextChooser>();
  for (const s of running.servers) {
    // Contexts are per server: the minimum TLS version is a server setting and must be refused
    // in the handshake itself.
    const contexts = new Map<string, CertContext>();
    const contextFor = (id: string): CertContext => {
      let c = contexts.get(id);
      if (c) return c;
      const p = pki.get(id);
      if (!p?.privatekey || !p.certificate) throw new Error(`pki id "${id}" needs both a private key and a certificate`);
      const context = tls.createSecureContext({ key: p.privatekey.data, cert: p.certificate.data, minVersion: s.tls.minversion });
      c = { context, names: certNames(p.certificate.data) };
      contexts.set(id, c);
      return c;
    };
    choosers.set(s.id, chooserFor(s, contextFor));
  }
  return choosers;
}

/** Private keys by pki id, for `mail.signDKIM(selector, domain, "<pki id>")`. */
export function buildKeyResolver(startup: StartupConfig, running: RunningConfig): (id: string) => string | undefined {
  const pki = resolvePki(startup, running);
  return (id) => pki.get(id)?.privatekey?.data;
}

function chooserFor(server: RunningServer, contextFor: (id: string) => CertContext): ContextChooser {
  const certs = server.tls.certs.map(contextFor);
  if (certs.length === 0) return () => undefined;
  return (servername) => {
    if (servername) {
      const name = servername.toLowerCase();
      const hit = certs.find((c) => c.names.some((n) => nameMatches(n, name)));
      if (hit) return hit.context;
    }
    return certs[0].context;
  };
}
