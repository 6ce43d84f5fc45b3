import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommand } from '../../src/smtp/codec';
import { BAD_EOL, BdatReader, countReceived, DataReader, LineReader, TOO_LONG, type LineResult } from '../../src/smtp/framing';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function drain(r: LineReader): Array<string | symbol | LineResult> {
  const out: Array<string | LineResult> = [];
  for (let x = r.next(); x !== null; x = r.next()) out.push(Buffer.isBuffer(x) ? x.toString('latin1') : x);
  return out;
}

test('LineReader yields CRLF lines across chunk boundaries', () => {
  const r = new LineReader(512);
  r.push(b('EHLO a\r\nMAIL FROM:<a@b'));
  assert.deepEqual(drain(r), ['EHLO a']);
  r.push(b('.example>\r'));
  assert.deepEqual(drain(r), []);
  r.push(b('\nRCPT TO:<c@d.example>\r\n'));
  assert.deepEqual(drain(r), ['MAIL FROM:<a@b.example>', 'RCPT TO:<c@d.example>']);
  assert.equal(r.buffered, 0);
});

test('LineReader refuses bare LF and bare CR in command lines', () => {
  const r = new LineReader(512);
  r.push(b('NOOP\nNOOP\rx\r\nNOOP\r\n\n'));
  assert.deepEqual(drain(r), [BAD_EOL, BAD_EOL, 'NOOP', BAD_EOL]);
});

test('LineReader: a too-long line yields tooLong once, then resyncs at the next line end', () => {
  const r = new LineReader(10);
  r.push(b('12345678\r\n'));
  assert.deepEqual(drain(r), ['12345678'], 'exactly the limit including CRLF is fine');
  r.push(b('123456789\r\nNOOP\r\n'));
  assert.deepEqual(drain(r), [TOO_LONG, 'NOOP']);
  r.push(b('x'.repeat(25)));
  assert.deepEqual(drain(r), [TOO_LONG]);
  assert.equal(r.buffered, 0, 'nothing of the long line is kept');
  r.push(b('y'.repeat(30)));
  assert.deepEqual(drain(r), []);
  r.push(b('zz\r\nQUIT\r\n'));
  assert.deepEqual(drain(r), ['QUIT']);
});

test('LineReader.takeRest hands over the unread bytes', () => {
  const r = new LineReader(512);
  r.push(b('DATA\r\nSubject: x\r\n'));
  assert.deepEqual(r.next(), b('DATA'));
  assert.equal(r.takeRest().toString(), 'Subject: x\r\n');
  assert.equal(r.next(), null);
});

interface DataOutcome {
  status: string;
  body: string;
  rest: string;
}

/** Feed `chunks` to a DataReader; the outcome once the end marker is seen (or 'open'). */
function runData(chunks: Buffer[], maxsize = 1 << 20): DataOutcome {
  const r = new DataReader(maxsize);
  for (let i = 0; i < chunks.length; i++) {
    const rest = r.feed(chunks[i]);
    if (rest !== null) {
      const after = Buffer.concat([rest, ...chunks.slice(i + 1)]);
      return { status: r.status(), body: r.status() === 'ok' ? r.body().toString('latin1') : '', rest: after.toString('latin1') };
    }
  }
  return { status: 'open', body: '', rest: '' };
}

function splits(s: string): Buffer[][] {
  const buf = b(s);
  const out: Buffer[][] = [[buf]];
  for (let i = 1; i < buf.length; i++) out.push([buf.subarray(0, i), buf.subarray(i)]);
  for (let i = 1; i < buf.length; i++) for (let j = i + 1; j < buf.length; j++) out.push([buf.subarray(0, i), buf.subarray(i, j), buf.subarray(j)]);
  out.push([...buf].map((x) => Buffer.from([x])));
  return out;
}

test('DataReader: dot-unstuffing and the end marker, split at every position (2 and 3 pieces, bytewise)', () => {
  const wire = 'Subject: t\r\n\r\n..leading dot\r\n.\r\nmiddle\r\n...\r\nend\r\n.\r\nQUIT\r\n';
  // ".\r\nmiddle" is NOT the end: the first "\r\n.\r\n" after the header is it.
  const expected = { status: 'ok', body: 'Subject: t\r\n\r\n.leading dot\r\n', rest: 'middle\r\n...\r\nend\r\n.\r\nQUIT\r\n' };
  for (const chunks of splits(wire)) assert.deepEqual(runData(chunks), expected, chunks.map((c) => JSON.stringify(c.toString())).join(' | '));
});

test('DataReader: stuffed dots, empty message, dot at the very start', () => {
  const wire = '..\r\n.x\r\n..\r\n.\r\n';
  for (const chunks of splits(wire)) assert.deepEqual(runData(chunks), { status: 'ok', body: '.\r\nx\r\n.\r\n', rest: '' });
  for (const chunks of splits('.\r\nNOOP\r\n')) assert.deepEqual(runData(chunks), { status: 'ok', body: '', rest: 'NOOP\r\n' });
});

test('DataReader: smuggling variants never end DATA, and mark the message bare-EOL', () => {
  const smuggled = ['a\n.\nMAIL FROM:<x@y>\r\n', 'a\r.\r\nMAIL', 'a\n.\r\nMAIL', 'a\r\n.\nMAIL', 'a\r\n.\rMAIL', 'a\r\n.\r\r\nMAIL'];
  for (const s of smuggled) {
    for (const chunks of splits(s)) assert.equal(runData(chunks).status, 'open', `${JSON.stringify(s)} must not end DATA`);
    const outcome = runData([b(s), b('\r\n.\r\n')]);
    assert.equal(outcome.status, 'badEol', `${JSON.stringify(s)} is refused at the real end`);
  }
});

test('DataReader: bare LF or CR anywhere refuses the message, CRLF split across chunks does not', () => {
  for (const s of ['line\nmore\r\n.\r\n', 'line\rmore\r\n.\r\n', 'line\r\n\nx\r\n.\r\n']) {
    for (const chunks of splits(s)) assert.equal(runData(chunks).status, 'badEol', JSON.stringify(s));
  }
  for (const chunks of splits('a\r\nb\r\n.\r\n')) assert.equal(runData(chunks).status, 'ok');
});

test('DataReader: past maxsize the content is discarded but read to the end marker', () => {
  const big = 'x'.repeat(100) + '\r\n';
  assert.deepEqual(runData([b(big + '.\r\nNOOP\r\n')], 102), { status: 'ok', body: big, rest: 'NOOP\r\n' });
  const r = new DataReader(50);
  for (let i = 0; i < 10; i++) assert.equal(r.feed(b(big)), null);
  const rest = r.feed(b('.\r\nRSET\r\n'));
  assert.equal(rest?.toString(), 'RSET\r\n');
  assert.equal(r.status(), 'tooBig');
  assert.equal(r.size, 1020);
});

test('DataReader.body(prefix) prepends without changing the content', () => {
  const r = new DataReader(1000);
  r.feed(b('Subject: x\r\n\r\nhi\r\n.\r\n'));
  assert.equal(r.body(b('Received: y\r\n')).toString(), 'Received: y\r\nSubject: x\r\n\r\nhi\r\n');
});

test('BdatReader: exact byte counts, several chunks, LAST, leftover bytes', () => {
  const r = new BdatReader(1000);
  r.begin(5);
  assert.equal(r.feed(b('ab')), null);
  assert.equal(r.expecting, 3);
  assert.equal(r.feed(b('c\r\nBDAT 3 LAST\r\n'))?.toString(), 'BDAT 3 LAST\r\n');
  r.begin(3);
  assert.equal(r.feed(b('d\r\nQUIT\r\n'))?.toString(), 'QUIT\r\n');
  r.finish();
  assert.equal(r.status(), 'ok');
  assert.equal(r.body().toString(), 'abc\r\nd\r\n');
});

test('BdatReader: zero-size chunk, size limit, bare LF across chunks, discard mode', () => {
  const z = new BdatReader(10);
  z.begin(0);
  assert.equal(z.feed(Buffer.alloc(0))?.length, 0);

  const big = new BdatReader(10);
  big.begin(20);
  assert.ok(big.feed(b('x'.repeat(20))));
  assert.equal(big.status(), 'tooBig');

  const cr = new BdatReader(100);
  cr.begin(3);
  cr.feed(b('ab\r'));
  cr.begin(3);
  cr.feed(b('\ncd'));
  assert.equal(cr.status(), 'ok', 'CR at a chunk end followed by LF is a CRLF');
  cr.begin(2);
  cr.feed(b('\ne'));
  assert.equal(cr.status(), 'badEol');

  const trailing = new BdatReader(100);
  trailing.begin(3);
  trailing.feed(b('ab\r'));
  trailing.finish();
  assert.equal(trailing.status(), 'badEol', 'a trailing bare CR');

  const noEol = new BdatReader(100);
  noEol.begin(4);
  noEol.feed(b('abcd'));
  noEol.finish();
  assert.equal(noEol.body().toString(), 'abcd\r\n', 'a final CRLF is added');

  const d = new BdatReader(0);
  d.begin(4, true);
  assert.equal(d.feed(b('xx\nyNOOP\r\n'))?.toString(), 'NOOP\r\n');
  assert.equal(d.size, 0);
});

test('countReceived counts Received: fields in the header section only', () => {
  const msg = b('Received: a\r\nreceived: b\r\n c\r\nRECEIVED:d\r\nSubject: Received: no\r\n\r\nReceived: in body\r\n');
  assert.equal(countReceived(msg), 3);
  assert.equal(countReceived(b('X: y\r\n\r\n')), 0);
  assert.equal(countReceived(b('Received: a\r\n'), 13), 0);
});

/** Deterministic pseudo-random generator (xorshift32) so failures replay. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

test('DataReader property: any chunking of any input gives the same outcome as one chunk', () => {
  const alphabet = ['a', '.', '\r', '\n', '\r\n', '\r\n.', '.\r\n', '\r\n.\r\n', '..', 'x\r\n'];
  const rand = rng(42);
  for (let round = 0; round < 300; round++) {
    let s = '';
    const n = 1 + Math.floor(rand() * 20);
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
    s += '\r\n.\r\nTAIL';
    const whole = runData([b(s)]);
    const buf = b(s);
    const chunks: Buffer[] = [];
    for (let p = 0; p < buf.length; ) {
      const len = 1 + Math.floor(rand() * 4);
      chunks.push(buf.subarray(p, p + len));
      p += len;
    }
    assert.deepEqual(runData(chunks), whole, JSON.stringify(s));
  }
});

test('parseCommand never throws on arbitrary bytes', () => {
  const rand = rng(7);
  const prefixes = ['MAIL FROM:<', 'RCPT TO:<', 'EHLO ', 'BDAT ', 'AUTH PLAIN ', ''];
  for (let round = 0; round < 2000; round++) {
    const len = Math.floor(rand() * 80);
    const bytes = Buffer.alloc(len);
    for (let i = 0; i < len; i++) bytes[i] = Math.floor(rand() * 256);
    const line = Buffer.concat([Buffer.from(prefixes[round % prefixes.length]), bytes]);
    const cmd = parseCommand(line);
    assert.ok(typeof cmd.verb === 'string');
  }
});
