/**
 * predelivery and postdelivery hooks end to end: each action changes what happens to the
 * message, as a user sees it at the sink, in the spool and in the log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { message, sendRaw, spoolEntries, startDaemon, type Daemon } from './harness';
import { deliveries, deliveryApp, deliveryConfig, fixed, waitUntil } from './delivery-support';
import { SmtpSink } from '../support/smtp-sink';

const PRE = (altPort: number) => `
import type { PreDeliveryHook } from 'halyard';
export default function (ctx: PreDeliveryHook) {
  const who = ctx.message.recipientaddress.localpart;
  ctx.context.pre = 'seen ' + who;
  switch (who) {
    case 'redirect': return ctx.Try({ server: '127.0.0.1', port: ${altPort} });
    case 'rewrite': return ctx.Try({ recipient: 'rewritten@example.org', sender: 'bounces@example.com' });
    case 'hold': return ctx.Queue({ hold: true, reason: 'quarantine' });
    case 'later': ctx.SetMetaData({ why: 'later' }); return ctx.Queue({ delay: 3600 });
    case 'drop': return ctx.Delete({ reason: 'dropped by policy' });
    case 'refuse': return ctx.Bounce({ reason: 'refused by policy' });
    case 'boom': throw new Error('bug in hook');
    case 'twice': ctx.Delete(); return ctx.Try();
  }
}
`;

const POST = `
import type { PostDeliveryHook } from 'halyard';
export default function (ctx: PostDeliveryHook) {
  const who = ctx.message.recipientaddress.localpart;
  ctx.log('post', { who, pre: ctx.context.pre, action: ctx.arguments.action ?? 'none', code: ctx.arguments.attempt?.result?.code });
  switch (who) {
    case 'keep': return ctx.Queue({ hold: true });
    case 'silent': return ctx.Delete();
    case 'giveup': return ctx.Bounce({ reason: 'no retries for this one' });
    case 'move': return ctx.Queue({ transportid: 'alt', delay: 0, increment_retry: false });
    case 'late': return ctx.Bounce();
  }
}
`;

async function setup(t: { after(fn: () => unknown): void }): Promise<{ sink: SmtpSink; alt: SmtpSink; d: Daemon; cfg: ReturnType<typeof deliveryConfig> }> {
  const sink = await SmtpSink.start({
    rcpt: {
      'keep@example.org': '550 5.1.1 unknown',
      'silent@example.org': '550 5.1.1 unknown',
      'giveup@example.org': '450 4.2.1 busy',
      'move@example.org': '450 4.2.1 busy',
    },
  });
  const alt = await SmtpSink.start({ hostname: 'alt.test' });
  t.after(() => Promise.all([sink.close(), alt.close()]));
  const app = deliveryApp({
    transports: fixed('out', sink.port) + fixed('alt', alt.port),
    dsn: 'out',
    top: 'scripting:\n  hooks:\n    predelivery: hooks/pre.ts\n    postdelivery: hooks/post.ts\n',
  });
  const cfg = deliveryConfig(app, { 'hooks/pre.ts': PRE(alt.port), 'hooks/post.ts': POST });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  return { sink, alt, d, cfg };
}

function recordOf(d: Daemon, who: string) {
  return deliveries(d, (l) => l.recipientlocalpart === who);
}

test('predelivery: Try overrides (server, envelope), Queue (hold, delay, metadata), Delete, Bounce, and errors', async (t) => {
  const { sink, alt, d, cfg } = await setup(t);
  const who = ['redirect', 'rewrite', 'hold', 'later', 'drop', 'refuse', 'boom', 'twice', 'plain'];
  // One transaction per recipient keeps the attempts apart.
  for (const w of who) await sendRaw(d.port, 'alice@example.com', [`${w}@example.org`], message(w));
  await waitUntil(() => who.every((w) => recordOf(d, w).length >= 1), 30_000, 'a record for every recipient');

  assert.deepEqual(alt.transactions.flatMap((x) => x.rcpts.map((r) => r.address)), ['redirect@example.org'], 'Try({server, port}) went to the other sink');
  const rewritten = sink.transactions.find((x) => x.rcpts.some((r) => r.address === 'rewritten@example.org'));
  assert.ok(rewritten, 'Try({recipient}) changed the envelope recipient');
  assert.equal(rewritten.mail.address, 'bounces@example.com', 'Try({sender}) changed the envelope sender');
  assert.ok(sink.transactions.some((x) => x.rcpts.some((r) => r.address === 'plain@example.org')), 'implicit Try() delivers');

  const spool = await spoolEntries(cfg);
  const entryOf = (w: string) => spool.find((e) => e.entry.recipient === `${w}@example.org`)?.entry;
  assert.equal(entryOf('hold')?.state, 'HOLD');
  assert.equal(recordOf(d, 'hold')[0].reason, 'quarantine');
  assert.equal(entryOf('later')?.state, 'DEFER');
  assert.equal(entryOf('later')?.retry, 1);
  assert.deepEqual(entryOf('later')?.metadata, { why: 'later' }, 'SetMetaData persisted in the spool');
  assert.ok(Number(entryOf('later')?.retryts) > Date.now() + 3_000_000, 'Queue({delay: 3600})');
  assert.equal(entryOf('boom')?.state, 'DEFER', 'a throwing predelivery hook queues the message');
  assert.equal(entryOf('boom')?.retry, 0, '... without counting a retry');
  assert.ok(Number(entryOf('boom')?.retryts) > Date.now() + 200_000, '... for 300 s');
  assert.equal(entryOf('twice')?.state, 'DEFER', 'a second action is an error (fail closed), not a Delete');

  assert.equal(entryOf('drop'), undefined);
  assert.equal(recordOf(d, 'drop')[0].action, 'removed');
  assert.equal(recordOf(d, 'drop')[0].reason, 'dropped by policy');
  assert.equal(entryOf('refuse'), undefined);
  assert.equal(recordOf(d, 'refuse')[0].action, 'bounced');
  await waitUntil(() => sink.transactions.some((x) => x.mail.address === ''), 30_000, 'the DSN of Bounce()');
  const dsns = sink.transactions.filter((x) => x.mail.address === '');
  assert.equal(dsns.length, 1, 'Bounce sends a DSN, Delete does not');
  assert.match(dsns[0].data.toString().replace(/\r\n[ \t]+/g, ' '), /Diagnostic-Code: x-error; refused by policy/);
});

test('postdelivery: Queue(hold) and Delete replace a bounce, Bounce cuts retries short, Queue(transportid) reroutes, context flows from predelivery', async (t) => {
  const { sink, alt, d, cfg } = await setup(t);
  const who = ['keep', 'silent', 'giveup', 'move', 'late'];
  for (const w of who) await sendRaw(d.port, 'alice@example.com', [`${w}@example.org`], message(w));
  await waitUntil(() => ['keep', 'silent', 'giveup', 'late'].every((w) => recordOf(d, w).length >= 1) && recordOf(d, 'move').some((l) => l.action === 'delivered'), 30_000, 'records');

  const spool = await spoolEntries(cfg);
  const entryOf = (w: string) => spool.find((e) => e.entry.recipient === `${w}@example.org`)?.entry;
  assert.equal(entryOf('keep')?.state, 'HOLD', '550 + Queue({hold}) ⇒ HOLD, not bounced');
  assert.equal(recordOf(d, 'silent')[0].action, 'removed', '550 + Delete() ⇒ removed');
  assert.equal(recordOf(d, 'giveup')[0].action, 'bounced', '450 + Bounce() ⇒ bounced at once');
  assert.deepEqual(recordOf(d, 'move').map((l) => l.action), ['deferred', 'delivered']);
  assert.equal(recordOf(d, 'move')[1].transportid, 'alt');
  assert.ok(alt.transactions.some((x) => x.rcpts.some((r) => r.address === 'move@example.org')), 'Queue({transportid}) delivered over the other transport');
  assert.equal(recordOf(d, 'late')[0].action, 'delivered', 'Bounce() after a success is an error: still delivered');

  await waitUntil(() => sink.transactions.filter((x) => x.mail.address === '').length >= 1, 30_000, 'the DSN for giveup');
  await new Promise((r) => setTimeout(r, 300));
  const dsns = sink.transactions.filter((x) => x.mail.address === '');
  assert.equal(dsns.length, 1, 'only Bounce() sent a DSN (not keep, not silent)');
  assert.match(dsns[0].data.toString().replace(/\r\n[ \t]+/g, ' '), /Diagnostic-Code: x-error; no retries for this one/);

  const post = d.logs.filter((l) => l.msg === 'post' && l.hook === 'postdelivery');
  const keep = post.find((l) => l.who === 'keep')!;
  assert.equal(keep.pre, 'seen keep', 'context written in predelivery is seen in postdelivery');
  assert.equal(keep.action, 'BOUNCE');
  assert.equal(keep.code, 550);
  assert.equal(post.find((l) => l.who === 'late')!.action, 'none', 'no default action after a success');
});
