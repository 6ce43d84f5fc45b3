/**
 * The spool record codec: round trips, every truncation is "incomplete", bit flips are caught,
 * malformed payloads and implausible lengths are "corrupt", CRC-32 matches the standard.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  crc32,
  crc32Portable,
  decode,
  encode,
  encodeParts,
  encodeUpdates,
  HEADER_SIZE,
  MAGIC,
  SpoolRecord,
} from '../../src/spool/record';
import { bytes, prng } from './spool-helpers';

const ID = '6f1c2a40-9d3e-4b7a-8c11-0123456789ab';

const samples: SpoolRecord[] = [
  {
    type: 'tx',
    id: ID,
    meta: JSON.stringify({ sender: 'a@example.com', size: 3, note: 'naïve ✓' }),
    entries: [
      { queue: 1, meta: '{"rcpt":"b@example.org","state":"DEFER"}' },
      { queue: 2, meta: '{"rcpt":"c@example.org"}' },
    ],
    bodies: [Buffer.from('Subject: x\r\n\r\nhello\r\n'), bytes(300, 7), Buffer.alloc(0)],
  },
  { type: 'tx', id: ID, meta: 'null', entries: [], bodies: [] },
  { type: 'update', id: ID, queue: 4294967295, meta: '{"retry":3}' },
  { type: 'remove', id: ID, queue: 1 },
];

test('decode(encode(r)) gives back the same record, its length and the body offsets', () => {
  for (const rec of samples) {
    const buf = encode(rec);
    const res = decode(buf, 0);
    assert.equal(res.kind, 'record');
    if (res.kind !== 'record') return;
    assert.deepEqual(res.record, rec);
    assert.equal(res.next, buf.length);
    if (rec.type === 'tx') {
      rec.bodies.forEach((b, i) => assert.deepEqual(buf.subarray(res.bodyOffsets[i], res.bodyOffsets[i] + b.length), b));
      assert.deepEqual(encodeParts(rec).bodyOffsets, res.bodyOffsets);
    }
  }
});

test('encodeParts does not copy bodies and its parts concatenate to encode()', () => {
  const rec = samples[0];
  const enc = encodeParts(rec);
  assert.ok(rec.type === 'tx' && enc.parts.includes(rec.bodies[1]), 'body buffer passed through');
  assert.deepEqual(Buffer.concat(enc.parts), encode(rec));
  assert.equal(enc.length, encode(rec).length);
});

test('encodeUpdates writes the same bytes as encoding each update, in one buffer', () => {
  const updates = [
    { type: 'update' as const, id: ID, queue: 1, meta: '{"state":"HOLD","note":"naïve ✓"}' },
    { type: 'update' as const, id: 'x', queue: 4294967295, meta: '' },
    { type: 'update' as const, id: ID, queue: 7, meta: JSON.stringify({ big: 'y'.repeat(5000) }) },
  ];
  const { buf, offsets } = encodeUpdates(updates);
  assert.deepEqual(buf, Buffer.concat(updates.map((u) => encode(u))));
  let at = 0;
  updates.forEach((u, i) => {
    assert.equal(offsets[i], at);
    const res = decode(buf, at);
    assert.ok(res.kind === 'record');
    assert.deepEqual(res.record, u);
    at = res.next;
  });
  assert.throws(() => encodeUpdates([{ type: 'update', id: ID, queue: 0, meta: '{}' }]), RangeError);
  assert.throws(() => encodeUpdates([{ type: 'update', id: '', queue: 1, meta: '{}' }]), RangeError);
});

test('records decode back to back from a shared buffer, starting at any record boundary', () => {
  const bufs = samples.map((r) => encode(r));
  const all = Buffer.concat([Buffer.from('junk'), ...bufs]);
  let off = 4;
  for (const rec of samples) {
    const res = decode(all, off);
    assert.equal(res.kind, 'record');
    if (res.kind !== 'record') return;
    assert.deepEqual(res.record, rec);
    off = res.next;
  }
  assert.equal(off, all.length);
  assert.deepEqual(decode(all, off), { kind: 'incomplete', need: HEADER_SIZE });
});

test('every proper prefix of a record is incomplete, never a record or corrupt', () => {
  for (const rec of samples) {
    const buf = encode(rec);
    for (let cut = 0; cut < buf.length; cut++) {
      const res = decode(buf.subarray(0, cut), 0);
      assert.equal(res.kind, 'incomplete', `${rec.type} cut at ${cut}`);
      if (res.kind === 'incomplete') assert.ok(res.need > cut);
    }
  }
});

test('random truncation of a large record is incomplete and says how many bytes it needs', () => {
  const rec: SpoolRecord = { type: 'tx', id: ID, meta: '{}', entries: [{ queue: 1, meta: '{}' }], bodies: [bytes(200_000, 3)] };
  const buf = encode(rec);
  const rnd = prng(11);
  for (let i = 0; i < 50; i++) {
    const cut = Math.floor(rnd() * buf.length);
    const res = decode(buf.subarray(0, cut), 0);
    assert.equal(res.kind, 'incomplete');
    if (res.kind === 'incomplete' && cut >= HEADER_SIZE) assert.equal(res.need, buf.length);
  }
});

test('every single-bit flip in a record is detected (corrupt or incomplete, never a record)', () => {
  for (const rec of samples) {
    const buf = encode(rec);
    for (let bit = 0; bit < buf.length * 8; bit++) {
      const bad = Buffer.from(buf);
      bad[bit >> 3] ^= 1 << (bit & 7);
      const res = decode(bad, 0);
      assert.notEqual(res.kind, 'record', `${rec.type}: flip of bit ${bit} went unnoticed`);
    }
  }
});

test('random multi-byte damage never yields a record', () => {
  const buf = encode(samples[0]);
  const rnd = prng(99);
  for (let trial = 0; trial < 2000; trial++) {
    const bad = Buffer.from(buf);
    const n = 1 + Math.floor(rnd() * 8);
    for (let k = 0; k < n; k++) bad[Math.floor(rnd() * bad.length)] = Math.floor(rnd() * 256);
    if (bad.equals(buf)) continue;
    assert.notEqual(decode(bad, 0).kind, 'record', `trial ${trial}`);
  }
});

/** A frame with a correct checksum around an arbitrary payload. */
function frame(type: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(head, 0);
  head[4] = type;
  head.writeUInt32LE(payload.length, 5);
  head.writeUInt32LE(crc32(payload, crc32(Buffer.from([type]))), 9);
  return Buffer.concat([head, payload]);
}

test('a payload that passes its checksum but is malformed is corrupt, with the reason', () => {
  const trailing = Buffer.concat([encode(samples[3]).subarray(HEADER_SIZE), Buffer.from([0])]);
  const cases: Array<[number, Buffer, RegExp]> = [
    [3, trailing, /trailing/],
    [2, Buffer.from([5, 0x61]), /past the payload/],
    [3, Buffer.from([0, 1, 0, 0, 0]), /empty id/],
    [3, Buffer.from([1, 0x61, 0, 0, 0, 0]), /queue number 0/],
    [1, Buffer.from([1, 0x61, 0xff, 0xff, 0xff, 0x7f]), /past the payload/],
  ];
  for (const [type, payload, reason] of cases) {
    const res = decode(frame(type, payload), 0);
    assert.equal(res.kind, 'corrupt');
    if (res.kind === 'corrupt') assert.match(res.reason, reason);
  }
});

test('bad magic, unknown type and an implausible length are corrupt at once', () => {
  assert.deepEqual(decode(Buffer.from('HJX1xxxxxxxxxxxxx'), 0), { kind: 'corrupt', reason: 'bad magic' });
  assert.deepEqual(decode(Buffer.alloc(40), 0), { kind: 'corrupt', reason: 'bad magic' });
  const unknown = frame(9, Buffer.alloc(0));
  assert.equal(decode(unknown, 0).kind, 'corrupt');
  const huge = encode(samples[3]);
  huge.writeUInt32LE(0x7fffffff, 5);
  const res = decode(huge, 0, 1024);
  assert.equal(res.kind, 'corrupt');
  if (res.kind === 'corrupt') assert.match(res.reason, /implausible/);
});

test('encode refuses what the format cannot hold', () => {
  assert.throws(() => encode({ type: 'remove', id: '', queue: 1 }), RangeError);
  assert.throws(() => encode({ type: 'remove', id: 'x'.repeat(256), queue: 1 }), RangeError);
  assert.throws(() => encode({ type: 'remove', id: ID, queue: 0 }), RangeError);
  assert.throws(() => encode({ type: 'update', id: ID, queue: 1.5, meta: '{}' }), RangeError);
  assert.throws(() => encode({ type: 'tx', id: ID, meta: '{}', entries: [], bodies: [Buffer.alloc(100)] }, 50), RangeError);
});

test('CRC-32 is the standard one (check value of "123456789") in both implementations', () => {
  assert.equal(crc32(Buffer.from('123456789')) >>> 0, 0xcbf43926);
  assert.equal(crc32Portable(Buffer.from('123456789')), 0xcbf43926);
  // An empty input leaves the running value alone (zlib.crc32 returns 0 for a NULL pointer).
  assert.equal(crc32(new Uint8Array(new ArrayBuffer(0)), 0x9a5b3c65), 0x9a5b3c65);
  assert.equal(crc32(Buffer.alloc(0), 0x9a5b3c65), 0x9a5b3c65);
  const data = bytes(10_000, 5);
  assert.equal(crc32Portable(data.subarray(5000), crc32Portable(data.subarray(0, 5000))), crc32(data) >>> 0);
});
