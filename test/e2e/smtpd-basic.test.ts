/**
 * The daemon as a user meets it: start it, send mail with real clients, see the mail logged and
 * in the spool, check configs, reload, stop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { BIN, ROOT, defaultApp, defaultSmtpd, message, run, sendRaw, spoolEntries, startDaemon, which, writeConfig, RawSmtp } from './harness';

test('a message sent with nodemailer is acknowledged, logged and in the spool', async (t) => {
  const cfg = writeConfig();
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: d.port, secure: false, ignoreTLS: true });
  const info = await transport.sendMail({
    from: 'alice@example.com',
    to: ['bob@example.org', 'carol@example.net'],
    subject: 'hello',
    text: 'Hi there',
  });
  transport.close();
  assert.match(info.response, /^250 2\.0\.0 .*queued as ([0-9a-f-]{36})/);
  const txid = /queued as ([0-9a-f-]{36})/.exec(info.response)![1];
  assert.deepEqual(info.accepted.sort(), ['bob@example.org', 'carol@example.net']);

  const tx = await d.waitForLog((l) => l.transaction === txid || (l as { id?: string }).id === txid || JSON.stringify(l).includes(txid));
  assert.ok(tx, 'the transaction decision is logged');
  await d.waitForLog((l) => /connection/i.test(String(l.msg)) && JSON.stringify(l).includes('127.0.0.1'));

  const entries = await spoolEntries(cfg);
  const mine = entries.filter((e) => e.id.startsWith(txid + ':'));
  assert.equal(mine.length, 2, 'one queue entry per recipient');
  assert.deepEqual(mine.map((e) => e.id).sort(), [`${txid}:1`, `${txid}:2`]);
  assert.deepEqual(mine.map((e) => e.entry.recipient).sort(), ['bob@example.org', 'carol@example.net']);
  for (const e of mine) {
    assert.equal(e.entry.state, 'ACTIVE');
    assert.equal(e.entry.transportid, 'mx');
    assert.equal(e.entry.sender, 'alice@example.com');
  }
});

test('swaks delivers a message and sees the announced extensions', { skip: !which('swaks') && 'swaks not installed' }, async (t) => {
  const cfg = writeConfig();
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const r = await run('swaks', ['--server', '127.0.0.1', '--port', String(d.port), '--from', 'a@example.com', '--to', 'b@example.org', '--pipeline', '--body', 'swaks test']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  for (const ext of ['PIPELINING', 'SIZE', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'CHUNKING', 'DSN']) {
    assert.match(r.stdout, new RegExp(`<-  250[- ]${ext}`), `EHLO announces ${ext}`);
  }
  assert.match(r.stdout, /<-  250 2\.0\.0 .*queued as/);
});

test('smtp-source: 200 messages over 10 sessions all land in the spool', { skip: !which('smtp-source') && 'smtp-source not installed' }, async (t) => {
  const cfg = writeConfig();
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const r = await run('smtp-source', ['-s', '10', '-m', '200', '-l', '5120', '-f', 'src@example.com', '-t', 'dst@example.org', '-M', 'source.test', `127.0.0.1:${d.port}`], { timeout: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const entries = await spoolEntries(cfg);
  assert.equal(entries.length, 200);
  assert.ok(entries.every((e) => e.entry.recipient === 'dst@example.org' && Number(e.entry.size) > 5120));
});

test('environment.uuid.version 1 gives time-based transaction ids', async (t) => {
  const cfg = writeConfig({ smtpd: defaultSmtpd().replace('  hostname: mx.test.example', '  hostname: mx.test.example\n  uuid:\n    version: 1') });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const r = await sendRaw(d.port, 'a@example.com', ['b@example.org'], message());
  assert.match(r, /queued as [0-9a-f]{8}-[0-9a-f]{4}-1[0-9a-f]{3}-/);
  const v4 = writeConfig();
  const d4 = await startDaemon(v4);
  t.after(() => d4.stop());
  assert.match(await sendRaw(d4.port, 'a@example.com', ['b@example.org'], message()), /queued as [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);
});

test('the shipped default config passes --test-config', async () => {
  const r = await run(process.execPath, [path.join(BIN, 'halyard-smtpd'), '-c', path.join(ROOT, 'config/smtpd.yaml'), '--test-config']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /valid/);
});

test('--test-config lists every error as file: key.path: reason and exits 1', async () => {
  const cfg = writeConfig({
    smtpd: defaultSmtpd().replace('port: 0', 'port: "not-a-port"') + 'bogus: 1\n',
    app: defaultApp('    phases:\n      data:\n        maxsize: 12 parsecs\n'),
  });
  const r = await run(process.execPath, [path.join(BIN, 'halyard-smtpd'), '-c', cfg.smtpd, '--test-config']);
  assert.equal(r.code, 1);
  const lines = r.stderr.split('\n').filter((l) => l.includes(': '));
  assert.ok(lines.some((l) => l.startsWith(`${cfg.smtpd}: servers.0.listeners.0.port: `)), r.stderr);
  assert.ok(lines.some((l) => l.startsWith(`${cfg.smtpd}: `) && l.includes('bogus')), r.stderr);
  const good = writeConfig();
  const ok = await run(process.execPath, [path.join(BIN, 'halyard-smtpd'), '-c', good.smtpd, '--test-config']);
  assert.equal(ok.code, 0, ok.stderr);
});

test('a bad running config is reported with its errors and the daemon refuses to start', async () => {
  const cfg = writeConfig({ app: defaultApp('    phases:\n      eod:\n        hook: missing\n') });
  const r = await run(process.execPath, [path.join(BIN, 'halyard-smtpd'), '-c', cfg.smtpd], { timeout: 20_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /smtpd-app\.yaml: servers\.0\.phases\.eod\.hook: /);
});

test('SIGHUP reloads the running config for new connections; a broken file is refused and the old one keeps running', async (t) => {
  const cfg = writeConfig({ app: defaultApp('    phases:\n      data:\n        maxsize: 10MiB\n') });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const ehloSize = async () => {
    const c = await RawSmtp.connect(d.port);
    await c.reply();
    const r = await c.cmd('EHLO client.test');
    c.close();
    return /250[- ]SIZE (\d+)/.exec(r)?.[1];
  };
  assert.equal(await ehloSize(), String(10 * 1024 * 1024));
  const held = await RawSmtp.connect(d.port);
  await held.reply();

  fs.writeFileSync(cfg.app, defaultApp('    phases:\n      data:\n        maxsize: 20MiB\n'));
  d.proc.kill('SIGHUP');
  await d.waitForLog((l) => l.msg === 'running configuration reloaded');
  assert.equal(await ehloSize(), String(20 * 1024 * 1024));
  const heldEhlo = await held.cmd('EHLO client.test');
  assert.match(heldEhlo, /SIZE 10485760/, 'a connection opened before the reload keeps its config');
  held.close();

  fs.writeFileSync(cfg.app, defaultApp('    phases:\n      data:\n        maxsize: lots\n'));
  d.proc.kill('SIGHUP');
  const refused = await d.waitForLog((l) => l.msg === 'running configuration refused; the previous one keeps running');
  assert.match(JSON.stringify(refused.errors), /maxsize/);
  assert.equal(await ehloSize(), String(20 * 1024 * 1024));
});

test('SIGTERM stops the daemon cleanly with exit code 0 and mail accepted before is kept', async () => {
  const cfg = writeConfig();
  const d = await startDaemon(cfg);
  const reply = await sendRaw(d.port, 'a@example.com', ['b@example.org'], message());
  assert.match(reply, /^250 /);
  const r = await d.stop('SIGTERM');
  assert.equal(r.code, 0);
  const entries = await spoolEntries(cfg);
  assert.equal(entries.length, 1);
  const again = await startDaemon(cfg);
  const loaded = await again.waitForLog((l) => l.msg === 'spool loaded');
  assert.equal(loaded.entries, 1);
  await again.stop();
});

test('with spool.minfree reached new mail gets 452 4.3.1 and nothing is lost', async (t) => {
  const cfg = writeConfig({ smtpd: defaultSmtpd().replace('  fsync: true', '  fsync: true\n  minfree:\n    bytes: 1000TiB') });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const reply = await sendRaw(d.port, 'a@example.com', ['b@example.org'], message());
  assert.match(reply, /^452 4\.3\.1 /);
  assert.equal((await spoolEntries(cfg)).length, 0);
});
