/**
 * Start-up decoding of queue entries straight from their spool text (queue/entry-text.ts):
 * for every text — what encodeEntry writes, every field's variants, and malformed ones — the
 * entry is exactly what JSON.parse + decodeEntry gives (same fields, values, key order), or
 * the same error is thrown; repeated values share one string, entries with one sender share
 * one senderaddress, and sharing never leaks one entry's value into another.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEntry, encodeEntry } from '../../src/queue/codec';
import { decodeEntryText } from '../../src/queue/entry-text';
import { newQueueEntry, type QueueEntry } from '../../src/model/types';
import type { Json } from '../../src/spool/types';
import { prng } from './spool-helpers';

const TX = '3f0b5c2e-9a41-4d7e-8c11-0123456789ab';

function slow(text: string, queue = 1): QueueEntry | Error {
  try {
    return decodeEntry(TX, queue, JSON.parse(text) as Json);
  } catch (err) {
    return err as Error;
  }
}

function fast(text: string, queue = 1): QueueEntry | Error {
  try {
    return decodeEntryText(TX, queue, Buffer.from(text, 'utf8'));
  } catch (err) {
    return err as Error;
  }
}

/** Same outcome: deep-equal entries with the same key order, or errors of one class and message. */
function same(text: string, queue = 1): void {
  const a = slow(text, queue);
  const b = fast(text, queue);
  if (a instanceof Error || b instanceof Error) {
    assert.ok(a instanceof Error && b instanceof Error, `one path failed, the other not: ${text}`);
    assert.equal(b.constructor, a.constructor, text);
    assert.equal(b.message, a.message, text);
    return;
  }
  assert.deepStrictEqual(b, a, text);
  assert.deepEqual(Object.keys(b), Object.keys(a), `key order: ${text}`);
  assert.deepEqual(Object.keys(b.senderaddress), Object.keys(a.senderaddress), text);
  assert.deepEqual(Object.keys(b.recipientaddress), Object.keys(a.recipientaddress), text);
}

function base(over: Partial<QueueEntry> = {}): QueueEntry {
  return {
    ...newQueueEntry({ id: { transaction: TX, queue: 1 }, ts: 1_795_476_996_358, serverid: 'default', sender: 'sender1861@customer11.example', recipient: 'user0@big.example', transportid: 'mx', size: 4407 }),
    ...over,
  };
}

function text(e: QueueEntry): string {
  return JSON.stringify(encodeEntry(e));
}

test('what encodeEntry writes decodes to exactly what JSON.parse + decodeEntry gives', () => {
  const variants: Array<Partial<QueueEntry>> = [
    {},
    { state: 'DEFER', retry: 4, retryts: 1_795_493_637_141 },
    { state: 'HOLD' },
    { state: 'SENDING' },
    { state: 'UPDATE' },
    { priority: 1 },
    { tenantid: 'tenant-a', jobid: 'job-7' },
    { metadata: { campaign: 'x', 'a b': 'c"d', '1': 'numeric key first', __proto__x: 'y' } },
    { quotas: ['q1', 'q2', 'q1'], tags: ['t'] },
    { dsn: { envid: 'E1', ret: 'HDRS', notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;a@b' } },
    { dsn: { notify: ['NEVER'] } },
    { localip: '192.0.2.10', remotemx: 'mx1.big.example', remoteip: '198.51.100.7', grouping: 'g1' },
    { localip: '', remotemx: '', remoteip: '', grouping: '' },
    { sender: '', senderaddress: { localpart: '', domain: '' } },
    { recipient: 'Üser@bïg.example', recipientaddress: { localpart: 'Üser', domain: 'bïg.example' } },
    { recipient: '"quoted\\"local"@x.example', recipientaddress: { localpart: '"quoted\\"local"', domain: 'x.example' } },
    { recipient: 'tab\tand\nnewline@x.example', recipientaddress: { localpart: 'tab\tand\nnewline', domain: 'x.example' } },
    { recipient: 'a@b', recipientaddress: { localpart: 'different', domain: 'B' } },
    { serverid: 'sérver', transportid: 'tränsport' },
    { ts: 0, retry: 0, retryts: 0, body: 2, size: 0 },
    { ts: -5, size: 999_999_999_999_999 },
    { ts: 1.5 },
    { ts: 1e21 },
  ];
  for (const v of variants) {
    const e = base(v);
    same(text(e));
    // And the key order decodeEntry's own output has (an entry re-encoded after recovery).
    const again = decodeEntry(TX, 1, JSON.parse(text(e)) as Json);
    same(text(again));
  }
});

test('texts that are not the usual shape give the same entry or the same error as the slow path', () => {
  const good = text(base());
  const cases = [
    good,
    good.replace('{', '{ '),
    good.replace('"state":"ACTIVE"', '"state" : "ACTIVE"'),
    `${good} `,
    `${good}x`,
    good.slice(0, -1),
    good.replace('"state":"ACTIVE"', '"state":"BOGUS"'),
    good.replace('"state":"ACTIVE"', '"state":"active"'),
    good.replace('"state":"ACTIVE",', ''),
    good.replace('"state":"ACTIVE"', '"state":1'),
    good.replace('"recipient":"user0@big.example",', ''),
    good.replace('"recipient":"user0@big.example"', '"recipient":null'),
    good.replace('"transportid":"mx"', '"transportid":7'),
    good.replace('"sender":"sender1861@customer11.example"', '"sender":null'),
    good.replace('"serverid":"default"', '"serverid":123'),
    good.replace('"ts":1795476996358', '"ts":"1795476996358"'),
    good.replace('"ts":1795476996358', '"ts":null'),
    good.replace('"ts":1795476996358', '"ts":01'),
    good.replace('"ts":1795476996358', '"ts":-0'),
    good.replace('"ts":1795476996358', '"ts":1e3'),
    good.replace('"ts":1795476996358', '"ts":1234567890123456789'),
    good.replace('"ts":1795476996358', '"ts":-'),
    good.replace('"priority":0', '"priority":1.0'),
    good.replace('"priority":0', '"priority":true'),
    good.replace('"metadata":{}', '"metadata":null'),
    good.replace('"metadata":{}', '"metadata":[]'),
    good.replace('"metadata":{}', '"metadata":{"a":1,"b":"x"}'),
    good.replace('"metadata":{}', '"metadata":{"a":"x","a":"y"}'),
    good.replace('"metadata":{}', '"metadata":{"a":"x",}'),
    good.replace('"metadata":{}', '"metadata":{"__proto__":"x","constructor":"y"}'),
    good.replace('"metadata":{}', '"metadata":{"a":[1,{"b":"}"}],"c":"d"}'),
    good.replace('"quotas":[]', '"quotas":[1,"x",null]'),
    good.replace('"quotas":[]', '"quotas":[1]'),
    good.replace('"quotas":[]', '"quotas":"q"'),
    good.replace('"tags":[]', '"tags":["a\\u0062"]'),
    good.replace('"dsn":{}', '"dsn":{"ret":"NONE","x":1}'),
    good.replace('"dsn":{}', '"dsn":null'),
    good.replace('"senderaddress":{"localpart":"sender1861","domain":"customer11.example"}', '"senderaddress":null'),
    good.replace('"senderaddress":{"localpart":"sender1861","domain":"customer11.example"}', '"senderaddress":{"domain":"customer11.example","localpart":"s"}'),
    good.replace('"senderaddress":{"localpart":"sender1861","domain":"customer11.example"}', '"senderaddress":{"localpart":"s","domain":"d","extra":1}'),
    good.replace('"senderaddress":{"localpart":"sender1861","domain":"customer11.example"}', '"senderaddress":{"localpart":1,"domain":"d"}'),
    good.replace('"recipientaddress":{"localpart":"user0","domain":"big.example"}', '"recipientaddress":{"localpart":"user0"}'),
    good.replace('"recipientaddress":{"localpart":"user0","domain":"big.example"}', '"recipientaddress":{"localpart":"us\\"er0","domain":"big.example"}'),
    good.replace('"recipientaddress":{"localpart":"user0","domain":"big.example"}', '"recipientaddress":{"localpart":"user0","localpart":"x","domain":"big.example"}'),
    good.replace('"tenantid":""', '"tenantid":"","tenantid":"t2"'),
    good.replace('"tenantid":""', '"tenant\\u0069d":"t"'),
    good.replace('"tenantid":""', '"unknown":"x","tenantid":""'),
    good.replace('"tenantid":""', '"localip":null,"tenantid":""'),
    good.replace('"tenantid":""', '"remotemx":"mx.example","tenantid":""'),
    good.replace('"recipient":"user0@big.example"', '"recipient":"bad\u0001control"'),
    good.replace('"recipient":"user0@big.example"', '"recipient":"trailing\\"'),
    '{}',
    '[]',
    'null',
    '"string"',
    '',
    '{"state":"ACTIVE","recipient":"a@b","transportid":"t"}',
    '{"state":"DEFER","recipient":"a","transportid":"t","queue":3}',
  ];
  for (const c of cases) same(c);
});

test('random corruptions of a real entry never make the two paths disagree', () => {
  const rnd = prng(7);
  const texts = [text(base({ state: 'DEFER', retry: 2, retryts: 1_795_000_000_000, quotas: ['q'], dsn: { notify: ['DELAY'] } })), text(base({ remotemx: 'mx.example', localip: '10.0.0.1', metadata: { k: 'v' } }))];
  for (let i = 0; i < 3000; i++) {
    const t = Buffer.from(texts[i % 2], 'utf8');
    const edits = 1 + Math.floor(rnd() * 3);
    for (let k = 0; k < edits; k++) {
      const at = Math.floor(rnd() * t.length);
      t[at] = '{}[]",:\\0123456789aAeE.-x \u00e9'.charCodeAt(Math.floor(rnd() * 28)) & 0xff;
    }
    const s = t.toString('utf8');
    const a = slow(s);
    const b = (() => {
      try {
        return decodeEntryText(TX, 1, t);
      } catch (err) {
        return err as Error;
      }
    })();
    if (a instanceof Error || b instanceof Error) {
      assert.ok(a instanceof Error && b instanceof Error, `disagree on ${s}`);
      assert.equal(b.message, a.message, s);
    } else {
      assert.deepStrictEqual(b, a, s);
    }
  }
});

test('repeated values are shared, and sharing never mixes two entries up', () => {
  const one = fast(text(base({ recipient: 'a@d1.example', recipientaddress: { localpart: 'a', domain: 'd1.example' } })));
  const two = fast(text(base({ recipient: 'b@d1.example', recipientaddress: { localpart: 'b', domain: 'd1.example' } })));
  const three = fast(text(base({ sender: 'other@customer11.example', senderaddress: { localpart: 'other', domain: 'customer11.example' } })));
  assert.ok(!(one instanceof Error) && !(two instanceof Error) && !(three instanceof Error));
  assert.equal(one.senderaddress, two.senderaddress, 'one sender, one senderaddress object');
  assert.notEqual(one.senderaddress, three.senderaddress);
  assert.deepEqual(three.senderaddress, { localpart: 'other', domain: 'customer11.example' });
  assert.deepEqual(one.senderaddress, { localpart: 'sender1861', domain: 'customer11.example' });
  assert.notEqual(one.recipientaddress, two.recipientaddress);
  assert.equal(one.recipientaddress.localpart, 'a');
  assert.equal(two.recipientaddress.localpart, 'b');
  // Same sender string, different stored parts (written by another version): not shared.
  const odd = fast(text(base({ senderaddress: { localpart: 'SENDER1861', domain: 'customer11.example' } })));
  assert.ok(!(odd instanceof Error));
  assert.equal(odd.senderaddress.localpart, 'SENDER1861');
  const after = fast(text(base()));
  assert.ok(!(after instanceof Error));
  assert.equal(after.senderaddress.localpart, 'sender1861');
  // The queue number and transaction come from the arguments, not from the text.
  const q = fast(text(base()), 9);
  assert.ok(!(q instanceof Error));
  assert.deepEqual(q.id, { transaction: TX, queue: 9 });
});
