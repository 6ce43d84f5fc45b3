import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SCHEMAS } from '../../src/config/schema';
import { testConfig } from '../../src/config/load';
import { configReferencePath, renderConfigReference } from '../../scripts/gen-config-docs';
import { FIXTURES, hasError, lines, MINIMAL_RUNNING, MINIMAL_STARTUP, tempConfig } from './config-fixtures';

type Schema = Record<string, unknown>;

function resolveRef(root: Schema, s: Schema): Schema {
  if (typeof s.$ref !== 'string') return s;
  const target = s.$ref.slice(2).split('/').reduce<unknown>((o, k) => (o as Schema)[k], root) as Schema;
  return { ...resolveRef(root, target), ...s };
}

/** Visit every property schema (with $ref resolved) and every object schema. */
function walk(root: Schema, s: Schema, path: string, visit: (path: string, prop: Schema | undefined, obj: Schema | undefined) => void): void {
  const r = resolveRef(root, s);
  if (r.type === 'object' || r.properties) visit(path, undefined, r);
  for (const [k, p] of Object.entries((r.properties ?? {}) as Record<string, Schema>)) {
    const child = `${path}.${k}`;
    visit(child, resolveRef(root, p), undefined);
    walk(root, p, child, visit);
  }
  if (r.items) walk(root, r.items as Schema, `${path}[]`, visit);
}

test('every schema property has a description (the reference is generated from them)', () => {
  for (const { name, schema } of SCHEMAS) {
    walk(schema, schema, name, (path, prop) => {
      if (prop) assert.ok(typeof prop.description === 'string' && prop.description.length > 0, `${path} has no description`);
    });
  }
});

test('every mapping rejects unknown keys except the free-form ones', () => {
  const freeForm = new Set(['smtpd.cluster', 'smtpd-policy.policies[].conditions[].then.properties', 'smtpd-policy.policies[].default.properties', 'smtpd-suspend.suspends[].properties']);
  for (const { name, schema } of SCHEMAS) {
    walk(schema, schema, name, (path, _prop, obj) => {
      if (!obj) return;
      if (freeForm.has(path)) assert.notEqual(obj.additionalProperties, false, `${path} should be free-form`);
      else assert.equal(obj.additionalProperties, false, `${path} accepts unknown keys`);
    });
  }
});

test('docs/config-reference.md is what the generator produces from the schemas', () => {
  const committed = readFileSync(configReferencePath(), 'utf8');
  assert.equal(committed, renderConfigReference(), 'docs/config-reference.md is stale: run `npm run build && npm run docs`');
  assert.match(committed, /\| `servers\[\]\.phases\.data\.maxsize` \| size \| `50MiB` \|/);
});

test('testConfig: the shipped fixtures are valid', () => {
  assert.deepEqual(testConfig(join(FIXTURES, 'minimal/smtpd.yaml')), []);
  assert.deepEqual(testConfig(join(FIXTURES, 'full/smtpd.yaml')), []);
});

test('testConfig: errors of every file are returned together', () => {
  const dir = tempConfig({
    'smtpd.yaml': `${MINIMAL_STARTUP}bogus: 1\n`,
    'smtpd-app.yaml': `${MINIMAL_RUNNING}queues: { grouping: { groupings: [ { id: google, remotemx: "*.google.com" } ] } }\nresolver: { cache: { size: -1 } }\n`,
    'smtpd-policy.yaml': 'policies: [ { fields: [ grouping ], conditions: [ { if: { grouping: "&yahoo" }, then: { rate: x } } ] } ]\n',
    'smtpd-suspend.yaml': 'suspends: [ { grouping: "&google" }, { remoteip: 300.1.1.1/8 } ]\n',
    'smtpd-delivery.yaml': 'delivery: { default: { pooling: { timeout: forever } } }\n',
  });
  const errors = testConfig(join(dir, 'smtpd.yaml'));
  const byFile = (f: string) => errors.filter((e) => e.file === join(dir, f));
  hasError(byFile('smtpd.yaml'), 'bogus', /unknown key/);
  hasError(byFile('smtpd-app.yaml'), 'resolver.cache.size', /must be >= 0/);
  hasError(byFile('smtpd-policy.yaml'), 'policies.0.conditions.0.if.grouping', /unknown grouping &yahoo/);
  hasError(byFile('smtpd-policy.yaml'), 'policies.0.conditions.0.then.rate', /invalid rate "x"/);
  hasError(byFile('smtpd-suspend.yaml'), 'suspends.1.remoteip', /"300.1.1.1\/8" is not an IP address or network/);
  hasError(byFile('smtpd-delivery.yaml'), 'delivery.default.pooling.timeout', /invalid duration "forever"/);
  assert.equal(errors.length, 6, lines(errors).join('\n'));
});

test('testConfig: an unparsable smtpd.yaml stops there; a valid one with missing optional files passes', () => {
  const broken = tempConfig({ 'smtpd.yaml': 'servers: [\n' });
  const errors = testConfig(join(broken, 'smtpd.yaml'));
  assert.equal(errors.length >= 1, true);
  assert.ok(errors.every((e) => e.file === join(broken, 'smtpd.yaml')));
  const ok = tempConfig({ 'smtpd.yaml': MINIMAL_STARTUP, 'smtpd-app.yaml': MINIMAL_RUNNING });
  assert.deepEqual(testConfig(join(ok, 'smtpd.yaml')), []);
});
