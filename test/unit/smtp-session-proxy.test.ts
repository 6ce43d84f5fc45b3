import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import nodemailer from 'nodemailer';
import type { HookInput } from '../../src/hooks/runtime';
import { Client, accept, makeCert, runningServer, startServer } from './smtp-helpers';

const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function proxyV2Tcp4(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const b = Buffer.alloc(16 + 12);
  SIG.copy(b, 0);
  b[12] = 0x21;
  b[13] = 0x11;
  b.writeUInt16BE(12, 14);
  Buffer.from(src).copy(b, 16);
  Buffer.from(dst).copy(b, 20);
  b.writeUInt16BE(sport, 24);
  b.writeUInt16BE(dport, 26);
  return b;
}

test('PROXY v1 from an allowed source: the hooks and the queue see the client given by the header', async () => {
  const seen: Array<HookInput<'connect'>['arguments']> = [];
  const h = await startServer({ proxyprotocol: ['127.0.0.0/8'], hooks: { connect: (i) => (seen.push(i.arguments), accept()) } });
  try {
    const c = await Client.connect(h.port);
    c.send('PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\nEHLO c.example\r\n');
    assert.equal((await c.read()).code, 220);
    assert.equal((await c.read()).code, 250, 'the EHLO sent with the header is processed');
    await c.cmd('MAIL FROM:<a@b.example>');
    await c.cmd('RCPT TO:<x@y.example>');
    await c.cmd('DATA');
    assert.equal((await c.cmd('Subject: p\r\n\r\nb\r\n.')).code, 250);
    assert.deepEqual(seen[0], { remoteip: '192.0.2.10', remoteport: 56324, localip: '198.51.100.1', localport: 25, serverid: 'inbound', proxyip: '127.0.0.1', proxytlv: undefined });
    const from = h.ingress.commits[0].from;
    assert.equal(from.remoteip, '192.0.2.10');
    assert.equal(from.remoteport, 56324);
    assert.match(h.ingress.commits[0].bodies[0].toString(), /\[192\.0\.2\.10\]/);
  } finally {
    await h.close();
  }
});

test('PROXY v2 from an allowed source, header split over two writes', async () => {
  const h = await startServer({ proxyprotocol: ['127.0.0.1'] });
  try {
    const c = await Client.connect(h.port);
    const hdr = proxyV2Tcp4([203, 0, 113, 5], [10, 0, 0, 1], 40000, 587);
    c.send(hdr.subarray(0, 10));
    await new Promise((r) => setTimeout(r, 30));
    c.send(hdr.subarray(10));
    assert.equal((await c.read()).code, 220);
    await c.cmd('EHLO c.example');
    await c.cmd('MAIL FROM:<a@b.example>');
    await c.cmd('RCPT TO:<x@y.example>');
    await c.cmd('DATA');
    await c.cmd('Subject: p\r\n\r\nb\r\n.');
    assert.deepEqual(
      { ip: h.ingress.commits[0].from.remoteip, port: h.ingress.commits[0].from.localport },
      { ip: '203.0.113.5', port: 587 },
    );
  } finally {
    await h.close();
  }
});

test('PROXY v1 before implicit TLS: the ClientHello sent in the same packet reaches the TLS engine', async () => {
  const cert = makeCert();
  const seen: string[] = [];
  const h = await startServer({
    server: runningServer({ tls: { certs: ['main'], implicit: ['smtps'] } }),
    hooks: { connect: (i) => (seen.push(`${i.arguments.remoteip} ${i.connection.tls?.protocol ?? 'plain'}`), accept()) },
    proxyprotocol: ['127.0.0.1'],
    secureContext: () => cert.context,
    listeners: [{ port: 0, address: '127.0.0.1', id: 'smtps' }],
  });
  try {
    const raw = await Client.connect(h.port);
    raw.socket.cork();
    raw.socket.write('PROXY TCP4 192.0.2.44 198.51.100.1 1111 465\r\n');
    const secure = tls.connect({ socket: raw.socket, rejectUnauthorized: false, servername: 'localhost' });
    process.nextTick(() => raw.socket.uncork());
    const greeting = await new Promise<string>((resolve, reject) => {
      secure.once('data', (d: Buffer) => resolve(d.toString()));
      secure.once('error', reject);
    });
    assert.match(greeting, /^220 /);
    secure.destroy();
    assert.match(seen[0], /^192\.0\.2\.44 TLSv1\.[23]$/);
  } finally {
    await h.close();
    cert.cleanup();
  }
});

test('PROXY required from an allowed source: a plain SMTP command gets 421 and the connection closes', async () => {
  const h = await startServer({ proxyprotocol: ['127.0.0.1'] });
  try {
    const c = await Client.connect(h.port);
    c.send('EHLO c.example\r\n');
    assert.equal((await c.read()).text, '4.7.0 Protocol error');
    assert.ok(await c.waitClosed());
  } finally {
    await h.close();
  }
});

test('PROXY header from a source not allowed is just an unknown command', async () => {
  const h = await startServer({ proxyprotocol: ['10.0.0.0/8'] });
  try {
    const c = await Client.connect(h.port);
    assert.equal((await c.read()).code, 220);
    assert.equal((await c.cmd('PROXY TCP4 192.0.2.10 198.51.100.1 56324 25')).code, 500);
    await c.cmd('EHLO c.example');
    await c.cmd('MAIL FROM:<a@b.example>');
    await c.cmd('RCPT TO:<x@y.example>');
    await c.cmd('DATA');
    await c.cmd('Subject: p\r\n\r\nb\r\n.');
    assert.equal(h.ingress.commits[0].from.remoteip, '127.0.0.1');
  } finally {
    await h.close();
  }
});

/** Deterministic pseudo-random bytes (xorshift), so a failure can be replayed. */
function garbage(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

test('garbage and binary input never crash the server; it still answers new connections', async () => {
  const h = await startServer({ server: runningServer({ limits: { errors: 1000 }, timeout: { idle: 2, data: 2 } }) });
  try {
    const inputs = [
      garbage(64 * 1024, 1),
      Buffer.concat([Buffer.from('EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n'), garbage(32 * 1024, 2)]),
      Buffer.concat([Buffer.from('EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 100000\r\n'), garbage(1000, 3)]),
      Buffer.concat([Buffer.from('EHLO x\r\nAUTH PLAIN\r\n'), garbage(5000, 4)]),
      Buffer.from('\r\n'.repeat(5000)),
      Buffer.from('\0'.repeat(3000)),
    ];
    for (const input of inputs) {
      const c = await Client.connect(h.port);
      c.send(input);
      await c.read().catch(() => undefined);
      c.socket.destroy();
    }
    const c = await Client.connect(h.port);
    assert.equal((await c.read()).code, 220);
    assert.equal((await c.cmd('EHLO ok.example')).code, 250);
    assert.equal(h.ingress.commits.length, 0);
  } finally {
    await h.close();
  }
});

test('nodemailer sends a message through the server (pipelining, SIZE, 8BITMIME)', async () => {
  const h = await startServer();
  try {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: h.port, secure: false, ignoreTLS: true, tls: { rejectUnauthorized: false } });
    const info = await transport.sendMail({
      from: 'sender@example.org',
      to: ['one@example.net', 'two@example.net'],
      subject: 'Grüße',
      text: 'Hello from nodemailer.\n.leading dot line\nbye',
      envelope: { from: 'sender@example.org', to: ['one@example.net', 'two@example.net'] },
    });
    transport.close();
    assert.deepEqual(info.accepted, ['one@example.net', 'two@example.net']);
    assert.match(info.response, /^250 2\.0\.0 Ok: queued as /);
    const tx = h.ingress.commits[0];
    assert.deepEqual(tx.entries.map((e) => e.recipient), ['one@example.net', 'two@example.net']);
    const body = tx.bodies[0].toString();
    assert.match(body, /^Received: from /);
    assert.match(body, /\r\n\.leading dot line\r\n/, 'dot-unstuffed');
  } finally {
    await h.close();
  }
});
