import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeXtext, encodeReply, encodeXtext, parseCommand, unannouncedParam, type Command } from '../../src/smtp/codec';

const p = (s: string): Command => parseCommand(Buffer.from(s, 'utf8'));

function errorCode(c: Command): string | null {
  return c.verb === 'ERROR' ? `${c.error.code} ${c.error.enhanced.join('.')}` : null;
}

test('simple verbs parse case-insensitively; arguments refused where RFC 5321 allows none', () => {
  for (const v of ['DATA', 'RSET', 'QUIT', 'STARTTLS', 'NOOP', 'HELP']) {
    assert.equal(p(v).verb, v);
    assert.equal(p(v.toLowerCase()).verb, v);
  }
  assert.equal(p('NOOP hello').verb, 'NOOP');
  assert.equal(p('HELP mail').verb, 'HELP');
  assert.equal(errorCode(p('DATA now')), '501 5.5.4');
  assert.equal(errorCode(p('QUIT x')), '501 5.5.4');
  assert.equal(p('DATA  ').verb, 'DATA', 'trailing spaces are tolerated');
});

test('HELO/EHLO need one host argument', () => {
  assert.deepEqual(p('EHLO client.example.org'), { verb: 'EHLO', host: 'client.example.org' });
  assert.deepEqual(p('helo [192.0.2.1]'), { verb: 'HELO', host: '[192.0.2.1]' });
  assert.equal(errorCode(p('EHLO')), '501 5.5.4');
  assert.equal(errorCode(p('EHLO a b')), '501 5.5.4');
});

test('unknown commands and control characters', () => {
  assert.deepEqual(p('XYZZY foo'), { verb: 'UNKNOWN', name: 'XYZZY' });
  assert.equal(p('EXPN list').verb, 'UNKNOWN');
  assert.equal(p('').verb, 'UNKNOWN');
  assert.equal(errorCode(p('NOOP\0')), '500 5.5.2');
  assert.equal(errorCode(parseCommand(Buffer.from([0x4e, 0x4f, 0x4f, 0x50, 0x20, 0xff, 0xfe]))), '500 5.5.2', 'invalid UTF-8');
});

test('MAIL FROM: paths, null sender, source routes, quoted local parts, literals', () => {
  const m = p('MAIL FROM:<alice@example.com>');
  assert.equal(m.verb, 'MAIL');
  if (m.verb !== 'MAIL') return;
  assert.equal(m.path.mailbox, 'alice@example.com');
  assert.deepEqual(m.path.address, { localpart: 'alice', domain: 'example.com' });
  assert.equal(m.path.utf8, false);

  const n = p('mail from:<>');
  assert.ok(n.verb === 'MAIL' && n.path.mailbox === '' && n.path.address.domain === '');

  const r = p('MAIL FROM:<@relay1.example,@relay2.example:bob@example.net>');
  assert.ok(r.verb === 'MAIL' && r.path.mailbox === 'bob@example.net', 'source route ignored');

  const q = p('MAIL FROM:<"john doe"@example.com>');
  assert.ok(q.verb === 'MAIL' && q.path.address.localpart === '"john doe"');
  const q2 = p('MAIL FROM:<"a\\"b"@example.com>');
  assert.ok(q2.verb === 'MAIL' && q2.path.address.localpart === '"a\\"b"');

  const l4 = p('MAIL FROM:<x@[192.0.2.1]>');
  assert.ok(l4.verb === 'MAIL' && l4.path.address.domain === '[192.0.2.1]');
  const l6 = p('MAIL FROM:<x@[IPv6:2001:db8::1]>');
  assert.ok(l6.verb === 'MAIL' && l6.path.address.domain === '[IPv6:2001:db8::1]');
  assert.equal(errorCode(p('MAIL FROM:<x@[300.1.1.1]>')), '501 5.1.7');
  assert.equal(errorCode(p('MAIL FROM:<x@[IPv6:zz]>')), '501 5.1.7');

  assert.equal(p('MAIL FROM: <a@b.example>').verb, 'MAIL', 'space after colon tolerated');
  for (const bad of ['MAIL FROM:a@b.example', 'MAIL FROM:<a@b.example', 'MAIL TO:<a@b.example>', 'MAIL FROM:<a@>', 'MAIL FROM:<@b.example>', 'MAIL FROM:<a..b@c.example>', 'MAIL FROM:<a@b..example>', 'MAIL FROM:<a b@c.example>', 'MAIL FROM:<a@-b.example>', 'MAIL', 'MAIL FROM:<a@b.example>x']) {
    assert.equal(errorCode(p(bad)), bad.endsWith('>x') ? '501 5.5.4' : '501 5.1.7', bad);
  }
});

test('RCPT TO: paths; <> refused; <Postmaster> accepted without a domain', () => {
  const r = p('RCPT TO:<bob@example.org>');
  assert.ok(r.verb === 'RCPT' && r.path.mailbox === 'bob@example.org');
  assert.equal(errorCode(p('RCPT TO:<>')), '501 5.1.3');
  const pm = p('RCPT TO:<Postmaster>');
  assert.ok(pm.verb === 'RCPT' && pm.path.mailbox === 'Postmaster' && pm.path.address.domain === '');
  assert.equal(errorCode(p('RCPT FROM:<a@b.example>')), '501 5.1.3');
});

test('UTF-8 addresses need SMTPUTF8 on MAIL (553 5.6.7); RCPT flags them for the session', () => {
  assert.equal(errorCode(p('MAIL FROM:<jöran@exämple.se>')), '553 5.6.7');
  const m = p('MAIL FROM:<jöran@exämple.se> SMTPUTF8');
  assert.ok(m.verb === 'MAIL' && m.path.utf8 && m.mail.smtputf8);
  const r = p('RCPT TO:<用户@例子.广告>');
  assert.ok(r.verb === 'RCPT' && r.path.utf8);
});

test('MAIL parameters: SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH; keys upper-cased', () => {
  const m = p('MAIL FROM:<a@b.example> size=1000 BODY=8bitmime RET=hdrs ENVID=QQ+2B1 AUTH=<>');
  assert.ok(m.verb === 'MAIL');
  if (m.verb !== 'MAIL') return;
  assert.deepEqual(m.mail, { smtputf8: false, size: 1000, body: '8BITMIME', ret: 'HDRS', envid: 'QQ+1' });
  assert.deepEqual(Object.keys(m.params), ['SIZE', 'BODY', 'RET', 'ENVID', 'AUTH']);
  assert.equal(m.params.BODY, '8bitmime', 'values kept as written for hooks');
  assert.equal(errorCode(p('MAIL FROM:<a@b.example> BODY=BINARYMIME')), '555 5.5.4', 'BINARYMIME is not offered');
  assert.equal(errorCode(p('MAIL FROM:<a@b.example> BODY=9BIT')), '501 5.5.4');
  assert.equal(errorCode(p('MAIL FROM:<a@b.example> SIZE=abc')), '501 5.5.4');
  assert.equal(errorCode(p('MAIL FROM:<a@b.example> RET=ALL')), '501 5.5.4');
  assert.equal(errorCode(p('MAIL FROM:<a@b.example> ENVID=a+zz')), '501 5.5.4');
  assert.equal(errorCode(p(`MAIL FROM:<a@b.example> ENVID=${'x'.repeat(101)}`)), '501 5.5.4');
  assert.equal(errorCode(p('MAIL FROM:<a@b.example> SMTPUTF8=yes')), '501 5.5.4');
  assert.equal(errorCode(p('MAIL FROM:<a@b.example> XFOO=1')), '555 5.5.4');
  assert.equal(errorCode(p('MAIL FROM:<a@b.example> NOTIFY=NEVER')), '555 5.5.4', 'RCPT params on MAIL');
  assert.equal(errorCode(p('MAIL FROM:<a@b.example> SIZE=1 SIZE=2')), '501 5.5.4');
});

test('RCPT parameters: NOTIFY (NEVER alone) and ORCPT (xtext-decoded)', () => {
  const r = p('RCPT TO:<a@b.example> NOTIFY=success,Delay ORCPT=rfc822;a+2Bx@b.example');
  assert.ok(r.verb === 'RCPT');
  if (r.verb !== 'RCPT') return;
  assert.deepEqual(r.rcpt, { notify: ['SUCCESS', 'DELAY'], orcpt: 'rfc822;a+x@b.example' });
  const never = p('RCPT TO:<a@b.example> NOTIFY=NEVER');
  assert.ok(never.verb === 'RCPT' && never.rcpt.notify?.[0] === 'NEVER');
  assert.equal(errorCode(p('RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS')), '501 5.5.4');
  assert.equal(errorCode(p('RCPT TO:<a@b.example> NOTIFY=SOMETIMES')), '501 5.5.4');
  assert.equal(errorCode(p('RCPT TO:<a@b.example> NOTIFY=FAILURE,FAILURE')), '501 5.5.4');
  assert.equal(errorCode(p('RCPT TO:<a@b.example> ORCPT=rfc822')), '501 5.5.4');
  assert.equal(errorCode(p('RCPT TO:<a@b.example> SIZE=10')), '555 5.5.4');
});

test('unannouncedParam names parameters of extensions not offered', () => {
  assert.equal(unannouncedParam({ SIZE: '1' }, new Set(['SIZE'])), null);
  assert.equal(unannouncedParam({ SIZE: '1' }, new Set()), 'SIZE');
  assert.equal(unannouncedParam({ NOTIFY: 'NEVER' }, new Set(['SIZE'])), 'NOTIFY');
  assert.equal(unannouncedParam({ BODY: '8BITMIME' }, new Set(['8BITMIME'])), null);
});

test('BDAT and AUTH syntax', () => {
  assert.deepEqual(p('BDAT 100'), { verb: 'BDAT', size: 100, last: false });
  assert.deepEqual(p('bdat 0 last'), { verb: 'BDAT', size: 0, last: true });
  assert.equal(errorCode(p('BDAT')), '501 5.5.4');
  assert.equal(errorCode(p('BDAT -1')), '501 5.5.4');
  assert.equal(errorCode(p('BDAT 10 MORE')), '501 5.5.4');
  assert.equal(errorCode(p('BDAT 9999999999999999')), '501 5.5.4');
  assert.deepEqual(p('AUTH plain'), { verb: 'AUTH', mechanism: 'PLAIN' });
  assert.deepEqual(p('AUTH PLAIN AGFsaWNlAHNlY3JldA=='), { verb: 'AUTH', mechanism: 'PLAIN', initial: 'AGFsaWNlAHNlY3JldA==' });
  assert.deepEqual(p('AUTH PLAIN ='), { verb: 'AUTH', mechanism: 'PLAIN', initial: '=' });
  assert.equal(errorCode(p('AUTH')), '501 5.5.4');
  assert.equal(errorCode(p('AUTH PLAIN !!!')), '501 5.5.4');
  assert.deepEqual(p('VRFY postmaster'), { verb: 'VRFY', arg: 'postmaster' });
  assert.equal(errorCode(p('VRFY')), '501 5.5.4');
});

test('xtext round trip (RFC 3461 §4)', () => {
  assert.equal(decodeXtext('a+2Bb+3Dc'), 'a+b=c');
  assert.equal(decodeXtext('a+2bb'), null, 'hex must be upper-case');
  assert.equal(decodeXtext('a b'), null);
  for (const s of ['plain', 'with+plus', 'eq=uals', 'sp ace', 'tab\there']) assert.equal(decodeXtext(encodeXtext(s)), s);
});

test('encodeReply: multi-line format, enhanced codes, no forged lines', () => {
  assert.equal(encodeReply(250, [2, 0, 0], ['OK']), '250 2.0.0 OK\r\n');
  assert.equal(encodeReply(250, null, ['mx.example', 'PIPELINING', 'SIZE 100']), '250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n');
  assert.equal(encodeReply(550, [5, 7, 1], ['line one', 'line two']), '550-5.7.1 line one\r\n550 5.7.1 line two\r\n');
  assert.equal(encodeReply(550, [5, 7, 1], ['a\nb']), '550-5.7.1 a\r\n550 5.7.1 b\r\n');
  assert.equal(encodeReply(550, null, ['evil\r250 ok']), '550 evil 250 ok\r\n');
  assert.equal(encodeReply(334, null, ['']), '334 \r\n', 'RFC 4954: "334" SP even with an empty challenge');
});
