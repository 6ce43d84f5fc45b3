/**
 * Retries, expiry and DSNs end to end: temporary failures wait for the transport group's
 * interval and are tried again; permanent failures and expiry send an RFC 3464 report to the
 * original sender (MAIL FROM:<>); `notify: true` intervals send a "delayed" report once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp, message, sendRaw, spoolEntries, startDaemon } from './harness';
import { deliveries, deliveryApp, deliveryConfig, fixed, queueIdOf, waitUntil } from './delivery-support';
import { SmtpSink, type SinkTransaction } from '../support/smtp-sink';

function dsns(sink: SmtpSink): SinkTransaction[] {
  return sink.transactions.filter((x) => x.mail.address === '');
}

/** Unfolded text of a DSN (RFC 5322 §2.2.3), for matching fields that may be folded. */
function unfold(x: SinkTransaction): string {
  return x.data.toString().replace(/\r\n[ \t]+/g, ' ');
}

test('a temporary failure is deferred (retry + 1, in the spool) and tried again after its interval', async (t) => {
  const sink = await SmtpSink.start({ rcpt: { 'later@example.org': '450 4.2.1 Mailbox busy, try later' } });
  t.after(() => sink.close());
  const cfg = deliveryConfig(deliveryApp({ transports: fixed('out', sink.port), retry: 'count: 50\n      intervals: [{ interval: 1 }]' }));
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const tx = queueIdOf(await sendRaw(d.port, 'alice@example.com', ['later@example.org'], message('retry')));

  await waitUntil(() => deliveries(d).length >= 1, 30_000, 'the first attempt');
  const first = deliveries(d)[0];
  assert.equal(first.action, 'deferred');
  assert.equal(first.state, 'DEFER');
  assert.equal(first.retry, 1);
  assert.equal(first.smtpcode, 450);
  assert.equal(first.smtpenhanced, '4.2.1');
  assert.equal(first.smtpstate, 'RCPT');
  // The entry keeps failing (every 1 s) while the spool is read: compare with the attempt that
  // wrote what the spool shows.
  const [entry] = (await spoolEntries(cfg)).filter((e) => e.id.startsWith(tx));
  assert.equal(entry.entry.state, 'DEFER', 'the deferral is in the spool');
  const wrote = deliveries(d).find((l) => l.retry === entry.entry.retry)!;
  assert.ok(wrote, `a record for retry ${String(entry.entry.retry)}`);
  const wait = Number(entry.entry.retryts) - Number(wrote['@timestamp']);
  assert.ok(wait > 500 && wait <= 1500, `next retry about 1 s after the attempt (${wait} ms)`);

  delete sink.opts.rcpt!['later@example.org'];
  await waitUntil(() => deliveries(d).some((l) => l.action === 'delivered'), 30_000, 'the retry that succeeds');
  const all = deliveries(d);
  const last = all[all.length - 1];
  const before = all[all.length - 2];
  assert.equal(last.action, 'delivered');
  assert.ok(all.slice(0, -1).every((l) => l.action === 'deferred'));
  assert.ok(Number(last['@timestamp']) - Number(before['@timestamp']) >= 900, 'each retry waited for its interval');
  assert.equal(sink.transactions.length, 1);
  assert.equal(dsns(sink).length, 0, 'no DSN for a message that was delivered');
});

test('a permanent failure bounces at once: a well-formed DSN to the original sender, the other recipient delivered', async (t) => {
  const sink = await SmtpSink.start({ rcpt: { 'nobody@example.org': '550 5.1.1 <nobody@example.org>: user unknown' } });
  t.after(() => sink.close());
  const cfg = deliveryConfig(deliveryApp({ transports: fixed('out', sink.port), dsn: 'out' }));
  const d = await startDaemon(cfg);
  t.after(() => d.stop());

  const c = await RawSmtp.connect(d.port);
  await c.reply();
  await c.cmd('EHLO client.test');
  assert.match(await c.cmd('MAIL FROM:<alice@example.com> RET=HDRS ENVID=env-42'), /^250/);
  assert.match(await c.cmd('RCPT TO:<nobody@example.org> NOTIFY=FAILURE ORCPT=rfc822;orig+2Bnobody@example.org'), /^250/);
  assert.match(await c.cmd('RCPT TO:<bob@example.org>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  c.write(message('bounce me', 'secret body\n').replace(/\n/g, '\r\n') + '\r\n.\r\n');
  const tx = queueIdOf(await c.reply());
  c.close();

  await waitUntil(() => dsns(sink).length >= 1 && sink.transactions.length >= 2, 30_000, 'the delivery and the DSN');
  const dsn = dsns(sink)[0];
  assert.deepEqual(dsn.rcpts.map((r) => r.address), ['alice@example.com']);
  const text = unfold(dsn);
  assert.match(text, /^Content-Type: multipart\/report; report-type=delivery-status;/m);
  assert.match(text, /^Auto-Submitted: auto-replied/m);
  assert.match(text, /^Original-Envelope-Id: env-42/m);
  assert.match(text, /^Original-Recipient: rfc822; orig\+nobody@example\.org/m);
  assert.match(text, /^Final-Recipient: rfc822; nobody@example\.org/m);
  assert.match(text, /^Action: failed/m);
  assert.match(text, /^Status: 5\.1\.1/m);
  assert.match(text, /^Remote-MTA: dns; 127\.0\.0\.1/m);
  assert.match(text, /^Diagnostic-Code: smtp; 550 5\.1\.1 <nobody@example\.org>: user unknown/m);
  assert.match(text, /Subject: bounce me/, 'the original headers are returned');
  assert.doesNotMatch(text, /secret body/, 'RET=HDRS: not the body');
  assert.doesNotMatch(text, /bob@example\.org/, 'the delivered recipient is not reported');
  const delivered = sink.transactions.find((x) => x.mail.address === 'alice@example.com')!;
  assert.deepEqual(delivered.rcpts.map((r) => r.address), ['bob@example.org']);
  await waitUntil(() => deliveries(d).length >= 2, 15_000, 'two records');
  assert.equal(deliveries(d, (l) => l.recipientlocalpart === 'nobody')[0].action, 'bounced');
  // The DSN itself (sender <>) was delivered and nothing is left queued.
  await waitUntil(() => deliveries(d).length >= 3, 15_000, 'the DSN delivery record');
  assert.deepEqual((await spoolEntries(cfg)).filter((e) => e.id.startsWith(tx)), []);
});

test('expiry: retries used up ⇒ a DSN with status 5.4.7 and the last remote reply', async (t) => {
  const sink = await SmtpSink.start({ rcpt: { 'slow@example.org': '450 4.2.2 Mailbox full' } });
  t.after(() => sink.close());
  const cfg = deliveryConfig(deliveryApp({ transports: fixed('out', sink.port), dsn: 'out', retry: 'count: 1\n      intervals: [{ interval: 1 }]' }));
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  await sendRaw(d.port, 'alice@example.com', ['slow@example.org'], message('expire'));
  await waitUntil(() => dsns(sink).length >= 1, 30_000, 'the DSN');
  const attempts = deliveries(d, (l) => l.recipientlocalpart === 'slow');
  assert.deepEqual(attempts.map((l) => l.action), ['deferred', 'bounced'], 'one retry, then the bounce');
  const text = unfold(dsns(sink)[0]);
  assert.match(text, /^Action: failed/m);
  assert.match(text, /^Status: 5\.4\.7/m);
  assert.match(text, /^Diagnostic-Code: smtp; 450 4\.2\.2 Mailbox full/m);
});

test('expiry by age (retry.during) bounces even with retries left', async (t) => {
  const sink = await SmtpSink.start({ rcpt: { 'slow@example.org': '451 4.3.0 Try again' } });
  t.after(() => sink.close());
  const cfg = deliveryConfig(deliveryApp({ transports: fixed('out', sink.port), dsn: 'out', retry: 'count: 100\n      during: 2s\n      intervals: [{ interval: 1 }]' }));
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  await sendRaw(d.port, 'alice@example.com', ['slow@example.org'], message('old'));
  await waitUntil(() => dsns(sink).length >= 1, 30_000, 'the DSN');
  const actions = deliveries(d, (l) => l.recipientlocalpart === 'slow').map((l) => l.action);
  assert.equal(actions[actions.length - 1], 'bounced');
  assert.ok(actions.length <= 5, `a few attempts within 2 s, far fewer than retry.count (${actions.join(',')})`);
  assert.match(unfold(dsns(sink)[0]), /^Status: 5\.4\.7/m);
});

test('notify: true sends one "delayed" DSN when that interval is reached, then the failure DSN at expiry', async (t) => {
  const sink = await SmtpSink.start({ rcpt: { 'slow@example.org': '450 4.2.1 Busy' } });
  t.after(() => sink.close());
  const retry = 'count: 3\n      intervals: [{ interval: 1, notify: true }, { interval: 1 }]';
  const cfg = deliveryConfig(deliveryApp({ transports: fixed('out', sink.port), dsn: 'out', retry }));
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  await sendRaw(d.port, 'alice@example.com', ['slow@example.org'], message('delay'));
  await waitUntil(() => dsns(sink).length >= 2, 30_000, 'the delayed and the failed DSN');
  const [delayed, failed] = dsns(sink).map(unfold);
  assert.match(delayed, /^Action: delayed/m);
  assert.match(delayed, /^Status: 4\.2\.1/m);
  assert.match(delayed, /^Will-Retry-Until: /m);
  assert.match(delayed, /^Subject: Delayed Mail/m);
  assert.match(failed, /^Action: failed/m);
  assert.equal(deliveries(d, (l) => l.recipientlocalpart === 'slow').length, 4, 'first attempt and three retries');
  assert.equal(dsns(sink).length, 2, 'the repeating last interval sends no more delay notices');
});

test('no DSN to the null sender, and none when the group has no dsn transport', async (t) => {
  const sink = await SmtpSink.start({ rcpt: { 'nobody@example.org': '550 5.1.1 unknown' } });
  t.after(() => sink.close());
  const cfg = deliveryConfig(deliveryApp({ transports: fixed('out', sink.port) }));
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  await sendRaw(d.port, 'alice@example.com', ['nobody@example.org'], message('no dsn'));
  await sendRaw(d.port, '', ['nobody@example.org'], message('from null'));
  await waitUntil(() => deliveries(d, (l) => l.action === 'bounced').length >= 2, 30_000, 'two bounces');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(sink.transactions.length, 0, 'nothing was sent anywhere');
});
