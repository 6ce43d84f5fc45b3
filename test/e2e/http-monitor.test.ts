/**
 * The monitor listener as Prometheus, a load balancer and Kubernetes meet it: /metrics,
 * /ready and /healthy of a real daemon, fetched over HTTP.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { defaultApp, defaultSmtpd, message, monitorPort, monitorSmtpd, run, sendRaw, startDaemon, which, writeConfig, RawSmtp } from './harness';

async function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; text: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return { status: r.status, type: r.headers.get('content-type') ?? '', text: await r.text() };
}

function sampleValue(text: string, line: string): number {
  const hit = text.split('\n').find((l) => l.startsWith(line + ' '));
  assert.ok(hit, `sample ${line} present`);
  return Number(hit.slice(line.length + 1));
}

test('monitor: ready after start, metrics as OpenMetrics with counters and gauges, other paths refused', async (t) => {
  const cfg = writeConfig({ smtpd: defaultSmtpd(monitorSmtpd()) });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const port = monitorPort(d);
  const order = d.logs.map((l) => l.msg);
  assert.ok(order.indexOf('monitor listening') < order.indexOf('spool loaded'), 'the monitor answers before the spool is loaded');

  assert.equal((await get(port, '/ready')).status, 200);
  assert.equal((await get(port, '/healthy')).status, 200);
  assert.match(await sendRaw(d.port, 'a@example.com', ['b@example.org', 'c@example.org'], message()), /^250 /);

  const m = await get(port, '/metrics');
  assert.equal(m.status, 200);
  assert.equal(m.type, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
  const lines = m.text.split('\n');
  assert.equal(m.text.slice(-6), '# EOF\n');
  assert.ok(lines.includes('# TYPE halon_monitor_ready gauge'));
  assert.ok(lines.includes('halon_monitor_ready 1'));
  assert.ok(lines.includes('halon_monitor_healthy 1'));
  assert.ok(lines.includes(`halon_process_pid ${d.proc.pid}`));
  assert.ok(lines.includes('# TYPE halon_queue_queue_active_size gauge'));
  assert.equal(sampleValue(m.text, 'halon_queue_queue_active_size'), 2, 'the two suspended entries are counted');
  assert.ok(lines.some((l) => /^halon_servers_connections_concurrent\{serverid="default"\} \d+$/.test(l)));
  // Counters: typed counter, sample with _total (OpenMetrics).
  assert.ok(lines.includes('# TYPE halon_queue_delivery_delivered counter'));
  assert.ok(lines.includes('halon_queue_delivery_delivered_total 0'));
  assert.ok(lines.includes('# TYPE halon_servers_scripts_eod_finished counter'));
  // Queue age and spool figures make a stalled queue and a slow disk visible.
  assert.ok(sampleValue(m.text, 'halon_queue_oldest_age_seconds{state="ACTIVE"}') >= 0);
  assert.equal(sampleValue(m.text, 'halon_queue_oldest_age_seconds{state="HOLD"}'), 0);
  assert.ok(sampleValue(m.text, 'halon_spool_fsyncs_total') >= 1, 'the accepted message was fsynced');
  assert.ok(lines.includes('# TYPE halon_spool_fsync_latency_max_seconds gauge'));
  // Every family's TYPE comes once and before its samples.
  const typed = lines.filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
  assert.equal(new Set(typed).size, typed.length);

  assert.equal((await get(port, '/nothing')).status, 404);
  const post = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
});

test('monitor: promtool check metrics accepts a live scrape', { skip: !which('promtool') && 'promtool not installed (Debian package prometheus)' }, async (t) => {
  const cfg = writeConfig({ smtpd: defaultSmtpd(monitorSmtpd()) });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  assert.match(await sendRaw(d.port, 'a@example.com', ['b@example.org'], message()), /^250 /);
  // promtool reads the Prometheus text format; the same families, negotiated by Accept.
  const m = await get(monitorPort(d), '/metrics', { Accept: 'text/plain;version=0.0.4' });
  assert.equal(m.type, 'text/plain; version=0.0.4; charset=utf-8');
  assert.ok(m.text.includes('# TYPE halon_queue_delivery_delivered_total counter'));
  const r = await run('promtool', ['check', 'metrics'], { input: m.text });
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

test('monitor: /healthy turns 503 above maxmessages.upper and back to 200 below .lower', async (t) => {
  const app = (upper: number, lower: number) => defaultApp('', `monitor:\n  healthy:\n    maxmessages:\n      upper: ${upper}\n      lower: ${lower}\n`);
  const cfg = writeConfig({ smtpd: defaultSmtpd(monitorSmtpd()), app: app(2, 1) });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const port = monitorPort(d);
  assert.equal((await get(port, '/healthy')).status, 200);
  assert.match(await sendRaw(d.port, 'a@example.com', ['b@example.org', 'c@example.org', 'd@example.org'], message()), /^250 /);
  const sick = await get(port, '/healthy');
  assert.equal(sick.status, 503);
  assert.match(sick.text, /too many messages/);
  assert.equal((await get(port, '/ready')).status, 200, 'ready never goes back');
  assert.ok((await get(port, '/metrics')).text.split('\n').includes('halon_monitor_healthy 0'));
  // Raise the limits (3 queued is now below lower = 5): healthy again after the reload.
  fs.writeFileSync(cfg.app, app(10, 5));
  d.proc.kill('SIGHUP');
  await d.waitForLog((l) => l.msg === 'running configuration reloaded');
  assert.equal((await get(port, '/healthy')).status, 200);
});

test('monitor: /healthy is 503 while the daemon drains at SIGTERM', async (t) => {
  const cfg = writeConfig({ smtpd: defaultSmtpd(monitorSmtpd()) });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const port = monitorPort(d);
  const c = await RawSmtp.connect(d.port);
  t.after(() => c.close());
  await c.reply();
  await c.cmd('EHLO client.test');
  await c.cmd('MAIL FROM:<a@example.com>');
  await c.cmd('RCPT TO:<b@example.org>');
  assert.match(await c.cmd('DATA'), /^354/);
  c.write('Subject: in flight\r\n\r\nstill sending');
  d.proc.kill('SIGTERM');
  await d.waitForLog((l) => l.msg === 'shutting down');
  const h = await get(port, '/healthy');
  assert.equal(h.status, 503);
  assert.match(h.text, /shutting down/);
  c.write('\r\n.\r\n');
  assert.match(await c.reply(), /^250 /, 'the transaction in flight still completes');
  assert.equal((await d.exited).code, 0);
});

test('monitor: monitor.apikeys guards /metrics only', async (t) => {
  const cfg = writeConfig({ smtpd: defaultSmtpd(monitorSmtpd()), app: defaultApp('', 'monitor:\n  apikeys:\n    - s3cret\n') });
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const port = monitorPort(d);
  assert.equal((await get(port, '/metrics')).status, 401);
  assert.equal((await get(port, '/metrics', { 'X-API-Key': 'wrong' })).status, 401);
  const ok = await get(port, '/metrics', { 'X-API-Key': 's3cret' });
  assert.equal(ok.status, 200);
  assert.ok(ok.text.includes('halon_monitor_ready 1'));
  assert.equal((await get(port, '/ready')).status, 200, 'probes send no key');
  assert.equal((await get(port, '/healthy')).status, 200);
});
