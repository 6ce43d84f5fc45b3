/**
 * The hooks an operator copies: the examples in docs/hooks.md (extracted from the page, so the
 * page cannot drift from what works) and the default config/hooks/eod.ts, run as the daemon
 * runs them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { dkimVerify } from 'mailauth/lib/dkim/verify';
import type { RunningConfig, SmtpPhase } from '../../src/config/types';
import { EodMail, type QueueRequest } from '../../src/hooks/mail';
import { loadHooks, type HookLogger, type LoadedHooks } from '../../src/hooks/runtime';

const ROOT = resolve(__dirname, '../../..');

const lines: Array<{ fields: object; msg: string }> = [];
const log: HookLogger = {
  info: (fields, msg) => lines.push({ fields, msg }),
  warn: (fields, msg) => lines.push({ fields, msg }),
  error: (fields, msg) => lines.push({ fields, msg }),
};

function examples(): Map<string, string> {
  const doc = readFileSync(join(ROOT, 'docs/hooks.md'), 'utf8');
  const out = new Map<string, string>();
  for (const m of doc.matchAll(/<!-- example: ([\w.-]+) -->\n```ts\n([\s\S]*?)```/g)) out.set(m[1], m[2]);
  return out;
}

function hooksFor(t: { after(fn: () => void): void }, files: Partial<Record<SmtpPhase, string>>): LoadedHooks {
  const dir = mkdtempSync(join(tmpdir(), 'halyard-examples-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const scripting: Record<string, Array<{ id: string; path: string }>> = {};
  const ids: Partial<Record<SmtpPhase, string>> = {};
  for (const [phase, source] of Object.entries(files)) {
    let path = source;
    if (!source.startsWith('/')) {
      path = join(dir, `${phase}.ts`);
      writeFileSync(path, source);
    }
    scripting[phase] = [{ id: phase, path }];
    ids[phase as SmtpPhase] = phase;
  }
  const config = { file: join(dir, 'smtpd-app.yaml'), servers: [{ id: 'mx', hooks: ids }], scripting: { hooks: scripting, timeout: 5 } };
  return loadHooks(config as unknown as RunningConfig, log);
}

const connection = { id: 'c1', remoteip: '192.0.2.7', remoteport: 50000, localip: '127.0.0.1', localport: 25, serverid: 'mx' };

function recipient(addr: string, transportid = 'inbound') {
  const [localpart, domain] = addr.split('@');
  return { recipient: addr, address: { localpart, domain }, params: {}, transportid };
}

test('docs/hooks.md holds the three examples', () => {
  assert.deepEqual([...examples().keys()].sort(), ['auth-users.ts', 'eod-sign.ts', 'rcptto-domains.ts']);
});

test('rcptto example: local domains accepted on "inbound", others refused with 550 5.7.1', async (t) => {
  const hooks = hooksFor(t, { rcptto: examples().get('rcptto-domains.ts') });
  const run = (addr: string) =>
    hooks.run('mx', 'rcptto', { connection, transaction: { id: 't1', recipients: [] }, context: {}, arguments: recipient(addr, 'mx') } as never);
  const ok = await run('bob@Example.NET');
  assert.deepEqual([ok.action, ok.options], ['Accept', { transportid: 'inbound' }]);
  const no = await run('bob@elsewhere.org');
  assert.deepEqual([no.action, no.code, no.enhanced, no.reason], ['Reject', 550, [5, 7, 1], ['Relaying denied']]);
});

test('auth example: the right password is accepted, a wrong one or unknown user gets 535 5.7.8', async (t) => {
  const hooks = hooksFor(t, { auth: examples().get('auth-users.ts') });
  const run = (username: string, password: string) =>
    hooks.run('mx', 'auth', { connection, context: {}, arguments: { mechanism: 'PLAIN', username, password } } as never);
  assert.equal((await run('alice', 'correct horse battery staple')).action, 'Accept');
  const wrong = await run('alice', 'Tr0ub4dor&3');
  assert.deepEqual([wrong.action, wrong.code, wrong.enhanced], ['Reject', 535, [5, 7, 8]]);
  assert.equal((await run('toString', 'x')).action, 'Reject', 'prototype names are not users');
  assert.equal((await run('mallory', 'x')).source, 'action');
});

function eodInput(mail: EodMail) {
  return {
    connection,
    transaction: { id: 't1', sender: 'alice@example.com', recipients: [recipient('bob@example.net'), recipient('carol@example.org', 'outbound')] },
    context: {},
    arguments: { mail, metadata: {} },
  } as never;
}

const MESSAGE = 'From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello\r\n';

test('eod example: adds the header, signs with the pki key, queues every recipient, accepts', async (t) => {
  const key = generateKeyPairSync('ed25519');
  const der = key.publicKey.export({ type: 'spki', format: 'der' });
  const txt = `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString('base64')}`;
  const hooks = hooksFor(t, { eod: examples().get('eod-sign.ts') });
  const queued: QueueRequest[] = [];
  const mail = new EodMail(Buffer.from(MESSAGE), {
    onQueue: (q) => (queued.push(q), { transaction: 't1', queue: queued.length }),
    resolveKey: (id) => (id === 'dkim-example-com' ? key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() : undefined),
  });
  const o = await hooks.run('mx', 'eod', eodInput(mail));
  assert.equal(o.action, 'Accept');
  assert.deepEqual(queued.map((q) => [q.sender, q.recipient, q.transportid]), [
    ['alice@example.com', 'bob@example.net', 'inbound'],
    ['alice@example.com', 'carol@example.org', 'outbound'],
  ]);
  assert.equal(queued[0].body, queued[1].body, 'one body for both recipients');
  const body = queued[0].body.toString();
  assert.match(body, /^DKIM-Signature: .*\r\nX-Received-IP: 192\.0\.2\.7\r\nFrom: Alice/s);
  const resolver = async (name: string) => {
    if (name !== 's2025._domainkey.example.com') throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
    return [[txt]];
  };
  const res = await dkimVerify(queued[0].body, { resolver: resolver as never });
  assert.deepEqual(res.results.map((r) => r.status.result), ['pass']);
});

test('the default config/hooks/eod.ts queues each recipient on its transport and accepts', async (t) => {
  const hooks = hooksFor(t, { eod: join(ROOT, 'config/hooks/eod.ts') });
  const queued: QueueRequest[] = [];
  const raw = Buffer.from(MESSAGE);
  const mail = new EodMail(raw, { onQueue: (q) => (queued.push(q), { transaction: 't1', queue: queued.length }) });
  const o = await hooks.run('mx', 'eod', eodInput(mail));
  assert.deepEqual([o.action, o.code, o.enhanced], ['Accept', 250, [2, 0, 0]]);
  assert.deepEqual(queued.map((q) => [q.recipient, q.transportid]), [['bob@example.net', 'inbound'], ['carol@example.org', 'outbound']]);
  assert.equal(queued[0].body, raw, 'the message is queued unchanged, as received');
});
