/**
 * The SMTP extensions and limits of the receiving server, each seen from a real socket against
 * the real daemon: what the client is told, and what ends up (or not) in the spool.
 */
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { RawSmtp, defaultApp, message, spoolEntries, startDaemon, writeConfig, type ConfigSet, type Daemon } from './harness';

let cfg: ConfigSet;
let d: Daemon;

before(async () => {
  cfg = writeConfig({
    app: defaultApp(`    phases:
      data:
        maxsize: 8KiB
        maxhops: 3
      rcptto:
        maxrecipients: 3
      mailfrom:
        maxmessages: 2
    concurrency:
      total: 5
    timeout:
      idle: 2
      data: 2
    limits:
      errors: 4
`),
  });
  d = await startDaemon(cfg);
});

after(() => d.stop());

const opened: RawSmtp[] = [];
afterEach(() => {
  // A failed assertion must not leave connections that count against concurrency.total.
  for (const c of opened.splice(0)) c.close();
});

async function open(): Promise<RawSmtp> {
  const c = await RawSmtp.connect(d.port);
  opened.push(c);
  assert.match(await c.reply(), /^220 /);
  assert.match(await c.cmd('EHLO client.test'), /^250-/);
  return c;
}

async function entriesFor(rcpt: string) {
  return (await spoolEntries(cfg)).filter((e) => e.entry.recipient === rcpt);
}

test('SIZE: announced, refused at MAIL when declared too big, and at end of data when too big', async () => {
  const c = await open();
  assert.match(await c.cmd('MAIL FROM:<a@example.com> SIZE=100000'), /^552 5\.3\.4 /);
  assert.match(await c.cmd('MAIL FROM:<a@example.com> SIZE=100'), /^250 /);
  await c.cmd('RCPT TO:<big@example.org>');
  assert.match(await c.cmd('DATA'), /^354/);
  c.write(message('big', 'y'.repeat(200) + '\n').replace(/\n/g, '\r\n') + ('z'.repeat(998) + '\r\n').repeat(20) + '.\r\n');
  assert.match(await c.reply(), /^552 5\.3\.4 /);
  assert.match(await c.cmd('NOOP'), /^250 /, 'the connection is still usable');
  c.close();
  assert.equal((await entriesFor('big@example.org')).length, 0);
});

test('DSN parameters are accepted and kept with each recipient', async () => {
  const c = await open();
  assert.match(await c.cmd('MAIL FROM:<a@example.com> RET=HDRS ENVID=env+2Bid'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<dsn@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;orig+40example.org'), /^250 /);
  await c.cmd('DATA');
  c.write(message().replace(/\n/g, '\r\n') + '\r\n.\r\n');
  assert.match(await c.reply(), /^250 /);
  c.close();
  const [e] = await entriesFor('dsn@example.org');
  const dsn = e.entry.dsn as { ret?: string; envid?: string; notify?: string[]; orcpt?: string };
  assert.equal(dsn.ret, 'HDRS');
  assert.equal(dsn.envid, 'env+id');
  assert.deepEqual(dsn.notify, ['FAILURE', 'DELAY']);
  assert.match(String(dsn.orcpt), /orig@example\.org/);
});

test('8BITMIME and SMTPUTF8: 8-bit bodies and UTF-8 addresses are accepted only as declared', async () => {
  const c = await open();
  assert.match(await c.cmd('MAIL FROM:<jörg@example.com>'), /^553 5\.6\.7 /);
  assert.match(await c.cmd('MAIL FROM:<jörg@example.com> SMTPUTF8 BODY=8BITMIME'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<ünïcode@example.org>'), /^250 /);
  await c.cmd('DATA');
  c.write(Buffer.from(message('utf8', 'Grüße\n').replace(/\n/g, '\r\n') + '\r\n.\r\n', 'utf8'));
  assert.match(await c.reply(), /^250 /);
  c.close();
  const [e] = await entriesFor('ünïcode@example.org');
  assert.equal(e.entry.sender, 'jörg@example.com');
});

test('CHUNKING: a message sent with BDAT is queued whole', async () => {
  const c = await open();
  await c.cmd('MAIL FROM:<a@example.com>');
  await c.cmd('RCPT TO:<bdat@example.org>');
  const part1 = Buffer.from('From: a@example.com\r\nSubject: bdat\r\n\r\n');
  const part2 = Buffer.from('line one\r\n.line with a leading dot\r\n');
  c.write(Buffer.concat([Buffer.from(`BDAT ${part1.length}\r\n`), part1]));
  assert.match(await c.reply(), /^250 2\.0\.0 /);
  c.write(Buffer.concat([Buffer.from(`BDAT ${part2.length} LAST\r\n`), part2]));
  assert.match(await c.reply(), /^250 2\.0\.0 .*queued as/);
  c.close();
  const [e] = await entriesFor('bdat@example.org');
  assert.ok(Number(e.entry.size) > part1.length + part2.length, 'size counts the message plus the Received header');
});

test('PIPELINING: a whole transaction in one write gets its replies in order', async () => {
  const c = await RawSmtp.connect(d.port);
  await c.reply();
  c.write('EHLO p.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<pipe1@example.org>\r\nRCPT TO:<pipe2@example.org>\r\nDATA\r\n');
  assert.match(await c.reply(), /^250-/);
  assert.match(await c.reply(), /^250 2\.1\.0/);
  assert.match(await c.reply(), /^250 2\.1\.5/);
  assert.match(await c.reply(), /^250 2\.1\.5/);
  assert.match(await c.reply(), /^354/);
  c.write(message().replace(/\n/g, '\r\n') + '\r\n.\r\nQUIT\r\n');
  assert.match(await c.reply(), /^250 /);
  assert.match(await c.reply(), /^221 2\.0\.0/);
  c.close();
});

test('limits: recipients per transaction (452 4.5.3) and transactions per connection', async () => {
  const c = await open();
  await c.cmd('MAIL FROM:<a@example.com>');
  for (let i = 0; i < 3; i++) assert.match(await c.cmd(`RCPT TO:<r${i}@example.org>`), /^250 /);
  assert.match(await c.cmd('RCPT TO:<r3@example.org>'), /^452 4\.5\.3 /);
  await c.cmd('RSET');
  assert.match(await c.cmd('MAIL FROM:<a@example.com>'), /^250 /);
  await c.cmd('RSET');
  const third = await c.cmd('MAIL FROM:<a@example.com>');
  assert.match(third, /^4\d\d 4\.\d\.\d+ /, 'maxmessages reached');
  c.close();
});

test('limits: connections per server beyond concurrency.total get 421', async () => {
  const held: RawSmtp[] = [];
  for (let i = 0; i < 5; i++) {
    const c = await RawSmtp.connect(d.port);
    assert.match(await c.reply(), /^220 /);
    held.push(c);
  }
  const extra = await RawSmtp.connect(d.port);
  assert.match(await extra.reply(), /^421 4\.\d\.\d+ /);
  extra.close();
  for (const c of held) c.close();
  await new Promise((r) => setTimeout(r, 200));
});

test('limits: hop count (554 5.4.6) and line length (500 5.5.6)', async () => {
  const c = await open();
  await c.cmd('MAIL FROM:<a@example.com>');
  await c.cmd('RCPT TO:<loop@example.org>');
  await c.cmd('DATA');
  const received = 'Received: from x by y; Mon, 23 Nov 2026 10:00:00 +0000\r\n'.repeat(4);
  c.write(received + message().replace(/\n/g, '\r\n') + '\r\n.\r\n');
  assert.match(await c.reply(), /^554 5\.4\.6 /);
  assert.match(await c.cmd('NOOP ' + 'x'.repeat(600)), /^500 5\.5\.6 /);
  assert.match(await c.cmd('NOOP'), /^250 /);
  c.close();
  assert.equal((await entriesFor('loop@example.org')).length, 0);
});

test('no SMTP smuggling: a bare-LF end marker never ends DATA and bare LF is refused', async () => {
  const c = await open();
  await c.cmd('MAIL FROM:<a@example.com>');
  await c.cmd('RCPT TO:<smuggle@example.org>');
  await c.cmd('DATA');
  c.write('Subject: s\r\n\r\nhello\n.\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n\r\n.\r\n');
  const r = await c.reply();
  assert.match(r, /^5\d\d 5\.\d\.\d+ /, 'the message with a bare LF is refused');
  c.close();
  assert.equal((await entriesFor('smuggle@example.org')).length, 0);
  assert.equal((await entriesFor('victim@example.org')).length, 0);
});

test('idle timeout answers 421 4.4.2 and closes', async () => {
  const c = await RawSmtp.connect(d.port);
  await c.reply();
  const r = await c.reply(6000);
  assert.match(r, /^421 4\.4\.2 /);
  assert.ok(await c.waitClosed());
});

test('data timeout answers 421 4.4.2 when the client stalls inside DATA', async () => {
  const c = await open();
  await c.cmd('MAIL FROM:<a@example.com>');
  await c.cmd('RCPT TO:<stall@example.org>');
  assert.match(await c.cmd('DATA'), /^354/);
  c.write('Subject: half a message\r\n');
  assert.match(await c.reply(6000), /^421 4\.4\.2 /);
  assert.ok(await c.waitClosed());
  assert.equal((await entriesFor('stall@example.org')).length, 0);
});

test('too many bad commands close the connection; garbage never takes the server down', async () => {
  const c = await open();
  let last = '';
  for (let i = 0; i < 6 && !c.isClosed; i++) last = await c.cmd('FOO bar');
  assert.ok(last === '' || /^421 /.test(last), `closed after repeated errors (${last})`);
  await c.waitClosed();
  await new Promise<void>((resolve) => {
    const s = net.connect({ port: d.port, host: '127.0.0.1' }, () => {
      s.write(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
      setTimeout(() => (s.destroy(), resolve()), 200);
    });
    s.on('error', () => resolve());
  });
  const again = await open();
  assert.match(await again.cmd('NOOP'), /^250 /);
  again.close();
});

test('QUIT: the 221 arrives whole, then the server closes cleanly (FIN, never a reset)', async () => {
  const got = await new Promise<{ text: string; ended: boolean; error?: string }>((resolve) => {
    let text = '';
    let ended = false;
    const s = net.connect({ port: d.port, host: '127.0.0.1' });
    const timer = setTimeout(() => (s.destroy(), resolve({ text, ended, error: 'no close within 5 s' })), 5000);
    s.on('data', (chunk) => {
      text += chunk.toString('latin1');
      if (/^220 /m.test(text) && !text.includes('EHLO sent')) {
        text += 'EHLO sent\n';
        s.write('EHLO client.example\r\nQUIT\r\n');
      }
    });
    s.on('end', () => (ended = true));
    s.on('error', (err) => (clearTimeout(timer), resolve({ text, ended, error: err.message })));
    s.on('close', () => (clearTimeout(timer), resolve({ text, ended })));
  });
  assert.equal(got.error, undefined);
  assert.match(got.text, /^250 /m);
  assert.match(got.text, /^221 2\.0\.0 .*\r\n$/m);
  assert.equal(got.ended, true, 'the server half-closed after the 221');
});
