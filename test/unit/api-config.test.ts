/**
 * api.yaml loading (src/config/api.ts), the request envelope of halyard-api
 * (src/api/envelope.ts) and the committed OpenAPI document.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadApiConfig, testApiConfig } from '../../src/config/api';
import { ConfigInvalidError } from '../../src/config/types';
import { ApiError, parseEnvelope } from '../../src/api/envelope';
import { renderOpenApi } from '../../src/api/openapi';
import { renderSubmissionOpenApi } from '../../src/http/openapi';
import { decodeMessage } from '../../src/control/schema';
import { openApiPath } from '../../scripts/gen-openapi';

function write(text: string, files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halyard-api-config-'));
  for (const [name, data] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), data);
  const file = path.join(dir, 'api.yaml');
  fs.writeFileSync(file, text);
  return file;
}

test('a minimal api.yaml gets its defaults; relative socket paths resolve against the file', () => {
  const file = write('authentication:\n  secret: s\nlisteners:\n  - port: 8080\nenvironment:\n  controlsockets:\n    smtpd:\n      path: smtpd.ctl\n    rated:\n      port: 5001\n');
  const c = loadApiConfig(file);
  assert.equal(c.secret, 's');
  assert.deepEqual(c.listeners, [{ port: 8080, maxsize: 52_428_800 }]);
  assert.deepEqual(c.controlsockets.smtpd, { path: path.join(path.dirname(file), 'smtpd.ctl') });
  assert.deepEqual(c.controlsockets.rated, { host: '127.0.0.1', port: 5001 });
  assert.equal(c.accounting, false);
});

test('every error of api.yaml is listed as file: key.path: reason', () => {
  const file = write(
    'listeners:\n  - port: 70000\n    address: nowhere\n    maxsize: 10KB\n    pki: {certificate: {path: missing.pem}, privatekey: {data: x}}\n' +
      '  - port: 25\n  - port: 25\nenvironment:\n  controlsockets:\n    smtpd: {path: a.ctl, port: 5000}\n    rated: {}\n    other: {path: x}\n    dlpd: {path: d.ctl, tls: {verify: false}}\n',
  );
  const lines = testApiConfig(file).map((e) => `${e.path}: ${e.reason}`);
  assert.deepEqual(lines.sort(), [
    'environment.controlsockets.dlpd.tls: TLS needs a TCP control socket (port), not a Unix socket path',
    'environment.controlsockets.other: unknown key (expected one of: smtpd, rated, dlpd)',
    'environment.controlsockets.rated: needs path or port',
    'environment.controlsockets.smtpd: give either path or port, not both',
    'listeners.0.address: "nowhere" is not an IPv4 or IPv6 address',
    'listeners.0.maxsize: invalid size "10KB": decimal unit KB is not accepted, use the binary units KiB, MiB, GiB, TiB',
    `listeners.0.pki.certificate.path: cannot read ${path.join(path.dirname(file), 'missing.pem')}: no such file`,
    'listeners.0.port: must be <= 65535',
    'listeners.2.port: port 25 on all addresses is already used by listeners.1',
  ]);
  assert.throws(() => loadApiConfig(file), (e: unknown) => e instanceof ConfigInvalidError && e.message.startsWith(`${file}: `));
  assert.deepEqual(testApiConfig(write('{}')).map((e) => `${e.path}: ${e.reason}`), ['listeners: is required']);
});

test('a listener pki is read and checked: a key that does not fit its certificate is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halyard-api-pki-'));
  for (const n of ['a', 'b']) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-days', '2', '-keyout', path.join(dir, `${n}.key`), '-out', path.join(dir, `${n}.pem`)], { stdio: 'ignore' });
  }
  const good = write(`listeners:\n  - port: 0\n    pki: {certificate: {path: ${dir}/a.pem}, privatekey: {path: ${dir}/a.key}}\n`);
  assert.match(loadApiConfig(good).listeners[0].tls!.cert, /BEGIN CERTIFICATE/);
  const bad = write(`listeners:\n  - port: 0\n    pki: {certificate: {path: ${dir}/a.pem}, privatekey: {path: ${dir}/b.key}}\n`);
  assert.deepEqual(testApiConfig(bad).map((e) => e.path), ['listeners.0.pki']);
});

const SMTPD = new Set(['smtpd'] as const);

function envelopeError(body: unknown): string {
  try {
    parseEnvelope(body, SMTPD);
  } catch (e) {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 400);
    return e.message;
  }
  assert.fail('accepted');
}

test('the command is a Halon letter or a Halyard command name; the payload is encoded strictly', () => {
  // The worked example of halon-api.md §3.3 (10 deferred items from example.org), from its JSON form.
  const payload = { conditions: { queues: [{ queue: 'DEFER' }], senders: [{ domain: { value: 'example.org' } }] }, paging: { limit: '10' } };
  const byLetter = parseEnvelope({ version: { major: 6, minor: 6 }, program: 'smtpd', command: 'F', payload }, SMTPD);
  assert.equal(byLetter.info.letter, 'F');
  assert.deepEqual(byLetter.version, { major: 6, minor: 6 });
  assert.equal(byLetter.body!.toString('hex'), '0a150a0208015a0f120d0a0b6578616d706c652e6f72671a02100a');
  assert.deepEqual(decodeMessage('QueueListRequest', byLetter.body!, 'json'), payload);
  const byName = parseEnvelope({ program: 'smtpd', command: 'configReload' }, SMTPD);
  assert.equal(byName.info.letter, 'r');
  assert.equal(byName.body, undefined);
});

test('envelope errors name what is wrong', () => {
  assert.match(envelopeError([]), /must be a JSON object/);
  assert.match(envelopeError({ program: 'rated', command: 'q' }), /unknown program "rated" \(configured: smtpd\)/);
  assert.match(envelopeError({ program: 'smtpd', command: 'Z' }), /unknown command "Z" for program smtpd/);
  assert.match(envelopeError({ program: 'smtpd', command: 'toString' }), /unknown command "toString"/);
  assert.match(envelopeError({ program: 'smtpd', command: 'q', extra: 1 }), /unknown key "extra"/);
  assert.match(envelopeError({ program: 'smtpd', command: 'q', version: { major: 6 } }), /version must be/);
  assert.match(envelopeError({ program: 'smtpd', command: 'r', payload: { a: 1 } }), /command r takes no payload/);
  assert.match(envelopeError({ program: 'smtpd', command: 'F', payload: { conditions: 5 } }), /QueueListRequest\.conditions: object expected/);
  assert.match(envelopeError({ program: 'smtpd', command: 'F', payload: { paging: { limit: 'ten' } } }), /paging\.limit: integer expected/);
  assert.match(envelopeError({ program: 'smtpd', command: 'F', payload: { paging: { limit: -1 } } }), /-1 is out of range for uint64/);
  assert.match(envelopeError({ program: 'smtpd', command: 'G', payload: { move: { freeze: 'BOGUS' } } }), /move\.freeze: enum value expected \(one of HOLD, UPDATE\)/);
  assert.match(envelopeError({ program: 'smtpd', command: 'G', payload: { move: { freeze: 'HOLD' }, actiontype: 'DELETE' } }), /move and actiontype are both members of oneof task/);
});

test('docs/openapi/halyard-api.json is what halyard-api serves', () => {
  const committed = fs.readFileSync(openApiPath(), 'utf8');
  assert.equal(committed, renderOpenApi(), 'docs/openapi/halyard-api.json is stale: run `npm run build && npm run docs`');
  const doc = JSON.parse(committed) as { openapi: string; paths: Record<string, unknown> };
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/api/protobuf']);
});

test('docs/openapi/submission.json is what HTTP submission servers serve', () => {
  const committed = fs.readFileSync(path.join(path.dirname(openApiPath()), 'submission.json'), 'utf8');
  assert.equal(committed, renderSubmissionOpenApi(), 'docs/openapi/submission.json is stale: run `npm run build && npm run docs`');
  const doc = JSON.parse(committed) as { openapi: string; paths: Record<string, unknown> };
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/v1/submission']);
});
