/**
 * Groupings, delivery settings and routing needs in the shaping engine: `groupingOf`, what
 * `&id` means on each field, the merge of smtpd-delivery.yaml, `needsRouting`, and the
 * manual's example files loaded through the config loader.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDeliveryConfig, loadPolicyConfig, loadSuspendConfig } from '../../src/config/load';
import type { QueuesConfig } from '../../src/config/types';
import { T0, delivery, engineWith, facts, policies, suspends, ticketOf } from './shaping-helpers';

const GROUPING: QueuesConfig['grouping'] = {
  default: 'recipientdomain',
  groupings: [
    { id: 'google', remotemx: ['*.google.com', '*.googlemail.com'] },
    { id: 'microsoft', recipientdomain: ['outlook.com', 'hotmail.com'], remoteip: '203.0.113.0/24' },
  ],
};

test('groupingOf: the first grouping any of whose lists matches, else per default', () => {
  const { engine } = engineWith({ grouping: GROUPING });
  assert.equal(engine.groupingOf('example.com', 'aspmx.l.google.com', '192.0.2.1'), '&google');
  assert.equal(engine.groupingOf('hotmail.com', '', ''), '&microsoft');
  assert.equal(engine.groupingOf('example.net', 'mx.example.net', '203.0.113.9'), '&microsoft');
  assert.equal(engine.groupingOf('example.net', 'mx.example.net', '198.51.100.1'), 'example.net');
  const byMx = engineWith({ grouping: { ...GROUPING, default: 'remotemx' } }).engine;
  assert.equal(byMx.groupingOf('example.net', 'mx.example.net', '198.51.100.1'), 'mx.example.net');
  const none = engineWith({ grouping: { groupings: GROUPING.groupings } }).engine;
  assert.equal(none.groupingOf('example.net', 'mx.example.net', '198.51.100.1'), '');
});

test('&id on grouping matches the grouping value; on remotemx/recipientdomain/remoteip, that field\'s list', () => {
  const { engine } = engineWith({
    grouping: GROUPING,
    suspends: suspends([
      { match: { grouping: '&google' }, tag: 'g' },
      { match: { recipientdomain: '&microsoft' }, tag: 'ms-domain' },
      { match: { remoteip: '&microsoft', jobid: 'j' }, tag: 'ms-ip' },
      { match: { remotemx: '&microsoft' }, tag: 'never' },
    ]),
  });
  const tagOf = (f: Parameters<typeof facts>[0]) => {
    const v = engine.admit(facts(f), T0);
    return v.ok ? undefined : v.tag;
  };
  assert.equal(tagOf({ grouping: '&google' }), 'g');
  assert.equal(tagOf({ grouping: 'google' }), undefined);
  assert.equal(tagOf({ recipientdomain: 'outlook.com' }), 'ms-domain');
  assert.equal(tagOf({ remoteip: '203.0.113.5', jobid: 'j' }), 'ms-ip');
  assert.equal(tagOf({ remotemx: 'mx.outlook.com' }), undefined, 'microsoft has no remotemx list');
});

test('a counter keyed by grouping is shared by every destination of the grouping', () => {
  const { engine } = engineWith({
    grouping: GROUPING,
    policies: policies([{ fields: ['grouping'], conditions: [{ if: { grouping: '&google' }, then: { concurrency: 2 } }], default: { concurrency: 10 } }]),
  });
  const g = (d: string) => facts({ recipientdomain: d, grouping: engine.groupingOf(d, `mx.${d}.googlemail.com`, '') });
  ticketOf(engine.admit(g('a.example'), T0));
  ticketOf(engine.admit(g('b.example'), T0));
  assert.equal(engine.admit(g('c.example'), T0).ok, false);
  const id = engine.addCondition(['grouping'], { grouping: '&google' }, { concurrency: 3 }, 0, {}, T0);
  assert.ok(id);
  assert.equal(engine.admit(g('c.example'), T0).ok, true, 'a dynamic condition on the grouping applies to all of it');
});

test('a reload of the groupings recompiles &id references; an id that disappeared matches nothing', () => {
  const { engine, wakes } = engineWith({ grouping: GROUPING, suspends: suspends([{ match: { recipientdomain: '&microsoft' } }]) });
  assert.equal(engine.admit(facts({ recipientdomain: 'hotmail.com' }), T0).ok, false);
  engine.setGrouping({ groupings: [{ id: 'microsoft', recipientdomain: 'live.com' }] });
  assert.deepEqual(wakes, ['all']);
  assert.equal(engine.admit(facts({ recipientdomain: 'hotmail.com' }), T0).ok, true);
  assert.equal(engine.admit(facts({ recipientdomain: 'live.com' }), T0).ok, false);
  engine.setGrouping({ groupings: [] });
  assert.equal(engine.admit(facts({ recipientdomain: 'live.com' }), T0).ok, true);
});

test('deliverySettings: the first matching condition deep-merged over default', () => {
  const { engine } = engineWith({
    delivery: delivery({
      conditions: [
        { if: { remotemx: '*.example.com' }, then: { pooling: { enabled: true, timeout: 300, evictable: false, transactions: 1000 }, tls: { mode: 'optional' } } },
        { if: { remoteip: '192.0.2.1' }, then: { timeout: { connect: 120, smtp: { MAIL: 900, EOD: 900 } } } },
        { if: { remoteip: '192.0.2.0/24' }, then: { tls: { mode: 'require' } } },
      ],
      default: { pooling: { enabled: false, transactions: 10 }, timeout: { connect: 30, smtp: { MAIL: 60, RCPT: 60 } }, tls: { protocols: 'TLSv1.2,TLSv1.3' } },
    }),
  });
  assert.deepEqual(engine.deliverySettings(facts({ remotemx: 'mx1.example.com' })), {
    tls: { protocols: 'TLSv1.2,TLSv1.3', mode: 'optional' },
    pooling: { enabled: true, transactions: 1000, timeout: 300, evictable: false },
    timeout: { connect: 30, smtp: { MAIL: 60, RCPT: 60 } },
  });
  assert.deepEqual(engine.deliverySettings(facts({ remoteip: '192.0.2.1' })), {
    tls: { protocols: 'TLSv1.2,TLSv1.3' },
    pooling: { enabled: false, transactions: 10 },
    timeout: { connect: 120, smtp: { MAIL: 900, RCPT: 60, EOD: 900 } },
  }, 'the first match only: not also the /24');
  assert.deepEqual(engine.deliverySettings(facts({ remoteip: '198.51.100.1' })).pooling, { enabled: false, transactions: 10 });
  const none = engineWith().engine;
  assert.deepEqual(none.deliverySettings(facts()), {});
});

test('needsRouting: only when a rule or the grouping it uses depends on remotemx or remoteip', () => {
  const { engine } = engineWith({ policies: policies([{ fields: ['recipientdomain'], conditions: [], default: { concurrency: 5 } }]) });
  assert.equal(engine.needsRouting(), false);
  const id = engine.addSuspend({ remoteip: '192.0.2.1' }, 0, {}, T0);
  assert.equal(engine.needsRouting(), true, 'a dynamic suspend on remoteip');
  engine.deleteSuspend(id);
  assert.equal(engine.needsRouting(), false);
  engine.setDelivery(delivery({ conditions: [{ if: { remotemx: '*.example.com' }, then: { tls: { mode: 'optional' } } }] }));
  assert.equal(engine.needsRouting(), true, 'a delivery condition on remotemx');
  engine.setDelivery(delivery({ conditions: [] }));
  engine.setPolicies(policies([{ fields: ['grouping'], conditions: [], default: { concurrency: 5 } }]));
  assert.equal(engine.needsRouting(), false, 'grouping by recipient domain needs no DNS');
  engine.setGrouping(GROUPING);
  assert.equal(engine.needsRouting(), true, 'a grouping lists remotemx');
  engine.setGrouping({ default: 'remotemx', groupings: [] });
  assert.equal(engine.needsRouting(), true, 'grouping defaults to remotemx');
  engine.setPolicies(policies([]));
  assert.equal(engine.needsRouting(), false, 'no rule uses the grouping');
});

test('the example files of the manual, loaded through the config loader, behave as documented', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'halyard-shaping-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const groupings = new Set(['google', 'microsoft']);
  const policyFile = write('smtpd-policy.yaml', [
    'version: "6.8"',
    'rate:',
    '  algorithm: tokenbucket',
    'policies:',
    '  - default: { rate: 1000/60 }',
    '  - fields: [ localip, grouping ]',
    '    conditions:',
    '      - if: { grouping: [ "&google", "&microsoft" ] }',
    '        then:',
    '          concurrency: 20',
    '          rate: 999999/1',
    '          properties: { backoff-rate: 100/60 }',
    '    default:',
    '      concurrency: 2',
    '      rate: 30/60',
    '  - fields: [ jobid ]',
  ].join('\n'));
  const suspendFile = write('smtpd-suspend.yaml', [
    'suspends:',
    '  - transportid: customer1',
    '    recipientdomain: gmail.com',
    '  - localip: 192.0.2.1',
    '    recipientdomain: gmail.com',
    '  - tag: nonworkhours',
    '    jobid: newsletter',
  ].join('\n'));
  const deliveryFile = write('smtpd-delivery.yaml', [
    'delivery:',
    '  conditions:',
    '    - if: { remotemx: "*.example.com" }',
    '      then:',
    '        pooling: { enabled: true, timeout: 300, evictable: false, transactions: 1000 }',
    '        tls: { mode: optional }',
    '  default:',
    '    pooling: { enabled: true }',
  ].join('\n'));
  const { engine } = engineWith({
    grouping: GROUPING,
    policies: loadPolicyConfig(policyFile, { groupings }),
    suspends: loadSuspendConfig(suspendFile, { groupings }),
    delivery: loadDeliveryConfig(deliveryFile, { groupings }),
  });
  assert.equal(engine.admit(facts({ transportid: 'customer1', recipientdomain: 'gmail.com' }), T0).ok, false);
  assert.equal(engine.admit(facts({ localip: '192.0.2.1', recipientdomain: 'gmail.com' }), T0).ok, false);
  assert.deepEqual(engine.admit(facts({ jobid: 'newsletter' }), T0), { ok: false, reason: 'suspend', tag: 'nonworkhours' });
  const big = facts({ grouping: '&google' });
  const tickets = [];
  for (let i = 0; i < 30; i++) {
    const v = engine.admit(big, T0);
    if (v.ok) tickets.push(v.ticket);
  }
  assert.equal(tickets.length, 20, 'google and microsoft get concurrency 20');
  assert.deepEqual(tickets[0].policies[1].properties, { 'backoff-rate': '100/60' });
  const small = facts({ grouping: 'example.org', recipientdomain: 'example.org' });
  assert.equal(ticketOf(engine.admit(small, T0)).policies.length, 2, 'the jobid policy has no limits: not applied');
  ticketOf(engine.admit(small, T0));
  assert.equal(engine.admit(small, T0).ok, false, 'others get concurrency 2');
  assert.equal(engine.needsRouting(), true);
  assert.deepEqual(engine.deliverySettings(facts({ remotemx: 'mx.example.com' })), { pooling: { enabled: true, timeout: 300, evictable: false, transactions: 1000 }, tls: { mode: 'optional' } });
});
