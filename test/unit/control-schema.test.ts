import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as protobuf from 'protobufjs';
import { decodeMessage, encodeMessage, messageType, normalise, schemaRoot } from '../../src/control/schema';
import { hasReference, protocDecode, protocEncode, protocSkip, REFERENCE_PROTO } from './control-helpers';

type Described = Record<string, unknown>;

function describeType(t: protobuf.Type): Described {
  const fields: Described = {};
  for (const f of t.fieldsArray) {
    f.resolve();
    fields[f.name] = {
      id: f.id,
      type: f.resolvedType ? f.resolvedType.fullName : f.type,
      repeated: f.repeated,
      map: f.map ? (f as unknown as protobuf.MapField).keyType : false,
      oneof: f.partOf?.name ?? null,
    };
  }
  return fields;
}

function collect(ns: protobuf.NamespaceBase, out: Map<string, Described>): Map<string, Described> {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type) out.set(nested.fullName, describeType(nested));
    else if (nested instanceof protobuf.Enum) out.set(nested.fullName, { enum: { ...nested.values } });
    if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) collect(nested, out);
  }
  return out;
}

test('every message and enum of the project .proto equals the reference schema (names, numbers, types)', { skip: hasReference() ? false : `reference schema not found at ${REFERENCE_PROTO}` }, () => {
  const reference = protobuf.parse(fs.readFileSync(REFERENCE_PROTO, 'utf8'), { keepCase: true }).root;
  reference.resolveAll();
  const ours = collect(schemaRoot(), new Map());
  const theirs = collect(reference, new Map());
  assert.ok(ours.size > 100, `only ${ours.size} definitions loaded`);
  for (const [name, desc] of ours) {
    assert.ok(theirs.has(name), `${name} is not in the reference schema`);
    assert.deepEqual(desc, theirs.get(name), name);
  }
});

test('the project schema has every message the control commands name', () => {
  for (const name of ['ProcessStatsResponse', 'QueueListRequest', 'QueueGroupByRequest', 'QueueUpdateRequest', 'QueueExportRequest', 'HSLMemoryListRequest', 'ResolverCacheClearRequest', 'SuspendAddRequest', 'PolicyRateRefillRequest']) {
    assert.ok(messageType(name));
  }
});

test('json form: 64-bit integers as strings, enums by name (proto3 JSON mapping)', () => {
  const bytes = encodeMessage('QueueUpdateResponse', { affected: 12, working: 1 });
  assert.deepEqual(decodeMessage('QueueUpdateResponse', bytes, 'json'), { affected: '12', working: '1' });
  assert.deepEqual(decodeMessage('QueueUpdateResponse', bytes, 'internal'), { affected: 12, working: 1 });
  assert.deepEqual(normalise('Condition', { queues: [{ queue: 1 }] }, 'json'), { queues: [{ queue: 'DEFER' }] });
});

test('malformed bytes are reported, not thrown as protobufjs errors', () => {
  assert.throws(() => decodeMessage('HSLMemoryRequest', Buffer.from([0x0a, 0x05, 0x61])), /malformed HSLMemoryRequest/);
});

test('protoc-encoded ProcessStatsResponse decodes with the project schema', { skip: protocSkip() }, () => {
  const bytes = protocEncode(
    'ProcessStatsResponse',
    `process { pid: 4242 runtime: 1.5 version { major: 6 minor: 4 } }
     servers { serverid: "inbound" connections { concurrent: 3 maxconcurrent: 100 } }
     queue { queue { defer { size: 7 } active { size: 2 } } freeze { hold { size: 1 } } }`,
  );
  const obj = decodeMessage('ProcessStatsResponse', bytes, 'json');
  assert.deepEqual(obj, {
    process: { pid: '4242', runtime: 1.5, version: { major: '6', minor: '4' } },
    servers: [{ serverid: 'inbound', connections: { concurrent: '3', maxconcurrent: '100' } }],
    queue: { queue: { defer: { size: '7' }, active: { size: '2' } }, freeze: { hold: { size: '1' } } },
  });
});

test('project-encoded messages decode with protoc', { skip: protocSkip() }, () => {
  const bytes = encodeMessage('HSLMemoryStoreRequest', { key: 'k', value: '{"a":[1,2]}', return: true });
  assert.equal(protocDecode('HSLMemoryStoreRequest', bytes).trim(), 'key: "k"\nvalue: "{\\"a\\":[1,2]}"\nreturn: true');
});
