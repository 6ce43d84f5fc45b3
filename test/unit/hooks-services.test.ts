/**
 * The functions hooks import from 'halyard' (hooks/services.ts): bound to a daemon's engine,
 * queue and memory they change those; unbound or with bad arguments they say why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HookModuleLoader } from '../../src/hooks/loader';
import { bindHookServices, memory_fetch, memory_inc, queue_policy, queue_policy_delete, queue_quota, queue_suspend } from '../../src/hooks/services';
import { InProcessMemoryStore } from '../../src/hooks/memory';
import { createShapingEngine } from '../../src/shaping/engine';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const facts = (recipientdomain: string) => ({ tenantid: '', jobid: '', transportid: 'out', localip: '', grouping: '', remoteip: '', remotemx: '', recipientdomain });

function bound() {
  const shaping = createShapingEngine();
  shaping.setPolicies({ file: '/x/smtpd-policy.yaml', rate: { algorithm: 'tokenbucket' }, policies: [{ fields: ['recipientdomain'], conditions: [] }] });
  const memory = new InProcessMemoryStore();
  bindHookServices({ shaping, memory, quota: (name) => (name === 'acme' ? { count: 2, bytes: 9000 } : { count: 0, bytes: 0 }), now: () => 1_000_000 });
  return { shaping, memory };
}

test('queue_suspend and queue_policy change what pickup admits; queue_policy_delete removes the condition', () => {
  const { shaping } = bound();
  const id = queue_suspend({ recipientdomain: 'held.example' }, 60, { tag: 'ops' });
  assert.equal(shaping.admit(facts('held.example'), 1_000_000).ok, false);
  assert.equal(shaping.admit(facts('other.example'), 1_000_000).ok, true);
  assert.equal(queue_suspend({ recipientdomain: 'held.example' }, 120), id, 'the same suspend again is refreshed, same id');
  const cid = queue_policy(['recipientdomain'], { recipientdomain: 'slow.example' }, { rate: [1, 3600] }, 0);
  assert.equal(shaping.admit(facts('slow.example'), 1_000_000).ok, true);
  assert.equal(shaping.admit(facts('slow.example'), 1_000_000).ok, false, 'one per hour');
  assert.equal(queue_policy_delete(cid), true);
  assert.equal(queue_policy_delete(cid), false);
  bindHookServices(undefined);
});

test('queue_quota and memory_* reach the daemon; bad arguments and an unbound daemon throw clear errors', () => {
  const { memory } = bound();
  assert.deepEqual(queue_quota('acme'), { count: 2, bytes: 9000 });
  assert.equal(memory_inc('hits'), 1);
  assert.equal(memory.fetch('hits'), 1);
  assert.equal(memory_fetch('hits'), 1);
  assert.throws(() => queue_suspend({ nosuch: 'x' } as never, 10), /unknown field "nosuch"/);
  assert.throws(() => queue_suspend({ recipientdomain: 'x' }, -1), /ttl must be a number of seconds/);
  assert.throws(() => queue_suspend({ recipientdomain: 'x' }, 1, { tag: 'x'.repeat(33) }), /at most 32 characters/);
  assert.throws(() => queue_policy(['jobid'], { jobid: 'j' }, { rate: '1/60' }, 0), /policy/i, 'no policy has these fields');
  assert.throws(() => queue_policy(['recipientdomain'], { recipientdomain: 'x' }, { rate: 'fast' }, 0), /invalid rate/);
  bindHookServices(undefined);
  assert.throws(() => queue_quota('acme'), /only available in a running daemon/);
});

test("a hook module imports these functions from 'halyard' and gets the daemon's own", () => {
  const { shaping } = bound();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halyard-services-'));
  const file = path.join(dir, 'hook.ts');
  fs.writeFileSync(file, `import { queue_suspend } from 'halyard';\nexport default function () { return queue_suspend({ recipientdomain: 'from-hook.example' }, 30); }\n`);
  const fn = new HookModuleLoader().load(file) as unknown as () => string;
  const id = fn();
  assert.equal(typeof id, 'string');
  assert.equal(shaping.admit(facts('from-hook.example'), 1_000_000).ok, false);
  bindHookServices(undefined);
});
