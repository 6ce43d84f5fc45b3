/**
 * Relaying end to end: the real daemon takes mail over SMTP and delivers it to an SMTP sink on
 * loopback, over a fixed next hop and over MX records served by a loopback DNS responder, with
 * STARTTLS as each TLS mode asks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultSmtpd, message, monitorPort, monitorSmtpd, sendRaw, spoolEntries, startDaemon, tempDir, writeConfig } from './harness';
import { deliveries, deliveryApp, deliveryConfig, fixed, queueIdOf, waitUntil } from './delivery-support';
import { SmtpSink, makeSelfSignedCert } from '../support/smtp-sink';
import { TestDnsServer } from '../support/dns-server';

test('fixed server: recipients of one domain share one SMTP transaction; spool emptied; one log record each', async (t) => {
  const sink = await SmtpSink.start();
  t.after(() => sink.close());
  const cfg = deliveryConfig(deliveryApp({ transports: fixed('out', sink.port) }));
  const d = await startDaemon(cfg);
  t.after(() => d.stop());

  const reply = await sendRaw(d.port, 'alice@example.com', ['bob@example.org', 'carol@example.org', 'dave@example.net'], message('relay', 'Hello relay.\n'));
  const tx = queueIdOf(reply);
  await waitUntil(() => sink.transactions.reduce((n, x) => n + x.rcpts.length, 0) >= 3, 30_000, 'three recipients at the sink');

  const byDomain = sink.transactions.map((x) => x.rcpts.map((r) => r.address).sort());
  assert.deepEqual(byDomain.sort((a, b) => a.length - b.length), [['dave@example.net'], ['bob@example.org', 'carol@example.org']]);
  for (const x of sink.transactions) {
    assert.equal(x.mail.address, 'alice@example.com');
    assert.match(x.data.toString(), /Subject: relay/);
    assert.match(x.data.toString(), /^Received: from client\.test/m);
    assert.equal(x.helo, 'mx.test.example');
  }
  await waitUntil(() => deliveries(d).length >= 3, 15_000, 'three delivery records');
  const rec = deliveries(d).find((l) => l.recipientlocalpart === 'bob')!;
  assert.equal(rec.action, 'delivered');
  assert.equal(rec.transactionid, tx);
  assert.equal(rec.senderlocalpart, 'alice');
  assert.equal(rec.senderdomain, 'example.com');
  assert.equal(rec.recipientdomain, 'example.org');
  assert.equal(rec.transportid, 'out');
  assert.equal(rec.remoteip, '127.0.0.1');
  assert.equal(rec.smtpcode, 250);
  assert.equal(rec.smtpstate, 'EOD');
  assert.equal(rec.hostname, 'mx.test.example');
  for (const k of ['@timestamp', 'received', 'queueid', 'size', 'duration', 'totalduration', 'localip', 'smtpenhanced', 'smtpreason', 'jobid', 'tenantid', 'grouping']) assert.ok(k in rec, `record has ${k}`);
  await waitUntil(() => d.logs.some((l) => l.msg === 'delivery' && l.recipientlocalpart === 'carol'), 15_000, 'carol');
  const left = (await spoolEntries(cfg)).filter((e) => e.id.startsWith(tx));
  assert.deepEqual(left, [], 'delivered entries are gone from the spool');
});

test('MX delivery through the loopback DNS responder, to the transport port, lowest preference first', async (t) => {
  const sink = await SmtpSink.start({ hostname: 'mx1.dest.test' });
  t.after(() => sink.close());
  const dns = await TestDnsServer.start({
    'dest.test': { MX: [{ preference: 20, exchange: 'mx2.dest.test' }, { preference: 10, exchange: 'mx1.dest.test' }] },
    'mx1.dest.test': { A: ['127.0.0.1'] },
    // mx2 resolves to an address nobody listens on: it must not be needed.
    'mx2.dest.test': { A: ['127.0.0.2'] },
  });
  t.after(() => dns.close());
  const app = deliveryApp({
    transports: `      - id: out\n        connection: { port: ${sink.port}, sourceip: { ipv6: false } }\n`,
    top: `resolver:\n  nameservers: ["${dns.address}"]\n`,
  });
  const d = await startDaemon(deliveryConfig(app));
  t.after(() => d.stop());
  await sendRaw(d.port, 'alice@example.com', ['user@dest.test'], message('mx'));
  await waitUntil(() => sink.transactions.length >= 1, 30_000, 'the message at the MX');
  assert.deepEqual(sink.transactions[0].rcpts.map((r) => r.address), ['user@dest.test']);
  await waitUntil(() => deliveries(d).length >= 1, 15_000, 'the delivery record');
  const rec = deliveries(d)[0];
  assert.equal(rec.action, 'delivered');
  assert.equal(rec.remotemx, 'mx1.dest.test');
  assert.ok(dns.queries.some((q) => q.name === 'dest.test' && q.type === 'MX'), 'MX was asked of the configured name server');
});

test('MX delivery: NXDOMAIN and null MX bounce at once (no retry)', async (t) => {
  const sink = await SmtpSink.start();
  t.after(() => sink.close());
  const dns = await TestDnsServer.start({ 'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] } });
  t.after(() => dns.close());
  const app = deliveryApp({
    transports: `      - id: out\n        connection: { port: ${sink.port} }\n${fixed('bounces', sink.port)}`,
    dsn: 'bounces',
    top: `resolver:\n  nameservers: ["${dns.address}"]\n`,
  });
  const d = await startDaemon(deliveryConfig(app));
  t.after(() => d.stop());
  await sendRaw(d.port, 'alice@example.com', ['a@nullmx.test', 'b@missing.test'], message('nx'));
  await waitUntil(() => deliveries(d, (l) => l.action === 'bounced').length >= 2, 30_000, 'two bounces');
  const recs = deliveries(d);
  assert.equal(recs.find((l) => l.recipientdomain === 'nullmx.test')!.dns, 'nullmx');
  assert.equal(recs.find((l) => l.recipientdomain === 'missing.test')!.dns, 'nxdomain');
  await waitUntil(() => sink.transactions.length >= 2, 30_000, 'two DSNs at the sink');
  for (const x of sink.transactions) {
    assert.equal(x.mail.address, '');
    assert.deepEqual(x.rcpts.map((r) => r.address), ['alice@example.com']);
  }
  const text = sink.transactions.map((x) => x.data.toString()).join('\n');
  assert.match(text, /Status: 5\.1\.10/);
  assert.match(text, /Status: 5\.1\.2/);
});

test('STARTTLS per mode: transport require, and Try({tls}) disabled / require_verify / require against a plaintext peer', async (t) => {
  const dir = tempDir();
  const cert = makeSelfSignedCert(dir, 'sink.test');
  const tlsSink = await SmtpSink.start({ tls: cert, hostname: 'sink.test' });
  const plainSink = await SmtpSink.start();
  t.after(() => Promise.all([tlsSink.close(), plainSink.close()]));
  const pre = `export default function (ctx: any) {
    switch (ctx.message.recipientaddress.localpart) {
      case 'off': return ctx.Try({ tls: 'disabled' });
      case 'verify': return ctx.Try({ tls: 'require_verify' });
      case 'plain': return ctx.Try({ port: ${plainSink.port} });
      case 'optional': return ctx.Try({ port: ${plainSink.port}, tls: 'optional' });
    }
  }`;
  const app = deliveryApp({
    transports: fixed('out', tlsSink.port, '        session: { tls: { mode: require } }\n'),
    top: 'scripting:\n  hooks:\n    predelivery: pre.ts\n',
  });
  const d = await startDaemon(deliveryConfig(app, { 'pre.ts': pre }));
  t.after(() => d.stop());
  for (const who of ['default', 'off', 'verify', 'plain', 'optional']) await sendRaw(d.port, 'alice@example.com', [`${who}@example.org`], message(who));
  await waitUntil(() => deliveries(d).length >= 5, 30_000, 'five records');
  const rec = (who: string) => deliveries(d, (l) => l.recipientlocalpart === who)[0];
  const at = (sink: SmtpSink, who: string) => sink.transactions.find((x) => x.rcpts.some((r) => r.address === `${who}@example.org`));
  assert.equal(at(tlsSink, 'default')?.tls, true, 'mode require: delivered over TLS');
  assert.equal(rec('default').tls, true);
  assert.equal(at(tlsSink, 'off')?.tls, false, 'disabled: no STARTTLS although offered');
  assert.equal(rec('verify').action, 'deferred', 'require_verify: a self-signed certificate is not accepted');
  assert.equal(at(tlsSink, 'verify'), undefined);
  assert.equal(rec('plain').action, 'deferred', 'require: a peer without STARTTLS is not used');
  assert.equal(at(plainSink, 'plain'), undefined);
  assert.equal(at(plainSink, 'optional')?.tls, false, 'optional: plaintext when STARTTLS is not offered');
});

test('/metrics counts delivered, deferred and bounced recipients (queue.delivery) and outbound attempts', async (t) => {
  const sink = await SmtpSink.start({ rcpt: { 'later@example.org': '450 4.2.1 Mailbox busy', 'gone@example.org': '550 5.1.1 No such user' } });
  t.after(() => sink.close());
  const app = deliveryApp({ transports: fixed('out', sink.port), retry: 'count: 50\n      intervals: [{ interval: 3600 }]' });
  const cfg = writeConfig({ smtpd: defaultSmtpd(monitorSmtpd()), app, deliver: true });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  await sendRaw(d.port, 'alice@example.com', ['bob@example.org', 'carol@example.org', 'later@example.org', 'gone@example.org'], message('counted'));
  await waitUntil(() => deliveries(d).length >= 4, 30_000, 'four delivery records');
  let text = '';
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  // The delivery thread sends its pool figures once a second.
  for (let i = 0; i < 30 && !(value('halon_queue_connections_pooling_size') >= 1); i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 200));
    text = await (await fetch(`http://127.0.0.1:${monitorPort(d)}/metrics`)).text();
  }
  assert.equal(value('halon_queue_connections_pooling_size'), 1, 'the connection went back to the pool');
  assert.equal(value('halon_queue_connections_pooling_maxsize'), 1000);
  assert.equal(value('halon_queue_connections_pooling_misses_total'), 1, 'one connection was opened');
  assert.equal(value('halon_queue_delivery_delivered_total'), 2);
  assert.equal(value('halon_queue_delivery_delayed_total'), 1);
  assert.equal(value('halon_queue_delivery_failed_total'), 1);
  assert.equal(value('halon_queue_connections_concurrent'), 0, 'nothing in flight once settled');
});

test('queues.threads.event 0: deliveries run on the main thread and still relay', async (t) => {
  const sink = await SmtpSink.start();
  t.after(() => sink.close());
  const app = deliveryApp({ transports: fixed('out', sink.port) });
  const d = await startDaemon(writeConfig({ smtpd: defaultSmtpd('queues:\n  threads:\n    event: 0\n'), app, deliver: true }));
  t.after(() => d.stop());
  await sendRaw(d.port, 'alice@example.com', ['bob@example.org'], message('main thread'));
  await waitUntil(() => deliveries(d).length >= 1, 30_000, 'the delivery record');
  assert.equal(deliveries(d)[0].action, 'delivered');
  assert.match(sink.transactions[0].data.toString(), /Subject: main thread/);
});
