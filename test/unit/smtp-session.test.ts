import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SmtpServer } from '../../src/smtp/server';
import { Client, FakeIngress, HOSTNAME, accept, captureLog, fakeHooks, ready, refuse, runningServer, sendMail, startServer, testId } from './smtp-helpers';

const MSG = 'Subject: hello\r\nFrom: a@example.org\r\n\r\nHi there.';

test('greeting, EHLO extensions, one message queued with a Received header', async () => {
  const h = await startServer();
  try {
    const c = await Client.connect(h.port);
    assert.deepEqual(await c.read(), { code: 220, lines: [`${HOSTNAME} ESMTP`], text: `${HOSTNAME} ESMTP` });
    const e = await c.cmd('EHLO client.example');
    assert.equal(e.code, 250);
    assert.deepEqual(e.lines, [HOSTNAME, 'PIPELINING', 'SIZE 100000', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'CHUNKING', 'DSN']);
    const final = await sendMail(c, 'alice@example.org', ['bob@example.net'], MSG);
    assert.equal(final.code, 250);
    assert.match(final.text, /^2\.0\.0 Ok: queued as [0-9a-f-]{36}$/);
    assert.equal(h.ingress.commits.length, 1);
    const tx = h.ingress.commits[0];
    assert.equal(final.text.endsWith(tx.id), true);
    assert.equal(tx.sender, 'alice@example.org');
    assert.equal(tx.entries.length, 1);
    const e1 = tx.entries[0];
    assert.deepEqual(e1.id, { transaction: tx.id, queue: 1 });
    assert.equal(e1.recipient, 'bob@example.net');
    assert.deepEqual(e1.recipientaddress, { localpart: 'bob', domain: 'example.net' });
    assert.equal(e1.transportid, 'mx');
    assert.equal(e1.state, 'ACTIVE');
    assert.equal(e1.serverid, 'inbound');
    const body = tx.bodies[e1.body].toString();
    assert.match(body, new RegExp(`^Received: from client\\.example \\(unknown \\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby ${HOSTNAME.replace(/\./g, '\\.')} with ESMTP id ${tx.id}\\r\\n\\tfor <bob@example\\.net>;\\r\\n\\t\\w{3}, \\d{1,2} \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d \\+0000\\r\\n`));
    assert.ok(body.endsWith('Subject: hello\r\nFrom: a@example.org\r\n\r\nHi there.\r\n'));
    assert.equal(e1.size, tx.bodies[0].length);
    assert.deepEqual(tx.from, { remoteip: '127.0.0.1', remoteport: c.socket.localPort, localip: '127.0.0.1', localport: h.port, helo: 'client.example', tls: false, authuser: undefined });
    const q = await c.cmd('QUIT');
    assert.equal(q.code, 221);
    assert.equal(q.text, '2.0.0 Bye');
    assert.ok(await c.waitClosed());
    for (let i = 0; i < 100 && !h.logs.records.some((r) => r.msg === 'smtp connection closed'); i++) await new Promise((r) => setTimeout(r, 10));
    const closeLog = h.logs.records.find((r) => r.msg === 'smtp connection closed');
    assert.ok(closeLog);
    assert.equal(closeLog.transactions, 1);
    assert.equal(closeLog.close, 'local');
    const txLog = h.logs.records.find((r) => r.msg === 'smtp transaction');
    assert.equal(txLog?.action, 'queued');
    assert.ok(!JSON.stringify(h.logs.records).includes('Hi there'), 'logs never carry message content');
  } finally {
    await h.close();
  }
});

test('simple commands and sequence errors carry enhanced codes', async () => {
  const h = await startServer();
  try {
    const c = await Client.connect(h.port);
    await c.read();
    assert.equal((await c.cmd('MAIL FROM:<a@b.example>')).text, '5.5.1 Send HELO/EHLO first');
    const helo = await c.cmd('HELO client.example');
    assert.deepEqual(helo.lines, [HOSTNAME], 'HELO gets a plain reply');
    assert.equal((await c.cmd('MAIL FROM:<a@b.example> SIZE=10')).code, 555, 'no ESMTP parameters after HELO');
    assert.equal((await c.cmd('RCPT TO:<x@y.example>')).text, '5.5.1 Need MAIL command');
    assert.equal((await c.cmd('DATA')).text, '5.5.1 Need MAIL command');
    assert.equal((await c.cmd('NOOP')).text, '2.0.0 OK');
    assert.equal((await c.cmd('VRFY root')).code, 252);
    assert.equal((await c.cmd('HELP')).code, 214);
    assert.equal((await c.cmd('FOO bar')).text, '5.5.2 Command unrecognized');
    assert.equal((await c.cmd('MAIL FROM:<a@b.example>')).text, '2.1.0 Sender OK');
    assert.equal((await c.cmd('MAIL FROM:<a@b.example>')).text, '5.5.1 Nested MAIL command');
    assert.equal((await c.cmd('DATA')).text, '5.5.1 No valid recipients');
    assert.equal((await c.cmd('RSET')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<>')).code, 250, 'null sender');
    assert.equal((await c.cmd('RCPT TO:<Postmaster>')).code, 250);
    c.send('BDAT 1 LAST\r\nx');
    assert.equal((await c.read()).code, 502, 'CHUNKING not announced after HELO (its byte is still consumed)');
    assert.equal((await c.cmd('QUIT')).code, 221);
    assert.ok(await c.waitClosed());
  } finally {
    await h.close();
  }
});

test('pipelining: a whole transaction in one write, replies in order; input after QUIT is ignored', async () => {
  const h = await startServer();
  try {
    const c = await Client.connect(h.port);
    await c.read();
    c.send('EHLO p.example\r\nMAIL FROM:<a@p.example>\r\nRCPT TO:<b@q.example>\r\nRCPT TO:<c@q.example>\r\nDATA\r\n');
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await c.read()).code);
    assert.deepEqual(codes, [250, 250, 250, 250, 354]);
    c.send('Subject: p\r\n\r\nbody\r\n.\r\nMAIL FROM:<d@p.example>\r\nRCPT TO:<e@q.example>\r\nQUIT\r\nNOOP\r\nNOOP\r\n');
    assert.equal((await c.read()).code, 250);
    assert.equal((await c.read()).code, 250);
    assert.equal((await c.read()).code, 250);
    assert.equal((await c.read()).code, 221);
    assert.ok(await c.waitClosed());
    assert.equal(c.pending(), '', 'nothing answered after QUIT');
    assert.equal(h.ingress.commits.length, 1);
    assert.deepEqual(h.ingress.commits[0].entries.map((e) => e.recipient), ['b@q.example', 'c@q.example']);
    assert.equal(h.ingress.commits[0].bodies.length, 1, 'one body for both recipients');
  } finally {
    await h.close();
  }
});

test('SIZE: refused at MAIL when announced too big, and 552 after the data when it is', async () => {
  const h = await startServer({ server: runningServer({ limits: { maxsize: 1000 } }) });
  try {
    const c = await ready(h.port);
    const m = await c.cmd('MAIL FROM:<a@b.example> SIZE=1001');
    assert.equal(m.text, '5.3.4 Message size exceeds fixed maximum message size');
    assert.equal((await c.cmd('MAIL FROM:<a@b.example> SIZE=900')).code, 250);
    await c.cmd('RCPT TO:<x@y.example>');
    assert.equal((await c.cmd('DATA')).code, 354);
    c.send(('x'.repeat(98) + '\r\n').repeat(30));
    const r = await c.cmd('.');
    assert.equal(r.code, 552);
    assert.equal(h.ingress.commits.length, 0);
    assert.equal((await c.cmd('MAIL FROM:<a@b.example>')).code, 250, 'the session goes on');
  } finally {
    await h.close();
  }
});

test('8BITMIME: 8-bit content is kept byte for byte; BINARYMIME is refused', async () => {
  const h = await startServer();
  try {
    const c = await ready(h.port);
    assert.equal((await c.cmd('MAIL FROM:<a@b.example> BODY=BINARYMIME')).code, 555);
    assert.equal((await c.cmd('MAIL FROM:<a@b.example> BODY=8BITMIME')).code, 250);
    await c.cmd('RCPT TO:<x@y.example>');
    await c.cmd('DATA');
    const content = Buffer.concat([Buffer.from('Grüße ', 'utf8'), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('\r\n')]);
    c.send(Buffer.concat([Buffer.from('Subject: 8bit\r\n\r\n'), content, Buffer.from('.\r\n')]));
    assert.equal((await c.read()).code, 250);
    const body = h.ingress.commits[0].bodies[0];
    assert.ok(body.subarray(body.length - content.length).equals(content));
  } finally {
    await h.close();
  }
});

test('SMTPUTF8: UTF-8 addresses need the parameter (553 5.6.7); with it they are accepted', async () => {
  const h = await startServer();
  try {
    const c = await ready(h.port);
    assert.equal((await c.cmd('MAIL FROM:<jöran@exämple.se>')).text, '5.6.7 Non-ASCII address requires SMTPUTF8');
    assert.equal((await c.cmd('MAIL FROM:<a@b.example>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<用户@例子.广告>')).code, 553);
    await c.cmd('RSET');
    assert.equal((await c.cmd('MAIL FROM:<jöran@exämple.se> SMTPUTF8')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<用户@例子.广告>')).code, 250);
    await c.cmd('DATA');
    assert.equal((await c.cmd('Subject: ü\r\n\r\nx\r\n.')).code, 250);
    const tx = h.ingress.commits[0];
    assert.equal(tx.sender, 'jöran@exämple.se');
    assert.deepEqual(tx.entries[0].recipientaddress, { localpart: '用户', domain: '例子.广告' });
    assert.match(tx.bodies[0].toString('utf8'), /with UTF8SMTP id/);
  } finally {
    await h.close();
  }
});

test('CHUNKING: BDAT chunks build the message; errors still consume the announced bytes', async () => {
  const h = await startServer();
  try {
    const c = await ready(h.port);
    // BDAT without MAIL: the 12 bytes "QUIT\r\nNOOP\r\n" are data, never commands.
    c.send('BDAT 12\r\nQUIT\r\nNOOP\r\n');
    assert.equal((await c.read()).text, '5.5.1 Need MAIL command');
    await c.cmd('MAIL FROM:<a@b.example>');
    await c.cmd('RCPT TO:<x@y.example>');
    const head = 'Subject: b\r\n\r\n';
    c.send(`BDAT ${head.length}\r\n${head}BDAT 6 LAST\r\nhello\n`);
    assert.equal((await c.read()).text, `2.0.0 ${head.length} octets received`);
    assert.equal((await c.read()).code, 550, 'bare LF in BDAT content is refused');
    assert.equal(h.ingress.commits.length, 0);
    await c.cmd('MAIL FROM:<a@b.example>');
    await c.cmd('RCPT TO:<x@y.example>');
    c.send(`BDAT ${head.length}\r\n${head}BDAT 7 LAST\r\nhello\r\n`);
    assert.equal((await c.read()).code, 250);
    const last = await c.read();
    assert.equal(last.code, 250);
    assert.match(last.text, /queued as/);
    assert.ok(h.ingress.commits[0].bodies[0].toString().endsWith('\r\nSubject: b\r\n\r\nhello\r\n'));
    await c.cmd('MAIL FROM:<a@b.example>');
    await c.cmd('RCPT TO:<x@y.example>');
    c.send('BDAT 3\r\nabc');
    assert.equal((await c.read()).code, 250);
    assert.equal((await c.cmd('DATA')).text, '5.5.1 DATA and BDAT cannot be mixed in one transaction');
    assert.equal((await c.cmd('RCPT TO:<z@y.example>')).code, 503);
  } finally {
    await h.close();
  }
});

test('CHUNKING: a chunk over maxsize gets 552 and later pipelined chunks are discarded', async () => {
  const h = await startServer({ server: runningServer({ limits: { maxsize: 10 } }) });
  try {
    const c = await ready(h.port);
    await c.cmd('MAIL FROM:<a@b.example>');
    await c.cmd('RCPT TO:<x@y.example>');
    c.send('BDAT 20\r\n' + 'y'.repeat(20) + 'BDAT 4 LAST\r\nNOOPNOOP\r\n');
    assert.equal((await c.read()).code, 552);
    assert.equal((await c.read()).code, 503);
    assert.equal((await c.read()).text, '2.0.0 OK', 'NOOP after the discarded chunk');
    assert.equal(h.ingress.commits.length, 0);
  } finally {
    await h.close();
  }
});

test('DSN: RET/ENVID/NOTIFY/ORCPT end up in the committed queue entries; refused when DSN is off', async () => {
  const h = await startServer();
  try {
    const c = await ready(h.port);
    await c.cmd('MAIL FROM:<a@b.example> RET=HDRS ENVID=env+2B1');
    assert.equal((await c.cmd('RCPT TO:<x@y.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+40y.example')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<z@y.example> NOTIFY=NEVER')).code, 250);
    await c.cmd('DATA');
    assert.equal((await c.cmd('Subject: d\r\n\r\nx\r\n.')).code, 250);
    const [e1, e2] = h.ingress.commits[0].entries;
    assert.deepEqual(e1.dsn, { envid: 'env+1', ret: 'HDRS', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;x@y.example' });
    assert.deepEqual(e2.dsn, { envid: 'env+1', ret: 'HDRS', notify: ['NEVER'] });
  } finally {
    await h.close();
  }
  const off = await startServer({ server: runningServer({ extensions: { dsn: false } }) });
  try {
    const c = await ready(off.port);
    assert.equal((await c.cmd('MAIL FROM:<a@b.example> RET=HDRS')).code, 555);
    await c.cmd('MAIL FROM:<a@b.example>');
    assert.equal((await c.cmd('RCPT TO:<x@y.example> NOTIFY=NEVER')).text, '5.5.4 Unsupported parameter');
  } finally {
    await off.close();
  }
});

test('limits: recipients (452 4.5.3), messages per connection (421), hop count (554 5.4.6)', async () => {
  const h = await startServer({ server: runningServer({ limits: { recipients: 2, messages: 2, maxhops: 3 } }) });
  try {
    const c = await ready(h.port);
    await c.cmd('MAIL FROM:<a@b.example>');
    assert.equal((await c.cmd('RCPT TO:<1@y.example>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<2@y.example>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<3@y.example>')).text, '4.5.3 Too many recipients');
    await c.cmd('DATA');
    const loop = 'Received: from a\r\nReceived: from b\r\nreceived: from c\r\nSubject: loop\r\n\r\nx\r\n.';
    assert.equal((await c.cmd(loop)).text, '5.4.6 Too many hops (mail loop)');
    await c.cmd('MAIL FROM:<a@b.example>');
    await c.cmd('RCPT TO:<1@y.example>');
    await c.cmd('DATA');
    assert.equal((await c.cmd('Received: from a\r\nReceived: from b\r\n\r\nx\r\n.')).code, 250, 'two hops plus ours is within 3');
    const third = await c.cmd('MAIL FROM:<a@b.example>');
    assert.equal(third.text, '4.7.0 Too many messages in this connection');
    assert.ok(await c.waitClosed());
  } finally {
    await h.close();
  }
});

test('limits: line length (500 5.5.6), bare LF command (500 5.5.2), errors (421 after limits.errors)', async () => {
  const h = await startServer({ server: runningServer({ limits: { linelength: 100, errors: 4 } }) });
  try {
    const c = await ready(h.port);
    assert.equal((await c.cmd('NOOP ' + 'x'.repeat(200))).text, '5.5.6 Line too long');
    c.send('NOOP\n');
    assert.equal((await c.read()).text, '5.5.2 Syntax error: bare LF or CR');
    assert.equal((await c.cmd('NOOP')).code, 250, 'resynchronised');
    assert.equal((await c.cmd('BOGUS')).code, 500);
    const last = await c.cmd('BOGUS');
    assert.equal(last.code, 500);
    assert.equal((await c.read()).text, '4.7.0 Too many errors');
    assert.ok(await c.waitClosed());
  } finally {
    await h.close();
  }
});

test('limits: connections beyond limits.connections get 421 4.7.0', async () => {
  const h = await startServer({ server: runningServer({ limits: { connections: 2 } }) });
  try {
    const a = await Client.connect(h.port);
    await a.read();
    const b = await Client.connect(h.port);
    await b.read();
    const c = await Client.connect(h.port);
    assert.equal((await c.read()).text, '4.7.0 Too many connections');
    assert.ok(await c.waitClosed());
    assert.equal(h.smtp.stats().connections, 2);
    await a.cmd('QUIT');
    await a.waitClosed();
    for (let i = 0; i < 50 && h.smtp.stats().connections > 1; i++) await new Promise((r) => setTimeout(r, 10));
    const d = await Client.connect(h.port);
    assert.equal((await d.read()).code, 220, 'a slot was freed');
    assert.equal(h.smtp.stats().connectionsTotal, 3);
  } finally {
    await h.close();
  }
});

test('bare LF in DATA: never ends the data, the message is refused with 550 5.6.0 and not queued', async () => {
  const h = await startServer();
  try {
    const c = await ready(h.port);
    await c.cmd('MAIL FROM:<a@b.example>');
    await c.cmd('RCPT TO:<x@y.example>');
    await c.cmd('DATA');
    c.send('Subject: s\r\n\r\nhello\n.\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@y.example>\r\nDATA\r\n');
    const r = await c.cmd('.');
    assert.equal(r.text, '5.6.0 Message contains bare LF or CR; lines must end with CRLF');
    assert.equal(c.pending(), '', 'the smuggled commands were not executed');
    assert.equal(h.ingress.commits.length, 0);
    assert.ok(h.logs.records.some((x) => x.msg === 'message with bare LF or CR refused (possible SMTP smuggling)'));
  } finally {
    await h.close();
  }
});

test('timeouts: idle 421 4.4.2, data 421 4.4.2', async () => {
  const h = await startServer({ server: runningServer({ timeout: { idle: 0.2, data: 0.2 } }) });
  try {
    const c = await ready(h.port);
    assert.equal((await c.read(2000)).text, '4.4.2 Timeout, closing connection');
    assert.ok(await c.waitClosed());
    const d = await ready(h.port);
    await d.cmd('MAIL FROM:<a@b.example>');
    await d.cmd('RCPT TO:<x@y.example>');
    await d.cmd('DATA');
    d.send('Subject: slow\r\n');
    assert.equal((await d.read(2000)).text, '4.4.2 Timeout waiting for data, closing connection');
    assert.ok(await d.waitClosed());
    assert.equal(h.ingress.commits.length, 0);
  } finally {
    await h.close();
  }
});

test('commit failures: SPOOL_FULL gives 452 4.3.1, other errors 451 4.3.0; no space refuses MAIL', async () => {
  const h = await startServer();
  try {
    const c = await ready(h.port);
    h.ingress.failWith = Object.assign(new Error('disk full'), { code: 'SPOOL_FULL' });
    assert.equal((await sendMail(c, 'a@b.example', ['x@y.example'], 'Subject: a\r\n\r\nb')).text, '4.3.1 Insufficient system storage');
    h.ingress.failWith = Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
    const r = await sendMail(c, 'a@b.example', ['x@y.example'], 'Subject: a\r\n\r\nb');
    assert.equal(r.text, '4.3.0 Local error in processing');
    assert.ok(!r.text.includes('EIO'), 'the peer sees no internals');
    h.ingress.failWith = null;
    h.ingress.space = false;
    assert.equal((await c.cmd('MAIL FROM:<a@b.example>')).text, '4.3.1 Insufficient system storage');
  } finally {
    await h.close();
  }
});

test('hooks: connect Reject closes with the hook code; connect Accept overrides the remote identity', async () => {
  const h = await startServer({ hooks: { connect: () => refuse('Reject', 554, [5, 7, 1], 'Go away') } });
  try {
    const c = await Client.connect(h.port);
    assert.equal((await c.read()).text, '5.7.1 Go away');
    assert.ok(await c.waitClosed());
  } finally {
    await h.close();
  }
  const h2 = await startServer({
    hooks: {
      connect: (i) => {
        i.context.seen = i.arguments.remoteip;
        return accept({ remoteip: '192.0.2.99', remoteptr: 'client.example.org' });
      },
      mailfrom: (i) => {
        assert.equal(i.context.seen, '127.0.0.1', 'the context object is shared by all hooks of a connection');
        assert.equal(i.connection.remoteip, '192.0.2.99');
        return accept({ sender: 'rewritten@b.example' });
      },
    },
  });
  try {
    const c = await ready(h2.port);
    assert.equal((await sendMail(c, 'a@b.example', ['x@y.example'], 'Subject: a\r\n\r\nb')).code, 250);
    const tx = h2.ingress.commits[0];
    assert.equal(tx.from.remoteip, '192.0.2.99');
    assert.equal(tx.sender, 'rewritten@b.example');
    assert.equal(tx.entries[0].senderaddress.localpart, 'rewritten');
    assert.match(tx.bodies[0].toString(), /^Received: from client\.example \(client\.example\.org \[192\.0\.2\.99\]\)/);
  } finally {
    await h2.close();
  }
});

test('hooks: helo extensions, mailfrom/rcptto decisions, transportid, connect Defer → 421', async () => {
  const h = await startServer({
    hooks: {
      helo: (i) => {
        assert.equal(i.arguments.verb, 'EHLO');
        assert.ok(i.arguments.extensions.includes('CHUNKING'));
        return accept({ extensions: ['PIPELINING', 'SIZE 100000', 'X-CUSTOM'] });
      },
      mailfrom: (i) => (i.arguments.sender.startsWith('spam') ? refuse('Reject', 554, [5, 7, 1], 'Sender rejected') : accept()),
      rcptto: (i) => {
        assert.equal(i.arguments.transportid, 'mx');
        assert.equal(i.transaction.sender, 'a@b.example');
        if (i.arguments.recipient.startsWith('later')) return refuse('Defer', 450, [4, 7, 1], 'Try later');
        return accept({ transportid: i.arguments.recipient.endsWith('.local') ? 'local' : 'mx' });
      },
    },
  });
  try {
    const c = await Client.connect(h.port);
    await c.read();
    assert.deepEqual((await c.cmd('EHLO x.example')).lines, [HOSTNAME, 'PIPELINING', 'SIZE 100000', 'X-CUSTOM']);
    assert.equal((await c.cmd('MAIL FROM:<a@b.example> BODY=8BITMIME')).code, 555, '8BITMIME was removed by the hook');
    assert.equal((await c.cmd('MAIL FROM:<spam@b.example>')).text, '5.7.1 Sender rejected');
    assert.equal((await c.cmd('MAIL FROM:<a@b.example>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<later@y.example>')).text, '4.7.1 Try later');
    assert.equal((await c.cmd('RCPT TO:<u@host.local>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<v@y.example>')).code, 250);
    await c.cmd('DATA');
    assert.equal((await c.cmd('Subject: a\r\n\r\nb\r\n.')).code, 250);
    assert.deepEqual(h.ingress.commits[0].entries.map((e) => [e.recipient, e.transportid]), [['u@host.local', 'local'], ['v@y.example', 'mx']]);
    assert.ok(h.logs.records.some((r) => r.msg === 'smtp command refused' && r.phase === 'rcptto' && r.recipient === 'later@y.example'));
  } finally {
    await h.close();
  }
  const d = await startServer({ hooks: { connect: () => refuse('Defer', 421, [4, 7, 1], 'Busy') } });
  try {
    const c = await Client.connect(d.port);
    assert.equal((await c.read()).code, 421);
    assert.ok(await c.waitClosed());
  } finally {
    await d.close();
  }
});

test('eod hook: queue() with options, ids <txid>:<n>, one body per distinct Buffer, transaction ts', async () => {
  let sawTs = 0;
  const h = await startServer({
    hooks: {
      eod: (i) => {
        const mail = i.arguments.mail;
        sawTs = i.transaction.ts ?? 0;
        assert.equal(i.connection.helo?.host, 'client.example');
        const tx = i.transaction;
        const a = mail.queue(tx.sender ?? '', tx.recipients[0].recipient, 'mx', { hold: true, metadata: { k: 'v' }, jobid: 'j1' });
        const b = mail.queue(tx.sender ?? '', tx.recipients[1].recipient, 'mx', { delay: 60, priority: 1, dsn: { notify: ['NEVER'] } });
        mail.setHeader('X-Tag', 'modified');
        const c = mail.queue(tx.sender ?? '', 'extra@z.example', 'other', { tenantid: 't', quotas: ['q'] });
        assert.deepEqual([a.queue, b.queue, c.queue], [1, 2, 3]);
        assert.equal(a.transaction, tx.id);
        return accept();
      },
    },
  });
  try {
    const c = await ready(h.port);
    const before = Date.now();
    assert.match((await sendMail(c, 'a@b.example', ['r1@y.example', 'r2@y.example'], 'Subject: e\r\n\r\nbody')).text, /queued as/);
    const tx = h.ingress.commits[0];
    assert.equal(tx.bodies.length, 2, 'the modified message is a second body');
    const [e1, e2, e3] = tx.entries;
    assert.deepEqual([e1.body, e2.body, e3.body], [0, 0, 1]);
    assert.equal(e1.state, 'HOLD');
    assert.deepEqual(e1.metadata, { k: 'v' });
    assert.equal(e1.jobid, 'j1');
    assert.equal(e2.state, 'DEFER');
    assert.ok(e2.retryts >= before + 60_000 && e2.retryts <= Date.now() + 60_000);
    assert.equal(e2.priority, 1);
    assert.deepEqual(e2.dsn, { notify: ['NEVER'] });
    assert.equal(e3.transportid, 'other');
    assert.equal(e3.tenantid, 't');
    assert.deepEqual(e3.quotas, ['q']);
    assert.match(tx.bodies[1].toString(), /X-Tag: modified/);
    assert.ok(Math.abs(sawTs * 1000 - tx.ts) < 1, 'transaction.ts is the reception time in seconds');
  } finally {
    await h.close();
  }
});

test('eod hook: Reject (nothing committed), Accept with nothing queued (250, discarded), implicit Defer 421 closes', async () => {
  let mode = 'reject';
  const h = await startServer({
    hooks: {
      eod: () => {
        if (mode === 'reject') return refuse('Reject', 550, [5, 7, 1], 'Spam');
        if (mode === 'discard') return accept();
        return { action: 'Defer', code: 421, enhanced: [4, 7, 1], reason: ['Message deferred, try again later'], disconnect: true, options: {}, source: 'implicit' };
      },
    },
  });
  try {
    const c = await ready(h.port);
    assert.equal((await sendMail(c, 'a@b.example', ['x@y.example'], 'Subject: a\r\n\r\nb')).text, '5.7.1 Spam');
    mode = 'discard';
    assert.equal((await sendMail(c, 'a@b.example', ['x@y.example'], 'Subject: a\r\n\r\nb')).code, 250);
    assert.equal(h.ingress.commits.length, 0);
    assert.ok(h.logs.records.some((r) => r.msg === 'smtp transaction' && r.action === 'discarded'));
    mode = 'defer';
    assert.equal((await sendMail(c, 'a@b.example', ['x@y.example'], 'Subject: a\r\n\r\nb')).code, 421);
    assert.ok(await c.waitClosed(), 'a 421 closes the connection (RFC 5321 §3.8)');
    assert.equal(h.ingress.commits.length, 0);
  } finally {
    await h.close();
  }
});

test('disconnect hook sees who closed and the last reply', async () => {
  const seen: Array<{ close: string; code?: number }> = [];
  const h = await startServer({ hooks: { disconnect: (i) => (seen.push({ close: i.arguments.close, code: i.arguments.reply?.code }), accept()) } });
  try {
    const c = await ready(h.port);
    await c.cmd('QUIT');
    await c.waitClosed();
    const d = await ready(h.port);
    d.end();
    await d.waitClosed();
    for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(seen, [
      { close: 'local', code: 221 },
      { close: 'remote', code: 250 },
    ]);
  } finally {
    await h.close();
  }
});

test('close(): idle sessions get 421 4.3.2, a running transaction may finish first', async () => {
  const h = await startServer();
  const idle = await ready(h.port);
  const busy = await ready(h.port);
  await busy.cmd('MAIL FROM:<a@b.example>');
  await busy.cmd('RCPT TO:<x@y.example>');
  const closing = h.smtp.close(3000);
  assert.equal((await idle.read()).text, '4.3.2 Service shutting down');
  assert.equal((await busy.cmd('DATA')).code, 354);
  assert.equal((await busy.cmd('Subject: a\r\n\r\nb\r\n.')).code, 250, 'the transaction in flight completes');
  assert.equal((await busy.read()).text, '4.3.2 Service shutting down');
  await closing;
  assert.equal(h.ingress.commits.length, 1);
  await assert.rejects(Client.connect(h.port), 'no longer listening');
});

test('a hook slower than the idle timeout does not time the client out', async () => {
  const h = await startServer({
    server: runningServer({ timeout: { idle: 0.15, data: 0.15 } }),
    hooks: { mailfrom: () => new Promise((resolve) => setTimeout(() => resolve(accept()), 400)) },
  });
  try {
    const c = await ready(h.port);
    assert.equal((await c.cmd('MAIL FROM:<a@b.example>', 2000)).code, 250);
    assert.equal((await c.read(2000)).code, 421, 'the idle timeout applies again once the client is idle');
  } finally {
    await h.close();
  }
});

test('ENHANCEDSTATUSCODES off: replies carry no enhanced codes', async () => {
  const h = await startServer({ server: runningServer({ extensions: { enhancedstatuscodes: false } }) });
  try {
    const c = await ready(h.port);
    assert.equal((await c.cmd('NOOP')).text, 'OK');
    assert.equal((await c.cmd('RCPT TO:<a@b.example>')).text, 'Need MAIL command');
  } finally {
    await h.close();
  }
});

test('the runtime is fetched per new connection: a reload applies to new connections only', async () => {
  let current = runningServer({ limits: { maxsize: 1000 } });
  const smtp = new SmtpServer({
    startup: { id: 'inbound', type: 'smtp', listeners: [{ port: 0, address: '127.0.0.1' }], proxyprotocol: [] },
    runtime: () => ({ server: current, hooks: fakeHooks({}), secureContext: () => undefined }),
    ingress: new FakeIngress(),
    log: captureLog().log,
    hostname: HOSTNAME,
    newId: testId,
  });
  await smtp.listen();
  try {
    const port = smtp.addresses()[0].port;
    const old = await ready(port);
    current = runningServer({ limits: { maxsize: 2000 } });
    const fresh = await ready(port);
    assert.ok((await old.cmd('EHLO again.example')).lines.includes('SIZE 1000'));
    assert.ok((await fresh.cmd('EHLO again.example')).lines.includes('SIZE 2000'));
  } finally {
    await smtp.close(500);
  }
});

test('listen() rejects naming the address when the port is taken', async () => {
  const h = await startServer();
  try {
    const second = new SmtpServer({
      startup: { id: 'dup', type: 'smtp', listeners: [{ port: h.port, address: '127.0.0.1' }], proxyprotocol: [] },
      runtime: () => ({ server: runningServer(), hooks: fakeHooks({}), secureContext: () => undefined }),
      ingress: new FakeIngress(),
      log: captureLog().log,
      hostname: HOSTNAME,
      newId: testId,
    });
    await assert.rejects(second.listen(), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${h.port}: EADDRINUSE`));
  } finally {
    await h.close();
  }
});
