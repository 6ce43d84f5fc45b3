/**
 * Deliveries on their own thread (src/delivery/worker-agent.ts) and the per-hop window
 * (src/delivery/hop-window.ts): a message goes out through the thread byte for byte, a backlog
 * for one host shares at most 64 connections, the thread runs at the lower priority asked
 * for, and close() ends it without leaving an attempt unanswered.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { WorkerAgent } from '../../src/delivery/worker-agent';
import { HopWindow, DEFAULT_HOP_WINDOW } from '../../src/delivery/hop-window';
import type { AttemptPlan } from '../../src/delivery/attempt';
import type { NextHop, NextHopResolver } from '../../src/delivery/nexthop';
import { SmtpSink } from '../support/smtp-sink';

const sinks: SmtpSink[] = [];
after(async () => {
  await Promise.all(sinks.map((s) => s.close()));
});

/** Fixed servers are IP literals here: DNS must not be asked. */
const noDns: NextHopResolver = {
  resolveMx: () => Promise.reject(new Error('no DNS in this test')),
  resolve4: () => Promise.reject(new Error('no DNS in this test')),
  resolve6: () => Promise.reject(new Error('no DNS in this test')),
};

function plan(port: number, body: Buffer, rcpt = 'bob@example.org'): AttemptPlan {
  return {
    destination: { kind: 'server', server: '127.0.0.1' },
    port,
    nexthop: {},
    sender: 'alice@example.com',
    recipients: [{ address: rcpt }],
    body,
    helo: 'mx.test.example',
    sources: [],
    sourceRandom: false,
    tls: 'disabled',
    protocol: 'smtp',
  };
}

const log = { error: (): void => {} };

test('the delivery thread sends the body byte for byte, even when it is a slice of a larger buffer', async (t) => {
  const sink = await SmtpSink.start();
  sinks.push(sink);
  const agent = new WorkerAgent({ poolSize: 10, nice: 0, log });
  t.after(() => agent.close());
  const slab = Buffer.from('JUNK-BEFORE' + 'Subject: via thread\r\n\r\nHello from the delivery thread.\r\n' + 'JUNK-AFTER');
  const body = slab.subarray(11, slab.length - 10);
  const report = await agent.attempt(plan(sink.port, body), noDns);
  assert.equal(report.recipients[0].outcome, 'delivered');
  assert.equal(report.remoteip, '127.0.0.1');
  assert.ok(report.duration > 0);
  assert.equal(sink.transactions.length, 1);
  assert.equal(sink.transactions[0].data.toString(), body.toString());
  assert.equal(sink.transactions[0].helo, 'mx.test.example');
  assert.equal(agent.inflight, 0);
});

test(`a backlog of 150 attempts to one host shares at most ${DEFAULT_HOP_WINDOW} connections, and every recipient is delivered`, async (t) => {
  const sink = await SmtpSink.start({ delays: { EOD: 20 } });
  sinks.push(sink);
  const agent = new WorkerAgent({ poolSize: 200, nice: 0, log });
  t.after(() => agent.close());
  const reports = await Promise.all(Array.from({ length: 150 }, (_, i) => agent.attempt(plan(sink.port, Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`), `r${i}@example.org`), noDns)));
  assert.deepEqual([...new Set(reports.map((r) => r.recipients[0].outcome))], ['delivered']);
  assert.equal(sink.transactions.length, 150);
  assert.ok(sink.sessions <= DEFAULT_HOP_WINDOW, `${sink.sessions} connections opened`);
});

test('the delivery thread runs at the nice value asked for (Linux)', { skip: !fs.existsSync('/proc/self/task') }, async (t) => {
  const sink = await SmtpSink.start();
  sinks.push(sink);
  const agent = new WorkerAgent({ poolSize: 1, nice: 7, log });
  t.after(() => agent.close());
  await agent.attempt(plan(sink.port, Buffer.from('Subject: nice\r\n\r\nx\r\n')), noDns);
  // Field 19 of /proc/<pid>/task/<tid>/stat is the nice value; the command name may hold spaces.
  const nices = fs.readdirSync('/proc/self/task').map((tid) => {
    const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  });
  assert.ok(nices.includes(7), `thread nice values: ${nices.join(',')}`);
  assert.equal(nices.filter((n) => n === 7).length, 1, 'only the delivery thread is lowered');
});

test('close() ends the thread; an attempt after it is a temporary failure, not a hang', async () => {
  const sink = await SmtpSink.start();
  sinks.push(sink);
  const agent = new WorkerAgent({ poolSize: 1, nice: 0, log });
  await agent.attempt(plan(sink.port, Buffer.from('Subject: a\r\n\r\nx\r\n')), noDns);
  await agent.close();
  const after = await agent.attempt(plan(sink.port, Buffer.from('Subject: b\r\n\r\nx\r\n')), noDns);
  assert.equal(after.recipients[0].outcome, 'temporary');
  assert.match(after.recipients[0].error?.message ?? '', /shutting down/);
});

test('close() in the same turn as an attempt is handed over: the attempt is answered, not sent to a new thread', async () => {
  const sink = await SmtpSink.start();
  sinks.push(sink);
  const agent = new WorkerAgent({ poolSize: 1, nice: 0, log });
  await agent.ready();
  const pending = agent.attempt(plan(sink.port, Buffer.from('Subject: c\r\n\r\nx\r\n')), noDns);
  // Attempts of one turn are posted together at its end; stop before that post.
  for (let i = 0; i < 1000 && agent.inflight === 0; i++) await Promise.resolve();
  assert.equal(agent.inflight, 1, 'the attempt is handed over and waits for the turn to end');
  const closing = agent.close();
  const report = await pending;
  assert.equal(report.recipients[0].outcome, 'temporary');
  assert.match(report.recipients[0].error?.message ?? '', /shutting down/);
  await closing;
  assert.equal(agent.inflight, 0);
  assert.equal(sink.transactions.length, 0, 'nothing was delivered after close()');
});

test('the hop window: one slow host does not hold up another, and a failing attempt frees its slot', async () => {
  const w = new HopWindow(2);
  const hop = (address: string): NextHop[] => [{ mx: '', host: '', preference: 0, addresses: [address], port: 25 }];
  let running = 0;
  let peak = 0;
  const slow = (ms: number) => async () => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, ms));
    running--;
  };
  const blocked = Array.from({ length: 6 }, () => w.run(hop('192.0.2.1'), slow(50)));
  const t0 = Date.now();
  await w.run(hop('192.0.2.2'), async () => {});
  assert.ok(Date.now() - t0 < 40, 'the other host went first');
  assert.equal(w.waiting, 4);
  await Promise.all(blocked);
  assert.equal(peak, 2);
  await assert.rejects(w.run(hop('192.0.2.1'), () => Promise.reject(new Error('boom'))), /boom/);
  await assert.rejects(w.run(hop('192.0.2.1'), () => Promise.reject(new Error('boom'))), /boom/);
  assert.equal(await w.run(hop('192.0.2.1'), async () => 'free'), 'free', 'slots came back after failures');
  assert.equal(w.waiting, 0);
});
