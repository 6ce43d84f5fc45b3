/**
 * deliver() over several hops and the connection pool, against the scripted sink: next hop on
 * a refused connection, a 421/554 banner, a 4xx EHLO or missing required TLS; the combined
 * failure when every hop fails; source addresses and HELO names; connection reuse, expiry,
 * eviction, the per-connection transaction limit and idle sessions closed by the peer; and one
 * run against Postfix's smtp-sink when it is installed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { deliver, ConnectionPool, type Transaction, type DeliverResult } from '../../src/delivery/smtp-client';
import type { SmtpConnection } from '../../src/delivery/client-connection';
import type { NextHop } from '../../src/delivery/nexthop';
import { SmtpSink, type SinkOptions } from '../support/smtp-sink';

const sinks: SmtpSink[] = [];
const pools: ConnectionPool[] = [];
after(async () => {
  await Promise.all(pools.map((p) => p.close()));
  await Promise.all(sinks.map((s) => s.close()));
});

async function sink(opts: SinkOptions = {}): Promise<SmtpSink> {
  const s = await SmtpSink.start(opts);
  sinks.push(s);
  return s;
}

function pool(opts: ConstructorParameters<typeof ConnectionPool>[0] = {}): ConnectionPool {
  const p = new ConnectionPool(opts);
  pools.push(p);
  return p;
}

function hop(mx: string, port: number, addresses = ['127.0.0.1']): NextHop {
  return { mx, host: mx, preference: 10, addresses, port };
}

/** A port with nothing listening (bound, then closed). */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Poll until `check` holds (at most ~2 s): for effects the client does not wait for, like a pooled QUIT. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 40 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(check(), what);
}

const BODY = Buffer.from('Subject: hop\r\n\r\n.dot line\r\nbody\r\n');
function tx(recipients = ['r@example.net']): Transaction {
  return { sender: 's@example.com', recipients: recipients.map((address) => ({ address })), size: BODY.length, body: BODY };
}

function okResult(r: DeliverResult): Extract<DeliverResult, { ok: true }> {
  if (!r.ok) assert.fail(`delivery failed: ${r.error.message}`);
  return r;
}

test('a refused connection moves on to the next MX', async () => {
  const good = await sink();
  const r = okResult(await deliver([hop('dead.test', await deadPort()), hop('good.test', good.port)], tx(), { helo: 'client.test' }));
  assert.equal(r.hop.mx, 'good.test');
  assert.equal(r.failures.length, 1);
  assert.equal(r.failures[0].mx, 'dead.test');
  assert.equal(r.failures[0].error.type, 'network');
  assert.equal(r.transaction.recipients[0].outcome, 'delivered');
  assert.equal(r.connection.remotemx, 'good.test');
  assert.equal(good.transactions.length, 1);
});

test('a 421 banner, a 4xx EHLO and missing required TLS each move on to the next hop', async () => {
  const busy = await sink({ banner: '421 4.3.2 Too busy' });
  const ehlo4xx = await sink({ replies: { EHLO: '451 4.3.0 Try again' } });
  const good = await sink();
  const r1 = okResult(await deliver([hop('busy.test', busy.port), hop('good.test', good.port)], tx(), { helo: 'client.test' }));
  assert.equal(r1.hop.mx, 'good.test');
  assert.deepEqual(r1.failures[0].result, { code: 421, enhanced: [4, 3, 2], reason: ['Too busy'], state: 'BANNER' });
  const r2 = okResult(await deliver([hop('e.test', ehlo4xx.port), hop('good.test', good.port)], tx(), { helo: 'client.test' }));
  assert.equal(r2.failures[0].result?.state, 'EHLO');
  assert.equal(busy.transactions.length + ehlo4xx.transactions.length, 0);

  const plain = await sink();
  const tlsSink = await sink({ extensions: ['PIPELINING', 'STARTTLS'], replies: { STARTTLS: '454 4.7.0 No TLS today' } });
  const r3 = await deliver([hop('plain.test', plain.port), hop('tls.test', tlsSink.port)], tx(), { helo: 'client.test', tls: { mode: 'require' } });
  assert.equal(r3.ok, false, 'neither hop can do TLS');
  assert.deepEqual(r3.failures.map((f) => f.error.type), ['tls', 'tls']);
  assert.equal(r3.ok ? undefined : r3.error.temporary, true);
});

test('every hop failing: temporary unless every failure was permanent', async () => {
  const no1 = await sink({ banner: '554 5.7.1 No SMTP service here' });
  const no2 = await sink({ banner: '554 5.7.1 Go away' });
  const all5xx = await deliver([hop('a.test', no1.port), hop('b.test', no2.port)], tx(), { helo: 'client.test' });
  assert.equal(all5xx.ok, false);
  if (!all5xx.ok) {
    assert.equal(all5xx.error.temporary, false);
    assert.equal(all5xx.result?.code, 554);
    assert.deepEqual(all5xx.result?.reason, ['Go away']);
  }
  const mixed = await deliver([hop('a.test', no1.port), hop('dead.test', await deadPort())], tx(), { helo: 'client.test' });
  assert.equal(mixed.ok, false);
  if (!mixed.ok) {
    assert.equal(mixed.error.temporary, true);
    assert.equal(mixed.error.type, 'network');
  }
  const none = await deliver([], tx());
  assert.equal(none.ok, false);
});

test('the first hop that runs a transaction ends the attempt, even when it rejects recipients', async () => {
  const rejecting = await sink({ rcpt: { 'r@example.net': '550 5.1.1 No such user' } });
  const other = await sink();
  const r = okResult(await deliver([hop('first.test', rejecting.port), hop('second.test', other.port)], tx(), { helo: 'client.test' }));
  assert.equal(r.hop.mx, 'first.test');
  assert.equal(r.transaction.recipients[0].outcome, 'permanent');
  assert.equal(other.sessions, 0);
});

test('the next address of the same MX is tried before the next MX', async () => {
  const good = await sink();
  // The sink listens on 127.0.0.1 only, so 127.0.0.2 refuses on its port.
  const r = okResult(await deliver([hop('mx.test', good.port, ['127.0.0.2', '127.0.0.1'])], tx(), { helo: 'client.test' }));
  assert.equal(r.hop.address, '127.0.0.1');
  assert.equal(r.failures[0].address, '127.0.0.2');
  assert.equal(r.failures[0].mx, 'mx.test');
});

test('source address and its HELO name; sources of the wrong family are skipped', async () => {
  const s = await sink();
  const r = okResult(await deliver([hop('mx.test', s.port)], tx(), {
    helo: 'default.test',
    sources: [{ id: 'v6', address: '::1', helo: 'six.test' }, { id: 'two', address: '127.0.0.2', helo: 'two.test' }, { id: 'three', address: '127.0.0.3' }],
    sourceRandom: false,
  }));
  assert.equal(r.connection.localip, '127.0.0.2');
  assert.equal(r.connection.localipid, 'two');
  assert.equal(s.transactions[0].helo, 'two.test');
  const r2 = okResult(await deliver([hop('mx.test', s.port)], tx(), {
    helo: 'default.test', sources: [{ address: '127.0.0.3' }], sourceRandom: false,
  }));
  assert.equal(r2.connection.localip, '127.0.0.3');
  assert.equal(s.transactions[1].helo, 'default.test', 'a source without its own name uses the default HELO');
  const wrong = await deliver([hop('mx.test', s.port)], tx(), { sources: [{ address: '::1' }] });
  assert.equal(wrong.ok, false);
  if (!wrong.ok) assert.equal(wrong.error.type, 'config');
});

test('pool: two transactions on one TCP connection', async () => {
  const s = await sink();
  const p = pool();
  const r1 = okResult(await deliver([hop('mx.test', s.port)], tx(['a@example.net']), { helo: 'client.test', pool: p }));
  const r2 = okResult(await deliver([hop('mx.test', s.port)], tx(['b@example.net']), { helo: 'client.test', pool: p }));
  assert.equal(r1.reused, false);
  assert.equal(r2.reused, true);
  assert.equal(r2.connection.transactions, 2);
  assert.equal(r2.connection.id, r1.connection.id);
  assert.equal(s.sessions, 1);
  assert.deepEqual(s.transactions.map((t) => t.session), [1, 1]);
  assert.deepEqual(p.stats(), { size: 1, maxsize: 100, hits: 1, misses: 1, expires: 0, evicts: 0 });
  await p.close();
  assert.equal(p.size, 0);
});

test('pool: several idle connections to one host are each reused once, none opened anew', async () => {
  const s = await sink();
  const p = pool();
  await Promise.all(['a', 'b', 'c'].map((x) => deliver([hop('mx.test', s.port)], tx([`${x}@example.net`]), { helo: 'client.test', pool: p })));
  assert.equal(s.sessions, 3);
  assert.equal(p.size, 3);
  const again = await Promise.all(['e', 'f', 'g'].map((x) => deliver([hop('mx.test', s.port)], tx([`${x}@example.net`]), { helo: 'client.test', pool: p })));
  assert.equal(new Set(again.map((r) => okResult(r).connection.id)).size, 3, 'each idle connection went out once');
  assert.ok(again.every((r) => okResult(r).reused));
  assert.equal(s.sessions, 3, 'no new connection while idle ones were there');
  assert.deepEqual({ hits: p.stats().hits, misses: p.stats().misses }, { hits: 3, misses: 3 });
});

/** Just what the pool looks at in a session. */
function fakeSession(key: string): { conn: SmtpConnection; quits: () => number; breakIt: () => void } {
  let quits = 0;
  let usable = true;
  const conn = { key, transactions: 1, get usable() { return usable; }, onClose: () => () => undefined, quit: async () => { quits++; } } as unknown as SmtpConnection;
  return { conn, quits: () => quits, breakIt: () => { usable = false; } };
}

test('pool: the most recently released session goes out first; one that broke while idle is QUIT and skipped', () => {
  const p = pool();
  const [a, b, c] = [fakeSession('k'), fakeSession('k'), fakeSession('k')];
  for (const f of [a, b, c]) assert.equal(p.release(f.conn), true);
  c.breakIt();
  assert.equal(p.acquire('k'), b.conn, 'c is unusable, b was released after a');
  assert.equal(c.quits(), 1);
  assert.equal(p.acquire('other'), undefined);
  assert.equal(p.acquire('k'), a.conn);
  assert.equal(p.acquire('k'), undefined);
  assert.deepEqual({ hits: p.stats().hits, misses: p.stats().misses, expires: p.stats().expires, size: p.size }, { hits: 2, misses: 2, expires: 1, size: 0 });
});

test('pool: a different HELO name or TLS mode does not share a connection', async () => {
  const s = await sink();
  const p = pool();
  await deliver([hop('mx.test', s.port)], tx(), { helo: 'one.test', pool: p });
  await deliver([hop('mx.test', s.port)], tx(), { helo: 'two.test', pool: p });
  await deliver([hop('mx.test', s.port)], tx(), { helo: 'two.test', pool: p, tls: { mode: 'optional' } });
  assert.equal(s.sessions, 3);
  assert.equal(p.stats().hits, 0);
});

test('pool: idle connections expire after the timeout and are QUIT', async () => {
  const s = await sink();
  const p = pool({ timeout: 0.1 });
  await deliver([hop('mx.test', s.port)], tx(), { helo: 'client.test', pool: p });
  await eventually(() => p.stats().expires === 1, 'the idle connection expired');
  assert.equal(p.size, 0);
  await eventually(() => s.lines('QUIT').length === 1, 'the expired connection was QUIT');
  await deliver([hop('mx.test', s.port)], tx(), { helo: 'client.test', pool: p });
  assert.equal(s.sessions, 2);
});

test('pool: each idle session expires on its own idle time, whatever order they came back in', async () => {
  const a = await sink();
  const b = await sink();
  const p = pool();
  await deliver([hop('a.test', a.port)], tx(), { helo: 'client.test', pool: p, poolPolicy: { timeout: 5 } });
  await deliver([hop('b.test', b.port)], tx(), { helo: 'client.test', pool: p, poolPolicy: { timeout: 0.1 } });
  await eventually(() => p.stats().expires === 1, 'the session with the short idle time expired');
  assert.equal(p.size, 1, 'the other session is still idle');
  await eventually(() => b.lines('QUIT').length === 1, 'the expired connection was QUIT');
  assert.equal(a.lines('QUIT').length, 0, 'the session with the long idle time was left alone');
  await deliver([hop('a.test', a.port)], tx(), { helo: 'client.test', pool: p });
  assert.equal(a.sessions, 1, 'and it is reused');
});

test('pool: full pool evicts the least recently used connection', async () => {
  const a = await sink();
  const b = await sink();
  const p = pool({ maxsize: 1 });
  await deliver([hop('a.test', a.port)], tx(), { helo: 'client.test', pool: p });
  await deliver([hop('b.test', b.port)], tx(), { helo: 'client.test', pool: p });
  assert.equal(p.stats().evicts, 1);
  assert.equal(p.size, 1);
  await deliver([hop('a.test', a.port)], tx(), { helo: 'client.test', pool: p });
  assert.equal(a.sessions, 2, 'a was evicted, so a new connection');
  assert.equal(p.stats().misses, 3);
});

test('pool: non-evictable connections are kept; the newcomer is not pooled', async () => {
  const a = await sink();
  const b = await sink();
  const p = pool({ maxsize: 1, evictable: false });
  await deliver([hop('a.test', a.port)], tx(), { helo: 'client.test', pool: p });
  await deliver([hop('b.test', b.port)], tx(), { helo: 'client.test', pool: p });
  assert.equal(p.stats().evicts, 0);
  await deliver([hop('a.test', a.port)], tx(), { helo: 'client.test', pool: p });
  assert.equal(a.sessions, 1, 'a stayed pooled');
  await eventually(() => b.lines('QUIT').length === 1, 'b was closed instead of pooled');
});

test('pool: a connection is closed after its transaction limit', async () => {
  const s = await sink();
  const p = pool({ transactions: 2 });
  for (let i = 0; i < 3; i++) await deliver([hop('mx.test', s.port)], tx(), { helo: 'client.test', pool: p });
  assert.deepEqual(s.transactions.map((t) => t.session), [1, 1, 2]);
  await eventually(() => s.lines('QUIT').length === 1, 'the used-up connection was QUIT');
});

test('pool: a reused connection that the server dropped meanwhile is replaced by a fresh one', async () => {
  const s = await sink({ dropAtNth: { state: 'MAIL', n: 2 } });
  const p = pool();
  await deliver([hop('mx.test', s.port)], tx(), { helo: 'client.test', pool: p });
  const r = okResult(await deliver([hop('mx.test', s.port)], tx(['again@example.net']), { helo: 'client.test', pool: p }));
  assert.equal(r.reused, false);
  assert.equal(r.transaction.recipients[0].outcome, 'delivered');
  assert.deepEqual(s.transactions.map((t) => t.session), [1, 2]);
  assert.equal(p.stats().hits, 1);
});

test('pool: an idle connection the server closed with 421 is not reused', async () => {
  const s = await sink();
  const p = pool();
  await deliver([hop('mx.test', s.port)], tx(), { helo: 'client.test', pool: p });
  s.kick('421 4.4.2 Idle timeout');
  await eventually(() => s.concurrent === 0, 'the sink closed the idle session');
  const r = okResult(await deliver([hop('mx.test', s.port)], tx(), { helo: 'client.test', pool: p }));
  assert.equal(r.reused, false);
  assert.equal(r.transaction.recipients[0].outcome, 'delivered');
  assert.equal(s.sessions, 2);
  assert.equal(p.stats().expires, 1);
});

test('concurrent deliveries use separate sessions; the sink counts them', async () => {
  const s = await sink({ delays: { EOD: 150 } });
  const rs = await Promise.all([1, 2, 3].map((i) => deliver([hop('mx.test', s.port)], tx([`r${i}@example.net`]), { helo: 'client.test' })));
  assert.ok(rs.every((r) => r.ok && r.transaction.recipients[0].outcome === 'delivered'));
  assert.equal(s.maxConcurrent, 3);
});

test('the body loader runs once however many hops are tried', async () => {
  const good = await sink();
  let loads = 0;
  const t: Transaction = { ...tx(), body: async () => { loads++; return BODY; } };
  const refusing = await sink({ replies: { EHLO: '451 4.3.0 later' } });
  const r = okResult(await deliver([hop('x.test', refusing.port), hop('good.test', good.port)], t, { helo: 'client.test' }));
  assert.equal(r.transaction.recipients[0].outcome, 'delivered');
  assert.equal(loads, 1);
});

function hasPostfixSink(): boolean {
  try {
    execFileSync('which', ['smtp-sink'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('against Postfix smtp-sink: pipelined transaction with two recipients, data intact', { skip: !hasPostfixSink() && 'smtp-sink not installed' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halyard-postfix-sink-'));
  fs.chmodSync(dir, 0o777);
  const port = await deadPort();
  const args = ['-c', '-d', `${dir}/%M.`, `127.0.0.1:${port}`, '10'];
  // smtp-sink refuses to run as root without a user to switch to.
  if (process.getuid?.() === 0) args.unshift('-u', 'nobody');
  const child: ChildProcess = spawn('smtp-sink', args, { stdio: 'ignore' });
  try {
    await waitForPort(port);
    const r = okResult(await deliver([hop('postfix.test', port)], tx(['a@example.net', 'b@example.net']), { helo: 'client.test' }));
    assert.deepEqual(r.transaction.recipients.map((x) => [x.outcome, x.result?.code, x.result?.state]), [['delivered', 250, 'EOD'], ['delivered', 250, 'EOD']]);
    const files = await waitForFiles(dir);
    const dump = fs.readFileSync(path.join(dir, files[0]), 'utf8');
    assert.match(dump, /^X-Helo-Args: client\.test$/m);
    assert.match(dump, /^X-Rcpt-Args: <a@example\.net>$/m);
    assert.match(dump, /^X-Rcpt-Args: <b@example\.net>$/m);
    assert.match(dump, /\n\.dot line\nbody\n/, 'the dot line arrived un-stuffed');
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => { if (child.exitCode !== null || child.signalCode !== null) resolve(undefined); else child.once('exit', resolve); });
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail('smtp-sink did not start');
}

async function waitForFiles(dir: string): Promise<string[]> {
  for (let i = 0; i < 40; i++) {
    const files = fs.readdirSync(dir);
    if (files.length > 0) return files;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail('smtp-sink wrote no dump file');
}
