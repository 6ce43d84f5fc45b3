/**
 * kill -9 while delivering under load, then restart: every message that got a 250 reaches the
 * sink at least once (at-least-once delivery); duplicates are counted and reported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { message, sendRaw, spoolEntries, startDaemon } from './harness';
import { deliveryApp, deliveryConfig, fixed, waitUntil } from './delivery-support';
import { SmtpSink } from '../support/smtp-sink';

const MESSAGES = 500;
const SENDERS = 20;

test('kill -9 during delivery under load: every acknowledged message arrives at least once', async (t) => {
  // A slightly slow sink keeps many attempts in flight when the daemon dies.
  const sink = await SmtpSink.start({ delays: { EOD: 15 } });
  t.after(() => sink.close());
  const cfg = deliveryConfig(deliveryApp({ transports: fixed('out', sink.port), retry: 'intervals: [{ interval: 1 }]' }));
  const d = await startDaemon(cfg);
  const acked = new Set<number>();
  let next = 0;
  const body = 'x'.repeat(2000) + '\n';
  const sender = async () => {
    for (;;) {
      const n = next++;
      if (n >= MESSAGES) return;
      try {
        const r = await sendRaw(d.port, 'load@example.com', [`rcpt${n % 7}@example.org`], message(`crash-${n}`, body));
        if (r.startsWith('250')) acked.add(n);
      } catch {
        return; // the daemon died under us
      }
    }
  };
  const senders = Array.from({ length: SENDERS }, sender);
  const seen = () => new Set(sink.transactions.map((x) => subjectNumber(x.data))).size;
  // Kill while reception and delivery are both running.
  await waitUntil(() => seen() >= MESSAGES / 2 || next >= MESSAGES, 60_000, 'half of the messages delivered');
  d.proc.kill('SIGKILL');
  await d.exited;
  await Promise.all(senders);
  const before = sink.transactions.length;
  // Replies may lag behind deliveries under load; this only checks that there was load.
  assert.ok(acked.size >= MESSAGES / 4, `enough messages acknowledged before the kill (${acked.size})`);

  const d2 = await startDaemon(cfg);
  t.after(() => d2.stop());
  await waitUntil(() => [...acked].every((n) => arrivals(sink).has(n)), 60_000, 'every acknowledged message at the sink');
  // Entries committed just before the kill (their client saw no reply) are delivered too.
  for (let i = 0; i < 100 && (await spoolEntries(cfg)).length > 0; i++) await new Promise((r) => setTimeout(r, 100));

  const counts = arrivals(sink);
  const duplicates = [...counts.values()].filter((c) => c > 1).length;
  t.diagnostic(`acknowledged ${acked.size}, delivered before the kill ${before}, arrivals ${sink.transactions.length}, messages delivered twice or more: ${duplicates}`);
  const missing = [...acked].filter((n) => !counts.has(n));
  assert.deepEqual(missing, [], 'no acknowledged message is lost');
  assert.deepEqual((await spoolEntries(cfg)).map((e) => e.entry.recipient), [], 'the queue is empty afterwards');
});

function subjectNumber(data: Buffer): number {
  const m = /^Subject: crash-(\d+)/m.exec(data.toString('latin1'));
  return m ? Number(m[1]) : -1;
}

function arrivals(sink: SmtpSink): Map<number, number> {
  const out = new Map<number, number>();
  for (const x of sink.transactions) {
    const n = subjectNumber(x.data);
    out.set(n, (out.get(n) ?? 0) + x.rcpts.length);
  }
  return out;
}
