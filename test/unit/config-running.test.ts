import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadRunningConfig, loadStartupConfig, resolvePki } from '../../src/config/load';
import {
  assertDeepFrozen,
  errorsOf,
  FIXTURES,
  hasError,
  lines,
  MINIMAL_RUNNING,
  MINIMAL_STARTUP,
  tempConfig,
} from './config-fixtures';

function load(dir: string) {
  const startup = loadStartupConfig(join(dir, 'smtpd.yaml'));
  return loadRunningConfig(startup.environment.appconf, startup);
}

function runningErrors(running: string, startup = MINIMAL_STARTUP, extra: Record<string, string> = {}) {
  const dir = tempConfig({ 'smtpd.yaml': startup, 'smtpd-app.yaml': running, ...extra });
  return errorsOf(() => load(dir));
}

test('minimal smtpd-app.yaml: server and transport defaults', () => {
  const dir = join(FIXTURES, 'minimal');
  const r = load(dir);
  assert.equal(r.file, join(dir, 'smtpd-app.yaml'));
  assert.deepEqual(r.servers, [
    {
      id: 'default',
      transport: 'mx',
      hooks: {},
      limits: { connections: 1000, messages: 100, recipients: 1000, maxsize: 50 * 1024 * 1024, maxhops: 100, linelength: 512, errors: 10 },
      timeout: { idle: 300, data: 600 },
      tls: { certs: [], implicit: [], starttls: true, minversion: 'TLSv1.2' },
      auth: { mechanisms: ['PLAIN', 'LOGIN'], requiretls: true },
      extensions: { pipelining: true, size: true, '8bitmime': true, smtputf8: true, enhancedstatuscodes: true, chunking: true, dsn: true },
      apikeys: [],
    },
  ]);
  assert.deepEqual(r.transportgroups, [
    {
      id: 'default',
      retry: {
        count: 30,
        intervals: [60, 900, 3600, 7200, 10800].map((interval) => ({ interval, notify: false })),
        during: 5 * 86400,
      },
      transports: [{ id: 'mx', group: 'default', connection: { port: 25 }, session: { tls: { mode: 'optional' }, protocol: 'smtp' } }],
    },
  ]);
  assert.deepEqual(r.addresses, []);
  assert.deepEqual(r.queues, { grouping: { groupings: [] }, pooling: { size: 1000 }, concurrency: { total: 10000 } });
  assert.deepEqual(r.resolver, { cache: { size: 10000 } });
  assert.deepEqual(r.scripting, { hooks: {}, timeout: 30 });
  assert.deepEqual(r.monitor, { apikeys: [], healthy: { maxmessages: { upper: Number.POSITIVE_INFINITY, lower: Number.POSITIVE_INFINITY } } });
  assert.deepEqual(r.pki, { private: [] });
  assertDeepFrozen(r);
});

test('full smtpd-app.yaml: every key is mapped onto the normalised shape', () => {
  const r = load(join(FIXTURES, 'full'));
  const app = join(FIXTURES, 'full/app');
  const [inbound, submission] = r.servers;
  assert.deepEqual(inbound.hooks, { connect: 'connect', helo: 'helo', auth: 'auth', mailfrom: 'mailfrom', rcptto: 'rcptto', eod: 'default', disconnect: 'disconnect' });
  assert.deepEqual(inbound.limits, { connections: 20, messages: 5, recipients: 50, maxsize: 10 * 1024 * 1024, maxhops: 30, linelength: 1000, errors: 3 });
  assert.deepEqual(inbound.timeout, { idle: 300, data: 3600 });
  assert.deepEqual(inbound.tls, { certs: ['default'], implicit: ['smtps'], starttls: true, minversion: 'TLSv1.3' });
  assert.deepEqual(inbound.auth, { mechanisms: ['PLAIN'], requiretls: false });
  assert.equal(inbound.extensions.chunking, false);
  assert.equal(inbound.extensions.dsn, false);
  assert.equal(inbound.extensions.pipelining, true);
  assert.equal(submission.transport, 'relay');
  assert.deepEqual(submission.apikeys, ['secret-key']);

  const [group, other] = r.transportgroups;
  assert.deepEqual(group.retry, { count: 10, intervals: [{ interval: 60, notify: false }, { interval: 900, notify: true }], during: 172800 });
  assert.deepEqual(group.dsn, { transport: 'mx' });
  assert.deepEqual(group.transports[1], {
    id: 'relay',
    group: 'default',
    connection: { server: '127.0.0.1', port: 2526, sourceip: { ipv6: false, ids: ['out1'] } },
    session: { tls: { mode: 'optional' }, protocol: 'lmtp' },
  });
  assert.equal(group.transports[0].session.tls.mode, 'dane');
  assert.equal(other.transports[0].group, 'other');
  assert.equal(other.dsn, undefined);

  assert.deepEqual(r.addresses, [{ id: 'out1', address: '127.0.0.1', helo: 'out1.example.test' }]);
  const queues = r.queues;
  assert.equal(queues.grouping.default, 'remotemx');
  assert.deepEqual(queues.grouping.groupings[0], { id: 'google', remotemx: ['*.google.com', '*.googlemail.com'] });
  assert.deepEqual(r.resolver, { cache: { size: 0 }, nameservers: ['127.0.0.1', '127.0.0.1:5353', '[::1]:53'] });
  assert.deepEqual(r.scripting.hooks.eod, [{ id: 'default', path: join(app, 'hooks/eod.ts') }]);
  assert.equal(r.scripting.hooks.predelivery, join(app, 'hooks/phase.js'));
  assert.equal(r.scripting.timeout, 10);
  assert.deepEqual(r.monitor, { apikeys: ['metrics-key'], healthy: { maxmessages: { upper: 1000, lower: 800 } } });
  assert.equal(r.pki.private[0].certificate?.path, join(FIXTURES, 'tls/localhost.crt'));
  assertDeepFrozen(r);
});

test('resolvePki merges the startup key with the running certificate', () => {
  const dir = join(FIXTURES, 'full');
  const startup = loadStartupConfig(join(dir, 'smtpd.yaml'));
  const pki = resolvePki(startup, loadRunningConfig(startup.environment.appconf, startup));
  const entry = pki.get('default');
  assert.match(entry?.privatekey?.data ?? '', /BEGIN PRIVATE KEY/);
  assert.match(entry?.certificate?.data ?? '', /BEGIN CERTIFICATE/);
});

test('unknown keys are rejected with their full path', () => {
  const errors = runningErrors(`servers:
  - id: default
    phases: { data: { maxsize: 1MiB, linelength: 1000 } }
    timeouts: {}
transportgroups:
  - id: g
    transports: [ { id: mx, session: { tls: { mode: optional, verify: true } } } ]
`);
  hasError(errors, 'servers.0.phases.data.linelength', /unknown key \(expected one of: maxsize, maxhops\)/);
  hasError(errors, 'servers.0.timeouts', /unknown key/);
  hasError(errors, 'transportgroups.0.transports.0.session.tls.verify', /unknown key \(expected one of: mode\)/);
  assert.equal(errors.length, 3, lines(errors).join('\n'));
});

test('syntax errors in durations and sizes are reported at their key, all at once', () => {
  const errors = runningErrors(`servers:
  - id: default
    phases: { data: { maxsize: 10MB } }
    timeout: { idle: 5 minutes, data: 0 }
transportgroups:
  - id: g
    retry: { during: 1w, intervals: [ { interval: 1h }, { interval: soon } ] }
    transports: [ { id: mx } ]
scripting: { timeout: "-1" }
`);
  hasError(errors, 'servers.0.phases.data.maxsize', /decimal unit MB/);
  hasError(errors, 'servers.0.timeout.idle', /invalid duration "5 minutes"/);
  hasError(errors, 'servers.0.timeout.data', /must be longer than 0 seconds/);
  hasError(errors, 'transportgroups.0.retry.during', /invalid duration "1w"/);
  hasError(errors, 'transportgroups.0.retry.intervals.1.interval', /invalid duration "soon"/);
  hasError(errors, 'scripting.timeout', /invalid duration "-1"/);
  assert.equal(errors.length, 6, lines(errors).join('\n'));
});

test('servers must match the startup servers both ways', () => {
  const errors = runningErrors(`servers:
  - id: other
transportgroups: [ { id: g, transports: [ { id: mx } ] } ]
`);
  hasError(errors, 'servers.0.id', /server "other" is not declared in servers\[\] of .*smtpd.yaml/);
  hasError(errors, 'servers', /server "default" of .*smtpd.yaml has no entry here/);
});

test('hook references must exist in scripting.hooks of the same phase, and hook files must exist', () => {
  const errors = runningErrors(
    `servers:
  - id: default
    phases: { eod: { hook: main }, rcptto: { hook: main } }
transportgroups: [ { id: g, transports: [ { id: mx } ] } ]
scripting:
  hooks:
    eod: [ { id: main, path: hooks/eod.js }, { id: main, path: hooks/eod.js } ]
    connect: [ { id: c, path: hooks/missing.ts } ]
    predelivery: hooks
`,
    MINIMAL_STARTUP,
    { 'hooks/eod.js': 'module.exports = () => {};\n' },
  );
  hasError(errors, 'servers.0.phases.rcptto.hook', /hook "main" is not defined in scripting.hooks.rcptto\[\]/);
  hasError(errors, 'scripting.hooks.eod.1.id', /duplicate eod hook id "main"/);
  hasError(errors, 'scripting.hooks.connect.0.path', /cannot read .*hooks\/missing.ts: no such file/);
  hasError(errors, 'scripting.hooks.predelivery', /hooks is not a file/);
  assert.equal(errors.length, 4, lines(errors).join('\n'));
});

test('hook paths resolve against the running file folder, not smtpd.yaml', () => {
  const dir = tempConfig({
    'smtpd.yaml': `${MINIMAL_STARTUP}environment: { appconf: app/smtpd-app.yaml }\n`,
    'app/smtpd-app.yaml': `${MINIMAL_RUNNING}scripting: { hooks: { eod: [ { id: x, path: eod.js } ] } }\n`,
    'app/eod.js': 'module.exports = () => {};\n',
  });
  assert.equal(load(dir).scripting.hooks.eod?.[0].path, join(dir, 'app/eod.js'));
});

test('transport references: server transport, DSN transport, source address ids, duplicates', () => {
  const errors = runningErrors(`servers:
  - id: default
transportgroups:
  - id: g
    dsn: { transport: bounce }
    transports:
      - id: out
        connection: { sourceip: { ids: [ ip1, ip2 ] } }
  - id: g
    transports: [ { id: out } ]
addresses:
  - { id: ip1, address: 192.0.2.1 }
  - { id: ip1, address: not-an-ip }
`);
  hasError(errors, 'servers.0.transport', /transport "mx" is not defined in transportgroups\[\].transports\[\] \(default transport; set servers\[\].transport\)/);
  hasError(errors, 'transportgroups.0.dsn.transport', /transport "bounce" is not defined/);
  hasError(errors, 'transportgroups.0.transports.0.connection.sourceip.ids.1', /address "ip2" is not defined in addresses\[\]/);
  hasError(errors, 'transportgroups.1.id', /duplicate transport group id "g"/);
  hasError(errors, 'transportgroups.1.transports.0.id', /duplicate transport id "out" \(first at transportgroups.0.transports.0.id\)/);
  hasError(errors, 'addresses.1.id', /duplicate address id "ip1"/);
  hasError(errors, 'addresses.1.address', /"not-an-ip" is not an IPv4 or IPv6 address/);
  assert.equal(errors.length, 7, lines(errors).join('\n'));
});

const TLS_STARTUP = `servers:
  - id: default
    listeners: [ { port: 2525 }, { id: smtps, port: 2465 } ]
  - id: api
    type: https
    listeners: [ { port: 8443 } ]
spool: { path: spool }
pki:
  private:
    - { id: keyonly, privatekey: { path: tls/localhost.key } }
    - { id: wrongkey, privatekey: { path: tls/other.key } }
`;

test('TLS: certificates must name pki ids with a key and a certificate that fit together', () => {
  const errors = runningErrors(
    `servers:
  - id: default
    tls:
      certs: [ { cert: keyonly }, { cert: wrongkey }, { cert: nothere }, { cert: certonly } ]
      implicit: [ smtps, nolistener ]
  - id: api
transportgroups: [ { id: g, transports: [ { id: mx } ] } ]
pki:
  private:
    - { id: keyonly, certificate: { path: tls/localhost.crt } }
    - { id: wrongkey, certificate: { path: tls/localhost.crt } }
    - { id: certonly, certificate: { path: tls/localhost.crt } }
`,
    TLS_STARTUP,
  );
  hasError(errors, 'servers.0.tls.certs.1.cert', /private key of pki id "wrongkey" does not belong to its certificate/);
  hasError(errors, 'servers.0.tls.certs.2.cert', /pki id "nothere" is not defined/);
  hasError(errors, 'servers.0.tls.certs.3.cert', /pki id "certonly" has no private key/);
  hasError(errors, 'servers.0.tls.implicit.1', /listener id "nolistener" is not defined in servers\[\].listeners\[\] of server "default"/);
  hasError(errors, 'servers.1.tls.certs', /an https server needs a certificate/);
  assert.equal(errors.length, 5, lines(errors).join('\n'));
});

test('TLS: a key from smtpd.yaml and a certificate from smtpd-app.yaml make a usable pair', () => {
  const dir = tempConfig({
    'smtpd.yaml': TLS_STARTUP,
    'smtpd-app.yaml': `servers:
  - id: default
    tls: { certs: [ { cert: keyonly } ], implicit: [ smtps ] }
  - id: api
    tls: { certs: [ { cert: keyonly } ] }
transportgroups: [ { id: g, transports: [ { id: mx } ] } ]
pki: { private: [ { id: keyonly, certificate: { path: tls/localhost.crt } } ] }
`,
  });
  const r = load(dir);
  assert.deepEqual(r.servers[0].tls.certs, ['keyonly']);
  assert.deepEqual(r.servers[0].tls.implicit, ['smtps']);
});

test('groupings, name servers and monitor hysteresis are checked', () => {
  const errors = runningErrors(`${MINIMAL_RUNNING}queues:
  grouping:
    groupings:
      - { id: a, remotemx: [ "*.ok.com", "bad*" ] }
      - { id: a, remoteip: [ "10.0.0.0/8", "&a" ] }
resolver: { nameservers: [ "192.0.2.1:53", "[2001:db8::1]:53", "2001:db8::1:53", "dns.example" ] }
monitor: { healthy: { maxmessages: { upper: 10, lower: 20 } } }
`);
  hasError(errors, 'queues.grouping.groupings.0.remotemx', /invalid wildcard "bad\*"/);
  hasError(errors, 'queues.grouping.groupings.1.remoteip', /unknown grouping &a/);
  hasError(errors, 'queues.grouping.groupings.1.id', /duplicate grouping id "a"/);
  hasError(errors, 'resolver.nameservers.3', /"dns.example" is not a name server address/);
  hasError(errors, 'monitor.healthy.maxmessages.lower', /must not be greater than upper \(10\)/);
  assert.equal(errors.length, 5, lines(errors).join('\n'));
});

test('monitor.healthy: lower defaults to upper', () => {
  const dir = tempConfig({ 'smtpd.yaml': MINIMAL_STARTUP, 'smtpd-app.yaml': `${MINIMAL_RUNNING}monitor: { healthy: { maxmessages: { upper: 50 } } }\n` });
  assert.deepEqual(load(dir).monitor.healthy.maxmessages, { upper: 50, lower: 50 });
});

test('a missing running file is an error', () => {
  const dir = tempConfig({ 'smtpd.yaml': MINIMAL_STARTUP });
  hasError(errorsOf(() => load(dir)), '', /cannot read the file: no such file/);
});
