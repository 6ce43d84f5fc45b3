/**
 * halyardctl against a running daemon: the control socket named in smtpd.yaml, process
 * statistics in both formats, reloads (good and broken files), hook memory, JSON output and
 * exit codes. One daemon serves every test of this file (the machine is small).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, defaultApp, message, run, sendRaw, startDaemon, writeConfig, type ConfigSet, type Daemon } from './harness';

let cfg: ConfigSet;
let d: Daemon;

const ctl = (...args: string[]) => run(process.execPath, [path.join(BIN, 'halyardctl'), '-c', cfg.smtpd, ...args]);

before(async () => {
  cfg = writeConfig();
  d = await startDaemon(cfg);
  await d.waitForLog((l) => l.msg === 'control socket listening');
});

after(async () => {
  await d?.stop();
  if (cfg) fs.rmSync(cfg.dir, { recursive: true, force: true });
});

test('the control socket is created where smtpd.yaml says, and removed at shutdown by the daemon', () => {
  const socket = path.join(cfg.dir, 'smtpd.ctl');
  assert.ok(fs.statSync(socket).isSocket());
  const line = d.logs.find((l) => l.msg === 'control socket listening');
  assert.equal(line?.path, socket);
});

test('process-stats prints dotted paths with real figures', async () => {
  const reply = await sendRaw(d.port, 'a@example.com', ['b@example.org'], message('stats'));
  assert.match(reply, /^250 /);
  const r = await ctl('process-stats');
  assert.equal(r.code, 0, r.stderr);
  const values = new Map(r.stdout.trimEnd().split('\n').map((l) => l.split(': ') as [string, string]));
  assert.equal(values.get('process.pid'), String(d.proc.pid));
  assert.ok(Number(values.get('process.runtime')) > 0);
  assert.equal(values.get('process.version.minor'), '1');
  const queued = ['queue.queue.active.size', 'queue.queue.defer.size', 'queue.freeze.hold.size'].map((k) => Number(values.get(k)));
  assert.ok(queued.every((n) => Number.isInteger(n)), 'every queue size is printed');
  assert.ok(queued.reduce((a, b) => a + b) >= 1, 'the queued message is counted');
  assert.equal(values.get('servers[default].connections.concurrent'), '0');
});

test('process-stats --openmetrics prints halon_ metrics ending in # EOF', async () => {
  const r = await ctl('process-stats', '--openmetrics');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^halon_process_pid ${d.proc.pid}$`, 'm'));
  assert.match(r.stdout, /^# TYPE halon_queue_queue_active_size gauge\nhalon_queue_queue_active_size \d+$/m);
  assert.match(r.stdout, /^halon_servers_connections_concurrent\{serverid="default"\} 0$/m);
  assert.ok(r.stdout.endsWith('# EOF\n'));
});

test('--json prints the reply in the proto3 JSON mapping (64-bit integers as strings)', async () => {
  const r = await ctl('--json', 'process-stats');
  assert.equal(r.code, 0, r.stderr);
  const obj = JSON.parse(r.stdout) as { process: { pid: string; runtime: number }; servers: Array<{ serverid: string }> };
  assert.equal(obj.process.pid, String(d.proc.pid));
  assert.equal(typeof obj.process.runtime, 'number');
  assert.equal(obj.servers[0].serverid, 'default');
});

test('hsl memory: store, fetch, list, delete, and a missing key', async () => {
  assert.equal((await ctl('hsl', 'memory', 'store', 'counter', '41')).code, 0);
  const prev = await ctl('hsl', 'memory', 'store', 'counter', '{"n": 42}', '--return');
  assert.deepEqual([prev.code, prev.stdout], [0, '41\n']);
  const fetched = await ctl('hsl', 'memory', 'fetch', 'counter');
  assert.deepEqual([fetched.code, fetched.stdout], [0, '{"n":42}\n']);
  assert.equal((await ctl('hsl', 'memory', 'store', 'other', '"x"')).code, 0);
  assert.equal((await ctl('hsl', 'memory', 'list')).stdout, 'counter\nother\n');
  assert.equal((await ctl('hsl', 'memory', 'list', '--key', 'OUNT', '--partial', '--caseless')).stdout, 'counter\n');
  const json = await ctl('--json', 'hsl', 'memory', 'list', '--limit', '1');
  assert.deepEqual(JSON.parse(json.stdout), { keys: ['counter'] });
  const del = await ctl('hsl', 'memory', 'delete', 'counter');
  assert.deepEqual([del.code, del.stdout], [0, '1 key deleted\n']);
  const missing = await ctl('hsl', 'memory', 'fetch', 'counter');
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'halyardctl: no such key: counter\n');
});

test('--json-request prints the request and sends nothing', async () => {
  const r = await ctl('--json-request', 'hsl', 'memory', 'store', 'dry', '"run"');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { key: 'dry', value: '"run"' });
  assert.equal((await ctl('hsl', 'memory', 'fetch', 'dry')).code, 1, 'the store was not sent');
  const list = await ctl('hsl', 'memory', 'list', '--json-request', '--key', 'a', '--regex', '--offset', '5');
  assert.deepEqual(JSON.parse(list.stdout), { condition: { key: { value: 'a', type: 'REGEX' } }, paging: { offset: '5' } });
});

test('config reload: a good file reloads; a broken one is refused with its errors and the daemon keeps running', async () => {
  const good = await ctl('config', 'reload');
  assert.deepEqual([good.code, good.stderr], [0, '']);
  await d.waitForLog((l) => l.msg === 'running configuration reloaded');
  const original = fs.readFileSync(cfg.app, 'utf8');
  fs.writeFileSync(cfg.app, defaultApp('    transport: nowhere\n').replace('    transport: mx\n', ''));
  try {
    const bad = await ctl('config', 'reload');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^halyardctl: smtpd-app\.yaml not reloaded \(\d+ errors?\); the running configuration is kept:\n/);
    assert.ok(bad.stderr.includes(cfg.app), 'each error names the file');
    assert.match(bad.stderr, /nowhere/);
  } finally {
    fs.writeFileSync(cfg.app, original);
  }
  const reply = await sendRaw(d.port, 'a@example.com', ['b@example.org'], message('after refused reload'));
  assert.match(reply, /^250 /, 'mail still flows on the old configuration');
});

test('queue policy reload: a broken smtpd-policy.yaml is refused with its errors', async () => {
  const file = path.join(cfg.dir, 'smtpd-policy.yaml');
  fs.writeFileSync(file, 'policies:\n  - fields: [nosuchfield]\n');
  try {
    const bad = await ctl('queue', 'policy', 'reload');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^halyardctl: smtpd-policy\.yaml not reloaded/);
    assert.ok(bad.stderr.includes(file));
  } finally {
    fs.rmSync(file);
  }
  const ok = await ctl('queue', 'policy', 'reload');
  assert.equal(ok.code, 0, ok.stderr);
  for (const words of [['queue', 'suspend', 'reload'], ['queue', 'delivery', 'reload']]) {
    const r = await ctl(...words);
    assert.equal(r.code, 0, `${words.join(' ')}: ${r.stderr}`);
  }
});

test('exit codes: usage errors 2, unreachable daemon 3; --help per command', async () => {
  const unknown = await ctl('queue', 'frobnicate');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "queue frobnicate"; did you mean: queue policy reload/);
  const badOpt = await ctl('process-stats', '--bogus');
  assert.deepEqual([badOpt.code, badOpt.stderr], [2, 'halyardctl: unknown option --bogus\n']);
  const badValue = await ctl('hsl', 'memory', 'store', 'k', 'not json');
  assert.equal(badValue.code, 2);
  const gone = await run(process.execPath, [path.join(BIN, 'halyardctl'), '--socket', path.join(cfg.dir, 'nothing.ctl'), 'process-stats']);
  assert.equal(gone.code, 3);
  assert.match(gone.stderr, /^halyardctl: cannot connect to .*nothing\.ctl: ENOENT\n$/);
  const help = await ctl('process-stats', '--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: halyardctl \[global options\] process-stats \[options\]/);
  assert.match(help.stdout, /--openmetrics/);
  const all = await run(process.execPath, [path.join(BIN, 'halyardctl'), '--help']);
  assert.equal(all.code, 0);
  assert.match(all.stdout, /hsl memory store KEY VALUE/);
});
