/**
 * `pki.private[]` of smtpd.yaml and smtpd-app.yaml: key pairs by id.
 *
 * Inputs: the `pki` cursor of either file. Outputs: `PkiEntry[]` with files read into `data`.
 * Invariants: every private key and certificate given has been parsed once by node:crypto, so a
 * TLS context built from them later cannot fail on syntax; a key and certificate given in the
 * same entry belong together.
 * Errors: unreadable files, PEM that does not parse, a key that does not fit its certificate,
 * duplicate ids — reported on the entry's key path.
 *
 * Halon keeps keys in the startup file (read before privileges are dropped) and lets the
 * running file carry the certificate of the same id so that renewals need only a reload
 * (halon-core.md §2.3); `mergePki` combines both, the running file's parts winning.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { FileData, PkiEntry } from './types';
import { type Cursor, reportDuplicates, setIf } from './reader';

export function readPki(pki: Cursor): PkiEntry[] {
  const items = pki.get('private').items();
  reportDuplicates(items.map((c) => ({ value: c.get('id').str(''), cursor: c.get('id') })), 'pki id');
  return items.map(readEntry);
}

function readEntry(c: Cursor): PkiEntry {
  const entry: PkiEntry = { id: c.get('id').str('') };
  const key = c.get('privatekey');
  const cert = c.get('certificate');
  setIf(entry, 'privatekey', checked(key, key.fileData(), parseKey));
  setIf(entry, 'certificate', checked(cert, cert.fileData(), parseCert));
  if (entry.privatekey && entry.certificate && !keyFits(entry)) {
    c.error('the private key does not belong to the certificate');
  }
  return entry;
}

function checked(c: Cursor, fd: FileData | undefined, parse: (data: string) => unknown): FileData | undefined {
  if (!fd) return undefined;
  try {
    parse(fd.data);
    return fd;
  } catch (e) {
    c.error(`${fd.path ?? 'inline data'}: ${(e as Error).message}`);
    return undefined;
  }
}

function parseKey(data: string): KeyObject {
  try {
    return createPrivateKey(data);
  } catch {
    throw new Error('not a PEM private key (encrypted keys are not supported)');
  }
}

function parseCert(data: string): X509Certificate {
  try {
    return new X509Certificate(data);
  } catch {
    throw new Error('not a PEM certificate');
  }
}

/** True when the entry's private key matches its certificate's public key. */
export function keyFits(entry: PkiEntry): boolean {
  if (!entry.privatekey || !entry.certificate) return false;
  try {
    return parseCert(entry.certificate.data).checkPrivateKey(parseKey(entry.privatekey.data));
  } catch {
    return false;
  }
}

/** Combine startup and running pki by id; for each part the running file's wins. */
export function mergePki(startup: readonly PkiEntry[], running: readonly PkiEntry[]): Map<string, PkiEntry> {
  const out = new Map<string, PkiEntry>();
  for (const e of startup) out.set(e.id, { ...e });
  for (const e of running) {
    const merged: PkiEntry = { ...out.get(e.id), id: e.id };
    setIf(merged, 'privatekey', e.privatekey);
    setIf(merged, 'certificate', e.certificate);
    out.set(e.id, merged);
  }
  return out;
}

/** Why `id` cannot be used as a TLS certificate, or undefined when it can. */
export function pkiProblem(pki: ReadonlyMap<string, PkiEntry>, id: string, where: string): string | undefined {
  const e = pki.get(id);
  if (!e) return `pki id "${id}" is not defined in pki.private[] of ${where}`;
  if (!e.privatekey) return `pki id "${id}" has no private key`;
  if (!e.certificate) return `pki id "${id}" has no certificate`;
  return keyFits(e) ? undefined : `the private key of pki id "${id}" does not belong to its certificate`;
}
