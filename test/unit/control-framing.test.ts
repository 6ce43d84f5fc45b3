import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeReply,
  encodeRequest,
  encodeVersion,
  ReplyDecoder,
  RequestDecoder,
  type BodyKind,
  type RequestEvent,
} from '../../src/control/framing';
import { decodeMessage, encodeMessage } from '../../src/control/schema';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** The body of §3.3: a queue list of 10 DEFER entries from example.org. */
const EXAMPLE_BODY = '0a150a0208015a0f120d0a0b6578616d706c652e6f72671a02100a';
const EXAMPLE_FRAME = `0606 46 1b00000000000000 ${EXAMPLE_BODY}`;

const KINDS: Record<string, BodyKind> = { q: 'none', r: 'none', F: 'body', z: 'body' };
const decoder = (maxBody = 1024) => new RequestDecoder({ bodyKind: (c) => KINDS[c], maxBody });

function drain(d: RequestDecoder): RequestEvent[] {
  const out: RequestEvent[] = [];
  for (let ev = d.next(); ev.kind !== 'incomplete'; ev = d.next()) out.push(ev);
  return out;
}

test('§3.3: the queue-list example frame is reproduced byte for byte', () => {
  const body = encodeMessage('QueueListRequest', { conditions: { queues: [{ queue: 'DEFER' }], senders: [{ domain: { value: 'example.org' } }] }, paging: { limit: 10 } });
  assert.equal(body.toString('hex'), EXAMPLE_BODY);
  const frame = Buffer.concat([encodeVersion({ major: 6, minor: 6 }), encodeRequest('F', body)]);
  assert.deepEqual(frame, hex(EXAMPLE_FRAME));
});

test('§3.3: process stats request is 06 06 71 and decodes as a body-less q', () => {
  assert.deepEqual(Buffer.concat([encodeVersion({ major: 6, minor: 6 }), encodeRequest('q')]), hex('060671'));
  const d = decoder();
  d.push(hex('060671'));
  assert.deepEqual(drain(d), [{ kind: 'request', command: 'q', version: { major: 6, minor: 6 } }]);
});

test('the example frame decodes one byte at a time into the documented request', () => {
  const d = decoder();
  const events: RequestEvent[] = [];
  for (const byte of hex(EXAMPLE_FRAME)) {
    d.push(Buffer.from([byte]));
    events.push(...drain(d));
  }
  assert.equal(events.length, 1);
  const ev = events[0];
  assert.ok(ev.kind === 'request');
  assert.equal(ev.command, 'F');
  assert.equal(ev.body?.toString('hex'), EXAMPLE_BODY);
  const req = decodeMessage('QueueListRequest', ev.body!, 'json');
  assert.deepEqual(req, { conditions: { queues: [{ queue: 'DEFER' }], senders: [{ domain: { value: 'example.org' } }] }, paging: { limit: '10' } });
});

test('several requests in one chunk come out in order', () => {
  const d = decoder();
  d.push(Buffer.concat([encodeVersion({ major: 6, minor: 4 }), encodeRequest('q'), encodeRequest('z', Buffer.from('ab')), encodeRequest('r')]));
  const evs = drain(d);
  assert.deepEqual(
    evs.map((e) => (e.kind === 'request' ? `${e.command}:${e.body?.toString() ?? '-'}` : e.kind)),
    ['q:-', 'z:ab', 'r:-'],
  );
});

test('a zero-length body is a request with an empty body', () => {
  const d = decoder();
  d.push(hex('0606 7a 0000000000000000'));
  const [ev] = drain(d);
  assert.ok(ev.kind === 'request');
  assert.equal(ev.body?.length, 0);
});

test('older clients that repeat the version before each request are understood', () => {
  const d = decoder();
  d.push(hex('0506 71 0506 71 0607 72'));
  const evs = drain(d);
  assert.deepEqual(evs.map((e) => e.kind === 'request' && `${e.command}@${e.version.major}.${e.version.minor}`), ['q@5.6', 'q@5.6', 'r@6.7']);
});

test('ASCII digit version bytes ("6" "6") are accepted at the start of a connection', () => {
  const d = decoder();
  d.push(Buffer.from('66q', 'latin1'));
  assert.deepEqual(drain(d), [{ kind: 'request', command: 'q', version: { major: 6, minor: 6 } }]);
});

test('bad version bytes are a fatal error', () => {
  for (const bytes of ['71 71', '00 00', '04 09', '36 71']) {
    const d = decoder();
    d.push(hex(bytes));
    const [ev, ...rest] = drain(d);
    assert.ok(ev.kind === 'error' && ev.fatal, `for ${bytes}`);
    assert.match(ev.reason, /version/);
    assert.equal(rest.length, 0);
    assert.equal(d.closed, true);
  }
});

test('an unknown command is fatal: the bytes after it cannot be framed', () => {
  const d = decoder();
  d.push(hex('0606 51 0200000000000000 7171'));
  const evs = drain(d);
  assert.equal(evs.length, 1);
  assert.ok(evs[0].kind === 'error' && evs[0].fatal);
  assert.equal(evs[0].reason, "unknown command 'Q' (0x51)");
  d.push(hex('71'));
  assert.deepEqual(drain(d), []);
});

test('an oversize body is refused, skipped exactly, and the next request decodes', () => {
  const d = decoder(4);
  d.push(Buffer.concat([hex('0606'), encodeRequest('z', Buffer.alloc(10, 0x71)).subarray(0, 12)]));
  const [err] = drain(d);
  assert.ok(err.kind === 'error' && !err.fatal);
  assert.equal(err.reason, 'request body of 10 bytes exceeds the limit of 4 bytes');
  assert.equal(err.command, 'z');
  // The rest of the oversize body is made of 'q' bytes: none of them may be read as a command.
  d.push(Buffer.alloc(6, 0x71));
  assert.deepEqual(drain(d), []);
  d.push(Buffer.concat([Buffer.alloc(1, 0x71), encodeRequest('r')]));
  assert.deepEqual(drain(d), [{ kind: 'request', command: 'r', version: { major: 6, minor: 6 } }]);
});

test('a length beyond 2^53 is fatal', () => {
  const d = decoder();
  d.push(hex('0606 7a ffffffffffffffff'));
  const [ev] = drain(d);
  assert.ok(ev.kind === 'error' && ev.fatal);
});

test('replies: + and E frames with u64 lengths, decoded across chunks', () => {
  const frames = Buffer.concat([encodeReply('+'), encodeReply('E', 'no such thing'), encodeReply('+', Buffer.from([1, 2, 3]))]);
  assert.deepEqual(frames.subarray(0, 9), hex('2b 0000000000000000'));
  assert.deepEqual(frames.subarray(9, 18), hex('45 0d00000000000000'));
  const d = new ReplyDecoder();
  const out: string[] = [];
  for (let i = 0; i < frames.length; i += 5) {
    d.push(frames.subarray(i, i + 5));
    for (let ev = d.next(); ev.kind !== 'incomplete'; ev = d.next()) {
      assert.ok(ev.kind === 'reply');
      out.push(`${ev.status}${ev.payload.toString('hex')}`);
    }
  }
  assert.deepEqual(out, ['+', `E${Buffer.from('no such thing').toString('hex')}`, '+010203']);
});

test('replies of 2^48 bytes or more are refused as Halon clients do', () => {
  const d = new ReplyDecoder();
  d.push(hex('2b 0000000000000100'));
  assert.deepEqual(d.next(), { kind: 'error', reason: 'Too large response', fatal: true });
});

test('an unknown reply status is an error', () => {
  const d = new ReplyDecoder();
  d.push(hex('58 0000000000000000'));
  const ev = d.next();
  assert.ok(ev.kind === 'error');
  assert.match(ev.reason, /unexpected reply status 'X'/);
});

test('commands must be one printable character', () => {
  assert.throws(() => encodeRequest('qq'), RangeError);
  assert.throws(() => encodeRequest('\x05'), RangeError);
});
