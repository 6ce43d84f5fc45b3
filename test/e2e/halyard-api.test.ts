/**
 * halyard-api end to end: the real daemon (bin/halyard-smtpd) with mail queued over SMTP,
 * halyard-api (bin/halyard-api) as a child process pointed at the daemon's control socket,
 * and plain fetch / https requests as a client would send them (halon-api.md §4.3).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { BIN, message, sendRaw, startDaemon, writeConfig, type ConfigSet, type Daemon } from './harness';

const SECRET = 'correct horse battery staple';
const MAXSIZE = 65_536;

let cfg: ConfigSet;
let d: Daemon;
let api: ChildProcess;
let base: string;
let tlsPort: number;
let apiExited: Promise<number | null>;

function startApi(file: string): Promise<number[]> {
  api = spawn(process.execPath, [path.join(BIN, 'halyard-api'), '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  apiExited = new Promise((resolve) => api.on('exit', (code) => resolve(code)));
  let out = '';
  let err = '';
  api.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`halyard-api did not start: ${err}`)), 15_000);
    api.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('"listening"')) continue;
        clearTimeout(t);
        resolve((JSON.parse(line) as { listeners: Array<{ port: number }> }).listeners.map((l) => l.port));
      }
    });
    api.on('exit', (code) => reject(new Error(`halyard-api exited (${code}): ${err}`)));
  });
}

interface Result {
  status: number;
  json: Record<string, unknown>;
}

async function call(body: unknown, opts: { key?: string | null; raw?: string; path?: string; method?: string } = {}): Promise<Result> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.key !== null) headers['x-api-key'] = opts.key ?? SECRET;
  const method = opts.method ?? 'POST';
  const res = await fetch(`${base}${opts.path ?? '/api/protobuf'}`, { method, headers, body: method === 'GET' ? undefined : (opts.raw ?? JSON.stringify(body)) });
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

function smtpd(command: string, payload?: unknown): Promise<Result> {
  return call({ version: { major: 6, minor: 6 }, program: 'smtpd', command, payload });
}

before(async () => {
  cfg = writeConfig();
  const dir = cfg.dir;
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2', '-keyout', path.join(dir, 'api.key'), '-out', path.join(dir, 'api.pem')], { stdio: 'ignore' });
  fs.writeFileSync(
    path.join(dir, 'api.yaml'),
    `version: "6.10"
authentication:
  secret: "${SECRET}"
listeners:
  - port: 0
    address: 127.0.0.1
    maxsize: ${MAXSIZE}
  - port: 0
    address: 127.0.0.1
    pki:
      certificate: { path: api.pem }
      privatekey: { path: api.key }
environment:
  controlsockets:
    smtpd:
      path: smtpd.ctl
`,
  );
  d = await startDaemon(cfg);
  await d.waitForLog((l) => l.msg === 'control socket listening');
  assert.match(await sendRaw(d.port, 'alice@sender.example', ['a1@hold.example', 'a2@hold.example', 'b1@keep.example'], message('one')), /^250 /);
  const ports = await startApi(path.join(dir, 'api.yaml'));
  base = `http://127.0.0.1:${ports[0]}`;
  tlsPort = ports[1];
});

after(async () => {
  if (api && api.exitCode === null) {
    api.kill('SIGTERM');
    assert.equal(await apiExited, 0);
  }
  await d?.stop();
  if (cfg) fs.rmSync(cfg.dir, { recursive: true, force: true });
});

test('--test-config reports every api.yaml error as file: key.path: reason', () => {
  const bad = path.join(cfg.dir, 'bad-api.yaml');
  fs.writeFileSync(bad, 'listeners:\n  - port: 80\n    maxsize: lots\nenvironment:\n  controlsockets:\n    smtpd: {}\n');
  let stderr = '';
  try {
    execFileSync(process.execPath, [path.join(BIN, 'halyard-api'), '-c', bad, '--test-config'], { stdio: 'pipe' });
    assert.fail('accepted');
  } catch (e) {
    const err = e as { status: number; stderr: Buffer };
    assert.equal(err.status, 1);
    stderr = err.stderr.toString();
  }
  assert.match(stderr, new RegExp(`^${bad}: listeners\\.0\\.maxsize: invalid size "lots"`, 'm'));
  assert.match(stderr, new RegExp(`^${bad}: environment\\.controlsockets\\.smtpd: needs path or port$`, 'm'));
  const good = execFileSync(process.execPath, [path.join(BIN, 'halyard-api'), '-c', path.join(cfg.dir, 'api.yaml'), '--test-config']).toString();
  assert.match(good, /valid/);
});

test('queue list (F) answers proto3 JSON: 64-bit integers as strings, enums by name', async () => {
  const r = await smtpd('F', { conditions: { recipients: [{ domain: { value: 'hold.example' } }] } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const items = r.json.items as Array<Record<string, any>>;
  assert.deepEqual(items.map((i) => `${i.recipient.localpart}@${i.recipient.domain}`).sort(), ['a1@hold.example', 'a2@hold.example']);
  assert.equal((r.json.paging as Record<string, unknown>).total, '2');
  assert.equal(typeof items[0].size, 'string');
  assert.match(items[0].size as string, /^\d+$/);
  // ACTIVE is the enum's zero value, which proto3 JSON leaves out: the state is `{"queue": {}}`.
  assert.deepEqual(items[0].queue, {});
  // The command name works as well as Halon's letter.
  const byName = await call({ program: 'smtpd', command: 'queueList' });
  assert.equal(byName.status, 200);
  assert.equal((byName.json.items as unknown[]).length, 3);
});

test('queue update (G) holds the matching entries; a later list shows them frozen, others by enum name', async () => {
  const r = await smtpd('G', { conditions: { recipients: [{ domain: { value: 'hold.example' } }] }, move: { freeze: 'HOLD' } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.affected, '2');
  const list = await smtpd('F', { conditions: { recipients: [{ domain: { value: 'hold.example' } }] } });
  const held = list.json.items as Array<Record<string, any>>;
  assert.equal(held.length, 2);
  // HOLD is Freeze's zero value (left out); the entry is in the freeze state, not the queue.
  for (const i of held) assert.deepEqual([i.freeze, i.queue], [{}, undefined]);
  const deferred = await smtpd('G', { conditions: { recipients: [{ domain: { value: 'keep.example' } }] }, move: { queue: 'DEFER', retryts: { relative: 3600 } } });
  assert.equal(deferred.json.affected, '1');
  const other = await smtpd('F', { conditions: { recipients: [{ domain: { value: 'keep.example' } }] } });
  assert.equal((other.json.items as Array<Record<string, any>>)[0].queue.queue, 'DEFER');
});

test('config reload (r) answers {} and the daemon reloads', async () => {
  const r = await smtpd('r');
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json, {});
  await d.waitForLog((l) => typeof l.msg === 'string' && /reload/i.test(l.msg));
});

test("the daemon's E text comes back as 422 {error}", async () => {
  const r = await smtpd('G', { conditions: { recipients: [{ domain: { value: 'keep.example' } }] } });
  assert.equal(r.status, 422);
  assert.match(r.json.error as string, /the update changes nothing/);
});

test('401 without or with a wrong X-API-Key; nothing is run', async () => {
  for (const key of [null, 'wrong', SECRET.slice(0, -1)]) {
    const r = await call({ program: 'smtpd', command: 'r' }, { key });
    assert.equal(r.status, 401);
    assert.deepEqual(r.json, { error: 'missing or wrong X-API-Key' });
  }
});

test('400 for bad JSON, unknown program or command, and a payload that does not fit', async () => {
  const bad = await call(undefined, { raw: '{"program": "smtpd", "command": ' });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error as string, /^the body is not JSON/);
  const prog = await call({ program: 'rated', command: 'q' });
  assert.equal(prog.status, 400);
  assert.match(prog.json.error as string, /unknown program "rated"/);
  const cmd = await call({ program: 'smtpd', command: 'Z' });
  assert.equal(cmd.status, 400);
  assert.match(cmd.json.error as string, /unknown command "Z"/);
  const payload = await smtpd('F', { conditions: { recipient: [] } });
  assert.equal(payload.status, 400);
  assert.match(payload.json.error as string, /payload does not fit QueueListRequest: QueueListRequest\.conditions\.recipient: unknown field/);
  const pb = await smtpd('F', { conditions: 'all' });
  assert.equal(pb.status, 400);
  assert.match(pb.json.error as string, /QueueListRequest\.conditions: object expected/);
});

test('413 for a body over maxsize, 404 and 405 elsewhere; GET /openapi.json is the committed document', async () => {
  const big = await call({ program: 'smtpd', command: 'F', payload: { conditions: { subjects: [{ value: 'x'.repeat(MAXSIZE) }] } } });
  assert.equal(big.status, 413);
  assert.match(big.json.error as string, /larger than 65536 bytes/);
  assert.equal((await call({}, { path: '/api/other' })).status, 404);
  assert.equal((await call({}, { method: 'GET' })).status, 405);
  const doc = await fetch(`${base}/openapi.json`);
  assert.equal(doc.status, 200);
  assert.equal(await doc.text(), fs.readFileSync(path.join(BIN, '..', 'docs', 'openapi', 'halyard-api.json'), 'utf8'));
});

test('the pki listener speaks HTTPS', async () => {
  const ca = fs.readFileSync(path.join(cfg.dir, 'api.pem'));
  const body = JSON.stringify({ program: 'smtpd', command: 'q' });
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: tlsPort, path: '/api/protobuf', method: 'POST', ca, headers: { 'x-api-key': SECRET, 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
  assert.equal(status, 200, text);
  const stats = JSON.parse(text) as { process?: { pid?: string } };
  assert.equal(stats.process?.pid, String(d.proc.pid));
});

test('502 once the daemon is down', async () => {
  await d.stop();
  const r = await smtpd('q');
  assert.equal(r.status, 502);
  assert.deepEqual(r.json, { error: 'the smtpd control socket cannot be reached' });
});
