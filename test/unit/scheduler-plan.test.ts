/**
 * From transport and Try() options to the attempt plan: where to connect, on which port, from
 * which source with which HELO name, with which TLS mode and envelope.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPlan, protocolRange } from '../../src/scheduler/plan';
import { clientTlsMode } from '../../src/delivery/attempt';
import type { RunningConfig } from '../../src/config/types';
import type { QueueEntry } from '../../src/model/types';
import type { TryOptions } from '../../src/hooks/types';

const config = {
  addresses: [{ id: 'a1', address: '192.0.2.10', helo: 'out1.example.com' }, { id: 'a2', address: '192.0.2.11' }],
  transportgroups: [{
    id: 'g', retry: { count: 1, intervals: [], during: 1 },
    transports: [
      { id: 'mx', group: 'g', connection: { port: 2525, sourceip: { ids: ['a1', 'a2'], ipv6: false } }, session: { tls: { mode: 'dane' }, protocol: 'smtp' } },
      { id: 'relay', group: 'g', connection: { server: 'relay.example.net', port: 587 }, session: { tls: { mode: 'require' }, protocol: 'lmtp' } },
    ],
  }],
} as unknown as RunningConfig;

function entry(transportid: string, over: Partial<QueueEntry> = {}): QueueEntry {
  return {
    id: { transaction: 'tx-1', queue: 1 }, sender: 's@example.com', recipient: 'r@Dest.example', recipientaddress: { localpart: 'r', domain: 'Dest.example' },
    transportid, retry: 2, dsn: { envid: 'e1', ret: 'HDRS', notify: ['FAILURE'] }, body: 0, ...over,
  } as QueueEntry;
}

function plan(transportid: string, options: TryOptions = {}) {
  const e = entry(transportid);
  const r = buildPlan({ config, entries: [e], recipients: [options.recipient ?? e.recipient], options, body: Buffer.from('x'), hostname: 'mta.example' });
  if ('error' in r) throw new Error(r.error);
  return r.plan;
}

test('MX transport: MX of the recipient domain on the transport port, its sources and their HELO names', () => {
  const p = plan('mx');
  assert.deepEqual(p.destination, { kind: 'mx', domain: 'Dest.example' });
  assert.equal(p.port, 2525);
  assert.deepEqual(p.sources, [{ id: 'a1', address: '192.0.2.10', helo: 'out1.example.com' }, { id: 'a2', address: '192.0.2.11' }]);
  assert.equal(p.helo, 'mta.example');
  assert.deepEqual(p.nexthop, { seed: 'tx-1', retry: 2, ipv6: false });
  assert.equal(p.tls, 'optional', 'dane acts as opportunistic TLS');
  assert.equal(p.envid, 'e1');
  assert.equal(p.ret, 'HDRS');
  assert.deepEqual(p.recipients, [{ address: 'r@Dest.example', dsn: { envid: 'e1', ret: 'HDRS', notify: ['FAILURE'] } }]);
});

test('fixed server transport: server, port, TLS mode and protocol from the transport', () => {
  const p = plan('relay');
  assert.deepEqual(p.destination, { kind: 'server', server: 'relay.example.net' });
  assert.equal(p.port, 587);
  assert.equal(p.tls, 'require');
  assert.equal(p.protocol, 'lmtp');
  assert.deepEqual(p.sources, []);
});

test('Try() options override for the attempt: server, lookup-mx, port, sources, HELO, TLS, envelope, MX filters, time-outs', () => {
  const p = plan('relay', { server: 'lookup-mx', port: 25, sourceip: ['192.0.2.99'], helo: 'try.example', tls: 'disabled', sender: '', recipient: 'x@y.example', mx_exclude: ['*.bad.example'], timeout: { connect: 5, RCPT: 10 } });
  assert.deepEqual(p.destination, { kind: 'mx', domain: 'Dest.example' });
  assert.equal(p.port, 25);
  assert.deepEqual(p.sources, [{ address: '192.0.2.99', helo: 'try.example' }]);
  assert.equal(p.helo, 'try.example');
  assert.equal(p.tls, 'disabled');
  assert.equal(p.sender, '');
  assert.equal(p.recipients[0].address, 'x@y.example');
  assert.deepEqual(p.nexthop.mxExclude, ['*.bad.example']);
  assert.deepEqual(p.timeouts, { connect: 5, RCPT: 10 });
});

test('unknown transport or source address: a config error, not a crash', () => {
  const e = entry('nope');
  assert.match((buildPlan({ config, entries: [e], recipients: [e.recipient], options: {}, body: Buffer.alloc(0), hostname: 'h' }) as { error: string }).error, /transport "nope"/);
  const f = entry('mx');
  assert.match((buildPlan({ config, entries: [f], recipients: [f.recipient], options: { sourceip: ['nope'] }, body: Buffer.alloc(0), hostname: 'h' }) as { error: string }).error, /source address "nope"/);
});

test('TLS modes the client lacks map to at least as much protection', () => {
  assert.equal(clientTlsMode('dane'), 'optional');
  assert.equal(clientTlsMode('dane_require'), 'require_verify');
  assert.equal(clientTlsMode('dane_fallback_require_verify'), 'require_verify');
  assert.equal(clientTlsMode('optional_verify'), 'optional_verify');
});

test('the admission of pickup: only its source address, its hop first, and the delivery settings over transport and Try()', () => {
  const e = entry('mx');
  const facts = { tenantid: '', jobid: '', transportid: 'mx', localip: '192.0.2.11', grouping: '', remotemx: 'mx1.dest.example', remoteip: '198.51.100.7', recipientdomain: 'dest.example' };
  const settings = {
    tls: { mode: 'require_verify', protocols: '!SSLv2,!SSLv3,!TLSv1,!TLSv1.1,!TLSv1.3' },
    pooling: { enabled: false },
    timeout: { connect: 7, smtp: { EOD: 900 } },
  };
  const r = buildPlan({ config, entries: [e], recipients: [e.recipient], options: { tls: 'disabled', timeout: { MAIL: 30, connect: 99 } }, body: Buffer.from('x'), hostname: 'mta.example', admission: { facts, settings } });
  if ('error' in r) throw new Error(r.error);
  assert.deepEqual(r.plan.sources.map((s) => s.address), ['192.0.2.11'], 'the admitted source address only');
  assert.deepEqual(r.plan.prefer, { remotemx: 'mx1.dest.example', remoteip: '198.51.100.7' });
  assert.equal(r.plan.tls, 'require_verify', 'smtpd-delivery.yaml overrides Try({tls})');
  assert.deepEqual(r.plan.tlsVersions, { min: 'TLSv1.2', max: 'TLSv1.2' });
  assert.deepEqual(r.plan.pooling, { enabled: false });
  assert.deepEqual(r.plan.timeouts, { MAIL: 30, connect: 7, EOD: 900 }, 'settings over Try() per state; others kept');
});

test('tls.protocols as a version range', () => {
  assert.deepEqual(protocolRange('!SSLv2,!SSLv3,!TLSv1,!TLSv1.1'), { min: 'TLSv1.2', max: 'TLSv1.3' });
  assert.deepEqual(protocolRange('TLSv1.3'), { min: 'TLSv1.3', max: 'TLSv1.3' });
  assert.deepEqual(protocolRange('SSLv3,TLSv1,TLSv1.1'), { min: 'TLSv1', max: 'TLSv1.1' });
  assert.equal(protocolRange('!TLSv1,!TLSv1.1,!TLSv1.2,!TLSv1.3'), undefined);
});
