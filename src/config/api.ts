/**
 * Loads `api.yaml`, the configuration of halyard-api (Halon's api.yaml, halon-api.md §4.2).
 *
 * Inputs: a file name (relative names resolve against the working directory; paths inside the
 * file against the file's folder).
 * Outputs: a deep-frozen `ApiConfig` with defaults filled (`maxsize` 52428800 bytes, TCP
 * control-socket address 127.0.0.1); certificate and key files read into memory.
 * Invariants: a loader either returns a complete valid config or throws; every certificate and
 * key given has been parsed by node:crypto, so building the TLS context cannot fail later.
 * Errors: `ConfigInvalidError` listing every problem as `file: key.path: reason` — YAML syntax,
 * schema (unknown keys, types, ranges), sizes, bind addresses, `{path|data}` problems, a key
 * that does not fit its certificate, a control socket with both or neither of path and port,
 * TLS for a Unix socket, two listeners on the same port and address.
 */
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import type { ConfigError, FileData } from './types';
import { ConfigInvalidError } from './types';
import { type Cursor, deepFreeze, Errors, readConfigFile, setIf } from './reader';
import { keyFits } from './pki';

export const DEFAULT_API_MAXSIZE = 52_428_800;
/** Programs Halon's api.yaml knows; only smtpd has a command table in Halyard. */
export const API_PROGRAMS = ['smtpd', 'rated', 'dlpd'] as const;
export type ApiProgram = (typeof API_PROGRAMS)[number];

export interface ApiListener {
  port: number;
  address?: string;
  /** HTTPS when present. */
  tls?: { cert: string; key: string };
  /** Largest accepted request body in bytes. */
  maxsize: number;
}

export type ApiControlSocket =
  | { path: string }
  | { host: string; port: number; tls?: { verify: boolean; verifyname?: string; certificate?: FileData; privatekey?: FileData } };

export interface ApiConfig {
  file: string;
  version?: string;
  /** Undefined = no authentication (Halon's behaviour without a secret). */
  secret?: string;
  listeners: ApiListener[];
  accounting: boolean;
  controlsockets: Partial<Record<ApiProgram, ApiControlSocket>>;
}

function normaliseApi(root: Cursor, file: string): ApiConfig {
  const listeners = root.get('listeners').items();
  const config: ApiConfig = {
    file,
    listeners: listeners.map(readListener),
    accounting: root.get('accounting').bool(false),
    controlsockets: readControlSockets(root.get('environment').get('controlsockets')),
  };
  setIf(config, 'version', root.get('version').str());
  setIf(config, 'secret', root.get('authentication').get('secret').str());
  checkDistinctBinds(listeners, config.listeners);
  return config;
}

function readListener(c: Cursor): ApiListener {
  const l: ApiListener = { port: c.get('port').num(0), maxsize: c.get('maxsize').size(DEFAULT_API_MAXSIZE) };
  const address = c.get('address');
  const a = address.str();
  if (a !== undefined && isIP(a) === 0) address.error(`"${a}" is not an IPv4 or IPv6 address`);
  setIf(l, 'address', a);
  setIf(l, 'tls', readListenerPki(c.get('pki')));
  return l;
}

function readListenerPki(c: Cursor): ApiListener['tls'] {
  if (!c.present) return undefined;
  const cert = c.get('certificate').fileData();
  const key = c.get('privatekey').fileData();
  if (!cert || !key) return undefined;
  if (!keyFits({ id: '', certificate: cert, privatekey: key })) {
    c.error('the private key does not belong to the certificate (or one of them is not PEM)');
    return undefined;
  }
  return { cert: cert.data, key: key.data };
}

function readControlSockets(c: Cursor): ApiConfig['controlsockets'] {
  const out: ApiConfig['controlsockets'] = {};
  for (const program of API_PROGRAMS) setIf(out, program, readControlSocket(c.get(program)));
  return out;
}

function readControlSocket(c: Cursor): ApiControlSocket | undefined {
  if (!c.present) return undefined;
  const path = c.get('path').str();
  const port = c.get('port').num();
  if (path !== undefined && port !== undefined) {
    c.error('give either path or port, not both');
    return undefined;
  }
  if (path !== undefined) {
    if (c.get('tls').present) c.get('tls').error('TLS needs a TCP control socket (port), not a Unix socket path');
    return { path: c.get('path').filePath() ?? path };
  }
  if (port === undefined) {
    c.error('needs path or port');
    return undefined;
  }
  const target: ApiControlSocket = { host: c.get('address').str('127.0.0.1'), port };
  const t = c.get('tls');
  if (t.present) {
    const tls: NonNullable<typeof target.tls> = { verify: t.get('verify').bool(true) };
    setIf(tls, 'verifyname', t.get('verifyname').str());
    setIf(tls, 'certificate', t.get('certificate').fileData());
    setIf(tls, 'privatekey', t.get('privatekey').fileData());
    if ((tls.certificate === undefined) !== (tls.privatekey === undefined)) t.error('give both certificate and privatekey, or neither');
    target.tls = tls;
  }
  return target;
}

/** Two listeners cannot bind the same port and address (port 0 = any free port, exempt). */
function checkDistinctBinds(items: Cursor[], listeners: ApiListener[]): void {
  const seen = new Map<string, string>();
  listeners.forEach((l, i) => {
    if (l.port === 0) return;
    const key = `${l.address ?? '*'}:${l.port}`;
    const prev = seen.get(key);
    if (prev !== undefined) items[i].get('port').error(`port ${l.port} on ${l.address ?? 'all addresses'} is already used by ${prev}`);
    else seen.set(key, items[i].path);
  });
}

function draftApi(file: string): { config: ApiConfig | undefined; errors: ConfigError[] } {
  const abs = resolve(file);
  const errors = new Errors(abs);
  const read = readConfigFile(abs, 'api', errors, false);
  const config = read.kind === 'ok' ? normaliseApi(read.root, abs) : undefined;
  return { config, errors: errors.list() };
}

/** Load `api.yaml`. Throws ConfigInvalidError listing every error. */
export function loadApiConfig(file: string): ApiConfig {
  const d = draftApi(file);
  if (d.errors.length > 0 || d.config === undefined) throw new ConfigInvalidError(d.errors);
  return deepFreeze(d.config);
}

/** Every error of `api.yaml` (for `--test-config`); empty when valid. */
export function testApiConfig(file: string): ConfigError[] {
  return draftApi(file).errors;
}
