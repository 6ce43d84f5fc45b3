/**
 * Hook outcomes through the real daemon: TypeScript hook modules from a config folder decide
 * each phase; implicit and error outcomes are Halon's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { dkimVerify } from 'mailauth/lib/dkim/verify';
import { RawSmtp, defaultApp, defaultSmtpd, message, sendRaw, spoolBody, spoolEntries, startDaemon, tempDir, writeConfig } from './harness';

function hooksApp(phases: Record<string, string>): string {
  const phaseYaml = Object.keys(phases).map((p) => `      ${p}:\n        hook: ${p}1`).join('\n');
  const hookYaml = Object.keys(phases).map((p) => `    ${p}:\n      - id: ${p}1\n        path: hooks/${p}.ts`).join('\n');
  return defaultApp(`    phases:\n${phaseYaml}\n`, `scripting:\n  timeout: 2\n  hooks:\n${hookYaml}\n`);
}

function files(phases: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(phases).map(([p, src]) => [`hooks/${p}.ts`, src]));
}

test('rcptto hook rejects one domain with its own reason; eod hook edits, holds and tags what it queues', async (t) => {
  const phases = {
    rcptto: `import type { RcptToHook } from 'halyard';
export default function ({ arguments: args, Reject, Accept }: RcptToHook) {
  if (args.address.domain === 'blocked.example') return Reject('No such domain here');
  if (args.address.localpart === 'vip') return Accept({ transportid: 'other' });
}`,
    eod: `import type { EodHook } from 'halyard';
export default function ({ arguments: { mail }, transaction, Accept }: EodHook) {
  mail.addHeader('X-Scanned', 'yes');
  for (const r of transaction.recipients) {
    mail.queue(transaction.senderaddress!, r.address, r.transportid, {
      metadata: { customer: 'acme' }, jobid: 'job-7', tenantid: 'acme', priority: 1, hold: r.address.localpart === 'quarantine',
    });
  }
  Accept();
}`,
  };
  const cfg = writeConfig({ app: hooksApp(phases), files: files(phases) });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const c = await RawSmtp.connect(d.port);
  await c.reply();
  await c.cmd('EHLO client.test');
  assert.match(await c.cmd('MAIL FROM:<s@example.com>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<u@blocked.example>'), /^554 5\.\d\.\d+ No such domain here/);
  assert.match(await c.cmd('RCPT TO:<vip@example.org>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<quarantine@example.org>'), /^250 /);
  assert.match(await c.cmd('DATA'), /^354/);
  c.write(message().replace(/\n/g, '\r\n') + '\r\n.\r\n');
  const r = await c.reply();
  assert.match(r, /^250 2\.0\.0 .*queued as/);
  c.close();
  const entries = await spoolEntries(cfg);
  assert.equal(entries.length, 2);
  const vip = entries.find((e) => e.entry.recipient === 'vip@example.org')!;
  const q = entries.find((e) => e.entry.recipient === 'quarantine@example.org')!;
  assert.equal(vip.entry.transportid, 'other');
  assert.equal(vip.entry.state, 'ACTIVE');
  assert.equal(q.entry.state, 'HOLD');
  assert.deepEqual(vip.entry.metadata, { customer: 'acme' });
  assert.equal(vip.entry.jobid, 'job-7');
  assert.equal(vip.entry.tenantid, 'acme');
  assert.equal(vip.entry.priority, 1);
});

test('an eod hook that takes no action defers and queues nothing', async (t) => {
  const phases = { eod: `export default function () { /* forgot to Accept */ }` };
  const cfg = writeConfig({ app: hooksApp(phases), files: files(phases) });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const r = await sendRaw(d.port, 'a@example.com', ['b@example.org'], message());
  assert.match(r, /^4\d\d 4\.\d\.\d+ /);
  assert.equal((await spoolEntries(cfg)).length, 0);
});

test('a throwing hook defers (never lets mail through) and logs the error', async (t) => {
  const phases = { mailfrom: `export default function () { throw new Error('database down'); }` };
  const cfg = writeConfig({ app: hooksApp(phases), files: files(phases) });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const r = await sendRaw(d.port, 'a@example.com', ['b@example.org'], message());
  assert.match(r, /^450 4\.\d\.\d+ /);
  assert.doesNotMatch(r, /database down/, 'the peer never sees internal error text');
  const line = await d.waitForLog((l) => l.level === 'error' && JSON.stringify(l).includes('database down'));
  assert.ok(line);
  assert.equal((await spoolEntries(cfg)).length, 0);
});

test('a hook that runs past scripting.timeout defers', async (t) => {
  const phases = { rcptto: `export default async function () { await new Promise((r) => setTimeout(r, 5000)); }` };
  const cfg = writeConfig({ app: hooksApp(phases), files: files(phases) });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const c = await RawSmtp.connect(d.port);
  await c.reply();
  await c.cmd('EHLO client.test');
  await c.cmd('MAIL FROM:<a@example.com>');
  const started = Date.now();
  assert.match(await c.cmd('RCPT TO:<b@example.org>'), /^450 4\.\d\.\d+ /);
  assert.ok(Date.now() - started < 4500, 'answered at the timeout, not when the hook finished');
  c.close();
});

test('connect hook rejects a client; helo hook removes an extension', async (t) => {
  const phases = {
    connect: `import type { ConnectHook } from 'halyard';
export default function ({ arguments: a, Reject, context }: ConnectHook) { context.seen = a.remoteip; context.local = \`\${a.localip}:\${a.localport}\`; }`,
    helo: `import type { HeloHook } from 'halyard';
export default function ({ arguments: a, Accept, Reject, context }: HeloHook) {
  if (a.host === 'bad.example') return Reject('Go away', { disconnect: true });
  Accept({ extensions: a.extensions.filter((e) => !e.startsWith('CHUNKING')).concat(context.seen === '127.0.0.1' ? ['X-SEEN', \`X-LOCAL \${context.local}\`] : []) });
}`,
  };
  const cfg = writeConfig({ app: hooksApp(phases), files: files(phases) });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const c = await RawSmtp.connect(d.port);
  assert.match(await c.reply(), /^220 /);
  const ehlo = await c.cmd('EHLO good.example');
  assert.doesNotMatch(ehlo, /CHUNKING/);
  assert.match(ehlo, /X-SEEN/, 'connection-bound context is shared between hooks');
  assert.match(ehlo, new RegExp(`X-LOCAL 127\\.0\\.0\\.1:${d.port}(\\r?\\n|$)`), 'the hook sees the listener\'s address and port as the local end');
  c.close();
  const c2 = await RawSmtp.connect(d.port);
  await c2.reply();
  assert.match(await c2.cmd('EHLO bad.example'), /^554 5\.\d\.\d+ Go away/);
  assert.ok(await c2.waitClosed(), 'disconnect option closes the connection');
});

test('a connect hook Reject answers 521 and closes; the disconnect hook runs and can log', async (t) => {
  const phases = {
    connect: `import type { ConnectHook } from 'halyard';
export default function ({ Reject, context }: ConnectHook) { context.rejected = true; Reject('Not here'); }`,
    disconnect: `import type { DisconnectHook } from 'halyard';
export default function ({ arguments: a, context, log }: DisconnectHook) { log('bye', { rejected: context.rejected, close: a.close }); }`,
  };
  const cfg = writeConfig({ app: hooksApp(phases), files: files(phases) });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const c = await RawSmtp.connect(d.port);
  assert.match(await c.reply(), /^521 5\.7\.1 Not here/);
  assert.ok(await c.waitClosed());
  const line = await d.waitForLog((l) => l.msg === 'bye');
  assert.equal(line.rejected, true, 'the disconnect hook sees the connection-bound context');
});

test('an eod hook signs with DKIM (key by pki id) and the queued message verifies', async (t) => {
  const ed = generateKeyPairSync('ed25519');
  const der = ed.publicKey.export({ type: 'spki', format: 'der' });
  const txt = `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString('base64')}`;
  const phases = {
    eod: `import type { EodHook } from 'halyard';
export default async function ({ arguments: { mail }, transaction, Accept }: EodHook) {
  mail.setHeader('Subject', 'signed by halyard');
  await mail.signDKIM('s1', 'example.com', 'dkim1');
  for (const r of transaction.recipients) mail.queue(transaction.senderaddress!, r.address, r.transportid);
  Accept();
}`,
  };
  const dir = tempDir();
  fs.writeFileSync(`${dir}/dkim.key`, ed.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  const cfg = writeConfig({ dir, smtpd: defaultSmtpd('pki:\n  private:\n    - id: dkim1\n      privatekey:\n        path: dkim.key\n'), app: hooksApp(phases), files: files(phases) });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const r = await sendRaw(d.port, 'a@example.com', ['b@example.org'], message('original'));
  const txid = /queued as ([0-9a-f-]{36})/.exec(r)![1];
  const body = await spoolBody(cfg, `${txid}:1`);
  assert.match(body.toString(), /^DKIM-Signature: /);
  assert.match(body.toString(), /Subject: signed by halyard/);
  const res = await dkimVerify(body, { resolver: (async (name: string) => (name === 's1._domainkey.example.com' ? [[txt]] : Promise.reject(Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' })))) as never });
  assert.deepEqual(res.results.map((x) => x.status.result), ['pass']);
});
