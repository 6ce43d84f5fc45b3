/**
 * Shared key-value memory of the process: what Halon's HSL `memory_*` functions and the
 * control socket's `y`/`z`/`A`/`K` commands (`halyardctl hsl memory …`) share.
 *
 * Inputs: string keys and JSON values. Outputs: copies of the stored values.
 * Invariants: values are kept as JSON text, so a caller never holds a reference into the
 * store (a fetched object can be changed freely) and what the control socket shows is exactly
 * what was stored; `undefined` always means "no such key" (JSON has no undefined). Keys are
 * listed in sorted order. The store lives as long as the process: a config reload keeps it,
 * a restart empties it (as Halon's).
 * Errors: `store` of a value JSON cannot represent (undefined, a function, a cycle, a BigInt)
 * and `inc`/`dec` of a key that holds something other than a number throw a TypeError.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface MemoryStore {
  /** Store `value` under `key`; returns the previous value, if any. */
  store(key: string, value: JsonValue): JsonValue | undefined;
  fetch(key: string): JsonValue | undefined;
  exists(key: string): boolean;
  /** Remove `key`; returns the value it held, undefined when there was none. */
  delete(key: string): JsonValue | undefined;
  /** Every key, sorted. */
  list(): string[];
  /** Add `by` (default 1) to the number under `key` (missing = 0) and return the result. */
  inc(key: string, by?: number): number;
  /** Subtract `by` (default 1); `dec(k, n)` is `inc(k, -n)`. */
  dec(key: string, by?: number): number;
  readonly size: number;
}

function serialise(key: string, value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new TypeError(`memory key ${JSON.stringify(key)}: ${(err as Error).message}`);
  }
  if (text === undefined) throw new TypeError(`memory key ${JSON.stringify(key)}: ${typeof value} is not a JSON value`);
  return text;
}

function parse(text: string | undefined): JsonValue | undefined {
  return text === undefined ? undefined : (JSON.parse(text) as JsonValue);
}

/** The in-process store (one per daemon). */
export class InProcessMemoryStore implements MemoryStore {
  private readonly map = new Map<string, string>();

  store(key: string, value: JsonValue): JsonValue | undefined {
    const previous = this.map.get(key);
    this.map.set(key, serialise(key, value));
    return parse(previous);
  }

  fetch(key: string): JsonValue | undefined {
    return parse(this.map.get(key));
  }

  exists(key: string): boolean {
    return this.map.has(key);
  }

  delete(key: string): JsonValue | undefined {
    const previous = this.map.get(key);
    this.map.delete(key);
    return parse(previous);
  }

  list(): string[] {
    return [...this.map.keys()].sort();
  }

  inc(key: string, by = 1): number {
    if (!Number.isFinite(by)) throw new TypeError(`memory key ${JSON.stringify(key)}: cannot add ${by}`);
    const current = this.fetch(key) ?? 0;
    if (typeof current !== 'number') throw new TypeError(`memory key ${JSON.stringify(key)} holds a ${Array.isArray(current) ? 'array' : current === null ? 'null' : typeof current}, not a number`);
    const next = current + by;
    this.map.set(key, serialise(key, next));
    return next;
  }

  dec(key: string, by = 1): number {
    return this.inc(key, -by);
  }

  get size(): number {
    return this.map.size;
  }
}
