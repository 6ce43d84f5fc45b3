import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOptions, toCrlf, SubmissionError } from '../../src/http/submission-parse';
import { httpReceived } from '../../src/http/submission';

const opts = (v: unknown) => parseOptions(Buffer.from(JSON.stringify(v)), 100);

test('line endings: bare LF and CR become CRLF, CRLF stays', () => {
  assert.equal(toCrlf(Buffer.from('a\nb\r\nc\rd\n')).toString(), 'a\r\nb\r\nc\r\nd\r\n');
  const same = Buffer.from('a\r\nb\r\n');
  assert.equal(toCrlf(same), same, 'an already correct message is not copied');
  assert.deepEqual(toCrlf(Buffer.from([0xff, 0x0a])), Buffer.from([0xff, 0x0d, 0x0a]), '8-bit bytes kept');
});

test('options: addresses as objects or strings, IDN to A-labels, null sender, metadata strings', () => {
  const o = opts({ sender: { localpart: '', domain: '' }, recipients: ['a@Bücher.Example', { localpart: 'ü', domain: 'example.org' }], metadata: { k: 'v' } });
  assert.equal(o.sender, '');
  assert.deepEqual(o.recipients.map((r) => r.recipient), ['a@xn--bcher-kva.example', 'ü@example.org']);
  assert.equal(o.smtputf8, true, 'a UTF-8 local part needs SMTPUTF8');
  assert.deepEqual(o.metadata, { k: 'v' });
});

test('options: address literals and quoted local parts, as SMTP takes them', () => {
  const o = opts({ sender: '"no reply"@example.com', recipients: ['bob@[127.0.0.1]', { localpart: 'ops', domain: '[IPv6:2001:db8::1]' }] });
  assert.equal(o.sender, '"no reply"@example.com');
  assert.deepEqual(o.recipients.map((r) => r.recipient), ['bob@[127.0.0.1]', 'ops@[IPv6:2001:db8::1]']);
  assert.equal(o.smtputf8, false);
});

test('options: each mistake named', () => {
  const cases: Array<[unknown, RegExp]> = [
    [[], /expected a JSON object/],
    [{ recipients: ['a@example.org'] }, /sender is missing/],
    [{ sender: 'a@example.org', recipients: ['a@example.org'], extra: 1 }, /unknown field "extra"/],
    [{ sender: 'a@example.org', recipients: ['@example.org'] }, /recipients\[0\]: invalid local part/],
    [{ sender: 'a@example.org', recipients: ['a@localhost'] }, /invalid domain/],
    [{ sender: 'a@example.org', recipients: ['a b@example.org'] }, /recipients\[0\]: invalid local part/],
    [{ sender: 'a@example.org', recipients: ['a@[300.0.0.1]'] }, /recipients\[0\]: invalid address literal "\[300\.0\.0\.1\]"/],
    [{ sender: 'a@example.org', recipients: [{ localpart: 'a', domain: '[IPv6:nope]' }] }, /invalid address literal/],
    [{ sender: 'a@example.org', recipients: new Array(101).fill('a@example.org') }, /more than 100 recipients/],
  ];
  for (const [v, reason] of cases) {
    assert.throws(() => opts(v), (e: unknown) => e instanceof SubmissionError && e.status === 400 && reason.test(e.message));
  }
});

test('Received: address literal, HTTP keyword, one recipient named', () => {
  const r = httpReceived('::1', 'mx.example', true, 'id1', 'b@example.org', Date.UTC(2026, 0, 2, 3, 4, 5)).toString();
  assert.equal(r, 'Received: from [IPv6:::1] (unknown [IPv6:::1])\r\n\tby mx.example with HTTPS id id1\r\n\tfor <b@example.org>;\r\n\tFri, 2 Jan 2026 03:04:05 +0000\r\n');
});
