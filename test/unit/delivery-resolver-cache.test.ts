/**
 * The delivery resolver against a DNS responder on loopback: answers, error classification,
 * the cache (hits, TTL expiry, negative caching, size bound, clear), request de-duplication,
 * the concurrency limit and the stats Halon's `process-stats` shows.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver, classify, normalizeName, type ResolverOptions } from '../../src/delivery/resolver';
import { TestDnsServer } from '../support/dns-server';

let dns: TestDnsServer;

before(async () => {
  dns = await TestDnsServer.start({
    'example.test': { MX: [{ preference: 10, exchange: 'MX1.Example.Test.' }, { preference: 20, exchange: 'mx2.example.test' }], A: ['127.0.0.1'], AAAA: ['::1'] },
    'mixed-ttl.test': { A: ['127.0.0.2'], ttl: 30 },
    'cached.test': { A: ['127.0.0.3'], ttl: 30 },
    'noa.test': { MX: [{ preference: 10, exchange: 'mx.noa.test' }] },
    'broken.test': { servfail: true },
    'refused.test': { refused: true },
    'silent.test': { drop: true },
    'slow1.test': { A: ['127.0.0.11'], delayMs: 40 },
    'slow2.test': { A: ['127.0.0.12'], delayMs: 40 },
    'slow3.test': { A: ['127.0.0.13'], delayMs: 40 },
    'xn--bcher-kva.test': { A: ['127.0.0.4'] },
    'big.test': { A: Array.from({ length: 60 }, (_, i) => `127.0.1.${i + 1}`) },
    'zero-ttl.test': { A: ['127.0.0.5'], ttl: 0 },
  });
});

after(() => dns.close());

/** A resolver on the test server, short time-outs, and a clock the test moves. */
function makeResolver(opts: ResolverOptions = {}): { r: Resolver; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const r = new Resolver({ servers: [dns.address], timeoutMs: 300, tries: 1, now: () => clock.now, ...opts });
  return { r, clock };
}

test('MX, A and AAAA answers come back normalised, with TTLs', async () => {
  const { r } = makeResolver();
  assert.deepEqual(r.servers(), [dns.address]);
  const mx = await r.resolveMx('example.test');
  assert.ok(mx.ok);
  assert.deepEqual(
    [...mx.records].sort((a, b) => a.preference - b.preference),
    [{ exchange: 'mx1.example.test', preference: 10 }, { exchange: 'mx2.example.test', preference: 20 }],
  );
  assert.equal(mx.ttl, 300, 'MX answers are cached for the fixed mxTtl');
  const a = await r.resolve4('example.test');
  assert.deepEqual(a, { ok: true, records: ['127.0.0.1'], ttl: 300 });
  const aaaa = await r.resolve6('example.test');
  assert.deepEqual(aaaa, { ok: true, records: ['::1'], ttl: 300 });
  const short = await r.resolve4('mixed-ttl.test');
  assert.ok(short.ok);
  assert.equal(short.ttl, 30, 'the record TTL from the server is used');
});

test('NXDOMAIN and NODATA are permanent; SERVFAIL, REFUSED and time-outs are temporary', async () => {
  const { r } = makeResolver();
  const nx = await r.resolve4('nowhere.test');
  assert.ok(!nx.ok);
  assert.deepEqual([nx.error.kind, nx.error.temporary, nx.error.code], ['nxdomain', false, 'ENOTFOUND']);

  const nodata = await r.resolve4('noa.test');
  assert.ok(!nodata.ok);
  assert.deepEqual([nodata.error.kind, nodata.error.temporary], ['nodata', false]);

  const sf = await r.resolveMx('broken.test');
  assert.ok(!sf.ok);
  assert.deepEqual([sf.error.kind, sf.error.temporary, sf.error.code], ['other', true, 'ESERVFAIL']);

  const refused = await r.resolve4('refused.test');
  assert.ok(!refused.ok);
  assert.deepEqual([refused.error.kind, refused.error.temporary], ['other', true]);

  const timeout = await r.resolve4('silent.test');
  assert.ok(!timeout.ok);
  assert.deepEqual([timeout.error.kind, timeout.error.temporary, timeout.error.code], ['other', true, 'ETIMEOUT']);
});

test('error codes from node:dns map to Halon classes; unknown codes are temporary', () => {
  const kinds = (code: string) => {
    const e = classify(Object.assign(new Error(code), { code }));
    return [e.kind, e.temporary];
  };
  assert.deepEqual(kinds('ENOTFOUND'), ['nxdomain', false]);
  assert.deepEqual(kinds('ENODATA'), ['nodata', false]);
  assert.deepEqual(kinds('EBADNAME'), ['other', false]);
  for (const code of ['ESERVFAIL', 'ETIMEOUT', 'ECONNREFUSED', 'EREFUSED', 'EBADRESP', 'ECANCELLED', 'ESOMETHINGNEW']) {
    assert.deepEqual(kinds(code), ['other', true], code);
  }
  assert.deepEqual([classify('odd').kind, classify('odd').temporary], ['other', true]);
});

test('a cached answer is served without asking the server again, until its TTL runs out', async () => {
  const { r, clock } = makeResolver();
  dns.resetCounts();
  assert.ok((await r.resolve4('cached.test')).ok);
  clock.now += 10_000;
  const again = await r.resolve4('CACHED.test.');
  assert.deepEqual(again, { ok: true, records: ['127.0.0.3'], ttl: 20 }, 'the remaining TTL is reported');
  assert.equal(dns.count('cached.test', 'A'), 1, 'second look-up (other case, trailing dot) came from the cache');
  assert.deepEqual([r.stats().cache.hits, r.stats().cache.misses], [1, 1]);

  clock.now += 20_001;
  assert.ok((await r.resolve4('cached.test')).ok);
  assert.equal(dns.count('cached.test', 'A'), 2, 'expired entry was fetched again');
  assert.equal(r.stats().cache.expires, 1);
});

test('ttlMin and ttlMax clamp how long answers are cached; TTL 0 is not cached', async () => {
  const { r, clock } = makeResolver({ ttlMin: 120, ttlMax: 200 });
  dns.resetCounts();
  const short = await r.resolve4('cached.test');
  assert.ok(short.ok);
  assert.equal(short.ttl, 120, '30 s raised to ttlMin');
  const long = await r.resolve4('example.test');
  assert.ok(long.ok);
  assert.equal(long.ttl, 200, '300 s lowered to ttlMax');
  clock.now += 100_000;
  await r.resolve4('cached.test');
  assert.equal(dns.count('cached.test', 'A'), 1, 'still cached after its own 30 s TTL');

  const plain = makeResolver().r;
  await plain.resolve4('zero-ttl.test');
  await plain.resolve4('zero-ttl.test');
  assert.equal(dns.count('zero-ttl.test', 'A'), 2);
  assert.equal(plain.stats().cache.size, 0);
});

test('NXDOMAIN and NODATA are cached for negativeTtl; temporary failures are never cached', async () => {
  const { r, clock } = makeResolver({ negativeTtl: 60 });
  dns.resetCounts();
  await r.resolve4('nowhere.test');
  await r.resolve4('nowhere.test');
  await r.resolve4('noa.test');
  await r.resolve4('noa.test');
  assert.equal(dns.count('nowhere.test'), 1);
  assert.equal(dns.count('noa.test'), 1);
  clock.now += 61_000;
  await r.resolve4('nowhere.test');
  assert.equal(dns.count('nowhere.test'), 2, 'negative entry expired after negativeTtl');

  await r.resolveMx('broken.test');
  await r.resolveMx('broken.test');
  assert.equal(dns.count('broken.test'), 2, 'SERVFAIL asked again');
});

test('the cache keeps at most cacheSize entries, evicting the least recently used', async () => {
  const { r } = makeResolver({ cacheSize: 2 });
  dns.resetCounts();
  await r.resolve4('example.test'); // [example]
  await r.resolve4('cached.test'); // [example, cached]
  await r.resolve4('example.test'); // hit: [cached, example]
  await r.resolve4('mixed-ttl.test'); // evicts cached: [example, mixed]
  const s = r.stats();
  assert.deepEqual([s.cache.size, s.cache.maxsize, s.cache.evicts], [2, 2, 1]);
  await r.resolve4('example.test');
  assert.equal(dns.count('example.test', 'A'), 1, 'recently used entry survived');
  await r.resolve4('cached.test');
  assert.equal(dns.count('cached.test', 'A'), 2, 'least recently used entry was evicted');
});

test('cacheSize 0 disables the cache', async () => {
  const { r } = makeResolver({ cacheSize: 0 });
  dns.resetCounts();
  await r.resolve4('example.test');
  await r.resolve4('example.test');
  assert.equal(dns.count('example.test', 'A'), 2);
  assert.equal(r.stats().cache.size, 0);
});

test('clear() empties the cache so the next look-up asks the server', async () => {
  const { r } = makeResolver();
  dns.resetCounts();
  await r.resolveMx('example.test');
  assert.equal(r.stats().cache.size, 1);
  r.clear();
  assert.equal(r.stats().cache.size, 0);
  await r.resolveMx('example.test');
  assert.equal(dns.count('example.test', 'MX'), 2);
});

test('concurrent identical queries share one query on the wire', async () => {
  const { r } = makeResolver();
  dns.resetCounts();
  const answers = await Promise.all([r.resolve4('slow1.test'), r.resolve4('slow1.test'), r.resolve4('Slow1.Test')]);
  for (const a of answers) assert.deepEqual(a, { ok: true, records: ['127.0.0.11'], ttl: 300 });
  assert.equal(dns.count('slow1.test', 'A'), 1);
  assert.equal(r.stats().dedup, 2);
  // Different types are different queries.
  await Promise.all([r.resolve4('example.test'), r.resolve6('example.test')]);
  assert.equal(dns.count('example.test'), 2);
});

test('at most maxRunning queries are on the wire; the rest wait and then run', async () => {
  const { r } = makeResolver({ maxRunning: 1 });
  const all = Promise.all([r.resolve4('slow1.test'), r.resolve4('slow2.test'), r.resolve4('slow3.test')]);
  const during = r.stats();
  assert.deepEqual([during.running, during.pending, during.maxrunning], [1, 2, 1]);
  const answers = await all;
  assert.deepEqual(answers.map((a) => a.ok && a.records[0]), ['127.0.0.11', '127.0.0.12', '127.0.0.13']);
  const done = r.stats();
  assert.deepEqual([done.running, done.pending], [0, 0]);
  assert.equal(makeResolver().r.stats().maxrunning, 100, 'default limit is 100 as observed on Halon');
});

test('stats() has the fields of Halon process-stats resolver section', () => {
  const { r } = makeResolver();
  assert.deepEqual(r.stats(), {
    pending: 0, dedup: 0, running: 0, maxrunning: 100,
    cache: { maxsize: 10000, size: 0, hits: 0, misses: 0, expires: 0, evicts: 0 },
  });
});

test('UTF-8 names are queried as A-labels; invalid names fail permanently without a query', async () => {
  const { r } = makeResolver();
  dns.resetCounts();
  const idn = await r.resolve4('bücher.test');
  assert.deepEqual(idn, { ok: true, records: ['127.0.0.4'], ttl: 300 });
  assert.equal(normalizeName('Bücher.Test.'), 'xn--bcher-kva.test');
  for (const bad of ['', '.', 'a..b', 'x'.repeat(64) + '.test']) {
    const res = await r.resolveMx(bad);
    assert.ok(!res.ok, bad);
    assert.deepEqual([res.error.kind, res.error.temporary, res.error.code], ['other', false, 'EBADNAME']);
  }
  assert.equal(dns.count(), 1, 'only the IDN was sent');
});

test('answers too large for UDP are fetched over TCP', async () => {
  const { r } = makeResolver();
  dns.resetCounts();
  const big = await r.resolve4('big.test');
  assert.ok(big.ok);
  assert.equal(big.records.length, 60);
  assert.ok(dns.queries.some((q) => q.name === 'big.test' && q.transport === 'tcp'), 'retried over TCP after truncation');
});

test('name servers are validated when the resolver is made', () => {
  assert.throws(() => new Resolver({ servers: ['not an address'] }));
  const r = new Resolver({ servers: ['127.0.0.1:5353', '[::1]:5353'] });
  assert.deepEqual(r.servers(), ['127.0.0.1:5353', '[::1]:5353']);
  assert.throws(() => new Resolver({ cacheSize: -1 }), /cacheSize/);
});

test('an IPv6 name server given as [::1]:port is used', async (t) => {
  const v6 = await TestDnsServer.start({ 'six.test': { A: ['127.0.0.6'] } }, { host: '::1' });
  t.after(() => v6.close());
  const r = new Resolver({ servers: [v6.address], timeoutMs: 300, tries: 1 });
  assert.deepEqual(await r.resolve4('six.test'), { ok: true, records: ['127.0.0.6'], ttl: 300 });
  assert.equal(v6.count('six.test'), 1);
});

test('the test DNS server refuses to bind anything but loopback', async () => {
  await assert.rejects(TestDnsServer.start({}, { host: '0.0.0.0' as '127.0.0.1' }), /loopback only/);
});
