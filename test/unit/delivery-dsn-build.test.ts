/**
 * buildDsn as the sender of the original message meets it: one multipart/report per call, the
 * fields a mail client and a bounce processor read, and nothing at all where no DSN is due.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDsn, DSN_BODY_CAP, type DsnInput, type DsnMessage } from '../../src/delivery/dsn';
import { delayedRecipient, failedRecipient, field, input, readReport, BODY, HEADERS } from './delivery-dsn-mime';

function build(i: DsnInput): DsnMessage {
  const r = buildDsn(i);
  assert.ok(r, 'a DSN is built');
  return r;
}

/** The human-readable text as one line, as a reader takes it in regardless of wrapping. */
function prose(s: string): string {
  return s.replace(/\s+/g, ' ');
}

function allLines(message: Buffer): string[] {
  return message.toString('latin1').split('\r\n');
}

test('a failure report is a multipart/report from MAILER-DAEMON to the original sender, sent from <>', () => {
  const r = build(input());
  assert.equal(r.sender, '');
  assert.equal(r.recipient, 'alice@example.com');
  const rep = readReport(r.message);
  assert.equal(field(rep.top, 'From'), '"Mail Delivery System" <MAILER-DAEMON@mx1.example.com>');
  assert.equal(field(rep.top, 'To'), '<alice@example.com>');
  assert.equal(field(rep.top, 'Subject'), 'Undelivered Mail Returned to Sender');
  assert.equal(field(rep.top, 'Date'), 'Mon, 02 Jun 2025 10:00:00 +0000');
  assert.equal(field(rep.top, 'Message-ID'), '<7d1c2b3a-0000-4000-8000-00000000d5e1@mx1.example.com>');
  assert.equal(field(rep.top, 'MIME-Version'), '1.0');
  assert.equal(field(rep.top, 'Auto-Submitted'), 'auto-replied');
  assert.match(field(rep.top, 'Content-Type') ?? '', /^multipart\/report; report-type=delivery-status; boundary="/);
  assert.deepEqual(
    rep.parts.map((p) => field(p, 'Content-Type')),
    ['text/plain; charset=us-ascii', 'message/delivery-status', 'text/rfc822-headers'],
  );
  assert.match(prose(rep.parts[0].body), /could not be delivered/);
  assert.match(prose(rep.parts[0].body), /<bob@example\.org>: delivery failed/);
  assert.match(prose(rep.parts[0].body), /550 5\.1\.1 <bob@example\.org>: Recipient address rejected: User unknown/);
});

test('the per-message fields follow the input: envelope id and received-from only when known', () => {
  const full = readReport(build(input({}, { envid: 'QQ314159', receivedFromMta: 'client.example.net' })).message).status[0];
  assert.equal(field(full, 'Original-Envelope-Id'), 'QQ314159');
  assert.equal(field(full, 'Reporting-MTA'), 'dns; mx1.example.com');
  assert.equal(field(full, 'Received-From-MTA'), 'dns; client.example.net');
  assert.equal(field(full, 'Arrival-Date'), 'Sun, 01 Jun 2025 09:30:00 +0000');
  assert.deepEqual([...full.keys()], ['original-envelope-id', 'reporting-mta', 'received-from-mta', 'arrival-date']);

  const bare = readReport(build(input()).message).status[0];
  assert.deepEqual([...bare.keys()], ['reporting-mta', 'arrival-date']);
});

test('the per-recipient fields carry status, remote MTA, diagnostic and dates, each only when known', () => {
  const rep = readReport(build(input({ recipients: [failedRecipient({ orcpt: 'rfc822;bob@example.org' })] })).message);
  const b = rep.status[1];
  assert.equal(field(b, 'Original-Recipient'), 'rfc822; bob@example.org');
  assert.equal(field(b, 'Final-Recipient'), 'rfc822; bob@example.org');
  assert.equal(field(b, 'Action'), 'failed');
  assert.equal(field(b, 'Status'), '5.1.1');
  assert.equal(field(b, 'Remote-MTA'), 'dns; mx.example.org');
  assert.equal(field(b, 'Diagnostic-Code'), 'smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown');
  assert.equal(field(b, 'Last-Attempt-Date'), 'Mon, 02 Jun 2025 09:59:30 +0000');
  assert.equal(field(b, 'Will-Retry-Until'), undefined, 'Will-Retry-Until is for delayed reports only');

  const min = failedRecipient({ remoteMta: undefined, diagnostic: undefined, lastAttempt: undefined, willRetryUntil: new Date() });
  const m = readReport(build(input({ recipients: [min] })).message).status[1];
  assert.deepEqual([...m.keys()], ['final-recipient', 'action', 'status']);
});

test('a local error is reported with the x-error diagnostic type', () => {
  const r = failedRecipient({ remoteMta: undefined, status: '5.4.4', diagnostic: { type: 'x-error', text: 'Domain example.org has a null MX' } });
  const rep = readReport(build(input({ recipients: [r] })).message);
  assert.equal(field(rep.status[1], 'Diagnostic-Code'), 'x-error; Domain example.org has a null MX');
  assert.match(prose(rep.parts[0].body), /Reason: Domain example\.org has a null MX/);
});

test('a malformed status falls back to the generic code for the action', () => {
  const rep = readReport(build(input({ recipients: [failedRecipient({ status: 'bogus' }), delayedRecipient({ status: '' })] })).message);
  assert.equal(field(rep.status[1], 'Status'), '5.0.0');
  assert.equal(field(rep.status[2], 'Status'), '4.0.0');
});

test('no DSN is ever sent to the null reverse-path', () => {
  assert.equal(buildDsn(input({}, { sender: '' })), null);
  assert.equal(buildDsn(input({}, { sender: '<>' })), null);
  assert.equal(buildDsn(input({ recipients: [delayedRecipient()] }, { sender: '' })), null);
});

test('NOTIFY decides which recipients are reported, and no DSN when none asked', () => {
  const cases: Array<[string[] | undefined, 'failed' | 'delayed' | 'delivered' | 'relayed', boolean]> = [
    [undefined, 'failed', true],
    [undefined, 'delayed', true],
    [undefined, 'delivered', false],
    [undefined, 'relayed', false],
    [[], 'failed', true],
    [['NEVER'], 'failed', false],
    [['NEVER'], 'delayed', false],
    [['SUCCESS'], 'failed', false],
    [['DELAY'], 'failed', false],
    [['FAILURE'], 'failed', true],
    [['failure'], 'failed', true],
    [['FAILURE'], 'delayed', false],
    [['FAILURE', 'DELAY'], 'delayed', true],
    [['SUCCESS'], 'delivered', true],
    [['SUCCESS'], 'relayed', true],
    [['FAILURE', 'DELAY'], 'delivered', false],
  ];
  for (const [notify, action, wanted] of cases) {
    const r = buildDsn(input({ recipients: [failedRecipient({ notify, action })] }));
    assert.equal(r !== null, wanted, `NOTIFY=${notify?.join(',') ?? '(absent)'} action=${action}`);
  }
});

test('recipients that did not ask are left out of a report that others asked for', () => {
  const rs = [failedRecipient(), failedRecipient({ recipient: 'dave@example.org', notify: ['NEVER'] })];
  const rep = readReport(build(input({ recipients: rs })).message);
  assert.equal(rep.status.length, 2);
  assert.equal(field(rep.status[1], 'Final-Recipient'), 'rfc822; bob@example.org');
  assert.doesNotMatch(prose(rep.parts[0].body), /dave@/);
});

test('success reports are titled as such and say relayed when the next hop gave no DSN', () => {
  const rs = [
    failedRecipient({ action: 'delivered', status: '2.0.0', notify: ['SUCCESS'], diagnostic: { type: 'smtp', text: '250 2.0.0 Ok' } }),
    failedRecipient({ recipient: 'erin@example.org', action: 'relayed', status: '2.0.0', notify: ['SUCCESS'] }),
  ];
  const rep = readReport(build(input({ recipients: rs })).message);
  assert.equal(field(rep.top, 'Subject'), 'Successful Mail Delivery Report');
  assert.deepEqual(rep.status.slice(1).map((b) => field(b, 'Action')), ['delivered', 'relayed']);
  assert.match(prose(rep.parts[0].body), /<erin@example\.org>: relayed/);
  assert.equal(field(rep.parts[2], 'Content-Type'), 'text/rfc822-headers');
});

test('RET=HDRS returns the headers only; RET=FULL returns the whole message with a failure', () => {
  const hdrs = readReport(build(input({}, { ret: 'HDRS' })).message);
  assert.equal(field(hdrs.parts[2], 'Content-Type'), 'text/rfc822-headers');
  assert.equal(hdrs.parts[2].body, HEADERS.toString().replace(/\r\n\r\n$/, '\r\n'));
  assert.doesNotMatch(hdrs.parts[2].body, /the figures are attached/);

  const full = readReport(build(input({}, { ret: 'FULL' })).message);
  assert.equal(field(full.parts[2], 'Content-Type'), 'message/rfc822');
  assert.equal(full.parts[2].body, HEADERS.toString() + BODY.toString());
  assert.match(prose(full.parts[0].body), /Your message is attached/);
});

test('without RET, and for delays even with RET=FULL, only the headers go back', () => {
  const none = readReport(build(input()).message);
  assert.equal(field(none.parts[2], 'Content-Type'), 'text/rfc822-headers');
  const delay = readReport(build(input({ recipients: [delayedRecipient()] }, { ret: 'FULL' })).message);
  assert.equal(field(delay.parts[2], 'Content-Type'), 'text/rfc822-headers');
  assert.equal(field(delay.parts[2], 'Content-Description'), 'Message Headers');
});

test('a body over the cap, or one that is not valid 8bit-MIME, is replaced by its headers', () => {
  const big = Buffer.alloc(DSN_BODY_CAP + 1, 'a\r\n');
  const r1 = readReport(build(input({}, { ret: 'FULL', body: big })).message);
  assert.equal(field(r1.parts[2], 'Content-Type'), 'text/rfc822-headers');
  assert.match(prose(r1.parts[0].body), /larger than 100 KiB, so only its headers are attached/);

  const atCap = Buffer.alloc(DSN_BODY_CAP, 'a\r\n');
  assert.equal(field(readReport(build(input({}, { ret: 'FULL', body: atCap })).message).parts[2], 'Content-Type'), 'message/rfc822');

  for (const bad of ['bare\nLF\r\n', 'NUL\0\r\n', 'x'.repeat(999) + '\r\n']) {
    const r = readReport(build(input({}, { ret: 'FULL', body: Buffer.from(bad) })).message);
    assert.equal(field(r.parts[2], 'Content-Type'), 'text/rfc822-headers', JSON.stringify(bad.slice(0, 12)));
  }
});

test('ORCPT (kept xtext-decoded in the queue) is written as the original address, never decoded twice', () => {
  const orcpts: Array<[string, string]> = [
    ['rfc822;Bob.Original@example.org', 'rfc822; Bob.Original@example.org'],
    ['rfc822;list+2B2B@example.org', 'rfc822; list+2B2B@example.org'],
    ['RFC822; spaced@example.org ', 'rfc822; spaced@example.org'],
    ['plain@example.org', 'rfc822; plain@example.org'],
    ['utf-8;j\\x{E9}r\\x{F4}me@example.org', 'utf-8; j\\x{E9}r\\x{F4}me@example.org'],
    ['utf-8;jérôme@example.org', 'utf-8; j\\x{E9}r\\x{F4}me@example.org'],
    ['x400;c=fr;admd=x;s=bob', 'x400; c=fr;admd=x;s=bob'],
  ];
  for (const [orcpt, expected] of orcpts) {
    const rep = readReport(build(input({ recipients: [failedRecipient({ orcpt })] })).message);
    assert.equal(field(rep.status[1], 'Original-Recipient'), expected, orcpt);
  }
  for (const orcpt of ['rfc822;', 'bad type;x@example.org']) {
    const rep = readReport(build(input({ recipients: [failedRecipient({ orcpt })] })).message);
    assert.equal(field(rep.status[1], 'Original-Recipient'), undefined, orcpt);
  }
});

test('a multi-recipient report has one block per recipient and is titled by the worst outcome', () => {
  const rs = [delayedRecipient(), failedRecipient(), failedRecipient({ recipient: 'frank@example.org', status: '5.2.2', diagnostic: { type: 'smtp', text: '552 5.2.2 Mailbox full' } })];
  const rep = readReport(build(input({ recipients: rs })).message);
  assert.equal(field(rep.top, 'Subject'), 'Undelivered Mail Returned to Sender');
  assert.equal(rep.status.length, 4);
  assert.deepEqual(rep.status.slice(1).map((b) => field(b, 'Final-Recipient')), [
    'rfc822; carol@example.net',
    'rfc822; bob@example.org',
    'rfc822; frank@example.org',
  ]);
  assert.deepEqual(rep.status.slice(1).map((b) => field(b, 'Action')), ['delayed', 'failed', 'failed']);
  assert.equal(field(rep.status[1], 'Will-Retry-Until'), 'Fri, 06 Jun 2025 09:30:00 +0000');
  for (const who of ['carol@example.net', 'bob@example.org', 'frank@example.org']) assert.match(prose(rep.parts[0].body), new RegExp(`<${who}>`));
  assert.match(prose(rep.parts[0].body), /Mailbox full/);
});

test('a delay report is titled as such and says until when delivery is retried', () => {
  const rep = readReport(build(input({ recipients: [delayedRecipient()] })).message);
  assert.equal(field(rep.top, 'Subject'), 'Delayed Mail (still being retried)');
  assert.match(prose(rep.parts[0].body), /still trying until Fri, 06 Jun 2025 09:30:00 \+0000/);
  assert.match(prose(rep.parts[0].body), /do not need to send it again/);
});

test('long diagnostics are folded at spaces: short lines, continuations start with a space, unfolding restores them', () => {
  const words = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ');
  const text = `550 5.7.1 ${words}`;
  const r = build(input({ recipients: [failedRecipient({ diagnostic: { type: 'smtp', text } })] }));
  const rep = readReport(r.message);
  assert.equal(field(rep.status[1], 'Diagnostic-Code'), `smtp; ${text}`);
  const raw = rep.parts[1].body.split('\r\n');
  const start = raw.findIndex((l) => l.startsWith('Diagnostic-Code:'));
  const next = raw.findIndex((l, i) => i > start && !l.startsWith(' '));
  assert.ok(next - start > 5, 'the field spans several lines');
  for (const l of raw.slice(start, next)) assert.ok(l.length <= 78, `folded line too long: ${l.length}`);
  for (const l of raw.slice(start + 1, next)) assert.match(l, /^ \S/);
  for (const l of rep.parts[0].body.split('\r\n')) assert.ok(l.length <= 78, 'the human-readable text is wrapped');
});

test('a diagnostic with one enormous word still keeps every line within 998 octets', () => {
  const text = `550 5.7.1 ${'x'.repeat(3000)} end`;
  const r = build(input({ recipients: [failedRecipient({ diagnostic: { type: 'smtp', text } })] }));
  for (const l of allLines(r.message)) assert.ok(l.length <= 998, `line of ${l.length} octets`);
  const d = field(readReport(r.message).status[1], 'Diagnostic-Code') ?? '';
  assert.equal(d.replace(/ /g, ''), `smtp;${text.replace(/ /g, '')}`, 'nothing is lost, only spaces are added');
});

test('CRLF everywhere: no bare CR or LF, even from an original with bare LF and over-long header lines', () => {
  const headers = Buffer.from(`Subject: lf only\nX-Long: ${'y'.repeat(1500)}\nX-Cr: a\rb\n\n`);
  const evil = failedRecipient({ diagnostic: { type: 'smtp', text: '550 bad\r\nX-Injected: yes\nmore' }, remoteMta: 'mx\r\n.example.org' });
  const r = build(input({ recipients: [evil] }, { headers, envid: 'id\r\nX-Evil: 1' }));
  const s = r.message.toString('latin1');
  assert.equal(/\r(?!\n)|(?<!\r)\n/.test(s), false, 'no bare CR or LF');
  for (const l of allLines(r.message)) assert.ok(l.length <= 998, `line of ${l.length} octets`);
  const rep = readReport(r.message);
  assert.equal(rep.status[1].get('x-injected'), undefined, 'a CRLF in a diagnostic cannot start a field');
  assert.equal(rep.status[0].get('x-evil'), undefined);
  assert.equal(field(rep.status[1], 'Diagnostic-Code'), 'smtp; 550 bad X-Injected: yes more');
  assert.equal(field(rep.status[1], 'Remote-MTA'), 'dns; mx .example.org');
  assert.match(rep.parts[2].body, /^Subject: lf only\r\nX-Long:(\r\n y+)+\r\nX-Cr: a b\r\n$/);
});

test('an original with 8-bit headers gets an RFC 6533 global report that declares 8bit', () => {
  const headers = Buffer.from('From: Jérôme <jerome@example.com>\r\nSubject: Café\r\n\r\n', 'utf8');
  const r = build(input({ recipients: [failedRecipient({ diagnostic: { type: 'smtp', text: '550 5.1.1 Utilisateur inconnu: ünï' } })] }, { headers }));
  const rep = readReport(r.message);
  assert.equal(field(rep.top, 'Content-Transfer-Encoding'), '8bit');
  assert.deepEqual(
    rep.parts.map((p) => field(p, 'Content-Type')),
    ['text/plain; charset=utf-8', 'message/global-delivery-status', 'message/global-headers'],
  );
  assert.equal(field(rep.parts[2], 'Content-Transfer-Encoding'), '8bit');
  assert.match(rep.parts[2].body, /Subject: Café/);
  assert.equal(field(rep.status[1], 'Diagnostic-Code'), 'smtp; 550 5.1.1 Utilisateur inconnu: ünï');
});

test('a UTF-8 recipient in an ASCII original keeps the report 7-bit: utf-8-addr-xtext and base64 text', () => {
  const r = build(input({ recipients: [failedRecipient({ recipient: 'jörg+x=y@exämple.org', diagnostic: { type: 'smtp', text: '550 nö' } })] }));
  assert.equal(r.message.some((b) => b > 0x7f), false, 'the whole DSN is 7-bit');
  const rep = readReport(r.message);
  assert.equal(field(rep.parts[1], 'Content-Type'), 'message/delivery-status');
  assert.equal(field(rep.status[1], 'Final-Recipient'), 'utf-8; j\\x{F6}rg\\x{2B}x\\x{3D}y@ex\\x{E4}mple.org');
  assert.equal(field(rep.status[1], 'Diagnostic-Code'), 'smtp; 550 n?');
  assert.equal(field(rep.parts[0], 'Content-Transfer-Encoding'), 'base64');
  assert.match(Buffer.from(rep.parts[0].body, 'base64').toString('utf8'), /<jörg\+x=y@exämple\.org>: delivery failed/);
});

test('a UTF-8 sender makes the report global, with UTF-8 addresses as unitext', () => {
  const r = build(input({ recipients: [failedRecipient({ recipient: 'jörg@exämple.org' })] }, { sender: 'åsa@example.se' }));
  const rep = readReport(r.message);
  assert.equal(r.recipient, 'åsa@example.se');
  assert.equal(field(rep.top, 'To'), '<åsa@example.se>');
  assert.equal(field(rep.parts[1], 'Content-Type'), 'message/global-delivery-status');
  assert.equal(field(rep.status[1], 'Final-Recipient'), 'utf-8; jörg@exämple.org');
});

test('the boundary never occurs inside the returned message', () => {
  const body = Buffer.from('--=_dsn_7d1c2b3a-0000-4000-8000-00000000d5e1\r\nsneaky\r\n');
  const r = build(input({}, { ret: 'FULL', body }));
  const rep = readReport(r.message);
  assert.notEqual(rep.boundary, '=_dsn_7d1c2b3a-0000-4000-8000-00000000d5e1');
  assert.equal(rep.parts.length, 3);
  assert.match(rep.parts[2].body, /sneaky/);
});

test('without an id generator every DSN gets its own Message-ID', () => {
  const a = readReport(build(input({ idGen: undefined })).message);
  const b = readReport(build(input({ idGen: undefined })).message);
  assert.match(field(a.top, 'Message-ID') ?? '', /^<[0-9a-f-]{36}@mx1\.example\.com>$/);
  assert.notEqual(field(a.top, 'Message-ID'), field(b.top, 'Message-ID'));
});
