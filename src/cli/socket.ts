/**
 * Where halyardctl finds the daemon's control socket: the Unix socket, or the TCP socket with
 * (mutual) TLS.
 *
 * Unix socket path, in order: `--socket PATH`; else `environment.controlsocket.path` of the
 * config given with `-c`; else that of /etc/halyard/smtpd.yaml when it exists; else the
 * built-in default path. The config is loaded with the daemon's own loader
 * (`loadStartupConfig`), so relative paths and defaults resolve exactly as in the daemon.
 * When the file does not validate for this user — typically because the private keys it names
 * are readable by root only — only the one key is read from the YAML, resolved the same way
 * (relative to the file's folder).
 *
 * TCP (`resolveTarget`): when `--port` or `--address` is given, or when the config sets
 * `controlsocket.port` without a `path` (Halon's shape for a TCP-only control socket, which
 * its tools then reach over TCP). Port and address default to the config's (address
 * 127.0.0.1). TLS is used when the config has `controlsocket.tls`, or any `--tls…` option is
 * given. The client side follows Halon's `controlsocket.tls.client` block — `certificate` and
 * `privatekey` (the client certificate for mutual TLS), `verify` (default true) and
 * `verifyname` — each overridable by an option. The daemon's certificate is verified against
 * the system's CAs plus the certificate named by `controlsocket.tls.cert` in the same file
 * (so a self-signed control certificate works with verification on). These TCP settings are
 * read straight from the YAML (the daemon's loader does not keep the client block), with
 * relative paths resolved against the file's folder.
 * Errors: `UsageError` when the given config file cannot be read or parsed at all, or a TLS
 * file cannot be read.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { parse } from 'yaml';
import { loadStartupConfig } from '../config/load';
import { DEFAULT_CONTROL_SOCKET } from '../config/startup';
import { ConfigInvalidError } from '../config/types';
import type { ControlTarget } from '../control/client';
import { UsageError } from './options';

export const DEFAULT_CONFIG = '/etc/halyard/smtpd.yaml';

function lenientPath(file: string): string {
  let root: unknown;
  try {
    root = parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const env = (root as { environment?: { controlsocket?: { path?: unknown } } } | null)?.environment;
  const p = env?.controlsocket?.path;
  if (typeof p !== 'string' || p === '') return DEFAULT_CONTROL_SOCKET;
  return path.resolve(path.dirname(path.resolve(file)), p);
}

export function socketFromConfig(file: string): string {
  try {
    return loadStartupConfig(file).environment.controlsocket.path;
  } catch (err) {
    if (err instanceof ConfigInvalidError) return lenientPath(file);
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

export function resolveSocket(opts: { socket?: string; config?: string }, defaultConfig = DEFAULT_CONFIG): string {
  if (opts.socket !== undefined) return opts.socket;
  if (opts.config !== undefined) return socketFromConfig(opts.config);
  if (fs.existsSync(defaultConfig)) return socketFromConfig(defaultConfig);
  return DEFAULT_CONTROL_SOCKET;
}

/** The TCP-related options of halyardctl (global options). */
export interface TargetOptions {
  socket?: string;
  config?: string;
  address?: string;
  port?: string;
  tls?: boolean;
  tlsCertificate?: string;
  tlsPrivatekey?: string;
  tlsVerifyname?: string;
  tlsNoverify?: boolean;
}

type FileRef = { path?: unknown; data?: unknown } | undefined;

/** `environment.controlsocket` as written in the YAML, with what TCP needs. */
interface RawSocket {
  dir: string;
  pathGiven: boolean;
  port?: number;
  address?: string;
  tls?: { cert?: unknown; client?: { verify?: unknown; verifyname?: unknown; certificate?: FileRef; privatekey?: FileRef } };
  /** The PEM of the pki certificate named by tls.cert, when it can be read. */
  serverCert?: string;
}

function readYaml(file: string): unknown {
  try {
    return parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

function rawSocket(file: string): RawSocket {
  const root = readYaml(file) as { environment?: { controlsocket?: Record<string, unknown> }; pki?: { private?: Array<{ id?: unknown; certificate?: FileRef }> } } | null;
  const cs = root?.environment?.controlsocket ?? {};
  const dir = path.dirname(path.resolve(file));
  const out: RawSocket = { dir, pathGiven: typeof cs.path === 'string' };
  if (typeof cs.port === 'number') out.port = cs.port;
  if (typeof cs.address === 'string') out.address = cs.address;
  if (cs.tls && typeof cs.tls === 'object') {
    out.tls = cs.tls as RawSocket['tls'];
    const id = out.tls?.cert;
    const entry = (root?.pki?.private ?? []).find((p) => p?.id === id);
    const pem = entry ? readFileRef(entry.certificate, dir, 'pki certificate', false) : undefined;
    if (pem) out.serverCert = pem;
  }
  return out;
}

/** `{path}` (relative to the config's folder) or `{data}`; `must` = an unreadable file is an error. */
function readFileRef(ref: FileRef, dir: string, what: string, must: boolean): string | undefined {
  if (!ref || typeof ref !== 'object') return undefined;
  if (typeof ref.data === 'string') return ref.data;
  if (typeof ref.path !== 'string') return undefined;
  try {
    return fs.readFileSync(path.resolve(dir, ref.path), 'utf8');
  } catch (err) {
    if (!must) return undefined;
    throw new UsageError(`cannot read the ${what} ${ref.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function readOption(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function portOf(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new UsageError(`--port takes a TCP port from 1 to 65535; got ${JSON.stringify(v)}`);
  return Number(v);
}

function wantsTls(o: TargetOptions): boolean {
  return o.tls === true || o.tlsNoverify === true || [o.tlsCertificate, o.tlsPrivatekey, o.tlsVerifyname].some((x) => x !== undefined);
}

/** Where to connect: the Unix socket or TCP (with TLS options), per the module comment. */
export function resolveTarget(o: TargetOptions, defaultConfig = DEFAULT_CONFIG): ControlTarget {
  const tcpAsked = o.port !== undefined || o.address !== undefined;
  if (o.socket !== undefined && (tcpAsked || wantsTls(o))) throw new UsageError('--socket is a Unix socket: it does not go with --address, --port or --tls options');
  if (o.socket !== undefined) return { path: o.socket };
  const file = o.config ?? (fs.existsSync(defaultConfig) ? defaultConfig : undefined);
  const raw = file ? rawSocket(file) : undefined;
  const tcpFromConfig = raw?.port !== undefined && raw.port > 0 && !raw.pathGiven;
  if (!tcpAsked && !tcpFromConfig) {
    if (wantsTls(o)) throw new UsageError('the --tls options need a TCP control socket (--port, or controlsocket.port in the config)');
    return { path: resolveSocket(o, defaultConfig) };
  }
  const port = o.port !== undefined ? portOf(o.port) : raw?.port;
  if (port === undefined || port === 0) throw new UsageError('no TCP port: give --port, or set environment.controlsocket.port in the config');
  const host = o.address ?? raw?.address ?? '127.0.0.1';
  if (!raw?.tls && !wantsTls(o)) return { host, port };
  return { host, port, tls: tlsOptions(o, raw, host) };
}

function tlsOptions(o: TargetOptions, raw: RawSocket | undefined, host: string): tls.ConnectionOptions {
  const client = raw?.tls?.client;
  const dir = raw?.dir ?? process.cwd();
  const cert = o.tlsCertificate !== undefined ? readOption(o.tlsCertificate, 'client certificate') : readFileRef(client?.certificate, dir, 'client certificate', true);
  const key = o.tlsPrivatekey !== undefined ? readOption(o.tlsPrivatekey, 'client private key') : readFileRef(client?.privatekey, dir, 'client private key', true);
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('a client certificate needs its private key, and the other way round');
  const verify = o.tlsNoverify ? false : client?.verify !== false;
  const name = o.tlsVerifyname ?? (typeof client?.verifyname === 'string' ? client.verifyname : undefined);
  return {
    rejectUnauthorized: verify,
    minVersion: 'TLSv1.2',
    ...(raw?.serverCert ? { ca: [...tls.rootCertificates, raw.serverCert] } : {}),
    // SNI and the identity check use the verify name; an IP address is checked as such.
    ...(name !== undefined ? { servername: name } : net.isIP(host) ? {} : { servername: host }),
    ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
  };
}
