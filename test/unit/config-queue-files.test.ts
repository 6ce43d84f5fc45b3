import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadDeliveryConfig, loadPolicyConfig, loadSuspendConfig } from '../../src/config/load';
import { compileMatch } from '../../src/config/syntax';
import { assertDeepFrozen, errorsOf, FIXTURES, hasError, lines, tempConfig } from './config-fixtures';

const APP = join(FIXTURES, 'full/app');

test('missing queue files are empty configs', () => {
  const dir = tempConfig({});
  assert.deepEqual(loadPolicyConfig(join(dir, 'smtpd-policy.yaml')), { file: join(dir, 'smtpd-policy.yaml'), rate: { algorithm: 'tokenbucket' }, policies: [] });
  assert.deepEqual(loadSuspendConfig(join(dir, 'smtpd-suspend.yaml')), { file: join(dir, 'smtpd-suspend.yaml'), suspends: [] });
  assert.deepEqual(loadDeliveryConfig(join(dir, 'smtpd-delivery.yaml')), { file: join(dir, 'smtpd-delivery.yaml'), conditions: [] });
});

test('policy file: rates, durations, properties, conditions', () => {
  const p = loadPolicyConfig(join(APP, 'smtpd-policy.yaml'), { groupings: ['google'] });
  assert.equal(p.version, '6.8');
  assert.deepEqual(p.rate, { algorithm: 'fixedwindow' });
  assert.deepEqual(p.policies[0], { fields: [], conditions: [], default: { rate: { messages: 1000, seconds: 60 } } });
  assert.deepEqual(p.policies[1], {
    fields: ['localip', 'grouping'],
    conditions: [
      {
        if: { grouping: ['&google'] },
        then: { concurrency: 20, rate: { messages: 999999, seconds: 1 }, properties: { 'backoff-rate': '100/60', suspendable: true } },
      },
    ],
    default: { concurrency: 2, rate: { messages: 30, seconds: 60 }, connectinterval: 60, tag: 'slow' },
  });
  assert.deepEqual(p.policies[2], { fields: ['jobid'], conditions: [] });
  assertDeepFrozen(p);
});

test('policy file: errors', () => {
  const dir = tempConfig({
    'smtpd-policy.yaml': `rate: { algorithm: leakybucket }
policies:
  - fields: [ jobid, jobid ]
  - fields: [ tenantid, remotemx ]
    conditions:
      - if: { remotemx: "*.ok.com", jobid: x }
        then: { rate: 10/0, connectinterval: 1y, tag: "${'x'.repeat(33)}", stop: true }
      - if: { remotemx: "&microsoft" }
        then: {}
  - fields: [ remotemx, tenantid ]
  - fields: [ sender ]
`,
  });
  const errors = errorsOf(() => loadPolicyConfig(join(dir, 'smtpd-policy.yaml'), { groupings: ['google'] }));
  hasError(errors, 'rate.algorithm', /must be one of: tokenbucket, fixedwindow/);
  hasError(errors, 'policies.0.fields', /items 0 and 1 are the same/);
  hasError(errors, 'policies.1.conditions.0.if.jobid', /field jobid is not in this policy's fields \[tenantid, remotemx\]/);
  hasError(errors, 'policies.1.conditions.0.then.rate', /period in seconds must be greater than 0/);
  hasError(errors, 'policies.1.conditions.0.then.connectinterval', /invalid duration "1y"/);
  hasError(errors, 'policies.1.conditions.0.then.tag', /at most 32 characters/);
  hasError(errors, 'policies.1.conditions.0.then.stop', /unknown key/);
  hasError(errors, 'policies.1.conditions.1.if.remotemx', /unknown grouping &microsoft/);
  hasError(errors, 'policies.2.fields', /a policy with fields \[remotemx,tenantid\] already exists at policies.1/);
  hasError(errors, 'policies.3.fields.0', /must be one of: tenantid, jobid/);
  assert.equal(errors.length, 10, lines(errors).join('\n'));
});

test('grouping references are only checked when the grouping ids are given', () => {
  const dir = tempConfig({ 'smtpd-suspend.yaml': 'suspends: [ { grouping: "&anything" } ]\n' });
  assert.deepEqual(loadSuspendConfig(join(dir, 'smtpd-suspend.yaml')).suspends, [{ match: { grouping: '&anything' } }]);
  hasError(errorsOf(() => loadSuspendConfig(join(dir, 'smtpd-suspend.yaml'), { groupings: [] })), 'suspends.0.grouping', /unknown grouping &anything/);
});

test('suspend file: fields, tag, properties and the empty suspend', () => {
  const s = loadSuspendConfig(join(APP, 'smtpd-suspend.yaml'));
  assert.deepEqual(s.suspends, [
    { match: { transportid: 'customer1', recipientdomain: 'gmail.com' } },
    { match: { localip: '192.0.2.1', recipientdomain: ['*.example.com', '/^mx[0-9]+\\.example\\.net$/i'] } },
    { match: {}, tag: 'nonworkhours', properties: { reason: 'maintenance' } },
    { match: {} },
  ]);
  // The values as loaded compile into working matchers.
  const m = compileMatch(s.suspends[1].match.recipientdomain);
  assert.equal(m('MX7.example.net'), true);
  assert.equal(m('a.example.com'), true);
  assert.equal(m('example.com'), false);
  assertDeepFrozen(s);
});

test('suspend file: errors', () => {
  const dir = tempConfig({
    'smtpd-suspend.yaml': `suspends:
  - remoteip: 192.0.2.0/33
    sender: x
  - tag: "${'t'.repeat(40)}"
    properties: { nested: { a: 1 } }
  - recipientdomain: []
  - remoteip: [ 192.0.2.1, mx.example.com ]
`,
  });
  const errors = errorsOf(() => loadSuspendConfig(join(dir, 'smtpd-suspend.yaml')));
  hasError(errors, 'suspends.0.remoteip', /prefix length must be 0-32/);
  hasError(errors, 'suspends.0.sender', /unknown key/);
  hasError(errors, 'suspends.1.tag', /at most 32 characters/);
  hasError(errors, 'suspends.1.properties.nested', /must be a string or a number or true or false/);
  hasError(errors, 'suspends.2.recipientdomain', /at least 1 item/);
  hasError(errors, 'suspends.3.remoteip', /"mx.example.com" is not an IP address or network/);
  assert.equal(errors.length, 6, lines(errors).join('\n'));
});

test('delivery file: settings are converted and nothing is defaulted', () => {
  const d = loadDeliveryConfig(join(APP, 'smtpd-delivery.yaml'));
  assert.deepEqual(d.conditions, [
    {
      if: { remotemx: '*.example.com' },
      then: {
        pooling: { enabled: true, timeout: 300, evictable: false, transactions: 1000 },
        tls: { mode: 'optional', protocols: '!SSLv2,!SSLv3,!TLSv1,!TLSv1.1' },
      },
    },
    {
      if: { remoteip: '192.0.2.1' },
      then: { timeout: { connect: 120, smtp: { MAIL: 900, EOD: 900 } }, retry: { count: 5, intervals: [{ interval: 30, notify: false }] } },
    },
  ]);
  assert.deepEqual(d.default, { pooling: { enabled: true } });
  assertDeepFrozen(d);
});

test('delivery file: errors', () => {
  const dir = tempConfig({
    'smtpd-delivery.yaml': `delivery:
  conditions:
    - if: {}
      then: { retry: { during: 5d } }
    - if: { remotemx: "*.x.com" }
      then:
        tls: { mode: sometimes }
        timeout: { connect: 2 minutes, smtp: { HELLO: 10, MAIL: 1x } }
        pooling: { transactions: 0 }
`,
  });
  const errors = errorsOf(() => loadDeliveryConfig(join(dir, 'smtpd-delivery.yaml')));
  hasError(errors, 'delivery.conditions.0.if', /must not be empty/);
  hasError(errors, 'delivery.conditions.0.then.retry.during', /unknown key \(expected one of: count, intervals\)/);
  hasError(errors, 'delivery.conditions.1.then.tls.mode', /must be one of: disabled, optional/);
  hasError(errors, 'delivery.conditions.1.then.timeout.connect', /invalid duration "2 minutes"/);
  hasError(errors, 'delivery.conditions.1.then.timeout.smtp.HELLO', /unknown key .*BANNER/);
  hasError(errors, 'delivery.conditions.1.then.timeout.smtp.MAIL', /invalid duration "1x"/);
  hasError(errors, 'delivery.conditions.1.then.pooling.transactions', /must be >= 1/);
  assert.equal(errors.length, 7, lines(errors).join('\n'));
});

test('an unreadable queue file (not just missing) is an error', () => {
  const dir = tempConfig({ 'smtpd-policy.yaml/placeholder': '' });
  hasError(errorsOf(() => loadPolicyConfig(join(dir, 'smtpd-policy.yaml'))), '', /cannot read the file: is a directory/);
});
