/**
 * The JSON Schemas of the five config files (and halyard-api's api.yaml) and their validators.
 *
 * Inputs: parsed YAML (plain JS values). Outputs: a list of {path, reason} in the loader's
 * dotted-path form (`servers.0.listeners.1.port`), one per problem, never just the first
 * (`allErrors`).
 * Invariants: the schemas are the files in `./schemas/`, imported as JSON so that `tsc` copies
 * them next to the compiled code (dist/src/config/schemas/) and no path has to be computed at
 * run time. They are compiled once, when this module is first used.
 * Errors: none thrown for invalid data; a broken schema file throws at compile time (a bug).
 *
 * The formats `duration`, `size`, `rate` and `match` are annotations here: ajv accepts any
 * value of the right type, and the normaliser reports syntax errors with the precise reason
 * from `syntax.ts` instead of a generic "must match format".
 */
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import smtpd from './schemas/smtpd.schema.json';
import smtpdApp from './schemas/smtpd-app.schema.json';
import smtpdPolicy from './schemas/smtpd-policy.schema.json';
import smtpdSuspend from './schemas/smtpd-suspend.schema.json';
import smtpdDelivery from './schemas/smtpd-delivery.schema.json';
import api from './schemas/api.schema.json';

export type SchemaName = 'smtpd' | 'smtpd-app' | 'smtpd-policy' | 'smtpd-suspend' | 'smtpd-delivery' | 'api';

/** The schemas in documentation order. */
export const SCHEMAS: ReadonlyArray<{ name: SchemaName; schema: Record<string, unknown> }> = [
  { name: 'smtpd', schema: smtpd },
  { name: 'smtpd-app', schema: smtpdApp },
  { name: 'smtpd-policy', schema: smtpdPolicy },
  { name: 'smtpd-suspend', schema: smtpdSuspend },
  { name: 'smtpd-delivery', schema: smtpdDelivery },
  { name: 'api', schema: api },
];

export interface SchemaProblem {
  path: string;
  reason: string;
}

let validators: Map<SchemaName, ValidateFunction> | undefined;

function compileAll(): Map<SchemaName, ValidateFunction> {
  const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
  // Documentation-only keyword: the default of a key when it cannot be written as a JSON value.
  ajv.addVocabulary(['x-default']);
  for (const f of ['duration', 'size', 'rate', 'match']) ajv.addFormat(f, true);
  return new Map(SCHEMAS.map(({ name, schema }) => [name, ajv.compile(schema)]));
}

/** Validate `data` against the named schema. */
export function validateAgainst(name: SchemaName, data: unknown): SchemaProblem[] {
  validators ??= compileAll();
  const validate = validators.get(name)!;
  if (validate(data)) return [];
  const seen = new Set<string>();
  const out: SchemaProblem[] = [];
  for (const e of validate.errors ?? []) {
    const p = describe(e);
    const key = `${p.path}\0${p.reason}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(p);
  }
  return out;
}

/** `/servers/0/listeners` → `servers.0.listeners` (JSON Pointer, RFC 6901 §4 unescaping). */
export function pointerToPath(pointer: string): string {
  if (pointer === '') return '';
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  null: 'null',
};

type Describer = (e: ErrorObject, path: string) => SchemaProblem;

/** One entry per ajv keyword we expect from our schemas; anything else falls back to ajv's text. */
const DESCRIBERS: Readonly<Record<string, Describer>> = {
  additionalProperties: (e, path) => ({
    path: join(path, String(e.params.additionalProperty)),
    reason: `unknown key (expected one of: ${Object.keys(propertiesOf(e.parentSchema)).join(', ')})`,
  }),
  required: (e, path) => ({ path: join(path, String(e.params.missingProperty)), reason: 'is required' }),
  type: (e, path) => ({ path, reason: typeReason(e) }),
  enum: (e, path) => ({ path, reason: `must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}` }),
  minItems: (e, path) => ({ path, reason: `must have at least ${e.params.limit} item${e.params.limit === 1 ? '' : 's'}` }),
  minProperties: (_e, path) => ({ path, reason: 'must not be empty' }),
  minLength: (e, path) => ({ path, reason: e.params.limit === 1 ? 'must not be empty' : `must be at least ${e.params.limit} characters` }),
  maxLength: (e, path) => ({ path, reason: `must be at most ${e.params.limit} characters` }),
  minimum: (e, path) => ({ path, reason: `must be >= ${e.params.limit}` }),
  maximum: (e, path) => ({ path, reason: `must be <= ${e.params.limit}` }),
  uniqueItems: (e, path) => ({ path, reason: `items ${e.params.j} and ${e.params.i} are the same` }),
  pattern: (e, path) => ({ path, reason: `invalid value: ${descriptionOf(e.parentSchema) ?? `must match ${e.params.pattern}`}` }),
};

function describe(e: ErrorObject): SchemaProblem {
  const path = pointerToPath(e.instancePath);
  const d = DESCRIBERS[e.keyword];
  return d ? d(e, path) : { path, reason: e.message ?? `fails ${e.keyword}` };
}

function typeReason(e: ErrorObject): string {
  const types = String(e.params.type).split(',');
  const base = `must be ${types.map((t) => TYPE_WORDS[t] ?? t).join(' or ')}`;
  // YAML reads unquoted `version: 6.8` or `chmod: 0660` as numbers; Halon's files quote them.
  const quote = types.length === 1 && types[0] === 'string' && typeof e.data === 'number';
  return quote ? `${base}; quote it: "${String(e.data)}"` : base;
}

function propertiesOf(schema: unknown): Record<string, unknown> {
  const p = (schema as { properties?: Record<string, unknown> } | undefined)?.properties;
  return p ?? {};
}

function descriptionOf(schema: unknown): string | undefined {
  return (schema as { description?: string } | undefined)?.description;
}
