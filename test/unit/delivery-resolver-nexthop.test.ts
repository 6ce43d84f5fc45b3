/**
 * Next-hop selection against a DNS responder on loopback: MX order, seeded shuffle among equal
 * preferences, null MX, NXDOMAIN, implicit MX, temporary vs permanent failures, IP families,
 * mx_include/mx_exclude, address literals and fixed servers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from '../../src/delivery/resolver';
import { resolveNextHops, resolveServer, seededRandom, shuffle, parseAddressLiteral, type NextHopResult, type NextHop } from '../../src/delivery/nexthop';
import { TestDnsServer, type Zone } from '../support/dns-server';

const zone: Zone = {
  'pref.test': { MX: [{ preference: 20, exchange: 'mx-b.pref.test' }, { preference: 10, exchange: 'mx-a.pref.test' }, { preference: 30, exchange: 'mx-c.pref.test' }] },
  'mx-a.pref.test': { A: ['127.0.0.1'], AAAA: ['::1'] },
  'mx-b.pref.test': { A: ['127.0.0.2'] },
  'mx-c.pref.test': { AAAA: ['::1'] },
  'equal.test': {
    MX: [
      { preference: 10, exchange: 'e1.equal.test' }, { preference: 10, exchange: 'e2.equal.test' },
      { preference: 10, exchange: 'e3.equal.test' }, { preference: 20, exchange: 'e4.equal.test' },
    ],
  },
  'e1.equal.test': { A: ['127.0.2.1'] },
  'e2.equal.test': { A: ['127.0.2.2'] },
  'e3.equal.test': { A: ['127.0.2.3'] },
  'e4.equal.test': { A: ['127.0.2.4'] },
  'nullmx.test': { MX: [{ preference: 0, exchange: '.' }], A: ['127.0.0.1'] },
  'halfnull.test': { MX: [{ preference: 0, exchange: '.' }, { preference: 10, exchange: 'mx.halfnull.test' }] },
  'mx.halfnull.test': { A: ['127.0.0.3'] },
  'implicit.test': { A: ['127.0.0.7'], AAAA: ['::1'] },
  'empty.test': {},
  'deadmx.test': { MX: [{ preference: 10, exchange: 'gone.deadmx.test' }] },
  'sfmx.test': { servfail: true },
  'sfhost.test': { MX: [{ preference: 10, exchange: 'broken.sfhost.test' }] },
  'broken.sfhost.test': { servfail: true },
  'partial.test': { MX: [{ preference: 10, exchange: 'broken.sfhost.test' }, { preference: 20, exchange: 'ok.partial.test' }] },
  'ok.partial.test': { A: ['127.0.0.9'] },
  'v6only.test': { MX: [{ preference: 10, exchange: 'mx.v6only.test' }] },
  'mx.v6only.test': { AAAA: ['::1'] },
  'dual.test': { MX: [{ preference: 10, exchange: 'mx.dual.test' }] },
  'mx.dual.test': { A: ['127.0.3.1', '127.0.3.2', '127.0.3.3'], AAAA: ['::1'] },
  'filter.test': { MX: [{ preference: 10, exchange: 'mx1.filter.test' }, { preference: 20, exchange: 'relay.other.test' }] },
  'mx1.filter.test': { A: ['127.0.4.1'] },
  'relay.other.test': { A: ['127.0.4.2'] },
  'many.test': { MX: Array.from({ length: 15 }, (_, i) => ({ preference: i, exchange: `h${i}.many.test` })) },
  ...Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`h${i}.many.test`, { A: [`127.0.5.${i + 1}`] }])),
  'relay.test': { A: ['127.0.0.1'], AAAA: ['::1'] },
};

let dns: TestDnsServer;
let resolver: Resolver;

before(async () => {
  dns = await TestDnsServer.start(zone);
  resolver = new Resolver({ servers: [dns.address], timeoutMs: 300, tries: 1 });
});

after(() => dns.close());

function hops(res: NextHopResult): NextHop[] {
  assert.ok('hops' in res, `expected hops, got ${JSON.stringify(res)}`);
  return res.hops;
}

function error(res: NextHopResult): [string, boolean] {
  assert.ok('error' in res, `expected an error, got ${JSON.stringify(res)}`);
  return [res.error.dns, res.error.temporary];
}

test('MX hosts are ordered by preference, each with its addresses, IPv6 first by default', async () => {
  const h = hops(await resolveNextHops('Pref.Test', resolver));
  assert.deepEqual(h, [
    { mx: 'mx-a.pref.test', host: 'mx-a.pref.test', preference: 10, addresses: ['::1', '127.0.0.1'], port: 25 },
    { mx: 'mx-b.pref.test', host: 'mx-b.pref.test', preference: 20, addresses: ['127.0.0.2'], port: 25 },
    { mx: 'mx-c.pref.test', host: 'mx-c.pref.test', preference: 30, addresses: ['::1'], port: 25 },
  ]);
  const v4first = hops(await resolveNextHops('pref.test', resolver, { preferIpv6: false, port: 2525 }));
  assert.deepEqual(v4first[0].addresses, ['127.0.0.1', '::1']);
  assert.ok(v4first.every((x) => x.port === 2525));
});

test('equal preferences are shuffled deterministically by seed, and rotate across retries', async () => {
  const order = async (seed: string, retry: number) =>
    hops(await resolveNextHops('equal.test', resolver, { seed, retry })).map((x) => x.mx);
  const seed = '0f8e0a4c-5a7e-4a53-9a39-1f4ee2d1c0aa';
  const first = await order(seed, 0);
  assert.deepEqual(await order(seed, 0), first, 'same seed and retry: same order');
  assert.equal(first[3], 'e4.equal.test', 'the higher preference stays last');
  assert.deepEqual([...first.slice(0, 3)].sort(), ['e1.equal.test', 'e2.equal.test', 'e3.equal.test']);
  const seen = new Set<string>();
  for (let retry = 0; retry < 12; retry++) seen.add((await order(seed, retry)).slice(0, 3).join(','));
  assert.ok(seen.size >= 3, `retries rotate the equal-preference hosts (saw ${seen.size} orders)`);
});

test('an injected random source decides the order when there is no seed', async () => {
  const alwaysZero = () => 0; // Fisher-Yates with 0 rotates left: e2, e3, e1
  const h = hops(await resolveNextHops('equal.test', resolver, { random: alwaysZero }));
  assert.deepEqual(h.map((x) => x.mx), ['e2.equal.test', 'e3.equal.test', 'e1.equal.test', 'e4.equal.test']);
});

test('addresses within a family rotate with the seed too', async () => {
  const seen = new Set<string>();
  for (let retry = 0; retry < 12; retry++) {
    const [h] = hops(await resolveNextHops('dual.test', resolver, { seed: 'tx', retry }));
    assert.equal(h.addresses[0], '::1');
    assert.deepEqual(h.addresses.slice(1).sort(), ['127.0.3.1', '127.0.3.2', '127.0.3.3']);
    seen.add(h.addresses.join(','));
  }
  assert.ok(seen.size >= 2);
});

test('a null MX is a permanent nullmx failure, even though the domain has an A record', async () => {
  const res = await resolveNextHops('nullmx.test', resolver);
  assert.deepEqual(error(res), ['nullmx', false]);
});

test('"." mixed with real MX records is ignored and the real ones are used', async () => {
  const h = hops(await resolveNextHops('halfnull.test', resolver));
  assert.deepEqual(h.map((x) => [x.mx, x.addresses]), [['mx.halfnull.test', ['127.0.0.3']]]);
});

test('NXDOMAIN for the recipient domain is a permanent nxdomain failure', async () => {
  assert.deepEqual(error(await resolveNextHops('no-such-domain.test', resolver)), ['nxdomain', false]);
});

test('no MX records: the domain itself is the implicit MX (RFC 5321 §5.1)', async () => {
  const h = hops(await resolveNextHops('implicit.test', resolver));
  assert.deepEqual(h, [{ mx: '', host: 'implicit.test', preference: 0, addresses: ['::1', '127.0.0.7'], port: 25 }]);
});

test('no MX and no addresses is a permanent nodata failure; MX hosts that do not exist a permanent nxdomain', async () => {
  assert.deepEqual(error(await resolveNextHops('empty.test', resolver)), ['nodata', false]);
  assert.deepEqual(error(await resolveNextHops('deadmx.test', resolver)), ['nxdomain', false]);
});

test('SERVFAIL on the MX or on every MX host is a temporary failure', async () => {
  assert.deepEqual(error(await resolveNextHops('sfmx.test', resolver)), ['other', true]);
  assert.deepEqual(error(await resolveNextHops('sfhost.test', resolver)), ['other', true]);
});

test('a host whose look-up fails is skipped when another MX host resolves', async () => {
  const res = await resolveNextHops('partial.test', resolver);
  assert.deepEqual(hops(res).map((x) => x.mx), ['ok.partial.test']);
  assert.ok('skipped' in res);
  assert.deepEqual(res.skipped.map((s) => s.host), ['broken.sfhost.test']);
});

test('with IPv6 disabled, IPv6 addresses are dropped; IPv6-only destinations are a temporary ipfamily failure', async () => {
  const h = hops(await resolveNextHops('dual.test', resolver, { ipv6: false }));
  assert.ok(h[0].addresses.every((a) => a.startsWith('127.')), 'only IPv4');
  assert.deepEqual(error(await resolveNextHops('v6only.test', resolver, { ipv6: false })), ['ipfamily', true]);
  assert.deepEqual(error(await resolveNextHops('[IPv6:::1]', resolver, { ipv6: false })), ['ipfamily', true]);
  assert.deepEqual(hops(await resolveNextHops('v6only.test', resolver))[0].addresses, ['::1']);
});

test('mx_include and mx_exclude filter MX hosts by exact name or *.domain', async () => {
  const inc = hops(await resolveNextHops('filter.test', resolver, { mxInclude: ['*.other.test'] }));
  assert.deepEqual(inc.map((x) => x.mx), ['relay.other.test']);
  const exc = hops(await resolveNextHops('filter.test', resolver, { mxExclude: ['MX1.filter.test'] }));
  assert.deepEqual(exc.map((x) => x.mx), ['relay.other.test']);
  const both = await resolveNextHops('filter.test', resolver, { mxInclude: ['*.filter.test'], mxExclude: ['mx1.filter.test'] });
  assert.deepEqual(error(both), ['excluded', false]);
  const wildcardIsNotApex = await resolveNextHops('implicit.test', resolver, { mxInclude: ['*.implicit.test'] });
  assert.deepEqual(error(wildcardIsNotApex), ['excluded', false], 'the implicit MX is matched by the domain name');
  const implicitOk = hops(await resolveNextHops('implicit.test', resolver, { mxInclude: ['implicit.test'] }));
  assert.equal(implicitOk.length, 1);
});

test('address literals are delivered to directly, without DNS', async () => {
  dns.resetCounts();
  assert.deepEqual(hops(await resolveNextHops('[127.0.0.1]', resolver)), [{ mx: '', host: '', preference: 0, addresses: ['127.0.0.1'], port: 25 }]);
  assert.deepEqual(hops(await resolveNextHops('[IPv6:::1]', resolver))[0].addresses, ['::1']);
  assert.deepEqual(hops(await resolveNextHops('[ipv6:::1]', resolver, { mxExclude: ['*.test'] }))[0].addresses, ['::1']);
  for (const bad of ['[999.1.1.1]', '[::1]', '[IPv6:127.0.0.1]', '[hostname]']) {
    assert.deepEqual(error(await resolveNextHops(bad, resolver)), ['other', false], bad);
  }
  assert.equal(dns.count(), 0);
  assert.equal(parseAddressLiteral('[IPv6:2001:DB8::1]'), '2001:db8::1');
  assert.equal(parseAddressLiteral('192.0.2.1'), undefined);
});

test('an invalid recipient domain is a permanent failure', async () => {
  assert.deepEqual(error(await resolveNextHops('a..b', resolver)), ['other', false]);
});

test('at most maxHosts MX hosts are resolved', async () => {
  dns.resetCounts();
  const h = hops(await resolveNextHops('many.test', resolver, { maxHosts: 3 }));
  assert.deepEqual(h.map((x) => x.mx), ['h0.many.test', 'h1.many.test', 'h2.many.test']);
  assert.equal(dns.count('h3.many.test'), 0);
  assert.equal(hops(await resolveNextHops('many.test', resolver)).length, 10, 'default 10');
});

test('a fixed server is an IP address or a name looked up as A/AAAA, never MX', async () => {
  assert.deepEqual(hops(await resolveServer('127.0.0.1', 2525, resolver)), [{ mx: '127.0.0.1', host: '', preference: 0, addresses: ['127.0.0.1'], port: 2525 }]);
  assert.deepEqual(hops(await resolveServer('[::1]', 2525, resolver))[0].addresses, ['::1']);
  dns.resetCounts();
  const named = hops(await resolveServer('Relay.Test', 587, resolver));
  assert.deepEqual(named, [{ mx: 'relay.test', host: 'relay.test', preference: 0, addresses: ['::1', '127.0.0.1'], port: 587 }]);
  assert.equal(dns.count('relay.test', 'MX'), 0);
  assert.deepEqual(hops(await resolveServer('localhost', 25, resolver, { ipv6: false }))[0].addresses, ['127.0.0.1']);
  assert.deepEqual(error(await resolveServer('::1', 25, resolver, { ipv6: false })), ['ipfamily', true]);
});

test('a fixed server that does not resolve is a temporary failure (operator configuration)', async () => {
  assert.deepEqual(error(await resolveServer('missing.test', 25, resolver)), ['nxdomain', true]);
  assert.deepEqual(error(await resolveServer('empty.test', 25, resolver)), ['nodata', true]);
});

test('seededRandom is a reproducible stream in [0, 1); shuffle keeps every element', () => {
  const a = seededRandom('seed');
  const b = seededRandom('seed');
  const xs = Array.from({ length: 20 }, () => a());
  assert.deepEqual(Array.from({ length: 20 }, () => b()), xs);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  assert.notDeepEqual(Array.from({ length: 20 }, seededRandom('other')), xs);
  assert.deepEqual(shuffle([1, 2, 3, 4, 5], seededRandom('s')).sort(), [1, 2, 3, 4, 5]);
});
