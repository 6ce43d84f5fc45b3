/**
 * The request envelope of `POST /api/protobuf` (halon-api.md §4.3) and the payload check.
 *
 * Inputs: the parsed JSON body `{version, program, command, payload}`, the programs that have
 * a control socket configured.
 * Outputs: a `Relay` — which control socket, which command letter, the encoded request body
 * (or none for body-less commands), the API version to announce, and the message names the
 * reply is decoded with — or an `ApiError` with the HTTP status and a bland reason.
 * Invariants: a payload is encoded only after `checkFits` accepted every key and value of it,
 * because protobufjs' `fromObject` silently drops unknown fields, unknown enum names and
 * non-numeric strings for integers: a typo in a queue update's condition must not turn into an
 * update of the whole queue. The command is looked up in the command table (commands.ts),
 * never built from the peer's input.
 * Errors: 400 for every envelope or payload problem, with the field path in the reason.
 */
import type * as protobuf from 'protobufjs';
import { COMMANDS, commandByLetter, type CommandInfo, type CommandName } from '../control/commands';
import type { ApiVersion } from '../control/framing';
import { CLIENT_API_VERSION } from '../control/client';
import { encodeMessage, messageType } from '../control/schema';
import { API_PROGRAMS, type ApiProgram } from '../config/api';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface Relay {
  program: ApiProgram;
  name: CommandName;
  info: CommandInfo;
  body?: Buffer;
  version: ApiVersion;
}

const ENVELOPE_KEYS = new Set(['version', 'program', 'command', 'payload']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Turn a parsed body into a relay plan; `configured` = programs with a control socket. */
export function parseEnvelope(body: unknown, configured: ReadonlySet<ApiProgram>): Relay {
  if (!isRecord(body)) throw new ApiError(400, 'the body must be a JSON object {version, program, command, payload}');
  for (const k of Object.keys(body)) if (!ENVELOPE_KEYS.has(k)) throw new ApiError(400, `unknown key "${k}" (expected version, program, command, payload)`);
  const program = parseProgram(body.program, configured);
  const name = parseCommand(body.command, program);
  const info: CommandInfo = COMMANDS[name];
  return { program, name, info, body: encodePayload(info, body.payload), version: parseVersion(body.version) };
}

function parseProgram(v: unknown, configured: ReadonlySet<ApiProgram>): ApiProgram {
  if (typeof v !== 'string') throw new ApiError(400, 'program is required (a string such as "smtpd")');
  const known = (API_PROGRAMS as readonly string[]).includes(v) ? (v as ApiProgram) : undefined;
  if (!known || !configured.has(known)) {
    const list = [...configured].join(', ') || 'none';
    throw new ApiError(400, `unknown program ${JSON.stringify(v)} (configured: ${list})`);
  }
  return known;
}

/**
 * Halon's API takes the one-letter command (halon-api.md §4.3, §5.2); Halyard also accepts
 * the command's name from its table (e.g. "queueList"), which reads better in scripts.
 */
function parseCommand(v: unknown, program: ApiProgram): CommandName {
  if (typeof v !== 'string' || v === '') throw new ApiError(400, 'command is required (a command letter such as "F", or a name such as "queueList")');
  // Only smtpd's command table is known (rated and dlpd schemas were never obtained).
  const name = program === 'smtpd' ? (commandByLetter(v) ?? (Object.hasOwn(COMMANDS, v) ? (v as CommandName) : undefined)) : undefined;
  if (!name) throw new ApiError(400, `unknown command ${JSON.stringify(v)} for program ${program}`);
  return name;
}

function parseVersion(v: unknown): ApiVersion {
  if (v === undefined || v === null) return CLIENT_API_VERSION;
  const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 255;
  if (!isRecord(v) || !ok(v.major) || !ok(v.minor)) throw new ApiError(400, 'version must be {"major": <0-255>, "minor": <0-255>}');
  return { major: v.major as number, minor: v.minor as number };
}

function encodePayload(info: CommandInfo, payload: unknown): Buffer | undefined {
  if (info.request === undefined) {
    if (payload !== undefined && payload !== null && !(isRecord(payload) && Object.keys(payload).length === 0)) {
      throw new ApiError(400, `command ${info.letter} takes no payload`);
    }
    return undefined;
  }
  const object = payload ?? {};
  const problem = checkFits(messageType(info.request), object, info.request);
  if (problem) throw new ApiError(400, `payload does not fit ${info.request}: ${problem}`);
  try {
    return encodeMessage(info.request, object as object);
  } catch (err) {
    throw new ApiError(400, `payload does not fit ${info.request}: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Strict proto3 JSON check (https://protobuf.dev/programming-guides/json/): every key a field
// of the message, every value of the field's JSON type. Returns the first problem or undefined.

const INT64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INT32 = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);
const UNSIGNED = new Set(['uint32', 'uint64', 'fixed32', 'fixed64']);
const FLOATS = new Set(['double', 'float']);

export function checkFits(type: protobuf.Type, value: unknown, path: string): string | undefined {
  if (!isRecord(value)) return `${path}: object expected`;
  const oneofSeen = new Map<string, string>();
  for (const [key, v] of Object.entries(value)) {
    // Halon's field names are lower case, so the JSON name of every field is its proto name.
    const field = Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    if (!field) return `${path}.${key}: unknown field (${type.name} has: ${Object.keys(type.fields).join(', ')})`;
    if (v === null) continue; // proto3 JSON: null means the default
    const oneof = field.partOf?.name;
    if (oneof) {
      const other = oneofSeen.get(oneof);
      if (other) return `${path}: ${other} and ${key} are both members of oneof ${oneof}; give one`;
      oneofSeen.set(oneof, key);
    }
    const problem = checkField(field.resolve(), v, `${path}.${key}`);
    if (problem) return problem;
  }
  return undefined;
}

function checkField(field: protobuf.Field, v: unknown, path: string): string | undefined {
  const f = field as protobuf.Field & { map?: boolean };
  if (f.map) {
    if (!isRecord(v)) return `${path}: object expected (a map)`;
    for (const [k, item] of Object.entries(v)) {
      const p = checkValue(field, item, `${path}.${k}`);
      if (p) return p;
    }
    return undefined;
  }
  if (field.repeated) {
    if (!Array.isArray(v)) return `${path}: array expected`;
    for (let i = 0; i < v.length; i++) {
      const p = checkValue(field, v[i], `${path}.${i}`);
      if (p) return p;
    }
    return undefined;
  }
  return checkValue(field, v, path);
}

function checkValue(field: protobuf.Field, v: unknown, path: string): string | undefined {
  const rt = field.resolvedType;
  if (rt && 'fields' in rt) return checkFits(rt as protobuf.Type, v, path);
  if (rt && 'values' in rt) return checkEnum(rt as protobuf.Enum, v, path);
  return checkScalar(field.type, v, path);
}

function checkEnum(e: protobuf.Enum, v: unknown, path: string): string | undefined {
  if (typeof v === 'string' && Object.hasOwn(e.values, v)) return undefined;
  if (typeof v === 'number' && Number.isInteger(v) && Object.hasOwn(e.valuesById, v)) return undefined;
  return `${path}: enum value expected (one of ${Object.keys(e.values).join(', ')})`;
}

function checkScalar(type: string, v: unknown, path: string): string | undefined {
  if (type === 'string') return typeof v === 'string' ? undefined : `${path}: string expected`;
  if (type === 'bool') return typeof v === 'boolean' ? undefined : `${path}: boolean expected`;
  if (type === 'bytes') return typeof v === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(v) ? undefined : `${path}: base64 string expected`;
  if (FLOATS.has(type)) {
    const ok = (typeof v === 'number' && Number.isFinite(v)) || (typeof v === 'string' && (/^(NaN|-?Infinity)$/.test(v) || (v.trim() !== '' && Number.isFinite(Number(v)))));
    return ok ? undefined : `${path}: number expected`;
  }
  if (INT64.has(type) || INT32.has(type)) return checkInteger(type, v, path);
  return `${path}: unsupported field type ${type}`;
}

function checkInteger(type: string, v: unknown, path: string): string | undefined {
  const text = typeof v === 'number' ? (Number.isInteger(v) ? String(v) : '') : typeof v === 'string' ? v : '';
  if (!/^-?\d+$/.test(text)) return `${path}: integer expected (a number or a string of digits)`;
  const n = BigInt(text);
  const bits = INT64.has(type) ? 64n : 32n;
  const [min, max] = UNSIGNED.has(type) ? [0n, (1n << bits) - 1n] : [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n];
  return n < min || n > max ? `${path}: ${text} is out of range for ${type}` : undefined;
}
