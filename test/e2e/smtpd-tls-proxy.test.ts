/**
 * TLS (STARTTLS and implicit), AUTH through the auth hook, and PROXY protocol v1/v2 only from
 * trusted networks — through the real daemon with real clients.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import nodemailer from 'nodemailer';
import { RawSmtp, defaultApp, message, spoolEntries, startDaemon, tempDir, writeConfig, type ConfigSet, type Daemon } from './harness';

let cfg: ConfigSet;

before(() => {
  const dir = tempDir();
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=mx.test.example', '-days', '2',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  const smtpd = `version: "6.8"
servers:
  - id: default
    listeners:
      - port: 0
        address: 127.0.0.1
      - id: smtps
        port: 0
        address: 127.0.0.1
    proxyprotocol:
      - 127.0.0.2
environment:
  appconf: smtpd-app.yaml
  hostname: mx.test.example
spool:
  path: spool
pki:
  private:
    - id: default
      privatekey:
        path: key.pem
      certificate:
        path: cert.pem
`;
  const app = defaultApp(
    `    tls:
      certs:
        - cert: default
      implicit:
        - smtps
    phases:
      auth:
        hook: auth1
`,
    `scripting:
  hooks:
    auth:
      - id: auth1
        path: hooks/auth.ts
`,
  );
  const auth = `import type { AuthHook } from 'halyard';
export default function ({ arguments: a, Accept }: AuthHook) {
  if (a.username === 'alice' && a.password === 'secret') Accept();
}`;
  cfg = writeConfig({ dir, smtpd, app, files: { 'hooks/auth.ts': auth } });
});

async function withDaemon(t: { after(fn: () => unknown): void }): Promise<Daemon> {
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  return d;
}

test('STARTTLS then AUTH (decided by the auth hook) with nodemailer; wrong password is refused', async (t) => {
  const d = await withDaemon(t);
  const [plain] = d.ports();
  const ok = nodemailer.createTransport({ host: '127.0.0.1', port: plain, secure: false, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice', pass: 'secret' } });
  const info = await ok.sendMail({ from: 'alice@example.com', to: 'bob@example.org', subject: 'tls', text: 'over TLS' });
  ok.close();
  assert.match(info.response, /^250 /);
  const bad = nodemailer.createTransport({ host: '127.0.0.1', port: plain, secure: false, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice', pass: 'wrong' } });
  await assert.rejects(bad.sendMail({ from: 'alice@example.com', to: 'bob@example.org', text: 'x' }), (err: Error & { responseCode?: number }) => err.responseCode === 535);
  bad.close();
  const entries = await spoolEntries(cfg);
  const e = entries.find((x) => x.entry.recipient === 'bob@example.org' && (x.transaction.from as { tls?: boolean })?.tls);
  assert.ok(e, 'the transaction is recorded as received over TLS');
});

test('AUTH is neither offered nor accepted before STARTTLS', async (t) => {
  const d = await withDaemon(t);
  const c = await RawSmtp.connect(d.ports()[0]);
  await c.reply();
  const ehlo = await c.cmd('EHLO client.test');
  assert.match(ehlo, /STARTTLS/);
  assert.doesNotMatch(ehlo, /AUTH/);
  assert.match(await c.cmd('AUTH PLAIN AGFsaWNlAHNlY3JldA=='), /^530 5\.7\.0 /);
  c.close();
});

test('implicit TLS listener speaks TLS from the first byte', async (t) => {
  const d = await withDaemon(t);
  const smtps = d.ports()[1];
  const tr = nodemailer.createTransport({ host: '127.0.0.1', port: smtps, secure: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice', pass: 'secret' } });
  const info = await tr.sendMail({ from: 'alice@example.com', to: 'dave@example.org', text: 'implicit' });
  tr.close();
  assert.match(info.response, /^250 /);
});

function connectFrom(port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(s));
    s.once('error', reject);
  });
}

function readReply(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const on = (d: Buffer) => {
      buf += d.toString('latin1');
      if (/(^|\n)\d{3} [^\n]*\n$/.test(buf)) {
        s.off('data', on);
        resolve(buf);
      }
    };
    s.on('data', on);
    s.once('close', () => resolve(buf));
  });
}

async function transact(s: net.Socket, rcpt: string): Promise<string> {
  for (const line of ['EHLO proxied.test', 'MAIL FROM:<p@example.com>', `RCPT TO:<${rcpt}>`, 'DATA']) {
    s.write(line + '\r\n');
    await readReply(s);
  }
  s.write(message().replace(/\n/g, '\r\n') + '\r\n.\r\n');
  return readReply(s);
}

test('PROXY v1 from a trusted network sets the client address', async (t) => {
  const d = await withDaemon(t);
  const s = await connectFrom(d.ports()[0], '127.0.0.2');
  const greeting = readReply(s);
  s.write('PROXY TCP4 127.0.0.9 127.0.0.1 40001 25\r\n');
  assert.match(await greeting, /^220 /);
  assert.match(await transact(s, 'v1@example.org'), /^250 /);
  s.destroy();
  const e = (await spoolEntries(cfg)).find((x) => x.entry.recipient === 'v1@example.org')!;
  assert.equal((e.transaction.from as { remoteip: string }).remoteip, '127.0.0.9');
});

test('PROXY v2 from a trusted network sets the client address', async (t) => {
  const d = await withDaemon(t);
  const s = await connectFrom(d.ports()[0], '127.0.0.2');
  const greeting = readReply(s);
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const addr = Buffer.alloc(12);
  Buffer.from([127, 0, 0, 8]).copy(addr, 0);
  Buffer.from([127, 0, 0, 1]).copy(addr, 4);
  addr.writeUInt16BE(40002, 8);
  addr.writeUInt16BE(25, 10);
  const hdr = Buffer.concat([sig, Buffer.from([0x21, 0x11, 0x00, 12]), addr]);
  s.write(hdr);
  assert.match(await greeting, /^220 /);
  assert.match(await transact(s, 'v2@example.org'), /^250 /);
  s.destroy();
  const e = (await spoolEntries(cfg)).find((x) => x.entry.recipient === 'v2@example.org')!;
  assert.equal((e.transaction.from as { remoteip: string }).remoteip, '127.0.0.8');
});

test('a PROXY header from an untrusted address is not honoured', async (t) => {
  const d = await withDaemon(t);
  const c = await RawSmtp.connect(d.ports()[0]);
  assert.match(await c.reply(), /^220 /);
  const r = await c.cmd('PROXY TCP4 127.0.0.9 127.0.0.1 40003 25');
  assert.match(r, /^5\d\d 5\.5\.\d /);
  c.close();
});
