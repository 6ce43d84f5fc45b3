/**
 * The matching helpers of the shaping engine: facts in field order, keys that do not depend on
 * the order or case a caller named values in, IPv6 written canonically, and key round trips.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QUEUE_FIELDS } from '../../src/config/queue-files';
import { exactKey, fieldsOf, keyOf, maskOf, rawValues, valuesOfKey } from '../../src/shaping/match';
import { T0, engineWith, facts } from './shaping-helpers';

test('rawValues lists the facts in QUEUE_FIELDS order', () => {
  const f = Object.fromEntries(QUEUE_FIELDS.map((k) => [k, `v-${k}`])) as Parameters<typeof rawValues>[0];
  assert.deepEqual(rawValues(f), QUEUE_FIELDS.map((k) => `v-${k}`));
});

test('exact keys ignore the order and case of the values; IPv6 is compared in canonical form', () => {
  const a = exactKey({ recipientdomain: 'Example.COM', localip: '2001:DB8:0:0::1' });
  const b = exactKey({ localip: '2001:db8::1', recipientdomain: 'example.com' });
  assert.deepEqual(a, b);
  assert.deepEqual(fieldsOf(a.mask), ['localip', 'recipientdomain']);
  assert.deepEqual(valuesOfKey(a.mask, a.key), { localip: '2001:db8::1', recipientdomain: 'example.com' });
  const m = maskOf(['jobid']);
  assert.equal(keyOf(m, rawValues(facts({ jobid: 'J1' }))), 'J1');
});

test('a dynamic suspend on an IPv6 source address written another way still holds', () => {
  const { engine } = engineWith();
  engine.addSuspend({ localip: '2001:DB8:0000::10' }, 0, {}, T0);
  assert.equal(engine.admit(facts({ localip: '2001:db8::10' }), T0).ok, false);
  assert.equal(engine.admit(facts({ localip: '2001:0DB8::0:10' }), T0).ok, false, 'a source address as written in smtpd-app.yaml');
  assert.equal(engine.admit(facts({ localip: '2001:db8::11' }), T0).ok, true);
});
