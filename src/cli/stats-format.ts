/**
 * Text forms of a decoded message, driven by its schema (pure): `process-stats` prints one
 * `dotted.path: value` line per field, and with `--openmetrics` OpenMetrics text whose metric
 * names are `halon_` + the path joined with `_` (halon-api.md §1.4), e.g.
 * `queue.queue.active.size` → `halon_queue_queue_active_size`.
 *
 * Inputs: a protobufjs Type and the message in the `full` object form (schema.ts).
 * Invariants: the walk follows the schema, not the object, so every field appears (absent
 * sub-messages count as all-zero) in declaration order. Entries of a repeated message are
 * keyed by their `serverid` or `id` field when they have one (that field becomes the label
 * and the `[key]` of the text path), otherwise by position (label `priority` for
 * `priorities`, else `index`). Empty strings are left out of the text form, and strings are
 * never metrics. Every OpenMetrics family is typed `gauge` (Halon documents no types; the
 * counters keep Halon's names, which a `counter` type would have to suffix with `_total`),
 * and the text ends with `# EOF`. The exposition itself lives in src/util/openmetrics.ts
 * (shared with the monitor listener, which types counters as counters).
 */
import * as protobuf from 'protobufjs';
import { familiesFromSamples, renderFamilies } from '../util/openmetrics';

export interface Sample {
  /** Field names from the root, e.g. ['servers', 'connections', 'concurrent']. */
  path: string[];
  /** Text path with keys, e.g. `servers[default].connections.concurrent`. */
  text: string;
  labels: Array<[string, string]>;
  value: string | number | boolean;
  /** False for string and bytes fields (never metrics). */
  numeric: boolean;
}

type Obj = Record<string, unknown> | undefined;

const KEY_FIELDS = ['serverid', 'id'];

function defaultValue(field: protobuf.Field): string | number | boolean {
  if (field.type === 'string' || field.type === 'bytes') return '';
  if (field.type === 'bool') return false;
  return 0;
}

function join(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

function walkRepeated(field: protobuf.Field, type: protobuf.Type, list: unknown[], path: string[], text: string, labels: Array<[string, string]>, out: Sample[]): void {
  const keyField = KEY_FIELDS.find((k) => type.fields[k] !== undefined && type.fields[k].type === 'string');
  list.forEach((item, i) => {
    const element = item as Obj;
    const key = keyField ? String(element?.[keyField] ?? '') : String(i);
    const label = keyField ?? (field.name === 'priorities' ? 'priority' : 'index');
    walk(type, element, [...path, field.name], `${join(text, field.name)}[${key}]`, [...labels, [label, key]], out, keyField);
  });
}

function walk(type: protobuf.Type, obj: Obj, path: string[], text: string, labels: Array<[string, string]>, out: Sample[], skip?: string): void {
  for (const field of type.fieldsArray) {
    if (field.name === skip || field.map) continue;
    field.resolve();
    const value = obj?.[field.name];
    if (field.resolvedType instanceof protobuf.Type) {
      if (field.repeated) walkRepeated(field, field.resolvedType, Array.isArray(value) ? value : [], path, text, labels, out);
      else walk(field.resolvedType, (value ?? undefined) as Obj, [...path, field.name], join(text, field.name), labels, out);
      continue;
    }
    if (field.repeated) continue;
    const v = value === undefined || value === null ? defaultValue(field) : (value as string | number | boolean);
    const numeric = field.type !== 'string' && field.type !== 'bytes';
    out.push({ path: [...path, field.name], text: join(text, field.name), labels, value: v, numeric });
  }
}

export function flattenMessage(type: protobuf.Type, obj: Record<string, unknown>): Sample[] {
  const out: Sample[] = [];
  walk(type, obj, [], '', [], out);
  return out;
}

/** `path: value` lines. */
export function textLines(samples: readonly Sample[]): string {
  return samples
    .filter((s) => s.value !== '')
    .map((s) => `${s.text}: ${s.value}\n`)
    .join('');
}

/** OpenMetrics text (every family a gauge, no HELP); string fields are left out. */
export function openMetrics(samples: readonly Sample[], prefix = 'halon'): string {
  return renderFamilies(familiesFromSamples(samples, { prefix }));
}
