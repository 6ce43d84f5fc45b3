/**
 * The outbound client's pure parts: reply parsing (multi-line, enhanced codes, bounds, split
 * input), EHLO capabilities, DSN parameter encoding (xtext, ORCPT, NOTIFY), command lines and
 * dot-stuffing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplyParser, parseReply, formatReply } from '../../src/delivery/client-reply';
import {
  parseCapabilities, xtext, utf8AddrXtext, encodeOrcpt, notifyValue, mailCommand, rcptCommand, dotStuff, checkAddress,
} from '../../src/delivery/client-codec';
import type { Transaction } from '../../src/delivery/client-types';

test('a single-line reply with an enhanced code: code, [x,y,z], and the text without the code', () => {
  const r = parseReply('250 2.1.5 Recipient OK');
  assert.deepEqual(r, { code: 250, enhanced: [2, 1, 5], reason: ['Recipient OK'] });
});

test('a multi-line reply keeps one reason line per line and strips the repeated enhanced code', () => {
  const p = new ReplyParser();
  const { replies, error } = p.feed(Buffer.from('550-5.1.1 No such user\r\n550-5.1.1 here\r\n550 5.1.1 Check the address\r\n'));
  assert.equal(error, undefined);
  assert.deepEqual(replies, [{ code: 550, enhanced: [5, 1, 1], reason: ['No such user', 'here', 'Check the address'] }]);
});

test('an enhanced code is only taken when its class matches the reply code', () => {
  assert.deepEqual(parseReply('450 5.1.1 mismatched class')?.enhanced, null);
  assert.deepEqual(parseReply('450 5.1.1 mismatched class')?.reason, ['5.1.1 mismatched class']);
  assert.deepEqual(parseReply('250 2.0.0')?.enhanced, [2, 0, 0]);
  assert.equal(parseReply('250 2.0.0x not a code')?.enhanced, null);
  assert.deepEqual(parseReply('354 End data with <CR><LF>.<CR><LF>'), { code: 354, enhanced: null, reason: ['End data with <CR><LF>.<CR><LF>'] });
});

test('replies split across arbitrary chunks and several replies in one chunk come out whole and in order', () => {
  const text = Buffer.from('250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n250 2.1.0 Ok\r\n550 5.1.1 Nope\r\n');
  for (const size of [1, 2, 5, 13]) {
    const p = new ReplyParser();
    const out = [];
    for (let i = 0; i < text.length; i += size) {
      const r = p.feed(text.subarray(i, i + size));
      assert.equal(r.error, undefined);
      out.push(...r.replies);
    }
    assert.deepEqual(out.map((r) => r.code), [250, 250, 550]);
    assert.deepEqual(out[0].reason, ['mx.test', 'PIPELINING', 'SIZE 1000']);
    assert.equal(p.buffered, false);
  }
});

test('bare LF line endings and a bare code line are accepted', () => {
  const p = new ReplyParser();
  const { replies } = p.feed(Buffer.from('220-hello\n220\n'));
  assert.deepEqual(replies, [{ code: 220, enhanced: null, reason: ['hello', ''] }]);
});

test('malformed replies, code changes and overlong input are protocol errors, and stay errors', () => {
  assert.ok(new ReplyParser().feed(Buffer.from('hello there\r\n')).error);
  assert.ok(new ReplyParser().feed(Buffer.from('250-a\r\n251 b\r\n')).error);
  assert.ok(new ReplyParser().feed(Buffer.from('150 not an smtp code\r\n')).error);
  assert.ok(new ReplyParser().feed(Buffer.from('250x\r\n')).error);
  const long = new ReplyParser({ maxLineLength: 100 });
  assert.match(long.feed(Buffer.from(`250 ${'x'.repeat(200)}`)).error?.message ?? '', /longer than 100/);
  assert.ok(long.feed(Buffer.from('250 ok\r\n')).error, 'a failed parser refuses further input');
  const many = new ReplyParser({ maxLines: 3 });
  assert.match(many.feed(Buffer.from('250-a\r\n250-b\r\n250-c\r\n250-d\r\n250 e\r\n')).error?.message ?? '', /3 lines/);
});

test('control characters in reply text are neutralised', () => {
  const r = parseReply('550 5.7.1 bad\x1b[31m\x00text');
  assert.deepEqual(r?.reason, ['bad?[31m?text']);
  assert.equal(formatReply(parseReply('550 5.7.1 No')!), '550 5.7.1 No');
});

test('EHLO capabilities: keywords, SIZE limit, unknown keywords ignored', () => {
  const caps = parseCapabilities(parseReply('250-mx.test greets you\n250-pipelining\n250-SIZE 10240000\n250-8BITMIME\n250-DSN\n250-X-FOO bar\n250 STARTTLS')!);
  assert.equal(caps.pipelining, true);
  assert.equal(caps.sizeLimit, 10240000);
  assert.equal(caps.eightbitmime, true);
  assert.equal(caps.dsn, true);
  assert.equal(caps.starttls, true);
  assert.equal(caps.smtputf8, false);
  assert.equal(caps.chunking, false);
  assert.ok(caps.keywords.includes('X-FOO'));
  const unlimited = parseCapabilities(parseReply('250-mx\n250 SIZE')!);
  assert.equal(unlimited.size, true);
  assert.equal(unlimited.sizeLimit, 0);
});

test('xtext encodes "+", "=", controls, space and non-ASCII as +HH (RFC 3461 §4)', () => {
  assert.equal(xtext('a+b=c d'), 'a+2Bb+3Dc+20d');
  assert.equal(xtext('id\r\n'), 'id+0D+0A');
  assert.equal(xtext('é'), '+C3+A9');
});

test('ORCPT: rfc822 as xtext, non-ASCII as utf-8-addr-xtext or unitext (RFC 6533 §3)', () => {
  assert.equal(encodeOrcpt('rfc822;a+b@example.com', false), 'rfc822;a+2Bb@example.com');
  assert.equal(encodeOrcpt('rfc822;jörg@example.com', false), 'utf-8;j\\x{F6}rg@example.com');
  assert.equal(encodeOrcpt('rfc822;jörg@example.com', true), 'utf-8;jörg@example.com');
  assert.equal(encodeOrcpt('utf-8;j\\x{F6}rg@example.com', false), 'utf-8;j\\x{F6}rg@example.com');
  assert.equal(utf8AddrXtext('a=b', false), 'a\\x{3D}b');
  assert.equal(encodeOrcpt('no-type', false), undefined);
});

test('NOTIFY: NEVER alone wins, invalid words dropped, order kept', () => {
  assert.equal(notifyValue(['success', 'failure']), 'SUCCESS,FAILURE');
  assert.equal(notifyValue(['NEVER', 'SUCCESS']), 'NEVER');
  assert.equal(notifyValue(['bogus']), undefined);
  assert.equal(notifyValue([]), undefined);
});

test('MAIL and RCPT lines carry only the parameters asked for', () => {
  const tx: Transaction = {
    sender: 's@example.com', size: 1234, body: Buffer.alloc(0), envid: 'env 1', ret: 'HDRS',
    recipients: [{ address: 'r@example.net', dsn: { notify: ['SUCCESS'], orcpt: 'rfc822;r@example.net' } }],
  };
  assert.equal(mailCommand(tx, { size: true, eightbit: true, smtputf8: true, dsn: true }), 'MAIL FROM:<s@example.com> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=env+201');
  assert.equal(mailCommand({ ...tx, sender: '' }, { size: false, eightbit: false, smtputf8: false, dsn: false }), 'MAIL FROM:<>');
  assert.equal(rcptCommand(tx.recipients[0], true, false), 'RCPT TO:<r@example.net> NOTIFY=SUCCESS ORCPT=rfc822;r@example.net');
  assert.equal(rcptCommand(tx.recipients[0], false, false), 'RCPT TO:<r@example.net>');
});

test('addresses that could inject commands are refused', () => {
  assert.equal(checkAddress('a@b.example'), true);
  assert.equal(checkAddress(''), true);
  assert.equal(checkAddress('a@b\r\nRCPT TO:<x@y>'), false);
  assert.equal(checkAddress('a>@b'), false);
});

function stuffed(s: string, chunk?: number): string {
  return Buffer.concat([...dotStuff(Buffer.from(s), chunk)]).toString();
}

test('dot-stuffing doubles leading dots, normalises bare LF, adds the final CRLF and the terminator', () => {
  assert.equal(stuffed('a\r\n.b\r\n..c\r\n'), 'a\r\n..b\r\n...c\r\n.\r\n');
  assert.equal(stuffed('.first\r\nlast'), '..first\r\nlast\r\n.\r\n');
  assert.equal(stuffed('x\n.\ny'), 'x\r\n..\r\ny\r\n.\r\n');
  assert.equal(stuffed(''), '.\r\n');
  assert.equal(stuffed('a\rb\r\n'), 'a\rb\r\n.\r\n', 'bare CR is left alone');
});

test('dot-stuffing output is cut in bounded chunks that join to the same bytes', () => {
  const body = Buffer.from('.a\r\nbb\r\n.\r\n'.repeat(1000));
  const chunks = [...dotStuff(body, 100)];
  assert.ok(chunks.every((c) => c.length <= 100));
  assert.equal(Buffer.concat(chunks).toString(), '..a\r\nbb\r\n..\r\n'.repeat(1000) + '.\r\n');
});
