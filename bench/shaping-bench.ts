/**
 * The traffic-shaping engine under many keys: what one `admit()` costs and what each dynamic
 * suspend and each counter key costs in memory.
 *
 *   node --expose-gc dist/bench/shaping-bench.js [keys=100000] [rounds=5]
 *
 * Part 1 — dynamic suspends: adds `keys` distinct dynamic suspends (one per recipient domain,
 * half with a TTL, a tenth on domain + source address) and prints heap growth per suspend;
 * then times admit() for facts no suspend holds (passing on to the policies, with release)
 * and for facts a suspend holds.
 * Part 2 — counters: a policy file with a global rate, a per-domain concurrency + rate
 * (tokenbucket) and a per-(source address, domain) connect interval; admits once for each of
 * `keys` distinct domains (three counters apply, two of them per key) and prints heap growth
 * per domain; then times admit() when the counters refuse (every domain is throttled: its
 * bucket of 1 is empty) and when they admit (admit + release, rate lifted by a reload that
 * keeps the counters).
 * Time is simulated (`now` advances 1 ms per call); µs per call are process CPU time over
 * `rounds` passes of all keys, median pass reported (CPU time, because the machines this runs
 * on are shared). Not a test: nothing is asserted.
 */
import { createShapingEngine } from '../src/shaping/engine';
import type { PolicyConfig } from '../src/config/queue-files';
import type { Facts, ShapingEngine } from '../src/shaping/types';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}

const N = Number(process.argv[2] ?? 100_000);
const ROUNDS = Math.max(1, Number(process.argv[3] ?? 5));
const T0 = Date.UTC(2030, 0, 1);

function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

function facts(i: number, prefix = 'domain'): Facts {
  return {
    tenantid: `tenant${i % 20}`,
    jobid: i % 4 === 0 ? `job-${i % 100}` : '',
    transportid: 'outbound',
    localip: `192.0.2.${1 + (i % 4)}`,
    grouping: `${prefix}${i}.example`,
    remoteip: '',
    remotemx: '',
    recipientdomain: `${prefix}${i}.example`,
  };
}

/**
 * Median µs per call over ROUNDS passes of `calls` calls each, in process CPU time (user +
 * system): on a machine shared with other work, wall time mostly measures the neighbours.
 */
function time(calls: number, pass: (round: number) => void): number {
  const per: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t = process.cpuUsage();
    pass(r);
    const d = process.cpuUsage(t);
    per.push((d.user + d.system) / calls);
  }
  per.sort((a, b) => a - b);
  return per[Math.floor(per.length / 2)];
}

function line(text: string): void {
  process.stdout.write(`${text}\n`);
}

function policies(domainRate: { messages: number; seconds: number }): PolicyConfig {
  return {
    file: 'bench',
    rate: { algorithm: 'tokenbucket' },
    policies: [
      { fields: [], conditions: [], default: { rate: { messages: 1e9, seconds: 1 } } },
      { fields: ['recipientdomain'], conditions: [{ if: { recipientdomain: ['gmail.com', 'outlook.com'] }, then: { concurrency: 50 } }], default: { concurrency: 5, rate: domainRate } },
      { fields: ['localip', 'recipientdomain'], conditions: [], default: { connectinterval: 0.001 } },
    ],
  };
}

function suspendsPart(): void {
  const all: Facts[] = Array.from({ length: N }, (_, i) => facts(i));
  const free: Facts[] = Array.from({ length: N }, (_, i) => facts(i, 'free'));
  const engine: ShapingEngine = createShapingEngine();
  engine.setPolicies(policies({ messages: 1e9, seconds: 1 }));
  const before = heap();
  const t = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    // Fresh strings, as a hook or the control socket would give: nothing shared with `all`.
    const domain = `domain${i}.example`;
    const match = i % 10 === 0 ? { recipientdomain: domain, localip: `192.0.2.${1 + (i % 4)}` } : { recipientdomain: domain };
    engine.addSuspend(match, i % 2 === 0 ? 3600 : 0, { tag: 'bench' }, T0);
  }
  const spent = process.cpuUsage(t);
  const addUs = (spent.user + spent.system) / N;
  const bytes = heap() - before;
  line(`dynamic suspends: ${N} added (${addUs.toFixed(2)} µs each); heap ${(bytes / 2 ** 20).toFixed(1)} MiB, ${(bytes / N).toFixed(0)} bytes per suspend`);
  let now = T0;
  // Warm the counters of the free keys once (their creation is part 2's subject).
  for (const f of free) { const v = engine.admit(f, now++); if (v.ok) engine.release(v.ticket, now); }
  const held = time(N, () => { for (const f of all) engine.admit(f, now++); });
  const passed = time(N, () => {
    for (const f of free) {
      const v = engine.admit(f, now++);
      if (v.ok) engine.release(v.ticket, now);
    }
  });
  line(`  admit() held by a dynamic suspend: ${held.toFixed(2)} µs per call`);
  line(`  admit() + release() passing ${N} suspends and 3 policies: ${passed.toFixed(2)} µs per call`);
}

function countersPart(): void {
  const all: Facts[] = Array.from({ length: N }, (_, i) => facts(i));
  const engine: ShapingEngine = createShapingEngine();
  engine.setPolicies(policies({ messages: 1, seconds: 3600 }));
  let now = T0;
  const before = heap();
  for (let i = 0; i < N; i++) {
    // Fresh facts, as pickup builds them: the counters keep only what they need.
    const v = engine.admit(facts(i), now++);
    if (v.ok) engine.release(v.ticket, now);
  }
  const bytes = heap() - before;
  const stats = engine.stats(now);
  line(`counters: ${N} domains admitted once (${stats.concurrency.counters} per-domain counters, ${stats.rate.buckets} buckets); heap ${(bytes / 2 ** 20).toFixed(1)} MiB, ${(bytes / N).toFixed(0)} bytes per domain (its domain counter and its address+domain counter)`);
  const refused = time(N, () => { for (const f of all) engine.admit(f, now++); });
  line(`  admit() refused by an empty bucket (${engine.stats(now).rate.suspends} keys throttled): ${refused.toFixed(2)} µs per call`);
  engine.setPolicies(policies({ messages: 1e9, seconds: 1 }));
  const admitted = time(N, () => {
    for (const f of all) {
      const v = engine.admit(f, now++);
      if (v.ok) engine.release(v.ticket, now);
    }
  });
  line(`  admit() + release() admitted, 3 counters taken (first pass after a reload resolves limits again): ${admitted.toFixed(2)} µs per call`);
  const swept = heap();
  const calls = Math.ceil((2 * N + 1) / 2000) + 1; // two counters per domain + the global one, 2,000 per call
  for (let i = 0; i < calls; i++) engine.sweep(now + 3_600_000);
  line(`  sweep after the buckets refilled (${calls} calls): ${engine.stats(now + 3_600_000).rate.buckets} buckets left, ${((swept - heap()) / 2 ** 20).toFixed(1)} MiB freed`);
}

line(`node ${process.version}, ${N} keys, median of ${ROUNDS} passes, CPU µs per call`);
suspendsPart();
countersPart();
