import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ControlClient, ControlConnectError, type Reply } from '../../src/control/client';
import type { ControlContext, QueueControl, ReloadOutcome } from '../../src/control/context';
import { encodeRequest, encodeVersion, ReplyDecoder } from '../../src/control/framing';
import { decodeMessage, encodeMessage } from '../../src/control/schema';
import { ControlServer, groupId } from '../../src/control/server';
import { InProcessMemoryStore } from '../../src/hooks/memory';
import type { PkiEntry } from '../../src/config/types';
import { protocDecode, protocEncode, protocSkip, SILENT_LOG, tempDir } from './control-helpers';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

interface Fixture {
  server: ControlServer;
  path: string;
  ctx: ControlContext & { reloads: string[]; nextReload: ReloadOutcome };
}

async function start(opts: { maxBody?: number; queue?: QueueControl; chmod?: string; socketPath?: string } = {}): Promise<Fixture> {
  const dir = tempDir();
  dirs.push(dir);
  const file = opts.socketPath ?? path.join(dir, 'run', 'smtpd.ctl');
  const reloads: string[] = [];
  const ctx: Fixture['ctx'] = {
    reloads,
    nextReload: { ok: true },
    processStats: () => ({ servers: [{ id: 'inbound', connections: 3, maxconnections: 100 }], queue: { active: 2, defer: 7, hold: 1 } }),
    reloadRunning: () => (reloads.push('app'), ctx.nextReload),
    reloadPolicy: () => (reloads.push('policy'), ctx.nextReload),
    reloadSuspend: () => (reloads.push('suspend'), ctx.nextReload),
    reloadDelivery: () => (reloads.push('delivery'), ctx.nextReload),
    memory: new InProcessMemoryStore(),
    resolverClear: (domain) => (domain ? 1 : 5),
    ...(opts.queue ? { queue: opts.queue } : {}),
  };
  const server = new ControlServer({ socket: { path: file, ...(opts.chmod ? { chmod: opts.chmod } : {}) }, context: ctx, log: SILENT_LOG, ...(opts.maxBody ? { maxBody: opts.maxBody } : {}) });
  await server.listen();
  return { server, path: file, ctx };
}

/** Raw socket: write bytes, collect every reply until the server closes or `count` replies came. */
function raw(file: string, bytes: Buffer, count: number): Promise<{ replies: Reply[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ path: file });
    const dec = new ReplyDecoder();
    const replies: Reply[] = [];
    let closed = false;
    const timer = setTimeout(() => finish(), 3000);
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ replies, closed });
    };
    sock.on('data', (c) => {
      dec.push(c);
      for (let ev = dec.next(); ev.kind === 'reply'; ev = dec.next()) {
        if (ev.status !== '=') replies.push({ status: ev.status, payload: ev.payload });
      }
      if (replies.length >= count && !closed) setTimeout(finish, 50);
    });
    sock.on('close', () => {
      closed = true;
      finish();
    });
    sock.on('error', reject);
    sock.write(bytes);
  });
}

const text = (r: Reply) => `${r.status} ${r.status === 'E' ? r.payload.toString() : r.payload.toString('hex')}`;

test('q answers ProcessStatsResponse with the daemon figures (decoded by protoc)', { skip: protocSkip() }, async () => {
  const f = await start();
  try {
    const { replies } = await raw(f.path, Buffer.from([6, 6, 0x71]), 1);
    assert.equal(replies.length, 1);
    assert.equal(replies[0].status, '+');
    const decoded = protocDecode('ProcessStatsResponse', replies[0].payload);
    assert.match(decoded, new RegExp(`pid: ${process.pid}\\b`));
    assert.match(decoded, /serverid: "inbound"\n\s+connections \{\n\s+concurrent: 3\n\s+maxconcurrent: 100/);
    assert.match(decoded, /defer \{\n\s+size: 7/);
    assert.match(decoded, /hold \{\n\s+size: 1/);
  } finally {
    await f.server.close();
  }
});

test('a memory store request encoded by protoc is executed; the reply decodes with protoc', { skip: protocSkip() }, async () => {
  const f = await start();
  try {
    const store = protocEncode('HSLMemoryStoreRequest', 'key: "greeting" value: "\\"hello\\""');
    const fetch = protocEncode('HSLMemoryRequest', 'key: "greeting"');
    const frame = Buffer.concat([Buffer.from([6, 6]), encodeRequest('z', store), encodeRequest('y', fetch)]);
    const { replies } = await raw(f.path, frame, 2);
    assert.deepEqual(replies.map((r) => r.status), ['+', '+']);
    assert.equal(protocDecode('HSLMemoryResponse', replies[1].payload).trim(), 'value: "\\"hello\\""');
    assert.equal(f.ctx.memory.fetch('greeting'), 'hello');
  } finally {
    await f.server.close();
  }
});

test('several requests on one connection are answered in order', async () => {
  const f = await start();
  try {
    const c = await ControlClient.connect({ path: f.path });
    const replies = await Promise.all([
      c.request('z', encodeMessage('HSLMemoryStoreRequest', { key: 'n', value: '1' })),
      c.request('z', encodeMessage('HSLMemoryStoreRequest', { key: 'n', value: '2', return: true })),
      c.request('y', encodeMessage('HSLMemoryRequest', { key: 'n' })),
      c.request('r'),
      c.request('K', encodeMessage('HSLMemoryListRequest', {})),
    ]);
    c.close();
    assert.deepEqual(replies.map((r) => r.status), ['+', '+', '+', '+', '+']);
    assert.equal(decodeMessage('HSLMemoryStoreResponse', replies[1].payload).value, '1');
    assert.equal(decodeMessage('HSLMemoryResponse', replies[2].payload).value, '2');
    assert.equal(replies[3].payload.length, 0);
    assert.deepEqual(decodeMessage('HSLMemoryListResponse', replies[4].payload).keys, ['n']);
    assert.deepEqual(f.ctx.reloads, ['app']);
  } finally {
    await f.server.close();
  }
});

test('bad version bytes get an E reply and the connection is closed', async () => {
  const f = await start();
  try {
    const res = await raw(f.path, Buffer.from('qq', 'latin1'), 1);
    assert.equal(res.replies.length, 1);
    assert.match(text(res.replies[0]), /^E a connection must start with the two API version bytes/);
    assert.equal(res.closed, true);
    const old = await raw(f.path, Buffer.from([3, 0, 0x71]), 1);
    assert.equal(text(old.replies[0]), 'E API version 3.0 is not supported (5.3 or newer)');
    // The server still serves new connections.
    const ok = await raw(f.path, Buffer.from([5, 7, 0x71]), 1);
    assert.equal(ok.replies[0].status, '+');
  } finally {
    await f.server.close();
  }
});

test('an unknown command gets an E reply naming it; the server keeps serving', async () => {
  const f = await start();
  try {
    const res = await raw(f.path, Buffer.from([6, 6, 0x5a, 0x71]), 1);
    assert.deepEqual(res.replies.map(text), ["E unknown command 'Z' (0x5a)"]);
    assert.equal(res.closed, true);
    const c = await ControlClient.connect({ path: f.path });
    assert.equal((await c.request('q')).status, '+');
    c.close();
  } finally {
    await f.server.close();
  }
});

test('an oversize body gets an E reply and the same connection goes on', async () => {
  const f = await start({ maxBody: 64 });
  try {
    const c = await ControlClient.connect({ path: f.path });
    const big = await c.request('z', encodeMessage('HSLMemoryStoreRequest', { key: 'k', value: JSON.stringify('x'.repeat(200)) }));
    assert.equal(text(big), `E request body of ${big.payload.toString().match(/of (\d+)/)![1]} bytes exceeds the limit of 64 bytes`);
    const small = await c.request('z', encodeMessage('HSLMemoryStoreRequest', { key: 'k', value: '1' }));
    assert.equal(small.status, '+');
    c.close();
    assert.equal(f.ctx.memory.fetch('k'), 1);
  } finally {
    await f.server.close();
  }
});

test('a malformed body gets an E reply and the connection goes on', async () => {
  const f = await start();
  try {
    const c = await ControlClient.connect({ path: f.path });
    const bad = await c.request('y', Buffer.from([0x0a, 0x09, 0x61]));
    assert.equal(bad.status, 'E');
    assert.match(bad.payload.toString(), /^malformed HSLMemoryRequest: .* for command 'y'$/);
    assert.equal((await c.request('q')).status, '+');
    c.close();
  } finally {
    await f.server.close();
  }
});

test('reloads: success is an empty +, a refused reload is E with every error', async () => {
  const f = await start();
  try {
    const c = await ControlClient.connect({ path: f.path });
    for (const letter of ['r', 'o', 'p', 'H']) assert.equal(text(await c.request(letter)), '+ ');
    f.ctx.nextReload = { ok: false, errors: ['/etc/smtpd-app.yaml: servers.0.transport: unknown transport "x"', '/etc/smtpd-app.yaml: resolver: bad'] };
    const refused = await c.request('r');
    assert.equal(refused.status, 'E');
    assert.equal(
      refused.payload.toString(),
      'smtpd-app.yaml not reloaded (2 errors); the running configuration is kept:\n/etc/smtpd-app.yaml: servers.0.transport: unknown transport "x"\n/etc/smtpd-app.yaml: resolver: bad',
    );
    assert.match((await c.request('p')).payload.toString(), /^smtpd-policy.yaml not reloaded/);
    c.close();
    assert.deepEqual(f.ctx.reloads, ['app', 'suspend', 'policy', 'delivery', 'app', 'policy']);
  } finally {
    await f.server.close();
  }
});

test('memory: JSON values, delete with return, list with a pattern and paging', async () => {
  const f = await start();
  try {
    const c = await ControlClient.connect({ path: f.path });
    for (const k of ['b', 'a', 'ab', 'c']) await c.request('z', encodeMessage('HSLMemoryStoreRequest', { key: k, value: JSON.stringify({ k }) }));
    const notJson = await c.request('z', encodeMessage('HSLMemoryStoreRequest', { key: 'x', value: 'hello' }));
    assert.match(text(notJson), /^E the value for key "x" is not JSON/);
    const list = await c.request('K', encodeMessage('HSLMemoryListRequest', { condition: { key: { value: 'A', type: 'PARTIAL', caseless: true } }, paging: { offset: 1, limit: 5 } }));
    assert.deepEqual(decodeMessage('HSLMemoryListResponse', list.payload).keys, ['ab']);
    const del = decodeMessage('HSLMemoryDeleteResponse', (await c.request('A', encodeMessage('HSLMemoryDeleteRequest', { key: 'a', return: true }))).payload);
    assert.deepEqual(del, { affected: 1, value: '{"k":"a"}' });
    const again = decodeMessage('HSLMemoryDeleteResponse', (await c.request('A', encodeMessage('HSLMemoryDeleteRequest', { key: 'a' }))).payload);
    assert.deepEqual(again, {});
    const missing = await c.request('y', encodeMessage('HSLMemoryRequest', { key: 'a' }));
    assert.equal(text(missing), '+ ');
    c.close();
  } finally {
    await f.server.close();
  }
});

test('resolver clear: C without body, the Halyard command 1 with a domain', async () => {
  const f = await start();
  try {
    const c = await ControlClient.connect({ path: f.path });
    assert.equal(text(await c.request('C')), '+ ');
    const one = await c.request('1', encodeMessage('ResolverCacheClearRequest', { domain: { value: 'example.org' } }));
    assert.deepEqual(decodeMessage('ResolverCacheClearResponse', one.payload), { affected: 1 });
    c.close();
  } finally {
    await f.server.close();
  }
});

test('queue commands answer "not available" without a queue engine, and reach it when present', async () => {
  const f = await start();
  try {
    const c = await ControlClient.connect({ path: f.path });
    const r = await c.request('F', encodeMessage('QueueListRequest', {}));
    assert.equal(text(r), 'E queue commands are not available in this daemon');
    assert.equal(text(await c.request('v')), 'E suspend and policy commands are not available in this daemon');
    c.close();
  } finally {
    await f.server.close();
  }
  const seen: unknown[] = [];
  const queue: QueueControl = {
    list: (req) => (seen.push(req), { items: [{ id: { transaction: 'a3a1b0a8-0b5e-4d0c-9d44-7f3f2f1e0c11', queue: 1 }, queue: { queue: 'DEFER' }, retrycount: 2 }], paging: { total: 1 } }),
    groupBy: () => ({}),
    update: () => ({ affected: 9, working: 1 }),
    import: () => ({ transactionid: 'x' }),
    export: () => Buffer.from('From: a\r\n\r\nbody\r\n'),
    quota: () => ({ count: 1, bytes: 2 }),
    unload: () => {
      throw new Error('disk on fire');
    },
  };
  const g = await start({ queue });
  try {
    const c = await ControlClient.connect({ path: g.path });
    const list = await c.request('F', Buffer.from('0a150a0208015a0f120d0a0b6578616d706c652e6f72671a02100a', 'hex'));
    assert.deepEqual(seen, [{ conditions: { queues: [{ queue: 'DEFER' }], senders: [{ domain: { value: 'example.org' } }] }, paging: { limit: 10 } }]);
    assert.deepEqual(decodeMessage('QueueListResponse', list.payload, 'json'), {
      items: [{ id: { transaction: 'a3a1b0a8-0b5e-4d0c-9d44-7f3f2f1e0c11', queue: '1' }, queue: { queue: 'DEFER' }, retrycount: '2' }],
      paging: { total: '1' },
    });
    const exported = await c.request('0', encodeMessage('QueueExportRequest', { id: { transaction: 'a3a1b0a8-0b5e-4d0c-9d44-7f3f2f1e0c11', queue: 1 } }));
    assert.equal(exported.payload.toString(), 'From: a\r\n\r\nbody\r\n');
    // A bug in a handler is not shown to the client; the connection stays usable.
    assert.equal(text(await c.request('J', encodeMessage('QueueUnloadRequest', {}))), 'E internal error (see the daemon log)');
    assert.deepEqual(decodeMessage('QueueUpdateResponse', (await c.request('G', encodeMessage('QueueUpdateRequest', {}))).payload), { affected: 9, working: 1 });
    c.close();
  } finally {
    await g.server.close();
  }
});

test('socket file: folder created, chmod applied, stale socket replaced, removed on close', async () => {
  const f = await start({ chmod: '0660' });
  const st = fs.statSync(f.path);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o660);
  // A second server on the same path refuses: the socket is in use.
  const second = new ControlServer({ socket: { path: f.path }, context: f.ctx, log: SILENT_LOG });
  await assert.rejects(second.listen(), /is in use by another process/);
  assert.ok(fs.existsSync(f.path), 'the live socket is left alone');
  await f.server.close();
  assert.equal(fs.existsSync(f.path), false);
  // A stale socket file (nobody listening) is replaced: a process that listened was killed.
  const script = `require('net').createServer().listen(${JSON.stringify(f.path)}, () => process.kill(process.pid, 'SIGKILL'))`;
  spawnSync(process.execPath, ['-e', script], { timeout: 10_000 });
  assert.ok(fs.statSync(f.path).isSocket(), 'a stale socket file is left behind');
  const third = new ControlServer({ socket: { path: f.path }, context: f.ctx, log: SILENT_LOG });
  await third.listen();
  const c = await ControlClient.connect({ path: f.path });
  assert.equal((await c.request('q')).status, '+');
  c.close();
  await third.close();
});

test('a regular file at the socket path is never replaced', async () => {
  const dir = tempDir();
  dirs.push(dir);
  const file = path.join(dir, 'smtpd.ctl');
  fs.writeFileSync(file, 'precious');
  const f = await start();
  await f.server.close();
  const s = new ControlServer({ socket: { path: file }, context: f.ctx, log: SILENT_LOG });
  await assert.rejects(s.listen(), /exists and is not a socket/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'precious');
});

test('group names resolve through the group file; numbers pass through', () => {
  const dir = tempDir();
  dirs.push(dir);
  const groups = path.join(dir, 'group');
  fs.writeFileSync(groups, 'root:x:0:\nhalyard:x:998:alice,bob\n');
  assert.equal(groupId('halyard', groups), 998);
  assert.equal(groupId('1234', groups), 1234);
  assert.throws(() => groupId('nobody-here', groups), /group "nobody-here" not found/);
});

// ---------------------------------------------------------------------------------------------
// TCP with mutual TLS

function keyPair(dir: string, name: string): { key: string; cert: string } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-days', '2', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') };
}

test('TCP control socket with mutual TLS accepts a listed client certificate only', async () => {
  const dir = tempDir();
  dirs.push(dir);
  const server = keyPair(dir, 'localhost');
  const client = keyPair(dir, 'admin');
  const stranger = keyPair(dir, 'stranger');
  const pki = new Map<string, PkiEntry>([['ctl', { id: 'ctl', privatekey: { data: server.key }, certificate: { data: server.cert } }]]);
  const base = await start();
  const s = new ControlServer({
    socket: { path: path.join(dir, 'tls.ctl'), port: 0, address: '127.0.0.1', tls: { cert: 'ctl', clientcerts: [{ data: client.cert }] } },
    pki,
    context: base.ctx,
    log: SILENT_LOG,
  });
  await s.listen();
  try {
    const port = s.addresses().tcp!.port;
    const tlsOpts = (kp?: { key: string; cert: string }) => ({ ca: server.cert, servername: 'localhost', ...(kp ? { key: kp.key, cert: kp.cert } : {}) });
    const ok = await ControlClient.connect({ host: '127.0.0.1', port, tls: tlsOpts(client) }, { timeoutMs: 5000 });
    assert.equal((await ok.request('q')).status, '+');
    ok.close();
    for (const kp of [undefined, stranger]) {
      const c = await ControlClient.connect({ host: '127.0.0.1', port, tls: tlsOpts(kp) }, { timeoutMs: 5000 }).catch((e: Error) => e);
      if (c instanceof Error) continue; // refused during the handshake
      await assert.rejects(c.request('q'), ControlConnectError);
      c.close();
    }
  } finally {
    await s.close();
    await base.server.close();
  }
});

test('the version pair may be repeated before a later request on the same connection', async () => {
  const f = await start();
  try {
    const frame = Buffer.concat([encodeVersion({ major: 5, minor: 6 }), encodeRequest('q'), encodeVersion({ major: 5, minor: 6 }), encodeRequest('q')]);
    const { replies } = await raw(f.path, frame, 2);
    assert.deepEqual(replies.map((r) => r.status), ['+', '+']);
  } finally {
    await f.server.close();
  }
});
