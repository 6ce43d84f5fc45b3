/**
 * The control-socket protobuf schema at run time (protobufjs reflection).
 *
 * Inputs: `src/control/proto/smtpd.proto`, parsed once on first use with field names kept as
 * written (Halon's names are lower case already, so JSON names equal proto names).
 * Outputs: message types by short name, and encode/decode helpers in three object forms:
 * - `internal`: what handlers see — 64-bit integers as numbers, enums by name, bytes as
 *   Buffers, absent fields undefined, and the name of the set member of each oneof;
 * - `json`: proto3 JSON mapping as halon-api and `halonctl --json` print it — 64-bit integers
 *   as strings, enums by name, bytes as base64, default values left out;
 * - `full`: like `json` but with every scalar present (defaults filled), for text output.
 * Invariants: encoding goes through `Type.fromObject`, which accepts enum names or numbers and
 * numbers, strings or Longs for 64-bit fields; decoding never returns protobufjs instances.
 * Errors: an unknown type name throws (a programming error); malformed bytes make
 * `decodeMessage` throw a `MalformedMessageError` with protobufjs' reason.
 *
 * Why reflection and not generated code: the .proto is the single source of truth, copied
 * from Halon's reference schema and checked against it by a test; generated code would be a
 * second copy to keep in step. The file is found by walking up from this module's folder to
 * the package root, which works from `src/control/` (ts sources) and `dist/src/control/`
 * (compiled) alike, without a copy step in the build; `npm pack` ships src/ (no "files" list).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as protobuf from 'protobufjs';

export const PROTO_FILE = 'src/control/proto/smtpd.proto';
const PACKAGE = 'smtpd';
/** Folders to climb from this module to the package root (dist/src/control → root is 3). */
const MAX_CLIMB = 5;

export type ObjectForm = 'internal' | 'json' | 'full';

const FORMS: Record<ObjectForm, protobuf.IConversionOptions> = {
  internal: { longs: Number, enums: String, bytes: Buffer, oneofs: true, defaults: false },
  json: { longs: String, enums: String, bytes: String, json: true, defaults: false },
  full: { longs: String, enums: String, bytes: String, json: true, defaults: true, arrays: true },
};

export class MalformedMessageError extends Error {
  constructor(typeName: string, reason: string) {
    super(`malformed ${typeName}: ${reason}`);
    this.name = 'MalformedMessageError';
  }
}

/** A file of this package by its path relative to the package root. */
export function findPackageFile(relative: string, from = __dirname): string {
  let dir = from;
  for (let i = 0; i <= MAX_CLIMB; i++) {
    const candidate = path.join(dir, relative);
    if (fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error(`${relative} not found above ${from}`);
}

let root: protobuf.Root | undefined;

export function schemaRoot(): protobuf.Root {
  if (!root) {
    const text = fs.readFileSync(findPackageFile(PROTO_FILE), 'utf8');
    root = protobuf.parse(text, { keepCase: true }).root;
    root.resolveAll();
  }
  return root;
}

const types = new Map<string, protobuf.Type>();

/** A message type by its name in package smtpd, e.g. `ProcessStatsResponse`. */
export function messageType(name: string): protobuf.Type {
  let t = types.get(name);
  if (!t) {
    t = schemaRoot().lookupType(`${PACKAGE}.${name}`);
    types.set(name, t);
  }
  return t;
}

export function encodeMessage(name: string, object: object): Buffer {
  const type = messageType(name);
  return Buffer.from(type.encode(type.fromObject(object as Record<string, unknown>)).finish());
}

export function decodeMessage<T = Record<string, unknown>>(name: string, bytes: Uint8Array, form: ObjectForm = 'internal'): T {
  const type = messageType(name);
  let message: protobuf.Message;
  try {
    message = type.decode(bytes);
  } catch (err) {
    throw new MalformedMessageError(name, (err as Error).message);
  }
  return type.toObject(message, FORMS[form]) as T;
}

/** Re-express a plain object (as given to `encodeMessage`) in another form, e.g. for `--json-request`. */
export function normalise<T = Record<string, unknown>>(name: string, object: object, form: ObjectForm): T {
  const type = messageType(name);
  return type.toObject(type.fromObject(object as Record<string, unknown>), FORMS[form]) as T;
}
