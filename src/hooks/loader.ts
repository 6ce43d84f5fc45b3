/**
 * Hook module loader: turns a hook file (`.ts`, `.mts`, `.cts`, `.js`, `.cjs`) into the function
 * its default export names.
 *
 * Inputs: absolute file paths. Output: the hook function (`export default function …`, or
 * `module.exports = function …`). Errors: `HookLoadError` with a one-line, operator-readable
 * reason (file missing, syntax error with file:line:column, top-level throw, no function
 * exported); the caller collects them into a ConfigInvalidError.
 *
 * How modules are compiled:
 * - TypeScript is transpiled with esbuild (`transformSync`, CommonJS, inline source map). Type
 *   checking is the author's editor's job; type-only imports (`import type … from 'halyard'`)
 *   vanish here. Source maps are switched on for the process (`process.setSourceMapsEnabled`)
 *   so a hook's stack trace names its `.ts` lines.
 * - Every module reached by a relative or absolute path (the hook and its own helpers, `.ts` or
 *   `.js`) is compiled by this loader into a `node:module` Module that lives in a per-generation
 *   cache, never in Node's global `require.cache`. Bare specifiers (`node:dns`, npm packages)
 *   go to Node's ordinary `require`, resolved from the hook file's folder; `halyard` is the
 *   daemon's own package (src/index.ts), so hooks call the running daemon's functions.
 *
 * Invariants: one `HookModuleLoader` is one generation: a file required twice in a generation
 * (two hooks sharing a helper) is one module instance, as in Node. A reload makes a new loader,
 * so changed files are read and compiled again and old module state is not shared with the new
 * generation. Nothing here touches Node's global module cache or require.extensions.
 */
import Module from 'node:module';
import { readFileSync, statSync } from 'node:fs';
import { dirname, extname, resolve as resolvePath } from 'node:path';
import { transformSync, type Message } from 'esbuild';

/** Node's internals used here; stable since Node 12 but not in @types/node. */
interface InternalModule extends Module {
  filename: string;
  paths: string[];
  loaded: boolean;
  exports: unknown;
  require: (id: string) => unknown;
  _compile(content: string, filename: string): unknown;
}
interface InternalModuleStatic {
  new (id: string, parent?: Module): InternalModule;
  _nodeModulePaths(from: string): string[];
  prototype: InternalModule;
}
const NodeModule = Module as unknown as InternalModuleStatic;

/** Message: `<file>[:line[:column]]: <reason>`, naming the file at fault (maybe a helper). */
export class HookLoadError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
    where: string = file,
  ) {
    super(`${where}: ${reason}`);
    this.name = 'HookLoadError';
  }
}

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts']);
const JS_EXTENSIONS = new Set(['.js', '.cjs']);
/** Probe order for extension-less relative requests (`./lib` → lib.ts …). */
const PROBE_EXTENSIONS = ['.ts', '.cts', '.mts', '.js', '.cjs', '.json'];
/** TypeScript's nodenext style writes `./lib.js` for lib.ts; map those back. */
const TS_TWIN: Record<string, string> = { '.js': '.ts', '.cjs': '.cts', '.mjs': '.mts' };

let sourceMapsOn = false;

export type AnyHookFunction = (ctx: never) => unknown;

export class HookModuleLoader {
  private readonly cache = new Map<string, InternalModule>();

  /** Load a hook file and return its default-exported function. */
  load(file: string): AnyHookFunction {
    const abs = resolvePath(file);
    const ext = extname(abs);
    if (!TS_EXTENSIONS.has(ext) && !JS_EXTENSIONS.has(ext)) {
      throw new HookLoadError(abs, `unsupported hook file type "${ext || '(none)'}" (use .ts, .mts, .cts, .js or .cjs)`);
    }
    if (!isFile(abs)) throw new HookLoadError(abs, 'file not found');
    const exported = this.requireFile(abs);
    return pickFunction(abs, exported);
  }

  /** Compile (once per generation) and return the exports of a local module file. */
  private requireFile(file: string): unknown {
    const cached = this.cache.get(file);
    if (cached) return cached.exports;
    const ext = extname(file);
    if (ext === '.json') return this.loadJson(file);
    const source = readSource(file);
    const code = TS_EXTENSIONS.has(ext) ? transpile(file, source) : source;
    const mod = new NodeModule(file);
    mod.filename = file;
    mod.paths = NodeModule._nodeModulePaths(dirname(file));
    mod.require = (request: string) => this.requireFrom(mod, request);
    // Registered before compiling so that require cycles see the partial exports, as in Node.
    this.cache.set(file, mod);
    try {
      mod._compile(code, file);
    } catch (err) {
      this.cache.delete(file);
      throw compileError(file, err);
    }
    mod.loaded = true;
    return mod.exports;
  }

  private loadJson(file: string): unknown {
    const mod = new NodeModule(file);
    try {
      mod.exports = JSON.parse(readSource(file));
    } catch (err) {
      throw new HookLoadError(file, `invalid JSON: ${(err as Error).message}`);
    }
    this.cache.set(file, mod);
    return mod.exports;
  }

  /** The `require` a hook module sees: local paths through this loader, the rest through Node. */
  private requireFrom(parent: InternalModule, request: string): unknown {
    // The package itself: hooks call the daemon's own functions (queue_suspend, memory_*, …).
    if (request === 'halyard') return require('../index');
    if (!isPathRequest(request)) return NodeModule.prototype.require.call(parent, request);
    const target = resolveLocal(dirname(parent.filename), request);
    if (!target) {
      const err = new Error(`Cannot find module '${request}' from ${parent.filename}`) as Error & { code: string };
      err.code = 'MODULE_NOT_FOUND';
      throw err;
    }
    if (extname(target) === '.node' || extname(target) === '.mjs') return NodeModule.prototype.require.call(parent, target);
    return this.requireFile(target);
  }
}

/** Load one hook file in a fresh generation (convenience for tools and tests). */
export function loadHookModule(file: string): AnyHookFunction {
  return new HookModuleLoader().load(file);
}

function isPathRequest(request: string): boolean {
  return request.startsWith('./') || request.startsWith('../') || request === '.' || request === '..' || request.startsWith('/');
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Node's CommonJS probing, plus TypeScript's `.js`-means-`.ts` convention. */
function resolveLocal(fromDir: string, request: string): string | null {
  const base = resolvePath(fromDir, request);
  if (isFile(base)) return base;
  const twin = TS_TWIN[extname(base)];
  if (twin) {
    const ts = base.slice(0, -extname(base).length) + twin;
    if (isFile(ts)) return ts;
  }
  for (const ext of PROBE_EXTENSIONS) if (isFile(base + ext)) return base + ext;
  for (const ext of PROBE_EXTENSIONS) if (isFile(`${base}/index${ext}`)) return `${base}/index${ext}`;
  return null;
}

function readSource(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new HookLoadError(file, `cannot read file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function transpile(file: string, source: string): string {
  if (!sourceMapsOn) {
    // Global switch (Node ≥ 16.6): stack traces of transpiled hooks then point at .ts lines.
    process.setSourceMapsEnabled(true);
    sourceMapsOn = true;
  }
  try {
    return transformSync(source, {
      loader: 'ts',
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      sourcemap: 'inline',
      sourcefile: file,
    }).code;
  } catch (err) {
    const errors = (err as { errors?: Message[] }).errors;
    if (!errors?.length) throw new HookLoadError(file, (err as Error).message);
    const first = errors[0];
    const where = first.location ? `${file}:${first.location.line}:${first.location.column + 1}` : file;
    throw new HookLoadError(file, `syntax error: ${errors.map((m: Message) => m.text).join('; ')}`, where);
  }
}

/** A compile or top-level evaluation failure, as one line naming file and line where possible. */
function compileError(file: string, err: unknown): HookLoadError {
  if (err instanceof HookLoadError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  if (e.name === 'SyntaxError') {
    // V8 puts "file:line" as the first line of a SyntaxError's stack.
    const where = /^(\/[^\n]*:\d+)\n/.exec(e.stack ?? '')?.[1];
    return new HookLoadError(file, `syntax error: ${e.message}`, where ?? file);
  }
  return new HookLoadError(file, `module threw while loading: ${e.message}`);
}

function pickFunction(file: string, exported: unknown): AnyHookFunction {
  if (typeof exported === 'function') return exported as AnyHookFunction;
  const def = (exported as { default?: unknown } | null | undefined)?.default;
  if (typeof def === 'function') return def as AnyHookFunction;
  const found = def === undefined ? 'no default export' : `a default export of type ${typeof def}`;
  throw new HookLoadError(file, `a hook module must export a function as default (export default function …); found ${found}`);
}
