/**
 * Where halyardctl finds the daemon's control socket.
 *
 * Order: `--socket PATH`; else `environment.controlsocket.path` of the config given with `-c`;
 * else that of /etc/halyard/smtpd.yaml when it exists; else the built-in default path.
 * The config is loaded with the daemon's own loader (`loadStartupConfig`), so relative paths
 * and defaults resolve exactly as in the daemon. When the file does not validate for this
 * user — typically because the private keys it names are readable by root only — only the
 * one key is read from the YAML, resolved the same way (relative to the file's folder).
 * Errors: `UsageError` when the given config file cannot be read or parsed at all.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { loadStartupConfig } from '../config/load';
import { DEFAULT_CONTROL_SOCKET } from '../config/startup';
import { ConfigInvalidError } from '../config/types';
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
