/**
 * Test helpers for the control socket: protoc (Debian's protobuf-compiler) as an encoder and
 * decoder independent of the project's own, against Halon's reference schema when it is
 * present next to the repository (../shared/reference/smtpd.proto), else against the
 * project's .proto (which control-schema.test.ts proves identical for what it contains).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../../..');
export const PROJECT_PROTO = path.join(ROOT, 'src/control/proto/smtpd.proto');
export const REFERENCE_PROTO = path.resolve(ROOT, '../shared/reference/smtpd.proto');

export function hasReference(): boolean {
  return fs.existsSync(REFERENCE_PROTO);
}

let protoc: boolean | undefined;
export function hasProtoc(): boolean {
  if (protoc === undefined) {
    try {
      execFileSync('protoc', ['--version'], { stdio: 'ignore' });
      protoc = true;
    } catch {
      protoc = false;
    }
  }
  return protoc;
}

/** Reason to skip protoc-based tests, or false to run them. */
export function protocSkip(): string | false {
  return hasProtoc() ? false : 'protoc not installed (apt-get install protobuf-compiler); independent-encoder tests skipped';
}

function schemaArgs(): string[] {
  const file = hasReference() ? REFERENCE_PROTO : PROJECT_PROTO;
  return [`-I${path.dirname(file)}`, file];
}

/** Encode protobuf text format with protoc. */
export function protocEncode(type: string, text: string): Buffer {
  return execFileSync('protoc', [`--encode=smtpd.${type}`, ...schemaArgs()], { input: text });
}

/** Decode bytes to protobuf text format with protoc. */
export function protocDecode(type: string, bytes: Uint8Array): string {
  return execFileSync('protoc', [`--decode=smtpd.${type}`, ...schemaArgs()], { input: bytes }).toString('utf8');
}

export function tempDir(prefix = 'halyard-ctl-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export const SILENT_LOG = { debug() {}, info() {}, warn() {}, error() {} };
