/**
 * SmtpConnection against the scripted sink: pipelined and lock-step transactions with mixed
 * per-recipient results, DSN/SIZE/SMTPUTF8/8BITMIME handling, dot-stuffing, per-state
 * time-outs, 421 handling, LMTP per-recipient replies, RSET and reuse, and a 10 MiB body
 * through back-pressure.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SmtpConnection, type ConnectOptions, type Transaction, type TransactionResult } from '../../src/delivery/smtp-client';
import { SmtpSink, DEFAULT_EXTENSIONS, type SinkOptions } from '../support/smtp-sink';

const sinks: SmtpSink[] = [];
after(async () => { await Promise.all(sinks.map((s) => s.close())); });

async function sink(opts: SinkOptions = {}): Promise<SmtpSink> {
  const s = await SmtpSink.start(opts);
  sinks.push(s);
  return s;
}

async function open(s: SmtpSink, opts: Partial<ConnectOptions> = {}): Promise<SmtpConnection> {
  const r = await SmtpConnection.connect(s.host, s.port, { helo: 'client.test', servername: 'mx.test', ...opts });
  if (!r.ok) assert.fail(`connect failed: ${r.error.message}`);
  return r.connection;
}

const BODY = Buffer.from('Subject: test\r\nFrom: s@example.com\r\n\r\nHello\r\n');

function tx(recipients: string[], extra: Partial<Transaction> = {}): Transaction {
  return { sender: 's@example.com', recipients: recipients.map((address) => ({ address })), size: BODY.length, body: BODY, ...extra };
}

function outcomes(r: TransactionResult): Record<string, string> {
  return Object.fromEntries(r.recipients.map((x) => [x.address, `${x.outcome}:${x.result?.state ?? x.error?.type}:${x.result?.code ?? ''}`]));
}

test('pipelined: MAIL, RCPTs and DATA in one go; one recipient rejected, the others delivered', async () => {
  const s = await sink({ rcpt: { 'bad@example.net': '550 5.1.1 No such user' }, delays: { MAIL: 50 } });
  const c = await open(s);
  const r = await c.send(tx(['a@example.net', 'bad@example.net', 'b@example.net']));
  assert.deepEqual(outcomes(r), {
    'a@example.net': 'delivered:EOD:250',
    'bad@example.net': 'permanent:RCPT:550',
    'b@example.net': 'delivered:EOD:250',
  });
  assert.deepEqual(r.recipients[1].result, { code: 550, enhanced: [5, 1, 1], reason: ['No such user'], state: 'RCPT' });
  assert.ok(s.pipelined >= 4, `3 RCPT + DATA were sent without waiting (saw ${s.pipelined})`);
  assert.deepEqual(s.transactions[0].rcpts.map((x) => x.address), ['a@example.net', 'b@example.net']);
  assert.deepEqual(s.transactions[0].data, BODY);
  assert.equal(c.transactions, 1);
  assert.equal(c.usable, true);
  await c.quit();
});

test('lock-step without PIPELINING: each command waits for its reply; 4xx recipient is temporary', async () => {
  const s = await sink({ extensions: ['8BITMIME'], rcpt: { 'later@example.net': '450 4.2.1 Try later' }, delays: { MAIL: 50 } });
  const c = await open(s);
  const r = await c.send(tx(['later@example.net', 'ok@example.net']));
  assert.deepEqual(outcomes(r), { 'later@example.net': 'temporary:RCPT:450', 'ok@example.net': 'delivered:EOD:250' });
  assert.equal(s.pipelined, 0);
  await c.quit();
});

test('DSN parameters are relayed only when the peer offers DSN', async () => {
  const dsnTx = tx(['r@example.net'], { envid: 'ENV+1', ret: 'HDRS' });
  dsnTx.recipients[0].dsn = { notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;orig@example.net' };
  const withDsn = await sink();
  const c1 = await open(withDsn);
  const r1 = await c1.send(dsnTx);
  assert.equal(r1.dsnRelayed, true);
  assert.deepEqual(withDsn.transactions[0].mail.params.filter((p) => /^(RET|ENVID)=/.test(p)), ['RET=HDRS', 'ENVID=ENV+2B1']);
  assert.deepEqual(withDsn.transactions[0].rcpts[0].params, ['NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;orig@example.net']);
  await c1.quit();

  const without = await sink({ extensions: DEFAULT_EXTENSIONS.filter((e) => e !== 'DSN') });
  const c2 = await open(without);
  const r2 = await c2.send(dsnTx);
  assert.equal(r2.dsnRelayed, false);
  assert.equal(r2.recipients[0].outcome, 'delivered');
  assert.ok(without.transactions[0].mail.params.every((p) => !/^(RET|ENVID)=/.test(p)));
  assert.deepEqual(without.transactions[0].rcpts[0].params, []);
  await c2.quit();
});

test('SIZE: announced on MAIL; a message over the peer limit is refused locally with 5.3.4', async () => {
  const s = await sink({ extensions: ['PIPELINING', 'SIZE 1000'] });
  const c = await open(s);
  const big = await c.send(tx(['r@example.net'], { size: 5000 }));
  assert.equal(big.recipients[0].outcome, 'permanent');
  assert.deepEqual(big.recipients[0].error?.enhanced, [5, 3, 4]);
  assert.deepEqual(s.lines('MAIL'), [], 'nothing was sent for the refused message');
  const small = await c.send(tx(['r@example.net']));
  assert.equal(small.recipients[0].outcome, 'delivered');
  assert.deepEqual(s.transactions[0].mail.params, [`SIZE=${BODY.length}`]);
  await c.quit();
});

test('SMTPUTF8: used when needed and offered; refused locally with 5.6.7 when not offered', async () => {
  const yes = await sink();
  const c1 = await open(yes);
  const r1 = await c1.send(tx(['jörg@exämple.net'], { smtputf8: true }));
  assert.equal(r1.recipients[0].outcome, 'delivered');
  assert.ok(yes.transactions[0].mail.params.includes('SMTPUTF8'));
  assert.equal(yes.transactions[0].rcpts[0].address, 'jörg@exämple.net');
  await c1.quit();

  const no = await sink({ extensions: ['PIPELINING', '8BITMIME'] });
  const c2 = await open(no);
  const r2 = await c2.send(tx(['jörg@exämple.net']));
  assert.equal(r2.recipients[0].outcome, 'permanent');
  assert.deepEqual(r2.recipients[0].error?.enhanced, [5, 6, 7]);
  assert.deepEqual(no.lines('MAIL'), []);
  await c2.quit();
});

test('8BITMIME: BODY=8BITMIME when offered; without it the 8-bit message is still sent unlabelled', async () => {
  const body = Buffer.from('Subject: caf\xc3\xa9\r\n\r\nd\xc3\xa9j\xc3\xa0 vu\r\n', 'latin1');
  const yes = await sink();
  const c1 = await open(yes);
  await c1.send(tx(['r@example.net'], { body, size: body.length, eightbit: true }));
  assert.ok(yes.transactions[0].mail.params.includes('BODY=8BITMIME'));
  await c1.quit();

  const no = await sink({ extensions: ['PIPELINING'] });
  const c2 = await open(no);
  const r2 = await c2.send(tx(['r@example.net'], { body, size: body.length, eightbit: true }));
  assert.equal(r2.recipients[0].outcome, 'delivered');
  assert.ok(!no.transactions[0].mail.params.includes('BODY=8BITMIME'));
  assert.deepEqual(no.transactions[0].data, body);
  await c2.quit();
});

test('dot-stuffing: lines starting with "." arrive intact, a lone "." line does not end the message', async () => {
  const s = await sink();
  const c = await open(s);
  const body = Buffer.from('.first\r\n\r\n.\r\n..two dots\r\nnormal\r\n.\r\n.last');
  const r = await c.send(tx(['r@example.net'], { body, size: body.length }));
  assert.equal(r.recipients[0].outcome, 'delivered');
  assert.equal(s.transactions[0].data.toString(), '.first\r\n\r\n.\r\n..two dots\r\nnormal\r\n.\r\n.last\r\n');
  await c.quit();
});

test('MAIL refused: every recipient gets that reply; the session stays usable for the next transaction', async () => {
  const s = await sink({ replies: { MAIL: '550 5.7.1 Sender blocked' } });
  const c = await open(s);
  const r = await c.send(tx(['a@example.net', 'b@example.net']));
  assert.deepEqual(outcomes(r), { 'a@example.net': 'permanent:MAIL:550', 'b@example.net': 'permanent:MAIL:550' });
  assert.equal(c.usable, true);
  await c.quit();
});

test('end-of-data refused: every accepted recipient gets the EOD reply, a rejected one keeps its RCPT reply', async () => {
  const s = await sink({ replies: { EOD: '554 5.7.1 Looks like spam' }, rcpt: { 'x@example.net': '550 5.1.1 Unknown' } });
  const c = await open(s);
  const r = await c.send(tx(['a@example.net', 'x@example.net', 'b@example.net']));
  assert.deepEqual(outcomes(r), { 'a@example.net': 'permanent:EOD:554', 'x@example.net': 'permanent:RCPT:550', 'b@example.net': 'permanent:EOD:554' });
  await c.quit();
});

test('no recipient accepted: RSET, then a second transaction on the same connection', async () => {
  const s = await sink({ rcpt: { 'no@example.net': '550 5.1.1 Unknown' } });
  const c = await open(s);
  const r1 = await c.send(tx(['no@example.net']));
  assert.equal(r1.recipients[0].outcome, 'permanent');
  assert.equal(s.lines('RSET').length, 1, 'the open transaction was reset');
  const r2 = await c.send(tx(['yes@example.net']));
  assert.equal(r2.recipients[0].outcome, 'delivered');
  assert.equal(c.transactions, 2);
  assert.equal(s.sessions, 1);
  await c.quit();
});

test('EHLO refused with 5xx: HELO, and no extensions are used', async () => {
  const s = await sink({ replies: { EHLO: '502 5.5.2 Not implemented' }, delays: { MAIL: 50 } });
  const c = await open(s);
  assert.equal(c.capabilities.esmtp, false);
  const r = await c.send(tx(['r@example.net']));
  assert.equal(r.recipients[0].outcome, 'delivered');
  assert.deepEqual(s.lines('HELO'), ['HELO client.test']);
  assert.deepEqual(s.transactions[0].mail.params, []);
  assert.equal(s.pipelined, 0);
  await c.quit();
});

test('connection facts: banner lines, HELO name, addresses, MX name', async () => {
  const s = await sink({ banner: '220 sink.test ESMTP ready\nsecond line' });
  const c = await open(s, { remotemx: 'mx.example.net', localId: 'out1' });
  const info = c.info;
  assert.deepEqual(info.remotegreet, ['sink.test ESMTP ready', 'second line']);
  assert.equal(info.helo, 'client.test');
  assert.equal(info.remoteip, '127.0.0.1');
  assert.equal(info.remoteport, s.port);
  assert.equal(info.localip, '127.0.0.1');
  assert.equal(info.localipid, 'out1');
  assert.equal(info.remotemx, 'mx.example.net');
  assert.equal(info.tls.started, false);
  await c.quit();
});

test('per-state time-out: a slow RCPT reply is a temporary timeout error in state RCPT', async () => {
  const s = await sink({ delays: { RCPT: 2000 } });
  const c = await open(s, { timeouts: { smtp: { RCPT: 0.2 } } });
  const r = await c.send(tx(['r@example.net']));
  assert.equal(r.recipients[0].outcome, 'temporary');
  assert.equal(r.recipients[0].error?.type, 'timeout');
  assert.equal(r.recipients[0].error?.state, 'RCPT');
  assert.equal(c.usable, false);
  c.close();
});

test('per-state time-out: a slow banner fails the connect with a timeout in state BANNER', async () => {
  const s = await sink({ delays: { BANNER: 2000 } });
  const r = await SmtpConnection.connect(s.host, s.port, { helo: 'client.test', timeouts: { smtp: { BANNER: 0.2 } } });
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.error.type, 'timeout');
    assert.equal(r.error.state, 'BANNER');
    assert.equal(r.error.temporary, true);
  }
});

test('421 in the middle of a transaction: every recipient temporary, the session unusable', async () => {
  const s = await sink({ rcpt: { 'b@example.net': '421 4.3.2 Shutting down' } });
  const c = await open(s);
  const r = await c.send(tx(['a@example.net', 'b@example.net', 'c@example.net']));
  assert.deepEqual(r.recipients.map((x) => [x.outcome, x.result?.code]), [['temporary', 421], ['temporary', 421], ['temporary', 421]]);
  assert.equal(c.usable, false);
  assert.equal(s.transactions.length, 0);
  await c.quit();
});

test('connection dropped at DATA: accepted recipients get a temporary network error', async () => {
  const s = await sink({ dropAt: 'DATA' });
  const c = await open(s);
  const r = await c.send(tx(['a@example.net']));
  assert.equal(r.recipients[0].outcome, 'temporary');
  assert.equal(r.recipients[0].error?.type, 'network');
  assert.equal(c.usable, false);
  c.close();
});

test('LMTP: LHLO, and one end-of-data reply per accepted recipient', async () => {
  const s = await sink({
    lmtp: true,
    rcpt: { 'gone@example.net': '550 5.1.1 No such user' },
    lmtpReplies: { 'full@example.net': '452 4.2.2 Mailbox full', 'bad@example.net': '554 5.6.0 Bad content' },
  });
  const c = await open(s, { protocol: 'lmtp' });
  const r = await c.send(tx(['ok@example.net', 'full@example.net', 'gone@example.net', 'bad@example.net']));
  assert.deepEqual(outcomes(r), {
    'ok@example.net': 'delivered:EOD:250',
    'full@example.net': 'temporary:EOD:452',
    'gone@example.net': 'permanent:RCPT:550',
    'bad@example.net': 'permanent:EOD:554',
  });
  assert.equal(s.lines('LHLO').length, 1);
  assert.equal(c.usable, true);
  await c.quit();
});

test('a 10 MiB body goes through back-pressure intact', async () => {
  const line = Buffer.from('.0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n');
  const body = Buffer.concat(Array.from({ length: Math.ceil((10 * 1024 * 1024) / line.length) }, () => line));
  const s = await sink({ pauseDataMs: 300 });
  const c = await open(s);
  const r = await c.send(tx(['r@example.net'], { body, size: body.length }));
  assert.equal(r.recipients[0].outcome, 'delivered');
  const got = s.transactions[0].data;
  assert.equal(got.length, body.length);
  assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(body).digest('hex'));
  await c.quit();
});

test('a body loader that fails gives a temporary spool error and sends nothing', async () => {
  const s = await sink();
  const c = await open(s);
  const r = await c.send(tx(['r@example.net'], { body: () => Promise.reject(new Error('gone')) }));
  assert.equal(r.recipients[0].outcome, 'temporary');
  assert.equal(r.recipients[0].error?.type, 'spool');
  assert.deepEqual(s.lines('MAIL'), []);
  assert.equal(c.usable, true);
  await c.quit();
});
