/**
 * The queue manager with a scripted delivery agent and an in-memory spool: which entries share
 * an SMTP transaction, the concurrency limit, pickup order, the DEFER timer, what is written to
 * the spool (never SENDING), the pickup filter, and shutdown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QueueStore } from '../../src/queue/store';
import { QueueManager } from '../../src/scheduler/manager';
import type { Facts, ShapingEngine, Ticket, Verdict, WakeScope } from '../../src/shaping/types';
import type { AttemptPlan, AttemptReport, RecipientReport } from '../../src/delivery/attempt';
import type { RunningConfig } from '../../src/config/types';
import type { AcceptedTransaction, QueueEntry } from '../../src/model/types';
import type { Json } from '../../src/spool/types';

let seq = 0;
function tx(): string {
  return `00000000-0000-4000-8000-${String(++seq).padStart(12, '0')}`;
}

function entry(txid: string, q: number, rcpt: string, over: Partial<QueueEntry> = {}): QueueEntry {
  const [local, domain] = rcpt.split('@');
  return {
    id: { transaction: txid, queue: q }, ts: Date.now(), serverid: 'mx', sender: 'a@example.com', senderaddress: { localpart: 'a', domain: 'example.com' },
    recipient: rcpt, recipientaddress: { localpart: local, domain }, transportid: 'out', tenantid: '', jobid: '', priority: 0,
    metadata: {}, quotas: [], tags: [], dsn: {}, state: 'ACTIVE', retry: 0, retryts: 0, body: 0, size: 10, ...over,
  };
}

function config(total = 100, intervals = [{ interval: 60, notify: false }]): RunningConfig {
  const transport = (id: string) => ({ id, group: 'default', connection: { server: '127.0.0.1', port: 2525 }, session: { tls: { mode: 'optional' }, protocol: 'smtp' } });
  return {
    file: '/x/smtpd-app.yaml', servers: [], addresses: [],
    transportgroups: [{ id: 'default', retry: { count: 5, intervals, during: 86400 }, transports: [transport('out'), transport('other')] }],
    queues: { grouping: { groupings: [] }, pooling: { size: 0 }, concurrency: { total } },
    resolver: { cache: { size: 0 } }, scripting: { hooks: {}, timeout: 5 }, monitor: { apikeys: [], healthy: { maxmessages: { upper: Infinity, lower: Infinity } } }, pki: { private: [] },
  } as unknown as RunningConfig;
}

type Script = (plan: AttemptPlan) => RecipientReport['outcome'] | Promise<RecipientReport['outcome']>;

class FakeAgent {
  plans: AttemptPlan[] = [];
  running = 0;
  maxRunning = 0;
  constructor(private readonly script: Script = () => 'delivered') {}
  async attempt(plan: AttemptPlan): Promise<AttemptReport> {
    this.plans.push(plan);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      const outcome = await this.script(plan);
      const code = outcome === 'delivered' ? 250 : outcome === 'temporary' ? 450 : 550;
      const result = { code, enhanced: null, reason: ['scripted'], state: 'RCPT' as const };
      return { recipients: plan.recipients.map(() => ({ outcome, result })), remotemx: '', remoteip: '127.0.0.1', duration: 0.001, skipped: [] };
    } finally {
      this.running--;
    }
  }
}

interface Harness {
  store: QueueStore;
  manager: QueueManager;
  agent: FakeAgent;
  writes: Array<{ op: 'update' | 'remove'; id: string; meta?: Record<string, unknown> }>;
  committed: AcceptedTransaction[];
}

function harness(opts: { agent?: FakeAgent; total?: number; shaping?: ShapingEngine; intervals?: Array<{ interval: number; notify: boolean }> } = {}): Harness {
  const store = new QueueStore();
  const agent = opts.agent ?? new FakeAgent();
  const writes: Harness['writes'] = [];
  const committed: AcceptedTransaction[] = [];
  const cfg = config(opts.total, opts.intervals);
  const silent = { info() {}, warn() {}, error() {} };
  const manager = new QueueManager({
    store,
    spool: {
      update: async (t: string, q: number, meta: Json) => void writes.push({ op: 'update', id: `${t}:${q}`, meta: meta as Record<string, unknown> }),
      remove: async (t: string, q: number) => void writes.push({ op: 'remove', id: `${t}:${q}` }),
      readBody: async () => Buffer.from('Subject: x\r\n\r\nbody\r\n'),
    },
    ingress: { commit: async (t) => void committed.push(t), hasSpace: () => true },
    runtime: () => ({ config: cfg, hooks: {} }),
    agent,
    resolverFor: () => ({ resolveMx: async () => ({ ok: true, records: [], ttl: 0 }), resolve4: async () => ({ ok: true, records: [], ttl: 0 }), resolve6: async () => ({ ok: true, records: [], ttl: 0 }) }),
    log: silent,
    hostname: 'mx.test',
    newId: tx,
    ...(opts.shaping ? { shaping: opts.shaping } : {}),
  });
  return { store, manager, agent, writes, committed };
}

async function settle(h: Harness, pred: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('recipients of one transaction, transport, body and domain share one SMTP transaction', async () => {
  const h = harness();
  const t1 = tx();
  h.store.add(entry(t1, 1, 'a@example.org'));
  h.store.add(entry(t1, 2, 'b@EXAMPLE.org'));
  h.store.add(entry(t1, 3, 'c@example.net'));
  h.store.add(entry(t1, 4, 'd@example.org', { transportid: 'other' }));
  h.store.add(entry(t1, 5, 'e@example.org', { body: 1 }));
  h.store.add(entry(tx(), 1, 'f@example.org'));
  h.manager.start();
  await settle(h, () => h.store.size === 0);
  const groups = h.agent.plans.map((p) => p.recipients.map((r) => r.address).sort().join(' ')).sort();
  assert.deepEqual(groups, ['a@example.org b@EXAMPLE.org', 'c@example.net', 'd@example.org', 'e@example.org', 'f@example.org']);
  assert.equal(h.writes.filter((w) => w.op === 'remove').length, 6);
  await h.manager.stop(1000);
});

test('no more attempts at once than queues.concurrency.total', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const agent = new FakeAgent(async () => {
    await gate;
    return 'delivered' as const;
  });
  const h = harness({ agent, total: 2 });
  for (let i = 0; i < 6; i++) h.store.add(entry(tx(), 1, `r${i}@example.org`));
  h.manager.start();
  await settle(h, () => agent.plans.length === 2);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(agent.plans.length, 2, 'the others wait');
  assert.equal(h.store.count('SENDING'), 2);
  assert.equal(h.store.count('ACTIVE'), 4);
  release();
  await settle(h, () => h.store.size === 0);
  assert.equal(agent.maxRunning, 2);
  await h.manager.stop(1000);
});

test('priority 1 entries are picked first', async () => {
  const h = harness({ total: 1 });
  h.store.add(entry(tx(), 1, 'low@example.org'));
  h.store.add(entry(tx(), 1, 'high@example.org', { priority: 1 }));
  h.manager.start();
  await settle(h, () => h.store.size === 0);
  assert.deepEqual(h.agent.plans.map((p) => p.recipients[0].address), ['high@example.org', 'low@example.org']);
  await h.manager.stop(1000);
});

test('a temporary failure is written as DEFER with retry 1 (SENDING is never written); the timer brings it back', async () => {
  let n = 0;
  const agent = new FakeAgent(() => (n++ === 0 ? 'temporary' : 'delivered'));
  const h = harness({ agent, intervals: [{ interval: 0.2, notify: false }] });
  const e = entry(tx(), 1, 'x@example.org');
  h.store.add(e);
  const started = Date.now();
  h.manager.start();
  await settle(h, () => h.writes.length === 1);
  assert.equal(h.writes[0].op, 'update');
  assert.equal(h.writes[0].meta!.state, 'DEFER');
  assert.equal(h.writes[0].meta!.retry, 1);
  assert.equal(h.writes[0].meta!.remoteip, '127.0.0.1', 'the attempt\'s hop is written with the new state, in the same update');
  assert.equal(h.writes[0].meta!.localip, '', 'no connection info: empty, not absent');
  assert.equal(e.state, 'DEFER');
  assert.equal(e.remoteip, '127.0.0.1');
  assert.deepEqual(h.store.select('remoteip', '127.0.0.1'), [e], 'the queue index follows the hop');
  await settle(h, () => h.store.size === 0);
  assert.ok(Date.now() - started >= 190, 'tried again after the interval');
  assert.equal(agent.plans.length, 2);
  assert.ok(h.writes.every((w) => w.meta?.state !== 'SENDING'));
  await h.manager.stop(1000);
});

test('a permanent failure is removed and bounced only when the group has a dsn transport', async () => {
  const h = harness({ agent: new FakeAgent(() => 'permanent') });
  h.store.add(entry(tx(), 1, 'x@example.org'));
  h.manager.start();
  await settle(h, () => h.store.size === 0);
  assert.deepEqual(h.writes.map((w) => w.op), ['remove']);
  assert.equal(h.committed.length, 0, 'no dsn transport: no DSN');
  await h.manager.stop(1000);
});

/** A shaping engine that suspends the domains in `suspended` (until woken) and counts tickets. */
class FakeShaping {
  suspended = new Set<string>();
  admitted: Facts[] = [];
  released = 0;
  private wake: (s: WakeScope) => void = () => {};
  admit(facts: Facts): Verdict {
    if (this.suspended.has(facts.recipientdomain)) return { ok: false, reason: 'suspend' };
    this.admitted.push(facts);
    const ticket: Ticket = { policies: [], tags: ['t1'] };
    return { ok: true, ticket };
  }
  release(): void {
    this.released++;
  }
  lift(domain: string): void {
    this.suspended.delete(domain);
    this.wake('all');
  }
  onWake(fn: (s: WakeScope) => void): void {
    this.wake = fn;
  }
  needsRouting(): boolean {
    return false;
  }
  groupingOf(domain: string): string {
    return domain;
  }
  deliverySettings() {
    return {};
  }
  nextExpiry(): number | undefined {
    return undefined;
  }
  sweep(): void {}
}

test('a suspended destination stays ACTIVE and is not attempted; it goes once the suspend is lifted; HOLD is never picked', async () => {
  const shaping = new FakeShaping();
  shaping.suspended.add('skip.example');
  const h = harness({ shaping: shaping as unknown as ShapingEngine });
  h.store.add(entry(tx(), 1, 'a@skip.example'));
  h.store.add(entry(tx(), 1, 'b@skip.example'));
  h.store.add(entry(tx(), 1, 'held@example.org', { state: 'HOLD' }));
  h.store.add(entry(tx(), 1, 'go@example.org'));
  h.manager.start();
  await settle(h, () => h.agent.plans.length === 1 && h.store.size === 3);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(h.agent.plans.map((p) => p.recipients[0].address), ['go@example.org']);
  assert.equal(h.store.count('ACTIVE'), 2);
  assert.equal(h.store.count('HOLD'), 1);
  assert.equal(h.manager.stats().parked, 1, 'the whole destination is parked, not each entry');
  assert.equal(shaping.released, 1, 'the ticket of the finished attempt was given back');
  shaping.lift('skip.example');
  await settle(h, () => h.store.size === 1);
  assert.deepEqual(h.agent.plans.map((p) => p.recipients[0].address).sort(), ['a@skip.example', 'b@skip.example', 'go@example.org']);
  assert.equal(shaping.released, 3);
  await h.manager.stop(1000);
});

test('stop: no new pickups; waits for attempts in flight up to the grace period', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const agent = new FakeAgent(async () => {
    await gate;
    return 'delivered' as const;
  });
  const h = harness({ agent, total: 1 });
  h.store.add(entry(tx(), 1, 'a@example.org'));
  h.store.add(entry(tx(), 1, 'b@example.org'));
  h.manager.start();
  await settle(h, () => agent.plans.length === 1);
  assert.equal(await h.manager.stop(50), 1, 'one attempt still in flight after the grace period');
  release();
  await settle(h, () => h.store.size === 1);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(agent.plans.length, 1, 'nothing picked after stop');
  assert.equal(h.store.count('ACTIVE'), 1);
});

test('after a long stop, more due DEFER entries than one slice are all made ACTIVE, in turns', async () => {
  const shaping = new FakeShaping();
  shaping.suspended.add('later.example'); // keep them queued: only the promotion is looked at
  const h = harness({ shaping: shaping as unknown as ShapingEngine });
  const due = Date.now() - 3_600_000;
  for (let i = 0; i < 25_000; i++) h.store.add(entry(tx(), 1, `r${i}@later.example`, { state: 'DEFER', retry: 1, retryts: due + i }));
  h.store.add(entry(tx(), 1, 'future@later.example', { state: 'DEFER', retry: 1, retryts: Date.now() + 3_600_000 }));
  h.manager.start();
  await settle(h, () => h.store.count('ACTIVE') === 25_000, 10_000);
  assert.equal(h.store.count('DEFER'), 1, 'the entry not yet due stays');
  assert.equal(h.agent.plans.length, 0);
  await h.manager.stop(1000);
});
