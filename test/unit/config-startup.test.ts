import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { loadStartupConfig } from '../../src/config/load';
import { ConfigInvalidError } from '../../src/config/types';
import { assertDeepFrozen, errorsOf, FIXTURES, hasError, lines, MINIMAL_STARTUP, tempConfig } from './config-fixtures';

test('minimal smtpd.yaml: defaults are filled and the result is frozen', () => {
  const dir = join(FIXTURES, 'minimal');
  const c = loadStartupConfig(join(dir, 'smtpd.yaml'));
  assert.equal(c.file, join(dir, 'smtpd.yaml'));
  assert.equal(c.version, undefined);
  assert.deepEqual(c.servers, [{ id: 'default', type: 'smtp', listeners: [{ port: 2525, address: '127.0.0.1' }], proxyprotocol: [] }]);
  assert.deepEqual(c.environment, {
    appconf: join(dir, 'smtpd-app.yaml'),
    policyconf: join(dir, 'smtpd-policy.yaml'),
    suspendconf: join(dir, 'smtpd-suspend.yaml'),
    deliveryconf: join(dir, 'smtpd-delivery.yaml'),
    controlsocket: { path: '/var/run/halyard/smtpd.ctl' },
    uuid: { version: 4 },
    hostname: hostname(),
  });
  assert.deepEqual(c.spool, { path: join(dir, 'spool'), fsync: true, minfree: { bytes: 100 * 1024 * 1024, inodes: 1000 }, corrupt: 'rename' });
  assert.equal(c.monitor, undefined);
  assert.deepEqual(c.pki, { private: [] });
  assertDeepFrozen(c);
  assert.throws(() => {
    (c.spool as { fsync: boolean }).fsync = false;
  }, TypeError);
});

test('full smtpd.yaml: every key is read and relative paths resolve against the file folder', () => {
  const dir = join(FIXTURES, 'full');
  const c = loadStartupConfig(join(dir, 'smtpd.yaml'));
  assert.equal(c.version, '6.8');
  assert.deepEqual(c.servers[0].listeners, [
    { port: 2525, address: '127.0.0.1', backlog: 128 },
    { id: 'smtps', port: 4465, address: '127.0.0.1' },
  ]);
  assert.deepEqual(c.servers[0].proxyprotocol, ['127.0.0.1', '192.0.2.0/24', '2001:db8::/32']);
  assert.equal(c.servers[1].type, 'http');
  assert.equal(c.environment.appconf, join(dir, 'app/smtpd-app.yaml'));
  assert.equal(c.environment.deliveryconf, join(dir, 'app/smtpd-delivery.yaml'));
  assert.deepEqual(c.environment.controlsocket, { path: join(dir, 'run/smtpd.ctl'), group: 'staff', chmod: '0660' });
  assert.deepEqual(c.environment.uuid, { version: 1 });
  assert.deepEqual(c.environment.privdrop, { user: 'halyard', group: 'halyard' });
  assert.equal(c.environment.umask, '0027');
  assert.deepEqual(c.environment.rlimit, { nofile: 70000 });
  assert.equal(c.environment.hostname, 'mx.example.test');
  assert.deepEqual(c.spool, { path: join(dir, 'var/spool'), fsync: false, minfree: { bytes: 1024 ** 3, inodes: 500 }, corrupt: 'ignore' });
  assert.deepEqual(c.monitor, { listener: { port: 9090, address: '127.0.0.1' }, type: 'http' });
  const key = c.pki.private[0];
  assert.equal(key.id, 'default');
  assert.equal(key.privatekey?.path, join(FIXTURES, 'tls/localhost.key'));
  assert.match(key.privatekey?.data ?? '', /BEGIN PRIVATE KEY/);
  assert.equal(key.certificate, undefined);
  assertDeepFrozen(c);
});

test('absolute paths are kept as they are', () => {
  const dir = tempConfig({ 'smtpd.yaml': 'spool: { path: /var/spool/halyard }\nenvironment: { appconf: /etc/halyard/app.yaml }\n' });
  const c = loadStartupConfig(join(dir, 'smtpd.yaml'));
  assert.equal(c.spool.path, '/var/spool/halyard');
  assert.equal(c.environment.appconf, '/etc/halyard/app.yaml');
  assert.deepEqual(c.servers, []);
});

test('unknown keys are rejected with their path and the keys allowed there', () => {
  const dir = tempConfig({
    'smtpd.yaml': `${MINIMAL_STARTUP}listen: 25\nenvironment:\n  controlsocket: { pth: x }\n`,
  });
  const errors = errorsOf(() => loadStartupConfig(join(dir, 'smtpd.yaml')));
  hasError(errors, 'listen', /^unknown key \(expected one of: version, servers, environment, spool, queues, monitor, pki, cluster\)$/);
  hasError(errors, 'environment.controlsocket.pth', /unknown key .*path, port, address/);
  assert.equal(errors.length, 2, lines(errors).join('\n'));
});

test('every error of a file is listed at once, formatted file: path: reason', () => {
  const dir = tempConfig({
    'smtpd.yaml': `version: 6.8
servers:
  - id: a
    type: ftp
    listeners: [ { port: 70000 }, { port: 25, address: localhost } ]
environment:
  uuid: { version: 3 }
  controlsocket: { chmod: "999" }
spool:
  path: spool
  minfree: { bytes: 10MB }
  corrupt: delete
`,
  });
  const file = join(dir, 'smtpd.yaml');
  let thrown: unknown;
  try {
    loadStartupConfig(file);
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown instanceof ConfigInvalidError);
  const errors = thrown.errors;
  hasError(errors, 'version', /^must be a string; quote it: "6.8"$/);
  hasError(errors, 'servers.0.type', /must be one of: smtp, http, https/);
  hasError(errors, 'servers.0.listeners.0.port', /must be <= 65535/);
  hasError(errors, 'servers.0.listeners.1.address', /"localhost" is not an IPv4 or IPv6 address/);
  hasError(errors, 'environment.uuid.version', /must be one of: 1, 4/);
  hasError(errors, 'environment.controlsocket.chmod', /invalid value: .*octal/);
  hasError(errors, 'spool.minfree.bytes', /decimal unit MB/);
  hasError(errors, 'spool.corrupt', /must be one of: unlink, rename, ignore/);
  assert.equal(errors.length, 8, lines(errors).join('\n'));
  for (const e of errors) assert.equal(e.file, file);
  assert.ok(thrown.message.split('\n').includes(`${file}: version: must be a string; quote it: "6.8"`), thrown.message);
  assert.match(thrown.message, /: spool\.corrupt: must be one of/);
});

test('YAML syntax errors give line and column; duplicate keys are errors', () => {
  const dir = tempConfig({
    'bad.yaml': 'spool:\n  path: [unclosed\n',
    'dup.yaml': 'spool:\n  path: a\n  path: b\n',
  });
  const bad = errorsOf(() => loadStartupConfig(join(dir, 'bad.yaml')));
  assert.ok(bad.length >= 1);
  assert.equal(bad[0].path, '');
  assert.match(bad[0].reason, /^YAML syntax error at line \d+, column \d+: /);
  const dup = errorsOf(() => loadStartupConfig(join(dir, 'dup.yaml')));
  assert.match(dup[0].reason, /^YAML syntax error at line 3, column 3: .*[Uu]nique/);
});

test('a missing, empty or non-mapping smtpd.yaml is refused clearly', () => {
  const dir = tempConfig({ 'empty.yaml': '', 'list.yaml': '- a\n- b\n' });
  hasError(errorsOf(() => loadStartupConfig(join(dir, 'nope.yaml'))), '', /cannot read the file: no such file/);
  hasError(errorsOf(() => loadStartupConfig(join(dir, 'empty.yaml'))), 'spool', /is required/);
  hasError(errorsOf(() => loadStartupConfig(join(dir, 'list.yaml'))), '', /must be a mapping/);
});

test('duplicate server ids, listener ids and clashing ports are reported', () => {
  const dir = tempConfig({
    'smtpd.yaml': `servers:
  - id: a
    listeners:
      - { id: l, port: 25 }
      - { id: l, port: 26, address: 127.0.0.1 }
  - id: a
    listeners:
      - { port: 26, address: 127.0.0.2 }
      - { port: 25, address: 127.0.0.1 }
      - { port: 0 }
      - { port: 0 }
monitor: { port: 26, address: "0.0.0.0" }
spool: { path: s }
`,
  });
  const errors = errorsOf(() => loadStartupConfig(join(dir, 'smtpd.yaml')));
  hasError(errors, 'servers.1.id', /duplicate server id "a" \(first at servers.0.id\)/);
  hasError(errors, 'servers.0.listeners.1.id', /duplicate listener id "l"/);
  hasError(errors, 'servers.1.listeners.1.port', /port 25 is already used by servers.0.listeners.0.port/);
  hasError(errors, 'monitor.port', /port 26 is already used by servers.0.listeners.1.port/);
  assert.equal(errors.length, 4, lines(errors).join('\n'));
});

test('the same port on different addresses is fine', () => {
  const dir = tempConfig({
    'smtpd.yaml': `servers:
  - id: a
    listeners: [ { port: 25, address: 127.0.0.1 }, { port: 25, address: "::1" }, { port: 25, address: 127.0.0.2 } ]
monitor: { listener: { port: 25, address: 127.0.0.3 } }
spool: { path: s }
`,
  });
  assert.equal(loadStartupConfig(join(dir, 'smtpd.yaml')).servers[0].listeners.length, 3);
});

test('monitor.port is accepted as the older spelling of monitor.listener.port', () => {
  const dir = tempConfig({
    'old.yaml': 'spool: { path: s }\nmonitor: { port: 9090, address: 127.0.0.1 }\n',
    'both.yaml': 'spool: { path: s }\nmonitor: { port: 9090, listener: { port: 9091 } }\n',
    'none.yaml': 'spool: { path: s }\nmonitor: { type: https }\n',
  });
  assert.deepEqual(loadStartupConfig(join(dir, 'old.yaml')).monitor, { listener: { port: 9090, address: '127.0.0.1' }, type: 'http' });
  hasError(errorsOf(() => loadStartupConfig(join(dir, 'both.yaml'))), 'monitor.port', /give monitor.listener.port or monitor.port, not both/);
  hasError(errorsOf(() => loadStartupConfig(join(dir, 'none.yaml'))), 'monitor.listener.port', /is required/);
});

test('PROXY protocol entries must be IP addresses or networks', () => {
  const dir = tempConfig({
    'smtpd.yaml': `servers:
  - id: a
    listeners: [ { port: 25 } ]
    proxyprotocol: [ 10.0.0.0/8, "::1", example.com, 10.0.0.0/99 ]
spool: { path: s }
`,
  });
  const errors = errorsOf(() => loadStartupConfig(join(dir, 'smtpd.yaml')));
  hasError(errors, 'servers.0.proxyprotocol.2', /"example.com" is not an IP address or network/);
  hasError(errors, 'servers.0.proxyprotocol.3', /prefix length must be 0-32/);
  assert.equal(errors.length, 2);
});

test('pki: files are read, PEM is checked, key and certificate must belong together', () => {
  const dir = tempConfig({
    'ok.yaml': `spool: { path: s }
pki:
  private:
    - id: a
      privatekey: { path: tls/localhost.key }
      certificate: { path: tls/localhost.crt }
`,
    'bad.yaml': `spool: { path: s }
pki:
  private:
    - id: missing
      privatekey: { path: tls/none.key }
    - id: notpem
      certificate: { data: "hello" }
    - id: mismatch
      privatekey: { path: tls/other.key }
      certificate: { path: tls/localhost.crt }
    - id: both
      privatekey: { path: tls/localhost.key, data: x }
    - id: neither
      privatekey: {}
    - id: missing
`,
  });
  const ok = loadStartupConfig(join(dir, 'ok.yaml'));
  assert.equal(ok.pki.private[0].certificate?.path, join(dir, 'tls/localhost.crt'));
  assert.match(ok.pki.private[0].certificate?.data ?? '', /BEGIN CERTIFICATE/);
  const errors = errorsOf(() => loadStartupConfig(join(dir, 'bad.yaml')));
  hasError(errors, 'pki.private.0.privatekey.path', new RegExp(`cannot read ${join(dir, 'tls/none.key')}: no such file`));
  hasError(errors, 'pki.private.1.certificate', /inline data: not a PEM certificate/);
  hasError(errors, 'pki.private.2', /the private key does not belong to the certificate/);
  hasError(errors, 'pki.private.3.privatekey', /give either path or data, not both/);
  hasError(errors, 'pki.private.4.privatekey', /needs path or data/);
  hasError(errors, 'pki.private.5.id', /duplicate pki id "missing"/);
  assert.equal(errors.length, 6, lines(errors).join('\n'));
});

test('control socket: TLS needs a TCP port and a usable pki id', () => {
  const dir = tempConfig({
    'notcp.yaml': 'spool: { path: s }\nenvironment: { controlsocket: { tls: { cert: x } } }\n',
    'tcp.yaml': `spool: { path: s }
environment:
  controlsocket:
    port: 4000
    tls:
      cert: a
      clientcerts: [ { path: tls/localhost.crt } ]
pki:
  private:
    - id: a
      privatekey: { path: tls/localhost.key }
      certificate: { path: tls/localhost.crt }
`,
    'nokey.yaml': `spool: { path: s }
environment: { controlsocket: { port: 4000, tls: { cert: a } } }
pki: { private: [ { id: a, certificate: { path: tls/localhost.crt } } ] }
`,
  });
  const notcp = errorsOf(() => loadStartupConfig(join(dir, 'notcp.yaml')));
  hasError(notcp, 'environment.controlsocket.tls', /set environment.controlsocket.port/);
  hasError(notcp, 'environment.controlsocket.tls.cert', /pki id "x" is not defined/);
  const cs = loadStartupConfig(join(dir, 'tcp.yaml')).environment.controlsocket;
  assert.equal(cs.port, 4000);
  assert.equal(cs.address, '127.0.0.1');
  assert.equal(cs.tls?.cert, 'a');
  assert.equal(cs.tls?.clientcerts?.[0].path, join(dir, 'tls/localhost.crt'));
  hasError(errorsOf(() => loadStartupConfig(join(dir, 'nokey.yaml'))), 'environment.controlsocket.tls.cert', /pki id "a" has no private key/);
});
