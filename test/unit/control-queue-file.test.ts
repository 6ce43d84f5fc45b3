/**
 * The queue file of `J` unload / `E` import, and the envelope `E` reads from a raw message's
 * header fields: what an operator moving mail between servers relies on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newQueueEntry } from '../../src/model/types';
import { decodeQueueFile, encodeQueueFile, isQueueFile, QueueFileError } from '../../src/control/queue-file';
import { addressList, envelopeFromHeaders } from '../../src/control/header-envelope';

const TX = '44815e44-05d3-11ea-b388-06f091ceb4dc';

function sampleFile() {
  const bodies = [Buffer.from('Subject: a\r\n\r\nfirst\r\n'), Buffer.from('Subject: b\r\n\r\nsecond \xff\r\n', 'latin1')];
  const entries = [
    newQueueEntry({ id: { transaction: TX, queue: 1 }, ts: 1_700_000_000_000, serverid: 'in', sender: 's@x.example', recipient: 'a@y.example', transportid: 'mx', size: 0, state: 'DEFER', retry: 3, retryts: 1_700_000_600_000, metadata: { k: 'v' } }),
    newQueueEntry({ id: { transaction: TX, queue: 3 }, ts: 1_700_000_000_000, serverid: 'in', sender: 's@x.example', recipient: 'b@z.example', transportid: 'mx', size: 0, state: 'HOLD', body: 1 }),
  ];
  return { transaction: TX, ts: 1_700_000_000_000, serverid: 'in', sender: 's@x.example', bodies, entries };
}

test('a queue file keeps every entry field, state and body byte for byte, and starts with two text lines', () => {
  const data = encodeQueueFile(sampleFile());
  assert.equal(isQueueFile(data), true);
  const [magic, head] = data.toString('latin1').split('\r\n');
  assert.equal(magic, 'Halyard-Queue-File: 1');
  assert.equal((JSON.parse(head) as { entries: unknown[] }).entries.length, 2);
  const back = decodeQueueFile(data);
  assert.deepEqual(back.bodies, sampleFile().bodies);
  assert.deepEqual(back.entries.map((e) => [e.id.queue, e.recipient, e.state, e.retry, e.retryts, e.metadata, e.body, e.size]), [
    [1, 'a@y.example', 'DEFER', 3, 1_700_000_600_000, { k: 'v' }, 0, sampleFile().bodies[0].length],
    [3, 'b@z.example', 'HOLD', 0, 0, {}, 1, sampleFile().bodies[1].length],
  ]);
});

test('a damaged queue file is refused with the reason, never read in part', () => {
  const good = encodeQueueFile(sampleFile());
  const cases: Array<[Buffer, RegExp]> = [
    [Buffer.from('From: a@b\r\n\r\nx'), /does not start with/],
    [good.subarray(0, good.length - 3), /ends inside a body/],
    [Buffer.concat([good, Buffer.from('x')]), /1 bytes follow the last body/],
    [Buffer.from(good.toString('latin1').replace('"state":"DEFER"', '"state":"LOST"'), 'latin1'), /bad state/],
    [Buffer.from(good.toString('latin1').replace('"body":1', '"body":7'), 'latin1'), /body 7 is not in the file/],
    [Buffer.from(good.toString('latin1').replace('"queue":3', '"queue":1'), 'latin1'), /same queue number/],
    [Buffer.from('Halyard-Queue-File: 1\r\n{not json\r\n'), /not JSON/],
  ];
  for (const [data, reason] of cases) assert.throws(() => decodeQueueFile(data), (e: Error) => e instanceof QueueFileError && reason.test(e.message), String(reason));
});

test('address lists: display names, comments, quoted commas, groups and routes', () => {
  assert.deepEqual(addressList('"Doe, John" <john@example.com>, jane@example.org (Jane), Team: a@t.example, b@t.example;, undisclosed:;'), ['john@example.com', 'jane@example.org', 'a@t.example', 'b@t.example']);
  assert.deepEqual(addressList('<@relay.example:user@example.net>'), ['user@example.net']);
  assert.deepEqual(addressList('"odd user"@example.com'), ['"odd user"@example.com']);
  assert.deepEqual(addressList('not an address, <>'), []);
});

test('the envelope of a raw message: To, Cc, Bcc once each; Return-Path before Sender before From; Bcc and Return-Path removed', () => {
  const msg = Buffer.from('Return-Path: <>\r\nFrom: a@from.example\r\nSender: s@sender.example\r\nTo: x@t.example, X@T.example\r\nCc: y@t.example\r\nBcc: z@t.example\r\nSubject: hi\r\n\r\nbody\r\n');
  const env = envelopeFromHeaders(msg);
  assert.deepEqual(env.recipients, ['x@t.example', 'y@t.example', 'z@t.example']);
  assert.equal(env.sender, '', 'Return-Path <> is the null sender');
  assert.equal(env.message.toString(), 'From: a@from.example\r\nSender: s@sender.example\r\nTo: x@t.example, X@T.example\r\nCc: y@t.example\r\nSubject: hi\r\n\r\nbody\r\n');
  assert.equal(envelopeFromHeaders(Buffer.from('From: a@from.example\r\nSender: s@sender.example\r\n\r\n')).sender, 's@sender.example');
  assert.equal(envelopeFromHeaders(Buffer.from('From: "A" <a@from.example>\r\n\r\n')).sender, 'a@from.example');
  const plain = Buffer.from('To: x@t.example\r\n\r\nbody\r\n');
  assert.equal(envelopeFromHeaders(plain).message, plain, 'untouched when there is nothing to remove');
});
