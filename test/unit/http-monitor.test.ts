import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HealthGate, MonitorServer, negotiate } from '../../src/http/monitor';
import { apiKeyMatches } from '../../src/http/common';
import { metricFamilies } from '../../src/http/metrics';
import { renderFamilies } from '../../src/util/openmetrics';
import { buildProcessStats } from '../../src/control/stats';
import { createLogger } from '../../src/util/log';

test('health gate: unhealthy above upper, stays so until below lower', () => {
  const g = new HealthGate();
  const limits = { upper: 10, lower: 5 };
  assert.equal(g.tooManyMessages(10, limits), false, 'at the limit is fine');
  assert.equal(g.tooManyMessages(11, limits), true);
  assert.equal(g.tooManyMessages(7, limits), true, 'between lower and upper: still unhealthy');
  assert.equal(g.tooManyMessages(5, limits), true);
  assert.equal(g.tooManyMessages(4, limits), false);
  assert.equal(g.tooManyMessages(7, limits), false, 'between the limits after recovery: healthy');
});

test('monitor server: /ready and /healthy are 503 until marked ready', async (t) => {
  let queued = 0;
  const m = new MonitorServer({
    listener: { port: 0, address: '127.0.0.1' },
    settings: () => ({ apikeys: [], healthy: { maxmessages: { upper: Infinity, lower: Infinity } } }),
    queued: () => queued,
    collect: async () => undefined,
    log: createLogger({ level: 'silent' }),
  });
  const { port } = await m.listen();
  t.after(() => m.close());
  const status = async (p: string) => (await fetch(`http://127.0.0.1:${port}${p}`)).status;
  assert.equal(await status('/ready'), 503);
  assert.equal(await status('/healthy'), 503);
  const early = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  assert.ok(early.includes('halon_monitor_ready 0'), 'metrics answer before the spool is loaded');
  m.markReady();
  assert.equal(await status('/ready'), 200);
  assert.equal(await status('/healthy'), 200);
  m.markShuttingDown();
  assert.equal(await status('/healthy'), 503);
  assert.equal(await status('/ready'), 200, 'ready is one-way');
  queued = 1;
});

test('metrics: counters typed counter with _total samples; Prometheus form names the family _total', () => {
  const stats = buildProcessStats({ queue: { active: 3, delivery: { delivered: 9, delayed: 0, failed: 0 } } }, { pid: 7, runtime: 1, version: { major: 0, minor: 1, patch: 0 } });
  const fams = metricFamilies({ ready: true, healthy: true, stats, oldest: { DEFER: 1_000 }, now: 61_000 });
  const om = renderFamilies(fams, 'openmetrics').split('\n');
  assert.ok(om.includes('# TYPE halon_queue_delivery_delivered counter'));
  assert.ok(om.includes('halon_queue_delivery_delivered_total 9'));
  assert.ok(om.includes('halon_queue_queue_active_size 3'));
  assert.ok(om.includes('halon_queue_oldest_age_seconds{state="DEFER"} 60'));
  assert.ok(om.includes('halon_queue_oldest_age_seconds{state="ACTIVE"} 0'));
  const prom = renderFamilies(fams, 'prometheus');
  assert.ok(prom.includes('# TYPE halon_queue_delivery_delivered_total counter\n'));
  assert.ok(!prom.includes('# EOF'));
  assert.equal(negotiate(undefined), 'openmetrics');
  assert.equal(negotiate('application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5'), 'openmetrics');
  assert.equal(negotiate('text/plain;version=0.0.4'), 'prometheus');
});

test('api keys: exact match against any configured key', () => {
  assert.equal(apiKeyMatches('a', ['x', 'a']), true);
  assert.equal(apiKeyMatches('ab', ['a']), false);
  assert.equal(apiKeyMatches(undefined, ['a']), false);
  assert.equal(apiKeyMatches(['a'], ['a']), false, 'a repeated header is no key');
});
