/**
 * STARTTLS per `tls.mode` against the sink with a self-signed certificate made by openssl at
 * test time: disabled, optional (incl. refusal and broken-handshake fallback), optional_verify,
 * require, require_verify; re-EHLO after TLS; certificate facts recorded.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SmtpConnection, type ConnectOptions, type TlsSettings } from '../../src/delivery/smtp-client';
import { SmtpSink, makeSelfSignedCert, type SinkOptions } from '../support/smtp-sink';

let dir = '';
let cert: { key: Buffer; cert: Buffer };
const sinks: SmtpSink[] = [];

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halyard-client-tls-'));
  cert = makeSelfSignedCert(dir, 'mx.test');
});

after(async () => {
  await Promise.all(sinks.map((s) => s.close()));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function sink(opts: SinkOptions = {}): Promise<SmtpSink> {
  const s = await SmtpSink.start(opts);
  sinks.push(s);
  return s;
}

function connect(s: SmtpSink, tls: TlsSettings, extra: Partial<ConnectOptions> = {}) {
  return SmtpConnection.connect(s.host, s.port, { helo: 'client.test', servername: 'mx.test', tls, ...extra });
}

const TX = { sender: 's@example.com', recipients: [{ address: 'r@example.net' }], size: 20, body: Buffer.from('Subject: t\r\n\r\nhi\r\n') };

test('disabled: STARTTLS is offered but never used', async () => {
  const s = await sink({ tls: cert });
  const r = await connect(s, { mode: 'disabled' });
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.connection.info.tls.started, false);
  assert.deepEqual(s.lines('STARTTLS'), []);
  await r.connection.quit();
});

test('optional: TLS without verification, EHLO again after the handshake, certificate facts recorded', async () => {
  const s = await sink({ tls: cert });
  const r = await connect(s, { mode: 'optional' });
  assert.ok(r.ok);
  if (!r.ok) return;
  const c = r.connection;
  const info = c.info;
  assert.equal(info.tls.started, true);
  assert.match(info.tls.protocol ?? '', /^TLSv1\.[23]$/);
  assert.ok(info.tls.cipher);
  assert.match(info.tls.peercert?.subject ?? '', /CN=mx\.test/);
  assert.match(info.tls.peercert?.fingerprint ?? '', /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.equal(s.lines('EHLO').length, 2, 'EHLO before and after STARTTLS (RFC 3207 §4.2)');
  assert.equal(c.capabilities.starttls, false, 'capabilities come from the EHLO over TLS');
  const t = await c.send(TX);
  assert.equal(t.recipients[0].outcome, 'delivered');
  assert.equal(s.transactions[0].tls, true);
  await c.quit();
});

test('optional: not offered, or refused with 454: plaintext delivery', async () => {
  const plain = await sink();
  const r1 = await connect(plain, { mode: 'optional' });
  assert.ok(r1.ok && !r1.connection.info.tls.started);
  if (r1.ok) await r1.connection.quit();

  const refusing = await sink({ extensions: ['PIPELINING', 'STARTTLS'], replies: { STARTTLS: '454 4.7.0 TLS not available now' } });
  const r2 = await connect(refusing, { mode: 'optional' });
  assert.ok(r2.ok);
  if (!r2.ok) return;
  assert.equal(r2.connection.info.tls.started, false);
  assert.equal((await r2.connection.send(TX)).recipients[0].outcome, 'delivered');
  await r2.connection.quit();
});

test('optional: a failed handshake reconnects once without TLS', async () => {
  const s = await sink({ brokenTls: true });
  const r = await connect(s, { mode: 'optional' });
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.connection.info.tls.started, false);
  assert.equal(r.connection.info.tls.fallback, true);
  assert.equal(s.sessions, 2);
  assert.equal(s.lines('STARTTLS').length, 1, 'the second session does not try TLS again');
  assert.equal((await r.connection.send(TX)).recipients[0].outcome, 'delivered');
  assert.equal(s.transactions[0].tls, false);
  await r.connection.quit();
});

test('require: a failed handshake fails the attempt with a tls error, no plaintext retry', async () => {
  const s = await sink({ brokenTls: true });
  const r = await connect(s, { mode: 'require' });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.error.type, 'tls');
  assert.equal(r.error.temporary, true);
  assert.equal(s.sessions, 1);
});

test('require: STARTTLS not offered fails with a temporary tls error', async () => {
  const s = await sink();
  const r = await connect(s, { mode: 'require' });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.error.type, 'tls');
  assert.equal(r.error.temporary, true);
  assert.match(r.error.message, /does not offer/);
});

test('require: a self-signed certificate is accepted (no verification)', async () => {
  const s = await sink({ tls: cert });
  const r = await connect(s, { mode: 'require' });
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.connection.info.tls.started, true);
  assert.equal(r.connection.info.tls.verified, undefined);
  await r.connection.quit();
});

test('optional_verify and require_verify: a self-signed certificate fails without a trusted CA', async () => {
  for (const mode of ['optional_verify', 'require_verify'] as const) {
    const s = await sink({ tls: cert });
    const r = await connect(s, { mode });
    assert.equal(r.ok, false, mode);
    if (r.ok) continue;
    assert.equal(r.error.type, 'tls');
    assert.match(r.error.message, /verification failed/);
    assert.equal(s.transactions.length, 0);
  }
});

test('optional_verify and require_verify: trusted CA and matching MX name verify', async () => {
  for (const mode of ['optional_verify', 'require_verify'] as const) {
    const s = await sink({ tls: cert });
    const r = await connect(s, { mode, ca: cert.cert });
    assert.ok(r.ok, mode);
    if (!r.ok) continue;
    assert.equal(r.connection.info.tls.verified, true);
    assert.equal((await r.connection.send(TX)).recipients[0].outcome, 'delivered');
    await r.connection.quit();
  }
});

test('require_verify: a trusted certificate for another name fails; tls_verify_name can allow it', async () => {
  const s = await sink({ tls: cert });
  const wrong = await connect(s, { mode: 'require_verify', ca: cert.cert }, { servername: 'other.test' });
  assert.equal(wrong.ok, false);
  if (!wrong.ok) assert.match(wrong.error.message, /does not match other\.test/);
  const named = await connect(s, { mode: 'require_verify', ca: cert.cert, verifyNames: ['mx.test'] }, { servername: 'other.test' });
  assert.ok(named.ok);
  if (named.ok) await named.connection.quit();
});

test('optional_verify: not offered means plaintext; require_verify: not offered fails', async () => {
  const s = await sink();
  const r1 = await connect(s, { mode: 'optional_verify' });
  assert.ok(r1.ok && !r1.connection.info.tls.started);
  if (r1.ok) await r1.connection.quit();
  const r2 = await connect(s, { mode: 'require_verify' });
  assert.equal(r2.ok, false);
  if (!r2.ok) assert.equal(r2.error.type, 'tls');
});
