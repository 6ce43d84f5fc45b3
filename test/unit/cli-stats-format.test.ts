import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flattenMessage, openMetrics, textLines } from '../../src/cli/stats-format';
import { buildProcessStats, parseVersion } from '../../src/control/stats';
import { decodeMessage, encodeMessage, messageType } from '../../src/control/schema';

function samples(input: Parameters<typeof buildProcessStats>[0]) {
  const msg = buildProcessStats(input, { pid: 4242, runtime: 12.5, version: parseVersion('0.1.0') });
  const full = decodeMessage('ProcessStatsResponse', encodeMessage('ProcessStatsResponse', msg), 'full');
  return flattenMessage(messageType('ProcessStatsResponse'), full);
}

test('text: one dotted path per field, zeros included, servers keyed by id', () => {
  const text = textLines(samples({ servers: [{ id: 'inbound', connections: 3, maxconnections: 100 }], queue: { active: 2, defer: 7 } }));
  const lines = text.trimEnd().split('\n');
  assert.ok(lines.includes('process.pid: 4242'));
  assert.ok(lines.includes('process.runtime: 12.5'));
  assert.ok(lines.includes('process.version.minor: 1'));
  assert.ok(lines.includes('queue.queue.active.size: 2'));
  assert.ok(lines.includes('queue.queue.defer.size: 7'));
  assert.ok(lines.includes('queue.freeze.hold.size: 0'));
  assert.ok(lines.includes('resolver.cache.hits: 0'));
  assert.ok(lines.includes('servers[inbound].connections.concurrent: 3'));
  assert.ok(lines.includes('servers[inbound].connections.maxconcurrent: 100'));
  assert.ok(!lines.some((l) => l.includes('serverid')), 'the key is not repeated as a field');
  assert.ok(!lines.some((l) => l.endsWith(': ')), 'empty strings are left out');
});

test('openmetrics: halon_ names, labels for keyed entries, one TYPE per family, # EOF', () => {
  const om = openMetrics(samples({ servers: [{ id: 'a', connections: 1 }, { id: 'b"x', connections: 2 }], queue: { active: 5, priorities: [4, 1] } }));
  const lines = om.split('\n');
  assert.ok(lines.includes('# TYPE halon_queue_queue_active_size gauge'));
  assert.ok(lines.includes('halon_queue_queue_active_size 5'));
  assert.ok(lines.includes('halon_process_pid 4242'));
  assert.ok(lines.includes('halon_servers_connections_concurrent{serverid="a"} 1'));
  assert.ok(lines.includes('halon_servers_connections_concurrent{serverid="b\\"x"} 2'));
  assert.ok(lines.includes('halon_queue_queue_active_priorities_size{priority="1"} 1'));
  assert.equal(lines.filter((l) => l === '# TYPE halon_servers_connections_concurrent gauge').length, 1);
  assert.ok(!om.includes('threadid'), 'strings are not metrics');
  assert.equal(om.slice(-6), '# EOF\n');
  // Every sample line is "name{labels} value" with a valid metric name.
  for (const l of lines.filter((x) => x && !x.startsWith('#'))) assert.match(l, /^halon_[a-z_]+(\{[^}]*\})? -?[\d.e+]+$/);
});
