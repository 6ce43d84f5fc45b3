import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIPv6, parseProxyHeader } from '../../src/smtp/proxy';

const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

export function proxyV2(opts: { cmd?: number; fam?: number; addr?: Buffer; tlvs?: Buffer }): Buffer {
  const body = Buffer.concat([opts.addr ?? Buffer.alloc(0), opts.tlvs ?? Buffer.alloc(0)]);
  const head = Buffer.from([0x20 | (opts.cmd ?? 1), opts.fam ?? 0x11, 0, 0]);
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIG, head, body]);
}

function v4addr(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  Buffer.from(src).copy(b, 0);
  Buffer.from(dst).copy(b, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

test('PROXY v1 TCP4 and TCP6, with bytes following the header', () => {
  const line = 'PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n';
  const buf = Buffer.from(line + 'EHLO x\r\n');
  const r = parseProxyHeader(buf);
  assert.ok('header' in r);
  assert.equal(r.consumed, line.length);
  assert.deepEqual(r.header.source, { address: '192.0.2.10', port: 56324 });
  assert.deepEqual(r.header.destination, { address: '198.51.100.1', port: 25 });
  assert.equal(buf.subarray(r.consumed).toString(), 'EHLO x\r\n');
  const r6 = parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1000 587\r\n'));
  assert.ok('header' in r6 && r6.header.family === 'TCP6' && r6.header.source?.address === '2001:db8::1');
});

test('PROXY v1 UNKNOWN keeps the real addresses', () => {
  const r = parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'));
  assert.ok('header' in r && r.header.command === 'LOCAL' && r.header.source === undefined);
});

test('PROXY v1: incomplete and malformed headers', () => {
  for (const s of ['', 'P', 'PROXY', 'PROXY TCP4 1.2.3.4', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r']) assert.ok('incomplete' in parseProxyHeader(Buffer.from(s)), s);
  for (const s of [
    'EHLO x\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n',
    'PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n',
    'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n',
    'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n',
    `PROXY TCP4 ${'1'.repeat(120)}`,
  ]) {
    assert.ok('error' in parseProxyHeader(Buffer.from(s)), s);
  }
});

test('PROXY v2 PROXY TCP4 with TLVs; LOCAL; TCP6', () => {
  const tlv = Buffer.from([0x02, 0x00, 0x03, 0x61, 0x62, 0x63]); // PP2_TYPE_AUTHORITY "abc"
  const buf = Buffer.concat([proxyV2({ addr: v4addr([192, 0, 2, 7], [10, 0, 0, 1], 40000, 25), tlvs: tlv }), Buffer.from('\x16\x03\x01')]);
  const r = parseProxyHeader(buf);
  assert.ok('header' in r);
  assert.equal(r.consumed, 16 + 12 + 6);
  assert.deepEqual(r.header.source, { address: '192.0.2.7', port: 40000 });
  assert.deepEqual(r.header.destination, { address: '10.0.0.1', port: 25 });
  assert.deepEqual(r.header.tlvs, { 2: '616263' });

  const local = parseProxyHeader(proxyV2({ cmd: 0, fam: 0 }));
  assert.ok('header' in local && local.header.command === 'LOCAL');

  const a6 = Buffer.alloc(36);
  Buffer.from('20010db8000000000000000000000001', 'hex').copy(a6, 0);
  Buffer.from('20010db8000000000000000000000002', 'hex').copy(a6, 16);
  a6.writeUInt16BE(1234, 32);
  a6.writeUInt16BE(25, 34);
  const r6 = parseProxyHeader(proxyV2({ fam: 0x21, addr: a6 }));
  assert.ok('header' in r6 && r6.header.source?.address === '2001:db8::1' && r6.header.destination?.port === 25);
});

test('PROXY v2: truncated and bad headers', () => {
  const full = proxyV2({ addr: v4addr([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) });
  for (let i = 0; i < full.length; i++) assert.ok('incomplete' in parseProxyHeader(full.subarray(0, i)), `prefix ${i}`);
  const badVersion = Buffer.from(full);
  badVersion[12] = 0x11;
  assert.ok('error' in parseProxyHeader(badVersion));
  const badCmd = Buffer.from(full);
  badCmd[12] = 0x2f;
  assert.ok('error' in parseProxyHeader(badCmd));
  assert.ok('error' in parseProxyHeader(proxyV2({ addr: Buffer.alloc(5) })), 'address block too short');
  assert.ok('error' in parseProxyHeader(proxyV2({ addr: v4addr([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), tlvs: Buffer.from([1, 0, 9, 0]) })), 'TLV overruns');
  const udp = parseProxyHeader(proxyV2({ fam: 0x12, addr: v4addr([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) }));
  assert.ok('header' in udp && udp.header.command === 'LOCAL', 'non-TCP: keep real addresses');
});

test('formatIPv6 follows RFC 5952', () => {
  assert.equal(formatIPv6(Buffer.from('20010db8000000000000000000000001', 'hex')), '2001:db8::1');
  assert.equal(formatIPv6(Buffer.alloc(16)), '::');
  assert.equal(formatIPv6(Buffer.from('20010db8000100000001000000000001', 'hex')), '2001:db8:1:0:1::1');
  assert.equal(formatIPv6(Buffer.from('20010db8aaaabbbbccccddddeeeeffff', 'hex')), '2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff');
});
