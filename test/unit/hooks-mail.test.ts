/**
 * The eod message API: header and body edits as the queued message shows them, byte-exact
 * preservation of untouched fields, toBuffer identity, and queue() validation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EodMail, type QueueRequest } from '../../src/hooks/mail';

const MSG = [
  'Received: from a.example by b.example;',
  '\tMon, 1 Jan 2024 00:00:00 +0000',
  'From: Alice <alice@example.com>',
  'To: bob@example.net',
  'Subject: a long',
  ' folded subject',
  'X-Tag: one',
  'X-Tag: two',
  '',
  'Hello Bob,',
  '',
  'bye',
  '',
].join('\r\n');

function mail(raw: string | Buffer = MSG, queued: QueueRequest[] = []): EodMail {
  return new EodMail(Buffer.isBuffer(raw) ? raw : Buffer.from(raw), {
    onQueue: (req) => {
      queued.push(req);
      return { transaction: '00000000-0000-4000-8000-000000000000', queue: queued.length };
    },
  });
}

test('getHeader unfolds, trims and matches names case-insensitively', () => {
  const m = mail();
  assert.equal(m.getHeader('subject'), 'a long folded subject');
  assert.equal(m.getHeader('RECEIVED'), 'from a.example by b.example;\tMon, 1 Jan 2024 00:00:00 +0000');
  assert.equal(m.getHeader('x-missing'), null);
  assert.equal(m.getHeader('X-Tag', { index: 1 }), 'two');
  assert.equal(m.getHeader('X-Tag', { index: 2 }), null);
  assert.deepEqual(m.getHeaders('x-tag'), ['one', 'two']);
  assert.deepEqual(m.getHeaderNames(), ['Received', 'From', 'To', 'Subject', 'X-Tag', 'X-Tag']);
});

test('an unmodified message renders as the very Buffer it came from', () => {
  const raw = Buffer.from(MSG);
  const m = mail(raw);
  assert.equal(m.toBuffer(), raw);
  assert.equal(m.getSize(), raw.length);
});

test('toBuffer returns the same Buffer until the next modification', () => {
  const m = mail();
  m.addHeader('X-Scanned', 'yes');
  const a = m.toBuffer();
  assert.equal(m.toBuffer(), a, 'same object while unmodified');
  m.getHeader('x-scanned');
  assert.equal(m.toBuffer(), a, 'reading does not invalidate');
  m.setHeader('X-Scanned', 'no');
  const b = m.toBuffer();
  assert.notEqual(b, a);
  assert.match(b.toString(), /^X-Scanned: no\r\n/);
});

test('addHeader adds at the top by default, at the bottom on request; the rest stays byte-exact', () => {
  const m = mail();
  m.addHeader('X-Top', 'first');
  m.addHeader('X-Bottom', 'last', { position: 'bottom' });
  const s = m.toString();
  assert.ok(s.startsWith('X-Top: first\r\nReceived: from a.example by b.example;\r\n\tMon, 1 Jan'));
  assert.ok(s.includes('Subject: a long\r\n folded subject\r\n'), 'original folding kept');
  assert.ok(s.includes('X-Tag: two\r\nX-Bottom: last\r\n\r\nHello Bob,'));
});

test('setHeader replaces the first (or the index-th) occurrence, or adds when absent', () => {
  const m = mail();
  m.setHeader('x-tag', 'uno');
  assert.deepEqual(m.getHeaders('X-Tag'), ['uno', 'two']);
  m.setHeader('X-Tag', 'dos', { index: 1 });
  assert.deepEqual(m.getHeaders('X-Tag'), ['uno', 'dos']);
  m.setHeader('X-New', 'v');
  assert.equal(m.getHeaderNames()[0], 'X-New');
});

test('delHeader deletes all occurrences, or only index; returns the count', () => {
  const m = mail();
  assert.equal(m.delHeader('x-tag', { index: 0 }), 1);
  assert.deepEqual(m.getHeaders('X-Tag'), ['two']);
  m.addHeader('X-Tag', 'three');
  assert.equal(m.delHeader('X-TAG'), 2);
  assert.equal(m.delHeader('X-Tag'), 0);
  assert.deepEqual(m.getHeaderNames(), ['Received', 'From', 'To', 'Subject']);
});

test('long values are folded at whitespace to 78 characters; refold:false keeps them', () => {
  const m = mail();
  const words = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');
  m.addHeader('X-Long', words);
  const field = m.toString().split('\r\n\r\n')[0].split(/\r\n(?![ \t])/)[0];
  const lines = field.split('\r\n');
  assert.ok(lines.length > 1);
  assert.ok(lines.every((l) => l.length <= 78), JSON.stringify(lines));
  assert.ok(lines.slice(1).every((l) => l.startsWith(' ')));
  assert.equal(m.getHeader('X-Long'), words, 'unfolding gives the value back');
  m.addHeader('X-Raw', words, { refold: false });
  assert.ok(m.toString().startsWith(`X-Raw: ${words}\r\n`));
  m.addHeader('X-Prefolded', 'a\r\n b', { refold: false });
  assert.ok(m.toString().startsWith('X-Prefolded: a\r\n b\r\n'));
  const unbreakable = 'x'.repeat(120);
  m.addHeader('X-Token', unbreakable);
  assert.ok(m.toString().startsWith(`X-Token: ${unbreakable}\r\n`), 'no whitespace: no fold');
});

test('header injection is refused: names and values cannot start new fields', () => {
  const m = mail();
  assert.throws(() => m.addHeader('X-A', 'v\r\nBcc: evil@example.org'), /line break/);
  assert.throws(() => m.addHeader('X-A', 'v\nBcc: x'), /line break/);
  assert.throws(() => m.addHeader('X-A', 'v\r\nBcc: x', { refold: false }), /not folding/);
  assert.throws(() => m.setHeader('Bad Name', 'v'), /invalid header name/);
  assert.throws(() => m.addHeader('X:Y', 'v'), /invalid header name/);
  assert.throws(() => m.addHeader('', 'v'), /invalid header name/);
  assert.equal(m.toBuffer().toString(), MSG, 'nothing changed');
});

test('non-ASCII UTF-8 header values round-trip', () => {
  const raw = Buffer.from('Subject: Grüße aus Köln ✉\r\n\r\nbody\r\n');
  const m = mail(raw);
  assert.equal(m.getHeader('subject'), 'Grüße aus Köln ✉');
  m.addHeader('X-Name', 'Zoë 日本語');
  assert.equal(m.getHeader('x-name'), 'Zoë 日本語');
  assert.ok(m.toBuffer().includes(Buffer.from('X-Name: Zoë 日本語\r\nSubject: Grüße aus Köln ✉\r\n\r\nbody\r\n')));
});

test('a header field with non-UTF-8 bytes is kept byte for byte when others change', () => {
  const raw = Buffer.concat([Buffer.from('Subject: caf'), Buffer.from([0xe9]), Buffer.from('\r\n\r\nx\r\n')]);
  const m = mail(raw);
  m.addHeader('X-A', 'b');
  assert.ok(m.toBuffer().subarray('X-A: b\r\n'.length).equals(raw));
});

test('no body, no separator, no header', () => {
  const headerOnly = mail('Subject: hi\r\nFrom: a@example.com\r\n');
  assert.equal(headerOnly.getBody(), '');
  assert.equal(headerOnly.getHeader('from'), 'a@example.com');
  headerOnly.addHeader('X-A', 'b');
  assert.equal(headerOnly.toString(), 'X-A: b\r\nSubject: hi\r\nFrom: a@example.com\r\n\r\n', 'an edit writes the separator');
  headerOnly.setBody('now a body');
  assert.equal(headerOnly.toString(), 'X-A: b\r\nSubject: hi\r\nFrom: a@example.com\r\n\r\nnow a body');

  const noHeader = mail('just text, no header\r\nmore\r\n');
  assert.deepEqual(noHeader.getHeaderNames(), []);
  assert.equal(noHeader.getBody(), 'just text, no header\r\nmore\r\n');
  noHeader.addHeader('Subject', 'added');
  assert.equal(noHeader.toString(), 'Subject: added\r\n\r\njust text, no header\r\nmore\r\n', 'a separator is inserted');

  const emptyHeader = mail('\r\nbody only\r\n');
  assert.deepEqual(emptyHeader.getHeaderNames(), []);
  assert.equal(emptyHeader.getBody(), 'body only\r\n');

  const empty = mail('');
  assert.equal(empty.getBody(), '');
  assert.equal(empty.getSize(), 0);
});

test('setBody replaces the body and normalises line endings to CRLF', () => {
  const m = mail();
  m.setBody('line1\nline2\r\nline3\n');
  assert.equal(m.getBody(), 'line1\r\nline2\r\nline3\r\n');
  assert.ok(m.toString().endsWith('X-Tag: two\r\n\r\nline1\r\nline2\r\nline3\r\n'));
  m.setBody(Buffer.from('bin\n'));
  assert.equal(m.getBody(), 'bin\r\n');
  assert.throws(() => m.setBody(42 as never), /string or a Buffer/);
});

test('queue() passes sender, recipient, transport, a copy of the options and the current message', () => {
  const queued: QueueRequest[] = [];
  const m = mail(MSG, queued);
  const metadata = { tenant: 'acme' };
  const id = m.queue({ localpart: 'alice', domain: 'example.com' }, 'bob@example.net', 'inbound', {
    metadata, priority: 1, delay: 30, hold: false, jobid: 'j1', tenantid: 't1', quotas: ['q'],
    dsn: { ret: 'HDRS', notify: ['FAILURE', 'DELAY'], envid: 'e1', orcpt: 'rfc822;bob@example.net' },
  });
  metadata.tenant = 'changed later';
  assert.deepEqual(id, { transaction: '00000000-0000-4000-8000-000000000000', queue: 1 });
  assert.equal(queued[0].sender, 'alice@example.com');
  assert.equal(queued[0].recipient, 'bob@example.net');
  assert.equal(queued[0].transportid, 'inbound');
  assert.deepEqual(queued[0].options.metadata, { tenant: 'acme' });
  assert.equal(queued[0].options.priority, 1);
  assert.equal(queued[0].body, m.toBuffer());
  m.queue('', 'carol@example.net', 'inbound');
  assert.equal(queued[1].sender, '', 'null sender allowed');
  assert.equal(queued[1].body, queued[0].body, 'unmodified in between: the same body');
  m.addHeader('X-Per-Recipient', 'dave');
  m.queue('', 'dave@example.net', 'inbound');
  assert.notEqual(queued[2].body, queued[1].body);
  assert.match(queued[2].body.toString(), /^X-Per-Recipient: dave\r\n/);
});

test('queue() refuses invalid arguments', () => {
  const queued: QueueRequest[] = [];
  const m = mail(MSG, queued);
  const bad: Array<[() => unknown, RegExp]> = [
    [() => m.queue('', 'b@example.net', ''), /transportid/],
    [() => m.queue('', '', 'inbound'), /recipient must not be empty/],
    [() => m.queue('a@x\r\nRCPT TO:<evil>', 'b@example.net', 'inbound'), /not allowed/],
    [() => m.queue('', { localpart: 'b' } as never, 'inbound'), /recipient must be/],
    [() => m.queue('', 'b@example.net', 'inbound', { priority: 2 as never }), /priority must be 0 or 1/],
    [() => m.queue('', 'b@example.net', 'inbound', { delay: -1 }), /delay/],
    [() => m.queue('', 'b@example.net', 'inbound', { delay: Number.NaN }), /delay/],
    [() => m.queue('', 'b@example.net', 'inbound', { metadata: { n: 1 } as never }), /metadata/],
    [() => m.queue('', 'b@example.net', 'inbound', { metadata: [] as never }), /metadata/],
    [() => m.queue('', 'b@example.net', 'inbound', { hold: 'yes' as never }), /hold/],
    [() => m.queue('', 'b@example.net', 'inbound', { quotas: 'q' as never }), /quotas/],
    [() => m.queue('', 'b@example.net', 'inbound', { dsn: { notify: ['NEVER', 'FAILURE'] } }), /notify/],
    [() => m.queue('', 'b@example.net', 'inbound', { dsn: { ret: 'ALL' as never } }), /ret/],
    [() => m.queue('', 'b@example.net', 'inbound', { prio: 1 } as never), /unknown option "prio"/],
  ];
  for (const [call, re] of bad) assert.throws(call, re);
  assert.equal(queued.length, 0, 'nothing was queued');
});
