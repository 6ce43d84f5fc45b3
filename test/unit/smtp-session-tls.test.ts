import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HookInput } from '../../src/hooks/runtime';
import { Client, HOSTNAME, accept, makeCert, refuse, runningServer, sendMail, startServer, type TestCert } from './smtp-helpers';

let cert: TestCert;
before(() => {
  cert = makeCert();
});
after(() => cert.cleanup());

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

function authHook(i: HookInput<'auth'>) {
  const ok = i.arguments.username === 'alice' && i.arguments.password === 's3cret';
  return ok ? accept() : refuse('Reject', 535, [5, 7, 8], 'Authentication credentials invalid');
}

const sniSeen: Array<string | undefined> = [];

function tlsServer(over: Parameters<typeof runningServer>[0] = {}) {
  return startServer({
    server: runningServer({ tls: { certs: ['main'], implicit: ['smtps'] }, ...over }),
    hooks: { auth: authHook },
    secureContext: (name) => (sniSeen.push(name), cert.context),
    listeners: [
      { port: 0, address: '127.0.0.1', id: 'plain' },
      { port: 0, address: '127.0.0.1', id: 'smtps' },
    ],
  });
}

test('STARTTLS: offered with a certificate, session reset after the handshake, ESMTPS in Received', async () => {
  const h = await tlsServer();
  try {
    const c = await Client.connect(h.ports.plain);
    await c.read();
    const e1 = await c.cmd('EHLO c.example');
    assert.ok(e1.lines.includes('STARTTLS'));
    assert.ok(!e1.lines.some((l) => l.startsWith('AUTH')), 'AUTH only after TLS (auth.requiretls)');
    assert.equal((await c.cmd('AUTH PLAIN ' + b64('\0alice\0s3cret'))).text, '5.7.0 Must issue a STARTTLS command first');
    await c.cmd('MAIL FROM:<a@b.example>');
    assert.equal((await c.cmd('STARTTLS')).text, '2.0.0 Ready to start TLS');
    const secure = await c.startTls();
    assert.match(secure.getProtocol() ?? '', /^TLSv1\.[23]$/);
    assert.equal((await c.cmd('MAIL FROM:<a@b.example>')).code, 503, 'EHLO forgotten (RFC 3207 §4.2)');
    const e2 = await c.cmd('EHLO c.example');
    assert.ok(!e2.lines.includes('STARTTLS'));
    assert.ok(e2.lines.includes('AUTH PLAIN LOGIN'));
    assert.equal((await c.cmd('STARTTLS')).text, '5.5.1 TLS already active');
    assert.equal((await sendMail(c, 'a@b.example', ['x@y.example'], 'Subject: t\r\n\r\nb')).code, 250, 'the MAIL before STARTTLS was forgotten');
    const tx = h.ingress.commits[0];
    assert.equal(tx.from.tls, true);
    assert.match(tx.bodies[0].toString(), / with ESMTPS id /);
    await c.cmd('QUIT');
    assert.ok(await c.waitClosed());
    for (let i = 0; i < 100 && h.smtp.stats().connections > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(h.smtp.stats().connections, 0, 'the TLS session was released');
    assert.ok(h.logs.records.some((r) => r.msg === 'smtp connection closed' && /^TLSv1\.[23]$/.test(String(r.tls))));
  } finally {
    await h.close();
  }
});

test('STARTTLS: plaintext pipelined after STARTTLS is discarded (RFC 3207 §5)', async () => {
  const h = await tlsServer();
  try {
    const c = await Client.connect(h.ports.plain);
    await c.read();
    await c.cmd('EHLO c.example');
    c.send('STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n');
    assert.equal((await c.read()).code, 220);
    await c.startTls();
    await c.cmd('EHLO c.example');
    assert.equal((await c.cmd('RCPT TO:<x@y.example>')).code, 503, 'the injected MAIL never ran');
    assert.ok(h.logs.records.some((r) => r.msg === 'plaintext pipelined after STARTTLS discarded'));
  } finally {
    await h.close();
  }
});

test('STARTTLS is not offered without a certificate (502)', async () => {
  const h = await startServer();
  try {
    const c = await Client.connect(h.port);
    await c.read();
    assert.ok(!(await c.cmd('EHLO c.example')).lines.includes('STARTTLS'));
    assert.equal((await c.cmd('STARTTLS')).code, 502);
  } finally {
    await h.close();
  }
});

test('implicit TLS listener: TLS from the first byte, then a normal session', async () => {
  const h = await tlsServer();
  try {
    const c = await Client.connectTls(h.ports.smtps);
    assert.equal((await c.read()).code, 220);
    const e = await c.cmd('EHLO c.example');
    assert.ok(!e.lines.includes('STARTTLS'));
    assert.ok(e.lines.includes('AUTH PLAIN LOGIN'));
    assert.equal((await c.cmd('AUTH PLAIN ' + b64('\0alice\0s3cret'))).text, '2.7.0 Authentication successful');
    assert.equal((await sendMail(c, 'alice@b.example', ['x@y.example'], 'Subject: t\r\n\r\nb')).code, 250);
    const tx = h.ingress.commits[0];
    assert.equal(tx.from.authuser, 'alice');
    assert.match(tx.bodies[0].toString(), / with ESMTPSA id /);
    assert.ok(sniSeen.includes('localhost'), 'the certificate is chosen by SNI');
  } finally {
    await h.close();
  }
});

test('AUTH PLAIN (334 round), LOGIN, cancel, failures, AUTH twice', async () => {
  const h = await tlsServer();
  try {
    const c = await Client.connectTls(h.ports.smtps);
    await c.read();
    await c.cmd('EHLO c.example');
    assert.equal((await c.cmd('AUTH CRAM-MD5')).code, 504);
    assert.deepEqual(await c.cmd('AUTH PLAIN'), { code: 334, lines: [''], text: '' });
    assert.equal((await c.cmd('*')).text, '5.7.0 Authentication cancelled');
    assert.equal((await c.cmd('AUTH PLAIN')).code, 334);
    assert.equal((await c.cmd('not base64!')).text, '5.5.2 Cannot decode response');
    assert.equal((await c.cmd('AUTH PLAIN ' + b64('\0alice\0wrong'))).text, '5.7.8 Authentication credentials invalid');
    assert.equal((await c.cmd('AUTH LOGIN')).text, 'VXNlcm5hbWU6');
    assert.equal((await c.cmd(b64('alice'))).text, 'UGFzc3dvcmQ6');
    assert.equal((await c.cmd(b64('s3cret'))).code, 235);
    assert.equal((await c.cmd('AUTH PLAIN ' + b64('\0alice\0s3cret'))).text, '5.5.1 Already authenticated');
    assert.ok(!JSON.stringify(h.logs.records).includes('s3cret'), 'passwords are never logged');
  } finally {
    await h.close();
  }
});

test('AUTH LOGIN with initial response; AUTH in a transaction; requiretls false offers AUTH in plaintext', async () => {
  const h = await tlsServer({ auth: { requiretls: false } });
  try {
    const c = await Client.connect(h.ports.plain);
    await c.read();
    assert.ok((await c.cmd('EHLO c.example')).lines.includes('AUTH PLAIN LOGIN'));
    await c.cmd('MAIL FROM:<a@b.example>');
    assert.equal((await c.cmd('AUTH PLAIN ' + b64('\0alice\0s3cret'))).code, 503);
    await c.cmd('RSET');
    assert.equal((await c.cmd('AUTH LOGIN ' + b64('alice'))).text, 'UGFzc3dvcmQ6');
    assert.equal((await c.cmd(b64('s3cret'))).code, 235);
  } finally {
    await h.close();
  }
});

test('AUTH without an auth hook is not offered and answers 502', async () => {
  const h = await startServer({ server: runningServer({ auth: { requiretls: false } }) });
  try {
    const c = await Client.connect(h.port);
    await c.read();
    assert.ok(!(await c.cmd('EHLO c.example')).lines.some((l) => l.startsWith('AUTH')));
    assert.equal((await c.cmd('AUTH PLAIN ' + b64('\0a\0b'))).text, '5.5.1 Command not implemented');
  } finally {
    await h.close();
  }
});

test('failed AUTH attempts count towards limits.errors', async () => {
  const h = await tlsServer({ limits: { errors: 3 } });
  try {
    const c = await Client.connectTls(h.ports.smtps);
    await c.read();
    await c.cmd('EHLO c.example');
    for (let i = 0; i < 3; i++) assert.equal((await c.cmd('AUTH PLAIN ' + b64('\0alice\0guess' + i))).code, 535);
    assert.equal((await c.read()).text, '4.7.0 Too many errors');
    assert.ok(await c.waitClosed());
  } finally {
    await h.close();
  }
});

test('greeting names the host; a TLS handshake failure does not disturb the server', async () => {
  const h = await tlsServer();
  try {
    const bad = await Client.connect(h.ports.smtps);
    bad.send(Buffer.from('this is not a ClientHello\r\n'));
    assert.ok(await bad.waitClosed());
    const c = await Client.connectTls(h.ports.smtps);
    assert.equal((await c.read()).text, `${HOSTNAME} ESMTP`);
  } finally {
    await h.close();
  }
});
