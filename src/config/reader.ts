/**
 * Building blocks shared by the config normalisers: reading a YAML file, collecting errors,
 * walking untrusted parsed data safely (`Cursor`), converting the shared syntaxes with their
 * error reported at the right key, reading `{path|data}` file references, deep-freezing.
 *
 * Inputs: a file name; parsed YAML (untrusted: may not match the schema).
 * Outputs: plain values and `ConfigError`s in the form `file: key.path: reason`.
 * Invariants: nothing here throws for bad input — every problem becomes an error in the
 * collector, so one run reports every error of a file. A Cursor over a value of the wrong type
 * yields defaults; the schema pass has already reported the type error, and the loader throws
 * before such defaults can escape.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { ConfigError, FileData } from './types';
import { parseDuration, parseRate, parseSize, validateMatch, ValueSyntaxError, type Rate } from './syntax';
import { validateAgainst, type SchemaName, type SchemaProblem } from './schema';

/** Collects the errors of one file. Schema problems hide later problems at or below their path. */
export class Errors {
  private readonly schema: SchemaProblem[] = [];
  private readonly other: SchemaProblem[] = [];
  constructor(readonly file: string) {}

  add(path: string, reason: string): void {
    this.other.push({ path, reason });
  }

  addSchema(problems: SchemaProblem[]): void {
    this.schema.push(...problems);
  }

  /** Every error, schema errors first, without follow-on errors below a schema error's path. */
  list(): ConfigError[] {
    const covered = (p: string) => this.schema.some((s) => s.path === p || p.startsWith(`${s.path}.`) || s.path === '');
    const rest = this.other.filter((o) => !covered(o.path));
    return [...this.schema, ...rest].map((e) => ({ file: this.file, path: e.path, reason: e.reason }));
  }
}

/** Join key path segments with dots. */
export function keyPath(base: string, key: string | number): string {
  return base === '' ? String(key) : `${base}.${key}`;
}

/**
 * A position in parsed YAML: its value, dotted path, the error collector and the folder that
 * relative paths resolve against. Accessors never throw; wrong types yield the default.
 */
export class Cursor {
  constructor(
    readonly value: unknown,
    readonly path: string,
    readonly errors: Errors,
    readonly dir: string,
  ) {}

  get present(): boolean {
    return this.value !== undefined && this.value !== null;
  }

  get(key: string): Cursor {
    const v = isRecord(this.value) ? this.value[key] : undefined;
    return new Cursor(v, keyPath(this.path, key), this.errors, this.dir);
  }

  items(): Cursor[] {
    if (!Array.isArray(this.value)) return [];
    return this.value.map((v, i) => new Cursor(v, keyPath(this.path, i), this.errors, this.dir));
  }

  keys(): string[] {
    return isRecord(this.value) ? Object.keys(this.value) : [];
  }

  error(reason: string): void {
    this.errors.add(this.path, reason);
  }

  str(): string | undefined;
  str(def: string): string;
  str(def?: string): string | undefined {
    return typeof this.value === 'string' ? this.value : def;
  }

  num(): number | undefined;
  num(def: number): number;
  num(def?: number): number | undefined {
    return typeof this.value === 'number' && Number.isFinite(this.value) ? this.value : def;
  }

  bool(def: boolean): boolean {
    return typeof this.value === 'boolean' ? this.value : def;
  }

  /** The value if it is one of `allowed`, else `def`. */
  oneOf<T extends string | number>(allowed: readonly T[], def: T): T {
    return allowed.includes(this.value as T) ? (this.value as T) : def;
  }

  strings(): string[] {
    return this.items().flatMap((c) => (typeof c.value === 'string' ? [c.value] : []));
  }

  /** An absolute path: the string value (or `def`) resolved against the file's folder. */
  filePath(def: string): string;
  filePath(): string | undefined;
  filePath(def?: string): string | undefined {
    const s = this.str() ?? def;
    return s === undefined ? undefined : resolve(this.dir, s);
  }

  duration(def: number): number;
  duration(): number | undefined;
  duration(def?: number): number | undefined {
    return this.convert(parseDuration, def);
  }

  size(def: number): number {
    return this.convert(parseSize, def) ?? def;
  }

  rate(): Rate | undefined {
    return this.convert(parseRate, undefined);
  }

  /**
   * Check a match value's syntax (and grouping references when ids are known); `ip` for fields
   * holding IP addresses.
   */
  match(groupingIds?: ReadonlySet<string>, opts: { ip?: boolean } = {}): string | string[] | undefined {
    if (!this.present) return undefined;
    try {
      validateMatch(this.value, groupingIds, opts);
    } catch (e) {
      this.error(syntaxReason(e));
    }
    return Array.isArray(this.value) ? this.value.map(String) : String(this.value);
  }

  private convert<T>(parse: (v: string | number) => T, def: T | undefined): T | undefined {
    if (typeof this.value !== 'string' && typeof this.value !== 'number') return def;
    try {
      return parse(this.value);
    } catch (e) {
      this.error(syntaxReason(e));
      return def;
    }
  }

  /** `{path}` or `{data}`; a path is read now (relative to the file's folder). */
  fileData(): FileData | undefined {
    if (!this.present) return undefined;
    const p = this.get('path').str();
    const data = this.get('data').str();
    if (p !== undefined && data !== undefined) {
      this.error('give either path or data, not both');
      return undefined;
    }
    if (data !== undefined) return { data };
    if (p !== undefined) return this.readFile(resolve(this.dir, p));
    this.error('needs path or data');
    return undefined;
  }

  private readFile(abs: string): FileData | undefined {
    try {
      return { path: abs, data: readFileSync(abs, 'utf8') };
    } catch (e) {
      this.get('path').error(`cannot read ${abs}: ${ioReason(e)}`);
      return undefined;
    }
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function syntaxReason(e: unknown): string {
  if (e instanceof ValueSyntaxError) return e.message;
  throw e;
}

export function ioReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT': return 'no such file';
    case 'EACCES': return 'permission denied';
    case 'EISDIR': return 'is a directory';
    default: return code ?? (e as Error).message;
  }
}

/** Result of reading one config file: its root cursor, or `missing` for an absent optional file. */
export type ReadResult = { kind: 'ok'; root: Cursor } | { kind: 'missing' } | { kind: 'failed' };

/**
 * Read and parse a YAML file and validate it against its schema. Problems go to `errors`;
 * `failed` means the file could not be read or parsed at all.
 */
export function readConfigFile(file: string, schema: SchemaName, errors: Errors, optional: boolean): ReadResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (optional && (e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    errors.add('', `cannot read the file: ${ioReason(e)}`);
    return { kind: 'failed' };
  }
  const data = parseYaml(text, errors);
  if (data === undefined) return { kind: 'failed' };
  errors.addSchema(validateAgainst(schema, data));
  return { kind: 'ok', root: new Cursor(data, '', errors, dirname(file)) };
}

/** Parse YAML; errors carry line and column. An empty file is an empty mapping. */
function parseYaml(text: string, errors: Errors): unknown {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const { line, col } = lines.linePos(e.pos[0]);
      errors.add('', `YAML syntax error at line ${line}, column ${col}: ${firstLine(e.message)}`);
    }
    return undefined;
  }
  try {
    const data: unknown = doc.toJS({ maxAliasCount: 100 });
    return data ?? {};
  } catch (e) {
    errors.add('', `YAML error: ${(e as Error).message}`);
    return undefined;
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0];
}

/** Freeze an object graph in place and return it typed as read-only-by-convention. */
export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v)) deepFreeze(child);
  }
  return v;
}

/** Report every value that occurs more than once in `entries` ({value, path}). */
export function reportDuplicates(entries: Array<{ value: string; cursor: Cursor }>, what: string): void {
  const first = new Map<string, Cursor>();
  for (const { value, cursor } of entries) {
    const prev = first.get(value);
    if (prev) cursor.error(`duplicate ${what} "${value}" (first at ${prev.path})`);
    else first.set(value, cursor);
  }
}

/** Set `obj[key] = value` only when value is defined, so optional keys stay absent. */
export function setIf<T extends object, K extends keyof T>(obj: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) obj[key] = value;
}
