/**
 * halyardctl queue suspend … and queue policy … (bin/halyardctl as a child process) against a
 * ControlServer started here with the traffic-shaping adapter over the real engine (policy
 * and suspend files as in control-shaping-fixtures.ts, one destination throttled): tables, ids,
 * "N … affected" lines, --json, --json-request, and exit codes for usage errors (2) and the
 * daemon's refusals (1). The full daemon's wiring is tested by the lead's e2e.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { ControlContext } from '../../src/control/context';
import { ControlServer } from '../../src/control/server';
import { shapingControl } from '../../src/control/shaping';
import { InProcessMemoryStore } from '../../src/hooks/memory';
import { createShapingEngine } from '../../src/shaping/engine';
import type { Facts, ShapingEngine, Ticket } from '../../src/shaping/types';
import { NO_POLICY, POLICIES, SUSPENDS, throttle } from '../unit/control-shaping-fixtures';
import { BIN, run, tempDir } from './harness';

let dir: string;
let socket: string;
let server: ControlServer;
let engine: ShapingEngine;
/** example.net from 192.0.2.1 (&google): out of rate tokens, its concurrency slot held by `ticket`. */
let throttled: { f: Facts; ticket: Ticket };
const suspend = (id: string) => engine.listSuspends(Date.now(), { id })[0];
const condition = (id: string) => engine.listConditions(Date.now()).find((c) => c.id === id);

const ctl = (...args: string[]) => run(process.execPath, [path.join(BIN, 'halyardctl'), '--socket', socket, ...args]);

before(async () => {
  dir = tempDir('halyard-ctl-shaping-');
  socket = path.join(dir, 'smtpd.ctl');
  engine = createShapingEngine();
  engine.setPolicies(POLICIES);
  engine.setSuspends(SUSPENDS);
  throttled = throttle(engine, Date.now());
  const ok = { ok: true } as const;
  const context: ControlContext = {
    processStats: () => ({}),
    reloadRunning: () => ok,
    reloadPolicy: () => ok,
    reloadSuspend: () => ok,
    reloadDelivery: () => ok,
    memory: new InProcessMemoryStore(),
    shaping: shapingControl(engine),
  };
  server = new ControlServer({ socket: { path: socket }, context, log: { debug() {}, info() {}, warn() {}, error() {} } });
  await server.listen();
});

after(async () => {
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const rows = (stdout: string) => stdout.trimEnd().split('\n');

test('queue suspend add prints the id; list shows an aligned table of static and dynamic suspends', async () => {
  const added = await ctl('queue', 'suspend', 'add', '--recipientdomain', 'example.com', '--localip', '192.0.2.1', '--ttl', '1h', '--tag', 'maintenance', '--id', 'maint');
  assert.deepEqual([added.code, added.stdout, added.stderr], [0, 'maint\n', '']);
  const made = await ctl('queue', 'suspend', 'add', '--jobid', 'newsletter');
  assert.equal(made.code, 0, made.stderr);
  const newsletter = made.stdout.trim();
  assert.equal(suspend(newsletter)?.source, 'DYNAMIC');
  const list = await ctl('queue', 'suspend', 'list');
  assert.equal(list.code, 0, list.stderr);
  const lines = rows(list.stdout);
  assert.match(lines[0], /^SOURCE\s+ID\s+MATCH\s+TTL\s+TAG$/);
  assert.match(lines[1], /^STATIC\s+static:0\s+transportid=customer1 recipientdomain=gmail\.com,googlemail\.com\s+-$/);
  assert.match(lines[2], /^STATIC\s+static:1\s+jobid=bulk\s+-\s+nonworkhours$/);
  assert.match(lines[3], /^DYNAMIC\s+maint\s+localip=192\.0\.2\.1 recipientdomain=example\.com\s+(1h|59m\d+s)\s+maintenance$/);
  assert.match(lines[4], new RegExp(`^DYNAMIC\\s+${newsletter}\\s+jobid=newsletter\\s+-$`));
  assert.equal(lines[5], '4 suspends');
  // Columns line up: MATCH starts at the same offset on every row.
  assert.equal(new Set(lines.slice(0, 5).map((l) => l.search(/MATCH|transportid=|localip=|jobid=/))).size, 1);
});

test('queue suspend list filters by field, several --localip, --tag, --id; --pickup adds counter suspends; --json', async () => {
  const byDomain = await ctl('queue', 'suspend', 'list', '--recipientdomain', 'example.com');
  assert.match(rows(byDomain.stdout)[1], /^DYNAMIC\s+maint\s/);
  assert.equal(rows(byDomain.stdout).at(-1), '1 suspend');
  const byIps = await ctl('queue', 'suspend', 'list', '--localip', '192.0.2.9', '--localip', '192.0.2.1');
  assert.equal(rows(byIps.stdout).length, 3);
  const byTag = await ctl('queue', 'suspend', 'list', '--tag', 'maintenance');
  assert.equal(rows(byTag.stdout).at(-1), '1 suspend');
  const pickup = await ctl('queue', 'suspend', 'list', '--pickup', '--localip', '192.0.2.1');
  assert.deepEqual(rows(pickup.stdout).slice(1).map((l) => l.split(/\s+/).slice(0, 2)), [['DYNAMIC', 'maint'], ['CONCURRENCY', 'localip=192.0.2.1,grouping=&google'], ['2', 'suspends']]);
  const rate = await ctl('queue', 'suspend', 'list', '--pickup', '--recipientdomain', 'example.net');
  assert.match(rows(rate.stdout)[1], /^RATE\s+recipientdomain=example\.net\s+recipientdomain=example\.net\s+(30m|29m\d+s)$/);
  const list = await ctl('queue', 'suspend', 'list', '--recipientdomain', 'googlemail.com');
  assert.match(rows(list.stdout)[1], /^STATIC\s+static:0\s/);
  const one = await ctl('--json', 'queue', 'suspend', 'list', '--id', 'static:0');
  assert.deepEqual(JSON.parse(one.stdout), { items: [{ id: 'static:0', transportid: { value: 'customer1' }, recipientdomain: { value: 'gmail.com,googlemail.com' } }] });
  const limited = await ctl('queue', 'suspend', 'list', '--limit', '1');
  assert.equal(rows(limited.stdout).at(-1), '1 suspend');
  const clash = await ctl('queue', 'suspend', 'list', '--id', 'maint', '--jobid', 'x');
  assert.deepEqual([clash.code, clash.stderr], [2, 'halyardctl: --id lists one suspend; give it without other filters\n']);
});

test('queue suspend update and delete print what they affected', async () => {
  const upd = await ctl('queue', 'suspend', 'update', '--id', 'maint', '--ttl', '2h', '--tag', 'longer');
  assert.deepEqual([upd.code, upd.stdout], [0, '1 suspend affected\n'], upd.stderr);
  assert.equal(suspend('maint').tag, 'longer');
  assert.ok(Math.abs(suspend('maint').ttl - 7200) < 60);
  const del = await ctl('queue', 'suspend', 'delete', '--id', 'maint');
  assert.deepEqual([del.code, del.stdout], [0, '1 suspend deleted\n'], del.stderr);
  const again = await ctl('queue', 'suspend', 'delete', '--id', 'maint');
  assert.deepEqual([again.code, again.stdout], [0, '0 suspends deleted\n'], again.stderr);
  const none = await ctl('queue', 'suspend', 'update', '--id', 'maint');
  assert.deepEqual([none.code, none.stderr], [2, 'halyardctl: nothing to update: give --ttl or --tag\n']);
});

test('queue suspend add: usage errors exit 2, the daemon\'s refusals exit 1 with its reason', async () => {
  const noFields = await ctl('queue', 'suspend', 'add', '--ttl', '10m');
  assert.equal(noFields.code, 2);
  assert.match(noFields.stderr, /or --all to suspend every delivery/);
  const longTag = await ctl('queue', 'suspend', 'add', '--jobid', 'j', '--tag', 'x'.repeat(33));
  assert.deepEqual([longTag.code, longTag.stderr], [2, 'halyardctl: --tag takes at most 32 characters; got 33\n']);
  const badTtl = await ctl('queue', 'suspend', 'add', '--jobid', 'j', '--ttl', 'soon');
  assert.equal(badTtl.code, 2);
  const notIp = await ctl('queue', 'suspend', 'add', '--remoteip', 'mx.example.com');
  assert.deepEqual([notIp.code, notIp.stderr], [1, 'halyardctl: remoteip "mx.example.com" is not an IP address\n']);
  const everything = await ctl('--json-request', 'queue', 'suspend', 'add', '--all', '--ttl', '90');
  assert.deepEqual(JSON.parse(everything.stdout || 'null'), { ttl: 90 }, everything.stderr);
});

test('queue policy add, list, update, delete', async () => {
  const add = await ctl('queue', 'policy', 'add', '--fields', 'localip,grouping', '--grouping', '&google', '--concurrency', '2', '--rate', '10/60', '--tag', 'backoff', '--property', 'reason=421', '--ttl', '15m', '--id', 'backoff');
  assert.deepEqual([add.code, add.stdout, add.stderr], [0, 'backoff\n', '']);
  assert.deepEqual(condition('backoff')?.then, { rate: { messages: 10, seconds: 60 }, concurrency: 2, tag: 'backoff', properties: { reason: '421' } });
  const implicit = await ctl('queue', 'policy', 'add', '--recipientdomain', 'example.org', '--stop');
  assert.equal(implicit.code, 0, implicit.stderr);
  const stopId = implicit.stdout.trim();
  assert.deepEqual(condition(stopId)?.fields, ['recipientdomain']);
  const list = await ctl('queue', 'policy', 'list');
  const lines = rows(list.stdout);
  assert.match(lines[0], /^ID\s+FIELDS\s+IF\s+THEN\s+TTL$/);
  assert.match(lines[1], /^backoff\s+localip,grouping\s+grouping=&google\s+concurrency=2 rate=10\/60 tag=backoff properties=reason=421\s+1[45]m\d*s?$/);
  assert.match(lines[2], new RegExp(`^${stopId}\\s+recipientdomain\\s+recipientdomain=example\\.org\\s+stop\\s+-$`));
  assert.equal(lines[3], '2 conditions');
  const upd = await ctl('queue', 'policy', 'update', '--id', 'backoff', '--rate', '1/60');
  assert.deepEqual([upd.code, upd.stdout], [0, '1 condition affected\n'], upd.stderr);
  assert.deepEqual(condition('backoff')?.then, { rate: { messages: 1, seconds: 60 }, properties: { reason: '421' } });
  const del = await ctl('queue', 'policy', 'delete', '--id', stopId);
  assert.deepEqual([del.code, del.stdout], [0, '1 condition deleted\n'], del.stderr);
  const json = await ctl('--json', 'queue', 'policy', 'list');
  assert.deepEqual(JSON.parse(json.stdout).items.map((i: { id: string }) => i.id), ['backoff']);
  const last = await ctl('queue', 'policy', 'delete', '--id', 'backoff');
  assert.equal(last.stdout, '1 condition deleted\n');
  assert.equal(rows((await ctl('queue', 'policy', 'list')).stdout).at(-1), '0 conditions');
});

test('queue policy add: the daemon refuses fields no policy has (exit 1); bad options exit 2', async () => {
  const unknown = await ctl('queue', 'policy', 'add', '--jobid', 'j', '--concurrency', '1');
  assert.deepEqual([unknown.code, unknown.stderr], [1, `halyardctl: ${NO_POLICY}\n`]);
  const noLimit = await ctl('queue', 'policy', 'add', '--recipientdomain', 'a.example');
  assert.equal(noLimit.code, 2);
  const badRate = await ctl('queue', 'policy', 'add', '--recipientdomain', 'a.example', '--rate', '10/0');
  assert.equal(badRate.code, 2);
  assert.match(badRate.stderr, /--rate takes MESSAGES\/SECONDS/);
  const badField = await ctl('queue', 'policy', 'add', '--fields', 'sender', '--concurrency', '1');
  assert.equal(badField.code, 2);
  const req = await ctl('--json-request', 'queue', 'policy', 'add', '--fields', 'recipientdomain', '--recipientdomain', 'a.example', '--rate', '5');
  assert.deepEqual(JSON.parse(req.stdout), { fields: { recipientdomain: true }, if: { recipientdomain: { value: 'a.example' } }, then: { rate: { count: '5', interval: 1 } } });
});

test('queue policy refill adds tokens to the matching rate buckets: a throttled destination may go again', async () => {
  engine.release(throttled.ticket, Date.now());
  assert.equal(engine.peek(throttled.f, Date.now()).ok, false);
  const none = await ctl('queue', 'policy', 'refill', '--recipientdomain', 'gmail.com', '--tokens', '5');
  assert.deepEqual([none.code, none.stdout], [0, '0 rate buckets refilled\n'], none.stderr);
  const r = await ctl('queue', 'policy', 'refill', '--recipientdomain', 'example.net', '--tokens', '1');
  assert.deepEqual([r.code, r.stdout], [0, '1 rate bucket refilled\n'], r.stderr);
  assert.equal(engine.peek(throttled.f, Date.now()).ok, true);
  const all = await ctl('queue', 'policy', 'refill', '--all', '--tokens', '1');
  assert.equal(all.stdout, '1 rate bucket refilled\n');
  const noFields = await ctl('queue', 'policy', 'refill', '--tokens', '1');
  assert.equal(noFields.code, 2);
  const noTokens = await ctl('queue', 'policy', 'refill', '--recipientdomain', 'gmail.com');
  assert.deepEqual([noTokens.code, noTokens.stderr], [2, 'halyardctl: --tokens N is required\n']);
  const help = await ctl('queue', 'policy', 'refill', '--help');
  assert.match(help.stdout, /usage: halyardctl \[global options\] queue policy refill \[options\]/);
  assert.match(help.stdout, /--tokens N/);
});
