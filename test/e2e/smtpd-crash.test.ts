/**
 * kill -9 under load: every message that got a 250 must be found after a restart, with all of
 * its recipients, and no transaction may come back half-written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { message, sendRaw, spoolEntries, startDaemon, writeConfig } from './harness';

test('kill -9 under load, then restart: every acknowledged message is in the queue', async () => {
  const cfg = writeConfig();
  const d = await startDaemon(cfg);
  const port = d.port;
  const acked = new Set<string>();
  let stop = false;
  const body = message('crash', 'x'.repeat(5000) + '\n');
  const worker = async () => {
    for (let i = 0; i < 400 && !stop; i++) {
      try {
        const r = await sendRaw(port, 'load@example.com', ['r1@example.org', 'r2@example.org'], body);
        const m = /queued as ([0-9a-f-]{36})/.exec(r);
        if (m) acked.add(m[1]);
      } catch {
        return; // the daemon died under us: expected
      }
    }
  };
  const workers = Array.from({ length: 20 }, worker);
  const deadline = Date.now() + 20_000;
  while (acked.size < 300 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  d.proc.kill('SIGKILL');
  stop = true;
  await d.exited;
  await Promise.all(workers);
  assert.ok(acked.size >= 100, `enough messages acknowledged before the kill (${acked.size})`);

  const d2 = await startDaemon(cfg);
  const loaded = await d2.waitForLog((l) => l.msg === 'spool loaded');
  await d2.stop();
  const entries = await spoolEntries(cfg);
  const byTx = new Map<string, number>();
  for (const e of entries) {
    const tx = e.id.split(':')[0];
    byTx.set(tx, (byTx.get(tx) ?? 0) + 1);
  }
  const missing = [...acked].filter((id) => !byTx.has(id));
  assert.deepEqual(missing, [], 'no acknowledged message is lost');
  for (const [tx, n] of byTx) assert.equal(n, 2, `transaction ${tx} has both recipients`);
  assert.ok(Number(loaded.entries) >= acked.size * 2);
});
