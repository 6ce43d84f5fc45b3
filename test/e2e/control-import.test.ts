/**
 * halyardctl queue import / export / unload, the post-delivery hook after an administrative
 * delete or bounce, and halyardctl over the TCP control socket with mutual TLS — against a
 * running daemon with real queued mail (every entry suspended, so nothing leaves), checked
 * through the spool with halyard-spoolcat and through the hook's own record. Requests built
 * by `protoc --encode` against the reference schema are sent by hand too (skipped without
 * protoc).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { encodeMessage } from '../../src/control/schema';
import { BIN, controlRequest, defaultApp, message, run, sendRaw, spoolBody, spoolEntries, startDaemon, which, writeConfig, type ConfigSet, type Daemon } from './harness';

let cfg: ConfigSet;
let d: Daemon;
let tcpPort: number;

const REFERENCE = '/work/shared/reference/smtpd.proto';
const ctl = (...args: string[]) => run(process.execPath, [path.join(BIN, 'halyardctl'), '-c', cfg.smtpd, ...args]);
const socketPath = () => path.join(cfg.dir, 'smtpd.ctl');
const hookRecord = () => path.join(cfg.dir, 'postdelivery.jsonl');
const file = (name: string) => path.join(cfg.dir, name);

/** A self-signed EC key pair for `name`, valid for localhost and 127.0.0.1. */
function keyPair(name: string): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '2', '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`)], { stdio: 'ignore' });
}

const POST = (record: string) => `
import fs from 'node:fs';
export default function (ctx: any) {
  const a = ctx.arguments;
  fs.appendFileSync(${JSON.stringify(record)}, JSON.stringify({ recipient: ctx.message.recipient, action: a.action, attempt: a.attempt !== undefined, retry: a.retry, dsn: a.dsn ?? null, context: ctx.context }) + '\\n');
  if (ctx.message.recipientaddress.localpart === 'keepme') return ctx.Queue({ hold: true });
}
`;

function smtpd(): string {
  return `version: "6.8"
servers:
  - id: default
    listeners:
      - port: 0
        address: 127.0.0.1
environment:
  appconf: smtpd-app.yaml
  hostname: mx.test.example
  controlsocket:
    path: smtpd.ctl
    port: 0
    address: 127.0.0.1
    tls:
      cert: ctl
      clientcerts:
        - path: admin.crt
spool:
  path: spool
  fsync: true
pki:
  private:
    - id: ctl
      certificate: { path: ctl.crt }
      privatekey: { path: ctl.key }
`;
}

async function states(): Promise<Map<string, { id: string; state: string; sender: string }>> {
  return new Map((await spoolEntries(cfg)).map((x) => [String(x.entry.recipient), { id: x.id, state: String(x.entry.state), sender: String(x.entry.sender) }]));
}

function lines(s: string): string[] {
  return s.trimEnd().split('\n');
}

before(async () => {
  cfg = writeConfig({
    smtpd: smtpd(),
    app: defaultApp('', 'scripting:\n  hooks:\n    postdelivery: hooks/post.ts\n').replace('  - id: default\n    transports:', '  - id: default\n    dsn:\n      transport: mx\n    transports:'),
  });
  for (const n of ['ctl', 'admin', 'stranger']) keyPair(n);
  fs.mkdirSync(file('hooks'));
  fs.writeFileSync(file('hooks/post.ts'), POST(hookRecord()));
  d = await startDaemon(cfg);
  const listening = await d.waitForLog((l) => l.msg === 'control socket listening');
  tcpPort = (listening.tcp as { port: number }).port;
  assert.match(await sendRaw(d.port, 'alice@sender.example', ['u1@unload.example', 'u2@unload.example', 'k1@keep.example'], message('unload me')), /^250 /);
  assert.match(await sendRaw(d.port, 'bob@sender.example', ['p1@part.example', 'p2@other.example'], message('partial')), /^250 /);
  assert.match(await sendRaw(d.port, 'carol@sender.example', ['del@gone.example', 'keepme@gone.example', 'b1@bounce.example'], message('hooks')), /^250 /);
});

after(async () => {
  await d?.stop();
  if (cfg) fs.rmSync(cfg.dir, { recursive: true, force: true });
});

test('queue import of a raw message takes the envelope from To, Cc and Bcc and From; it is queued, listed and Bcc is gone', async () => {
  fs.writeFileSync(file('raw.eml'), 'Return-Path: <bounces@lists.example>\nFrom: "List" <list@lists.example>\nTo: one@import.example, "Two, Esq." <two@import.example>\nCc: undisclosed:;\nBcc: hidden@import.example\nSubject: imported\n\nHello.\n');
  const r = await ctl('queue', 'import', file('raw.eml'));
  assert.equal(r.code, 0, r.stderr);
  const txid = /^queued as ([0-9a-f-]{36})$/.exec(r.stdout.trim())?.[1];
  assert.ok(txid, r.stdout);
  const listed = await ctl('queue', 'list', '-F', 'recipient', '-F', 'sender', '-F', 'state', '--id', txid, '--sort', 'recipient');
  assert.deepEqual(lines(listed.stdout).slice(1).map((l) => l.split(/\s+/)), [
    ['hidden@import.example', 'bounces@lists.example', 'ACTIVE'],
    ['one@import.example', 'bounces@lists.example', 'ACTIVE'],
    ['two@import.example', 'bounces@lists.example', 'ACTIVE'],
    ['3', 'of', '3', 'entries'],
  ]);
  const body = (await spoolBody(cfg, `${txid}:1`)).toString();
  assert.match(body, /^Subject: imported\r$/m, 'stored with CRLF line ends');
  assert.doesNotMatch(body, /^(Bcc|Return-Path):/im);
  const transport = (await spoolEntries(cfg)).find((x) => x.id === `${txid}:1`)!.entry.transportid;
  assert.equal(transport, 'mx', "the first server's transport");
});

test('queue import with --sender, --recipient and --hold queues that envelope in HOLD; --json-request sends nothing', async () => {
  fs.writeFileSync(file('held.eml'), 'From: someone@else.example\nTo: ignored@else.example\nSubject: held\n\nBody.\n');
  const shown = await ctl('--json-request', 'queue', 'import', file('held.eml'), '--recipient', 'r@held.example');
  const req = JSON.parse(shown.stdout) as { data: { hqf: string }; reset: { transactionid: { value: boolean } } };
  assert.match(Buffer.from(req.data.hqf, 'base64').toString(), /^Halyard-Queue-File: 1\r\n/);
  assert.deepEqual(req.reset, { transactionid: { value: true } });
  assert.equal((await states()).has('r@held.example'), false, '--json-request queued nothing');
  const r = await ctl('queue', 'import', file('held.eml'), '--sender', '<>', '--recipient', 'r@held.example', '--recipient', 's@held.example', '--hold');
  assert.equal(r.code, 0, r.stderr);
  const s = await states();
  assert.deepEqual([s.get('r@held.example')?.state, s.get('s@held.example')?.state, s.get('r@held.example')?.sender], ['HOLD', 'HOLD', '']);
  assert.equal(s.has('ignored@else.example'), false);
});

test('queue export writes the stored message to stdout or to a file', async () => {
  const id = (await states()).get('u1@unload.example')!.id;
  const stored = await spoolBody(cfg, id);
  const out = await ctl('queue', 'export', '--id', id);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, stored.toString());
  const to = await ctl('queue', 'export', '--id', id, '-o', file('exported.eml'));
  assert.deepEqual([to.code, to.stdout], [0, '']);
  assert.deepEqual(fs.readFileSync(file('exported.eml')), stored);
  assert.equal(fs.statSync(file('exported.eml')).mode & 0o777, 0o600);
  const missing = await ctl('queue', 'export', '--id', '00000000-0000-4000-8000-000000000000:1');
  assert.deepEqual([missing.code, missing.stderr], [1, 'halyardctl: no such queue entry\n']);
  const bad = await ctl('queue', 'export', '--id', 'nonsense');
  assert.equal(bad.code, 2);
});

test('queue unload moves matching transactions into queue files and import brings them back, frozen', async () => {
  const before = await states();
  const r = await ctl('queue', 'unload', '--recipientdomain', 'unload.example', '--recipientdomain', 'keep.example', '--freeze');
  assert.equal(r.code, 0, r.stderr);
  const out = lines(r.stdout);
  assert.equal(out.at(-1), '1 file written');
  const hqf = out[0];
  const txid = before.get('u1@unload.example')!.id.split(':')[0];
  assert.equal(hqf, path.join(cfg.dir, 'spool', 'unloaded', `${txid}.hqf`));
  assert.match(fs.readFileSync(hqf).toString(), /^Halyard-Queue-File: 1\r\n\{.*"state":"HOLD"/);
  let s = await states();
  assert.equal(['u1@unload.example', 'u2@unload.example', 'k1@keep.example'].some((x) => s.has(x)), false, 'gone from the spool');
  assert.equal(lines((await ctl('queue', 'list', '--id', txid)).stdout).at(-1), '0 of 0 entries');
  const back = await ctl('queue', 'import', hqf);
  assert.deepEqual([back.code, back.stdout], [0, `queued as ${txid}\n`]);
  s = await states();
  for (const x of ['u1@unload.example', 'u2@unload.example', 'k1@keep.example']) {
    assert.equal(s.get(x)?.state, 'HOLD', `${x} back, held`);
    assert.equal(s.get(x)?.id, before.get(x)?.id, `${x} keeps its queue id`);
  }
  assert.equal((await spoolBody(cfg, before.get('u1@unload.example')!.id)).toString().includes('Subject: unload me\r\n'), true);
  // The same file again: its transaction is queued, so only a copy with a new id is accepted.
  const again = await ctl('queue', 'import', hqf);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /is queued already; import with reset\.transactionid/);
  const copy = await ctl('queue', 'import', hqf, '--reset-transactionid');
  assert.equal(copy.code, 0, copy.stderr);
  assert.notEqual(copy.stdout, `queued as ${txid}\n`);
});

test('queue unload leaves a transaction that matches only in part queued, unless --partial', async () => {
  const r = await ctl('queue', 'unload', '--recipientdomain', 'part.example');
  assert.deepEqual(lines(r.stdout), ['0 files written', '1 transaction matched in part: left queued (see --partial)']);
  assert.equal((await states()).has('p1@part.example'), true);
  const p = await ctl('queue', 'unload', '--recipientdomain', 'part.example', '--partial');
  assert.equal(lines(p.stdout).at(-2), '1 file written');
  const s = await states();
  assert.deepEqual([s.has('p1@part.example'), s.has('p2@other.example')], [false, true]);
  const written = fs.readFileSync(lines(p.stdout)[0]).toString();
  assert.match(written, /"recipient":"p1@part\.example"/);
  assert.doesNotMatch(written, /p2@other\.example/);
  assert.match(written, /"state":"ACTIVE"/, 'without --freeze the state is kept');
  const none = await ctl('queue', 'unload', '--freeze');
  assert.equal(none.code, 2, 'an unload without conditions needs --all');
});

test('an administrative delete and bounce run the postdelivery hook with action DELETE / BOUNCE and no attempt', async () => {
  fs.rmSync(hookRecord(), { force: true });
  const del = await ctl('queue', 'update', '--recipientdomain', 'gone.example', '--delete');
  assert.equal(del.stdout, '2 messages affected\n');
  const bounce = await ctl('queue', 'update', '--recipient', 'b1@bounce.example', '--bounce', '--status', '5.7.1', '--reason', 'quarantined');
  assert.equal(bounce.stdout, '1 message affected\n');
  const calls = fs.readFileSync(hookRecord(), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const byRcpt = new Map(calls.map((c) => [c.recipient, c]));
  assert.equal(calls.length, 3);
  assert.deepEqual(byRcpt.get('del@gone.example'), { recipient: 'del@gone.example', action: 'DELETE', attempt: false, retry: 0, dsn: null, context: {} });
  assert.deepEqual(byRcpt.get('b1@bounce.example'), {
    recipient: 'b1@bounce.example', action: 'BOUNCE', attempt: false, retry: 0, dsn: { action: 'failed', status: [5, 7, 1], diagnostictype: 'x-error', diagnosticcode: 'quarantined' }, context: {},
  });
  // The hook cannot keep an entry the operator deleted.
  assert.equal(byRcpt.get('keepme@gone.example')?.action, 'DELETE');
  const s = await states();
  assert.equal(['del@gone.example', 'keepme@gone.example', 'b1@bounce.example'].some((x) => s.has(x)), false);
  await d.waitForLog((l) => l.msg === 'postdelivery action after an administrative removal ignored: the entry is already removed');
  // A move is not a removal: no call.
  fs.rmSync(hookRecord(), { force: true });
  await ctl('queue', 'update', '--recipientdomain', 'other.example', '--hold');
  assert.equal(fs.existsSync(hookRecord()), false);
});

test('bad import requests are refused with a reason and change nothing', async () => {
  const count = (await spoolEntries(cfg)).length;
  fs.writeFileSync(file('broken.hqf'), 'Halyard-Queue-File: 1\r\n{"transaction":"x"}\r\n');
  const broken = await ctl('queue', 'import', file('broken.hqf'));
  assert.deepEqual([broken.code, broken.stderr], [1, 'halyardctl: not a valid queue file: transaction is not a UUID\n']);
  fs.writeFileSync(file('nobody.eml'), 'From: a@example.com\nSubject: to nobody\n\nx\n');
  const nobody = await ctl('queue', 'import', file('nobody.eml'));
  assert.equal(nobody.code, 1);
  assert.match(nobody.stderr, /names no recipient/);
  const transport = await ctl('queue', 'import', file('nobody.eml'), '--recipient', 'x@y.example', '--transportid', 'nowhere');
  assert.equal(transport.code, 1);
  assert.match(transport.stderr, /no transport "nowhere"/);
  const missing = await ctl('queue', 'import', file('does-not-exist.eml'));
  assert.deepEqual([missing.code, missing.stderr], [2, `halyardctl: cannot read ${file('does-not-exist.eml')}: ENOENT\n`]);
  const both = await request('E', encodeMessage('QueueImportRequest', { data: { rfc822: Buffer.from('To: a@b.example\r\n\r\nx\r\n'), hqf: Buffer.from('x') } }));
  assert.deepEqual([both.status, both.payload.toString()], ['E', 'give data.rfc822 or data.hqf, not both']);
  const empty = await request('E', Buffer.alloc(0));
  assert.equal(empty.status, 'E');
  assert.match(empty.payload.toString(), /nothing to import/);
  assert.equal((await spoolEntries(cfg)).length, count);
});

function request(letter: string, body: Buffer): Promise<{ status: string; payload: Buffer }> {
  return controlRequest(socketPath(), letter, body);
}

test('QueueImportRequest and QueueUnloadRequest encoded by protoc against the reference schema', { skip: !which('protoc') && 'protoc is not installed' }, async () => {
  const dir = path.dirname(REFERENCE);
  const protoc = (args: string[], input: Buffer) => execFileSync('protoc', [`-I${dir}`, ...args, path.basename(REFERENCE)], { input });
  const imp = protoc(['--encode=smtpd.QueueImportRequest'], Buffer.from('data { rfc822: "From: p@protoc.example\\r\\nTo: q@protoc.example\\r\\nSubject: protoc\\r\\n\\r\\nhi\\r\\n" }'));
  const r = await request('E', imp);
  assert.equal(r.status, '+', r.payload.toString());
  const txid = /transactionid: "([0-9a-f-]{36})"/.exec(protoc(['--decode=smtpd.QueueImportResponse'], r.payload).toString())?.[1];
  assert.ok(txid);
  assert.equal((await states()).get('q@protoc.example')?.id, `${txid}:1`);
  const unl = protoc(['--encode=smtpd.QueueUnloadRequest'], Buffer.from('conditions { recipients { domain { value: "protoc.example" } } } freeze: true'));
  const u = await request('J', unl);
  assert.equal(u.status, '+', u.payload.toString());
  const decoded = protoc(['--decode=smtpd.QueueUnloadResponse'], u.payload).toString();
  assert.match(decoded, new RegExp(`hqfpaths: ".*/unloaded/${txid}\\.hqf"`));
  assert.equal((await states()).has('q@protoc.example'), false);
});

test('halyardctl reaches the TCP control socket with mutual TLS; without the listed client certificate it cannot', async () => {
  // A config for halyardctl only: Halon's TCP-only shape (port, no path) with the client block.
  const client = file('client.yaml');
  fs.writeFileSync(client, `version: "6.8"
servers: []
environment:
  controlsocket:
    port: ${tcpPort}
    address: 127.0.0.1
    tls:
      cert: ctl
      client:
        certificate: { path: admin.crt }
        privatekey: { path: admin.key }
pki:
  private:
    - id: ctl
      certificate: { path: ctl.crt }
`);
  const via = (...args: string[]) => run(process.execPath, [path.join(BIN, 'halyardctl'), ...args]);
  const ok = await via('-c', client, 'queue', 'list', '-F', 'recipient', '--recipient', 'p2@other.example');
  assert.deepEqual([ok.code, lines(ok.stdout)], [0, ['RECIPIENT', 'p2@other.example', '1 of 1 entry']], ok.stderr);
  // The daemon's own config plus --port: TLS because it has controlsocket.tls; the client key by option.
  const flags = await via('-c', cfg.smtpd, '--port', String(tcpPort), '--tls-certificate', file('admin.crt'), '--tls-privatekey', file('admin.key'), 'queue', 'quota', 'q');
  assert.equal(flags.code, 0, flags.stderr);
  const stranger = await via('-c', cfg.smtpd, '--port', String(tcpPort), '--tls-certificate', file('stranger.crt'), '--tls-privatekey', file('stranger.key'), 'process-stats');
  assert.equal(stranger.code, 3, 'an unlisted client certificate is refused');
  const anonymous = await via('-c', cfg.smtpd, '--port', String(tcpPort), 'process-stats');
  assert.equal(anonymous.code, 3, 'no client certificate is refused');
  const wrongName = await via('-c', client, '--tls-verifyname', 'mx.elsewhere.example', 'process-stats');
  assert.equal(wrongName.code, 3, 'the daemon certificate must carry the verify name');
  assert.match(wrongName.stderr, /cannot connect/);
  const plain = await via('-c', cfg.smtpd, '--socket', socketPath(), '--port', '1', 'process-stats');
  assert.equal(plain.code, 2, '--socket does not go with --port');
});
