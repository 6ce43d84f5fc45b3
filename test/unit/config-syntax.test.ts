import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compileMatch,
  parseDuration,
  parseRate,
  parseSize,
  validateMatch,
  ValueSyntaxError,
  type Matcher,
} from '../../src/config/syntax';

/** assert.throws with a ValueSyntaxError whose message matches `re`. */
function rejects(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ValueSyntaxError && re.test(e.message));
}

test('durations: plain seconds and ?d?h?m?s', () => {
  const cases: Array<[string | number, number]> = [
    [90, 90],
    [0, 0],
    [1.5, 1.5],
    ['90', 90],
    [' 90 ', 90],
    ['45s', 45],
    ['1m', 60],
    ['1h30m', 5400],
    ['2d', 172800],
    ['1d2h3m4s', 93784],
    ['5m30s', 330],
    ['0s', 0],
  ];
  for (const [input, seconds] of cases) assert.equal(parseDuration(input), seconds, `duration ${input}`);
});

test('durations: bad input names the value and the accepted forms', () => {
  for (const bad of ['', 'abc', '1x', '30m1h', '1h 30m', '-5', '1.5h', 'h', '5 minutes']) {
    rejects(() => parseDuration(bad), /invalid duration .*1h30m/);
  }
  rejects(() => parseDuration(-1), />= 0/);
  rejects(() => parseDuration(Number.NaN), />= 0/);
  rejects(() => parseDuration(Number.POSITIVE_INFINITY), />= 0/);
  rejects(() => parseDuration(true as unknown as string), /string or a number/);
});

test('sizes: binary units and plain bytes', () => {
  const cases: Array<[string | number, number]> = [
    [100, 100],
    ['100', 100],
    ['100B', 100],
    ['512KiB', 512 * 1024],
    ['10MiB', 10 * 1024 * 1024],
    ['10mib', 10 * 1024 * 1024],
    ['10 MiB', 10 * 1024 * 1024],
    ['1GiB', 1024 ** 3],
    ['1TiB', 1024 ** 4],
    ['1.5KiB', 1536],
    [0, 0],
    [10.7, 10],
  ];
  for (const [input, bytes] of cases) assert.equal(parseSize(input), bytes, `size ${input}`);
});

test('sizes: decimal units are refused with a hint, unknown units named', () => {
  for (const bad of ['10MB', '10KB', '1GB', '1k', '2TB']) rejects(() => parseSize(bad), /decimal unit .* KiB, MiB, GiB, TiB/);
  rejects(() => parseSize('10XB'), /unknown unit XB/);
  rejects(() => parseSize('MiB'), /invalid size "MiB"/);
  rejects(() => parseSize('-1KiB'), /invalid size/);
  rejects(() => parseSize(-5), />= 0/);
  rejects(() => parseSize(''), /invalid size/);
});

test('rates: messages/seconds and plain per-second numbers', () => {
  assert.deepEqual(parseRate('1000/60'), { messages: 1000, seconds: 60 });
  assert.deepEqual(parseRate('30/60'), { messages: 30, seconds: 60 });
  assert.deepEqual(parseRate(' 5 / 1 '), { messages: 5, seconds: 1 });
  assert.deepEqual(parseRate('1/0.5'), { messages: 1, seconds: 0.5 });
  assert.deepEqual(parseRate(10), { messages: 10, seconds: 1 });
  assert.deepEqual(parseRate('10'), { messages: 10, seconds: 1 });
  assert.deepEqual(parseRate('0/60'), { messages: 0, seconds: 60 });
});

test('rates: bad input', () => {
  rejects(() => parseRate('10/0'), /greater than 0/);
  for (const bad of ['abc', '10/', '/60', '1.5/60', '10/60/2', '10 per minute', '']) rejects(() => parseRate(bad), /invalid rate .*1000\/60/);
  rejects(() => parseRate(1.5), /whole number/);
  rejects(() => parseRate(-1), /whole number/);
});

function check(m: Matcher, yes: string[], no: string[]): void {
  for (const v of yes) assert.equal(m(v), true, `should match ${v}`);
  for (const v of no) assert.equal(m(v), false, `should not match ${v}`);
}

test('match: plain strings are exact and case-insensitive', () => {
  check(compileMatch('Gmail.com'), ['gmail.com', 'GMAIL.COM', 'Gmail.com'], ['mail.gmail.com', 'gmail.co', '']);
  check(compileMatch(123), ['123'], ['1234']);
  check(compileMatch(''), [''], ['x']);
});

test('match: /regex/ is case-sensitive unless /i', () => {
  check(compileMatch('/^mx\\d+\\.example\\.com$/'), ['mx1.example.com'], ['MX1.EXAMPLE.COM', 'mx.example.com']);
  check(compileMatch('/^mx\\d+\\.example\\.com$/i'), ['MX12.Example.com'], ['mxa.example.com']);
  check(compileMatch('/a\\/b/'), ['xa/by'], ['ab']);
});

test('match: bad regular expressions', () => {
  rejects(() => compileMatch('/abc'), /write it as \/pattern\//);
  rejects(() => compileMatch('//'), /write it as/);
  rejects(() => compileMatch('/(/'), /invalid regular expression "\/\(\/"/);
  rejects(() => compileMatch('/a/g'), /flags "g".*only i, m, s and u/);
  rejects(() => compileMatch('/a/x'), /flags "x"/);
});

test('match: *.domain matches names below the domain, not the domain itself', () => {
  check(compileMatch('*.example.com'), ['mx.example.com', 'a.b.Example.COM'], ['example.com', 'badexample.com', 'example.com.evil', '.example.com']);
});

test('match: bad wildcards', () => {
  for (const bad of ['*', '*example.com', 'mx*.example.com', '*.*.example.com', '*.']) {
    rejects(() => compileMatch(bad), /only allowed as a leading label/);
  }
});

test('match: IPv4 and IPv6 addresses and networks', () => {
  check(compileMatch('192.0.2.1'), ['192.0.2.1', '::ffff:192.0.2.1'], ['192.0.2.10', '192.0.2.1x', 'example.com']);
  check(compileMatch('192.0.2.0/24'), ['192.0.2.0', '192.0.2.255', '::FFFF:192.0.2.7'], ['192.0.3.1', '10.0.0.1', '2001:db8::1']);
  check(compileMatch('0.0.0.0/0'), ['8.8.8.8'], ['::1']);
  check(compileMatch('2001:db8::1'), ['2001:db8::1', '2001:DB8:0:0::1', '2001:0db8:0000:0000:0000:0000:0000:0001'], ['2001:db8::2', '192.0.2.1']);
  check(compileMatch('2001:db8::/32'), ['2001:db8:ffff::1'], ['2001:db9::1', '::1']);
  check(compileMatch('192.0.2.77/24'), ['192.0.2.1'], ['192.0.3.1']);
});

test('match: bad networks', () => {
  rejects(() => compileMatch('192.0.2.0/33'), /prefix length must be 0-32/);
  rejects(() => compileMatch('2001:db8::/129'), /prefix length must be 0-128/);
  rejects(() => compileMatch('192.0.2.0/x'), /prefix length/);
});

test('match: a list matches when any element matches', () => {
  const m = compileMatch(['gmail.com', '*.google.com', '/^yahoo\\./', '10.0.0.0/8', '2001:db8::/32']);
  check(m, ['GMAIL.com', 'aspmx.l.google.com', 'yahoo.co.uk', '10.1.2.3', '2001:db8::5'], ['google.com', 'hotmail.com', '11.0.0.1', '::1']);
});

test('match: bad lists', () => {
  rejects(() => compileMatch([]), /empty list/);
  rejects(() => compileMatch([['a']]), /cannot contain another list/);
  rejects(() => compileMatch(['ok', '/(/']), /invalid regular expression/);
  rejects(() => compileMatch({ a: 1 }), /must be a string, a number or a list/);
  rejects(() => compileMatch(true), /must be a string, a number or a list/);
});

test('match: &grouping references resolve through opts.groupings', () => {
  const google = compileMatch(['*.google.com', '*.googlemail.com']);
  const groupings = new Map([['google', google]]);
  const m = compileMatch(['&google', 'example.com'], { groupings });
  check(m, ['alt1.aspmx.l.google.com', 'example.com'], ['yahoo.com']);
  rejects(() => compileMatch('&microsoft', { groupings }), /unknown grouping &microsoft/);
  rejects(() => compileMatch('&google'), /unknown grouping &google/);
  rejects(() => compileMatch('&'), /invalid grouping reference/);
  rejects(() => compileMatch('&a b'), /invalid grouping reference/);
});

test('match: @list references are refused rather than read literally', () => {
  rejects(() => compileMatch('@mylist'), /list references like "@mylist" are not supported/);
});

test('validateMatch checks syntax and, when ids are given, grouping references', () => {
  validateMatch(['&anything', '*.example.com']);
  validateMatch('&google', new Set(['google']));
  rejects(() => validateMatch('&other', new Set(['google'])), /unknown grouping &other/);
  rejects(() => validateMatch('*bad'), /leading label/);
  validateMatch(['192.0.2.1', '2001:db8::/32', '/^10\\./', '&g'], undefined, { ip: true });
  rejects(() => validateMatch(['192.0.2.1', 'mx.example.com'], undefined, { ip: true }), /"mx.example.com" is not an IP address or network/);
  rejects(() => validateMatch('*.example.com', undefined, { ip: true }), /"\*.example.com" is not an IP address/);
});

test('a compiled matcher never throws on odd input', () => {
  const m = compileMatch(['a', '10.0.0.0/8', '*.x.org', '/y/']);
  for (const v of ['', ' ', '::', '999.1.1.1', '\u0000', 'x'.repeat(10000)]) assert.equal(typeof m(v), 'boolean');
  assert.equal(m(undefined as unknown as string), false);
});
