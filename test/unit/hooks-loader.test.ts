/**
 * Hook module loader: TypeScript hooks with relative TypeScript imports, JavaScript hooks,
 * modules that export no function, syntax errors (reported with file and line), reloads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { HookLoadError, HookModuleLoader, loadHookModule } from '../../src/hooks/loader';

const FIXTURES = resolve(__dirname, '../../../test/fixtures/hooks');

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'halyard-hooks-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type Fn = (ctx: unknown) => unknown;

function rcptCtx(domain: string) {
  const calls: Array<[string, unknown[]]> = [];
  const ctx = {
    arguments: { address: { localpart: 'a', domain } },
    context: {} as Record<string, unknown>,
    Accept: (...a: unknown[]) => calls.push(['Accept', a]),
    Reject: (...a: unknown[]) => calls.push(['Reject', a]),
  };
  return { ctx, calls };
}

test('a TypeScript hook with relative TypeScript imports loads and runs', () => {
  const fn = loadHookModule(join(FIXTURES, 'rcpt-domains.ts')) as Fn;
  const ok = rcptCtx('Example.COM');
  fn(ok.ctx);
  assert.deepEqual(ok.calls, [['Accept', [{ transportid: 'inbound' }]]]);
  const bad = rcptCtx('elsewhere.org');
  fn(bad.ctx);
  assert.equal(bad.calls[0][0], 'Reject');
  assert.equal((bad.calls[0][1] as unknown[])[0], 'Relaying to elsewhere.org denied');
});

test('a helper module is one instance per load generation and fresh after a reload', () => {
  const loader = new HookModuleLoader();
  const a = loader.load(join(FIXTURES, 'rcpt-domains.ts')) as Fn;
  const b = loader.load(join(FIXTURES, 'rcpt-domains.ts')) as Fn;
  assert.equal(a, b, 'same file, same generation: same function');
  const c1 = rcptCtx('example.com');
  a(c1.ctx);
  a(c1.ctx);
  assert.equal(c1.ctx.context.calls, 2);
  const fresh = loadHookModule(join(FIXTURES, 'rcpt-domains.ts')) as Fn;
  const c2 = rcptCtx('example.com');
  fresh(c2.ctx);
  assert.equal(c2.ctx.context.calls, 1, 'a new generation starts with new module state');
});

test('JavaScript hooks load: module.exports = fn and exports.default = fn', () => {
  const delegate = loadHookModule(join(FIXTURES, 'delegate.cjs')) as Fn;
  assert.equal(delegate({ context: { impl: () => 'ran' } }), 'ran');
  const helo = loadHookModule(join(FIXTURES, 'esm-default.js')) as Fn;
  let accepted: unknown;
  helo({ arguments: { host: 'MX.Example.ORG' }, Accept: (o: unknown) => (accepted = o) });
  assert.deepEqual(accepted, { host: 'mx.example.org' });
});

test('a stack trace from a TypeScript hook names the .ts file and line', async () => {
  const fn = loadHookModule(join(FIXTURES, 'throws.ts')) as Fn;
  const err = await (fn({ arguments: { sender: 'x@example.com' } }) as Promise<void>).then(
    () => assert.fail('expected a rejection'),
    (e: Error) => e,
  );
  assert.match(err.stack ?? '', /throws\.ts:6:\d+/);
});

test('loading again after the file changed yields the new code', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'h.ts');
  writeFileSync(file, "export default (): string => 'one';\n");
  assert.equal((loadHookModule(file) as Fn)({}), 'one');
  writeFileSync(file, "export default (): string => 'two';\n");
  assert.equal((loadHookModule(file) as Fn)({}), 'two');
  const js = join(dir, 'h.cjs');
  writeFileSync(js, "module.exports = () => 'one';\n");
  assert.equal((loadHookModule(js) as Fn)({}), 'one');
  writeFileSync(js, "module.exports = () => 'two';\n");
  assert.equal((loadHookModule(js) as Fn)({}), 'two');
});

test('a changed helper is picked up on reload too', (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'lib'));
  writeFileSync(join(dir, 'lib', 'v.ts'), 'export const v = 1;\n');
  writeFileSync(join(dir, 'h.ts'), "import { v } from './lib/v';\nexport default (): number => v;\n");
  assert.equal((loadHookModule(join(dir, 'h.ts')) as Fn)({}), 1);
  writeFileSync(join(dir, 'lib', 'v.ts'), 'export const v = 2;\n');
  assert.equal((loadHookModule(join(dir, 'h.ts')) as Fn)({}), 2);
});

function loadError(file: string): HookLoadError {
  try {
    loadHookModule(file);
  } catch (err) {
    assert.ok(err instanceof HookLoadError, `expected HookLoadError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the load to fail');
}

test('a module without a default function is refused with a clear reason', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'num.ts'), 'export default 42;\n');
  writeFileSync(join(dir, 'named.ts'), 'export function hook(): void {}\n');
  assert.match(loadError(join(dir, 'num.ts')).message, /must export a function as default.*type number/);
  assert.match(loadError(join(dir, 'named.ts')).message, /must export a function as default.*no default export/);
});

test('syntax errors name the file, line and column', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'bad.ts'), 'export default function () {\n  const x = ;\n}\n');
  writeFileSync(join(dir, 'bad.js'), 'module.exports = function () {\n  return (;\n};\n');
  const ts = loadError(join(dir, 'bad.ts')).message;
  assert.ok(ts.startsWith(join(dir, 'bad.ts') + ':2:'), ts);
  assert.match(ts, /syntax error/);
  const js = loadError(join(dir, 'bad.js')).message;
  assert.ok(js.startsWith(join(dir, 'bad.js') + ':2'), js);
  assert.match(js, /syntax error/);
});

test('a broken helper is reported under the helper file', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'lib.ts'), 'export const = 1;\n');
  writeFileSync(join(dir, 'h.ts'), "import { x } from './lib';\nexport default (): unknown => x;\n");
  assert.ok(loadError(join(dir, 'h.ts')).message.startsWith(join(dir, 'lib.ts') + ':1:'));
});

test('missing files, unknown types, missing imports and top-level throws are load errors', (t) => {
  const dir = tempDir(t);
  assert.match(loadError(join(dir, 'nope.ts')).message, /file not found/);
  writeFileSync(join(dir, 'h.py'), '');
  assert.match(loadError(join(dir, 'h.py')).message, /unsupported hook file type "\.py"/);
  writeFileSync(join(dir, 'imp.ts'), "import './missing';\nexport default (): void => {};\n");
  assert.match(loadError(join(dir, 'imp.ts')).message, /Cannot find module '\.\/missing'/);
  writeFileSync(join(dir, 'top.ts'), "throw new Error('no database');\n");
  assert.match(loadError(join(dir, 'top.ts')).message, /threw while loading: no database/);
});

test('bare imports resolve through Node (built-ins and packages)', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'h.ts'), "import { isIP } from 'node:net';\nexport default (ip: string): number => isIP(ip);\n");
  assert.equal((loadHookModule(join(dir, 'h.ts')) as (ip: string) => number)('::1'), 6);
});
