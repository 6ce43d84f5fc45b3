/**
 * halyardctl queue list / groupby / update against a running daemon with real queued mail
 * (the harness suspends every entry, so nothing leaves), checked through the spool with
 * halyard-spoolcat; and one request encoded by `protoc --encode` against the reference schema,
 * sent over the control socket by hand and decoded by `protoc --decode` (skipped without protoc).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { encodeMessage } from '../../src/control/schema';
import { BIN, controlRequest, defaultApp, message, run, sendRaw, spoolEntries, startDaemon, which, writeConfig, type ConfigSet, type Daemon } from './harness';

let cfg: ConfigSet;
let d: Daemon;

const ctl = (...args: string[]) => run(process.execPath, [path.join(BIN, 'halyardctl'), '-c', cfg.smtpd, ...args]);
const REFERENCE = '/work/shared/reference/smtpd.proto';

async function states(): Promise<Map<string, string>> {
  return new Map((await spoolEntries(cfg)).map((x) => [String(x.entry.recipient), String(x.entry.state)]));
}

before(async () => {
  // DSNs of the group go out on transport mx (a DSN needs a dsn.transport, as in Halon).
  cfg = writeConfig({ app: defaultApp().replace('  - id: default\n    transports:', '  - id: default\n    dsn:\n      transport: mx\n    transports:') });
  d = await startDaemon(cfg);
  await d.waitForLog((l) => l.msg === 'control socket listening');
  assert.match(await sendRaw(d.port, 'alice@sender.example', ['a1@hold.example', 'a2@hold.example', 'b1@keep.example'], message('one')), /^250 /);
  assert.match(await sendRaw(d.port, 'bob@sender.example', ['c1@gone.example', 'd1@bounce.example'], message('two')), /^250 /);
});

after(async () => {
  await d?.stop();
  if (cfg) fs.rmSync(cfg.dir, { recursive: true, force: true });
});

test('queue list shows every queued recipient in an aligned table, with -F columns and paging', async () => {
  const r = await ctl('queue', 'list', '-F', 'recipient', '-F', 'state', '--sort', 'recipient');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^RECIPIENT\s+STATE$/);
  assert.deepEqual(lines.slice(1, -1).map((l) => l.split(/\s+/)), [
    ['a1@hold.example', 'ACTIVE'], ['a2@hold.example', 'ACTIVE'], ['b1@keep.example', 'ACTIVE'], ['c1@gone.example', 'ACTIVE'], ['d1@bounce.example', 'ACTIVE'],
  ]);
  assert.equal(lines.at(-1), '5 of 5 entries');
  // Columns line up: the second column starts at the same offset on every row.
  const at = lines.slice(0, -1).map((l) => l.search(/(ACTIVE|STATE)$/));
  assert.equal(new Set(at).size, 1);
  const page = await ctl('queue', 'list', '-F', 'recipient', '--sort', 'recipient:desc', '--limit', '2', '--offset', '1');
  assert.deepEqual(page.stdout.trimEnd().split('\n'), ['RECIPIENT', 'c1@gone.example', 'b1@keep.example', '2 of 5 entries']);
});

test('queue list filters with condition flags and prints JSON with --json', async () => {
  const r = await ctl('queue', 'list', '-F', 'recipient', '--recipientdomain', 'hold.example', '--recipientdomain', 'keep.example', '--sender', 'alice@sender.example');
  assert.equal(r.stdout.trimEnd().split('\n').at(-1), '3 of 3 entries');
  const none = await ctl('queue', 'list', '--recipientdomain', 'hold.example', '--sender', 'bob@sender.example');
  assert.equal(none.stdout.trimEnd().split('\n').at(-1), '0 of 0 entries');
  const json = await ctl('--json', 'queue', 'list', '--recipient', 'b1@keep.example');
  const obj = JSON.parse(json.stdout) as { items: Array<{ recipient: { localpart: string; domain: string }; sender: { domain: string }; transportid: string }> };
  assert.equal(obj.items.length, 1);
  assert.deepEqual(obj.items[0].recipient, { localpart: 'b1', domain: 'keep.example' });
  assert.equal(obj.items[0].transportid, 'mx');
});

test('queue groupby counts entries per recipient domain, largest first', async () => {
  const r = await ctl('queue', 'groupby', '--by', 'recipientdomain');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n').map((l) => l.split(/\s+/));
  assert.deepEqual(lines[0], ['RECIPIENTDOMAIN', 'COUNT']);
  assert.deepEqual(lines[1], ['hold.example', '2']);
  assert.deepEqual(lines.slice(2).sort(), [['bounce.example', '1'], ['gone.example', '1'], ['keep.example', '1']]);
  const two = await ctl('queue', 'groupby', '--by', 'senderdomain', '--by', 'transportid');
  assert.deepEqual(two.stdout.trimEnd().split('\n').map((l) => l.split(/\s+/)), [['SENDERDOMAIN', 'TRANSPORTID', 'COUNT'], ['sender.example', 'mx', '5']]);
});

test('queue update --hold holds one domain in the spool, --active releases it', async () => {
  const held = await ctl('queue', 'update', '--recipientdomain', 'hold.example', '--hold');
  assert.deepEqual([held.code, held.stdout], [0, '2 messages affected\n']);
  let s = await states();
  assert.equal(s.get('a1@hold.example'), 'HOLD');
  assert.equal(s.get('a2@hold.example'), 'HOLD');
  assert.equal(s.get('b1@keep.example'), 'ACTIVE');
  const listed = await ctl('queue', 'list', '-F', 'recipient', '--state', 'HOLD');
  assert.equal(listed.stdout.trimEnd().split('\n').at(-1), '2 of 2 entries');
  const back = await ctl('queue', 'update', '--recipientdomain', 'hold.example', '--state', 'HOLD', '--active');
  assert.equal(back.stdout, '2 messages affected\n');
  s = await states();
  assert.equal(s.get('a1@hold.example'), 'ACTIVE');
});

test('queue update --defer with a delay sets DEFER and the retry time', async () => {
  const r = await ctl('queue', 'update', '--recipient', 'b1@keep.example', '--defer', '--delay', '1h');
  assert.equal(r.stdout, '1 message affected\n');
  const e = (await spoolEntries(cfg)).find((x) => x.entry.recipient === 'b1@keep.example')!;
  assert.equal(e.entry.state, 'DEFER');
  assert.ok(Math.abs(Number(e.entry.retryts) - (Date.now() + 3600_000)) < 60_000);
  const later = await ctl('queue', 'list', '-F', 'recipient', '--retrydelay', '>30m');
  assert.match(later.stdout, /^b1@keep\.example$/m);
});

test('queue update --delete removes the entry from the spool', async () => {
  const r = await ctl('queue', 'update', '--recipientdomain', 'gone.example', '--delete');
  assert.equal(r.stdout, '1 message affected\n');
  assert.equal((await states()).has('c1@gone.example'), false);
});

test('queue update --bounce removes the entry and queues a DSN to the sender', async () => {
  const r = await ctl('queue', 'update', '--recipientdomain', 'bounce.example', '--bounce', '--status', '5.7.1', '--reason', 'removed by the postmaster');
  assert.equal(r.stdout, '1 message affected\n');
  const entries = await spoolEntries(cfg);
  assert.equal(entries.some((x) => x.entry.recipient === 'd1@bounce.example'), false);
  const dsn = entries.find((x) => x.entry.recipient === 'bob@sender.example');
  assert.ok(dsn, 'a DSN entry for the original sender is queued');
  assert.equal(dsn.entry.sender, '');
  const body = execFileSync(process.execPath, [path.join(BIN, 'halyard-spoolcat'), '-c', cfg.smtpd, '--body', dsn.id]).toString().replace(/\r\n[ \t]+/g, ' ');
  assert.match(body, /Status: 5\.7\.1/);
  assert.match(body, /Diagnostic-Code: x-error; removed by the postmaster/);
});

test('queue update changes metadata, and refuses bad usage with exit 2 and an unknown transport with exit 1', async () => {
  const r = await ctl('queue', 'update', '--recipient', 'a1@hold.example', '--set-metadata', 'qid=1day');
  assert.equal(r.stdout, '1 message affected\n');
  const listed = await ctl('queue', 'list', '-F', 'recipient', '--metadata', 'qid=1day');
  assert.match(listed.stdout, /^a1@hold\.example$/m);
  const noCondition = await ctl('queue', 'update', '--hold');
  assert.equal(noCondition.code, 2);
  assert.match(noCondition.stderr, /--all/);
  const two = await ctl('queue', 'update', '--all', '--hold', '--delete');
  assert.equal(two.code, 2);
  const badTransport = await ctl('queue', 'update', '--all', '--set-transportid', 'nowhere');
  assert.equal(badTransport.code, 1);
  assert.match(badTransport.stderr, /no transport "nowhere"/);
});

test('queue quota prints zero counts for a quota no entry carries', async () => {
  const r = await ctl('queue', 'quota', 'tenant-a');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trimEnd().split('\n').map((l) => l.split(/\s+/)), [['QUOTA', 'COUNT', 'BYTES'], ['tenant-a', '0', '0']]);
});


test('export (command 0) returns the stored message of one entry; an unknown id is refused', async () => {
  const e = (await spoolEntries(cfg)).find((x) => x.entry.recipient === 'a2@hold.example')!;
  const [transaction, queue] = e.id.split(':');
  const body = encodeMessage('QueueExportRequest', { id: { transaction, queue: Number(queue) } });
  const r = await controlRequest(path.join(cfg.dir, 'smtpd.ctl'), '0', body);
  assert.equal(r.status, '+');
  assert.match(r.payload.toString(), /^Subject: one\r$/m);
  const missing = await controlRequest(path.join(cfg.dir, 'smtpd.ctl'), '0', encodeMessage('QueueExportRequest', { id: { transaction: '00000000-0000-4000-8000-000000000000', queue: 1 } }));
  assert.deepEqual([missing.status, missing.payload.toString()], ['E', 'no such queue entry']);
});

test('a QueueListRequest encoded by protoc against the reference schema is answered in its QueueListResponse', { skip: !which('protoc') && 'protoc is not installed' }, async () => {
  const dir = path.dirname(REFERENCE);
  const protoc = (args: string[], input: Buffer) => execFileSync('protoc', [`-I${dir}`, ...args, path.basename(REFERENCE)], { input });
  const text = 'conditions { recipients { domain { value: "hold.example" } } } sortings { recipient { localpart: DESC } }';
  const body = protoc(['--encode=smtpd.QueueListRequest'], Buffer.from(text));
  const r = await controlRequest(path.join(cfg.dir, 'smtpd.ctl'), 'F', body);
  assert.equal(r.status, '+', r.payload.toString());
  const decoded = protoc(['--decode=smtpd.QueueListResponse'], r.payload).toString();
  const locals = [...decoded.matchAll(/recipient \{\s*localpart: "([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(locals, ['a2', 'a1']);
  assert.match(decoded, /paging \{\s*total: 2\s*\}/);
  const update = protoc(['--encode=smtpd.QueueUpdateRequest'], Buffer.from('conditions { recipients { domain { value: "hold.example" } } } move { freeze: HOLD }'));
  const u = await controlRequest(path.join(cfg.dir, 'smtpd.ctl'), 'G', update);
  assert.equal(u.status, '+');
  assert.match(protoc(['--decode=smtpd.QueueUpdateResponse'], u.payload).toString(), /affected: 2/);
});
