/**
 * Helpers for the config tests: fixture locations and throw-away config folders.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ConfigInvalidError, type ConfigError } from '../../src/config/types';

/** test/fixtures/config, from dist/test/unit or test/unit. */
export const FIXTURES = resolve(__dirname, __dirname.includes(`${join('dist', 'test')}`) ? '../../../test/fixtures/config' : '../fixtures/config');
export const TLS = join(FIXTURES, 'tls');

const made: string[] = [];
after(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** Write `files` (relative name → content) into a new temporary folder; returns the folder. */
export function tempConfig(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'halyard-config-'));
  made.push(dir);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  cpSync(TLS, join(dir, 'tls'), { recursive: true });
  return dir;
}

export const MINIMAL_STARTUP = `servers:
  - id: default
    listeners:
      - port: 2525
        address: 127.0.0.1
spool:
  path: spool
`;

export const MINIMAL_RUNNING = `servers:
  - id: default
transportgroups:
  - id: default
    transports:
      - id: mx
`;

/** Run `fn`, expect a ConfigInvalidError, return its errors. */
export function errorsOf(fn: () => unknown): ConfigError[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigInvalidError) return e.errors;
    throw e;
  }
  assert.fail('expected ConfigInvalidError');
}

/** `path: reason` lines, for readable assertions. */
export function lines(errors: ConfigError[]): string[] {
  return errors.map((e) => `${e.path}: ${e.reason}`);
}

/** Assert that some error has exactly this path and a reason matching `reason`. */
export function hasError(errors: ConfigError[], path: string, reason: RegExp): void {
  const ok = errors.some((e) => e.path === path && reason.test(e.reason));
  assert.ok(ok, `no error at ${path} matching ${reason}; got:\n${lines(errors).join('\n')}`);
}

/** Assert that every object in the graph is frozen. */
export function assertDeepFrozen(v: unknown, path = '(root)'): void {
  if (typeof v !== 'object' || v === null) return;
  assert.ok(Object.isFrozen(v), `${path} is not frozen`);
  for (const [k, child] of Object.entries(v)) assertDeepFrozen(child, `${path}.${k}`);
}
