/**
 * Delivery hook runtime: what predelivery and postdelivery decide for each action, for an
 * implicit end, a throw, a timeout and API misuse (Halon's outcomes, halon-core.md §5.3–§5.4),
 * and metadata handling.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { ConfigInvalidError, type RunningConfig } from '../../src/config/types';
import { loadHooks } from '../../src/hooks/runtime';
import type { DeliveryHooks, PostDeliveryInput, PreDeliveryInput } from '../../src/hooks/delivery';

const DELEGATE = join(resolve(__dirname, '../../../test/fixtures/hooks'), 'delegate.cjs');
type Impl = (ctx: Record<string, any>) => unknown;

const log = { lines: [] as Array<{ fields: Record<string, unknown>; msg: string }>, info(f: object, m: string) { this.lines.push({ fields: f as Record<string, unknown>, msg: m }); }, warn() {}, error(f: object, m: string) { this.lines.push({ fields: f as Record<string, unknown>, msg: m }); } };

function hooks(timeout = 5): Required<DeliveryHooks> {
  const config = { file: '/x/smtpd-app.yaml', servers: [], scripting: { hooks: { predelivery: DELEGATE, postdelivery: DELEGATE }, timeout } } as unknown as RunningConfig;
  return loadHooks(config, log).delivery as Required<DeliveryHooks>;
}

const message = { id: { transaction: 't', queue: 1 }, ts: 1, serverid: 'mx', sender: 'a@b', senderaddress: { localpart: 'a', domain: 'b' }, recipient: 'c@d', recipientaddress: { localpart: 'c', domain: 'd' }, transportid: 'out', tenantid: '', jobid: '', priority: 0 as const, size: 1, tags: [], dsn: {} };

function pre(impl: Impl, metadata: Record<string, string> = {}): PreDeliveryInput {
  return { arguments: { retry: 2, queue: {} }, message, context: { impl }, metadata };
}

function post(impl: Impl, delivered = false): PostDeliveryInput {
  return { arguments: { retry: 0, expired: false, ...(delivered ? {} : { action: 'BOUNCE' as const }), grouping: '', policy: { tags: [], policies: [] }, queue: {} }, message, context: { impl }, metadata: {}, delivered };
}

test('predelivery: each action with its options; implicit end is Try()', async () => {
  const h = hooks();
  assert.deepEqual(await h.predelivery(pre((c) => c.Try({ server: 'relay.test', port: 2525, tls: 'require', mx_exclude: ['*.bad.test'] }))), { action: 'Try', options: { server: 'relay.test', port: 2525, tls: 'require', mx_exclude: ['*.bad.test'] }, source: 'action' });
  assert.deepEqual(await h.predelivery(pre((c) => c.Queue({ delay: 60, hold: false, transportid: 'x' }))), { action: 'Queue', options: { delay: 60, hold: false, transportid: 'x' }, source: 'action' });
  assert.deepEqual(await h.predelivery(pre((c) => c.Bounce({ reason: 'no' }))), { action: 'Bounce', options: { reason: 'no' }, source: 'action' });
  assert.deepEqual(await h.predelivery(pre((c) => c.Delete())), { action: 'Delete', options: {}, source: 'action' });
  assert.deepEqual(await h.predelivery(pre(() => undefined)), { action: 'Try', options: {}, source: 'implicit' });
  assert.deepEqual(await h.predelivery(pre((c) => ({ action: 'Delete' }))), { action: 'Delete', options: {}, source: 'action' }, 'a returned action object counts');
  assert.equal((await h.predelivery(pre((c) => c.arguments.retry === 2 && c.message.recipient === 'c@d' ? c.Delete() : c.Try()))).action, 'Delete');
});

test('predelivery errors queue for 300 s without counting a retry: throw, second action, unknown or bad option, timeout', async () => {
  const h = hooks(0.05);
  const expected = { action: 'Queue', options: { delay: 300, increment_retry: false } };
  const cases: Impl[] = [
    () => { throw new Error('bug'); },
    (c) => { c.Delete(); try { c.Try(); } catch { /* caught, still an error */ } },
    (c) => c.Try({ sever: 'typo.test' }),
    (c) => c.Try({ port: 70000 }),
    (c) => c.Queue({ delay: -1 }),
    (c) => c.Try({ timeout: { MAIL: 0 } }),
    () => new Promise(() => undefined),
  ];
  for (const impl of cases) {
    const o = await h.predelivery(pre(impl));
    assert.deepEqual({ action: o.action, options: o.options }, expected);
    assert.ok(o.source === 'error' || o.source === 'timeout');
    assert.ok(o.error);
  }
});

test('postdelivery: actions; implicit end and errors take the default; after a success only Default() is allowed', async () => {
  const h = hooks();
  assert.deepEqual(await h.postdelivery(post((c) => c.Queue({ hold: true }))), { action: 'Queue', options: { hold: true }, source: 'action' });
  assert.deepEqual(await h.postdelivery(post((c) => c.Delete())), { action: 'Delete', options: {}, source: 'action' });
  assert.deepEqual(await h.postdelivery(post((c) => c.Default())), { action: 'Default', options: {}, source: 'action' });
  assert.deepEqual(await h.postdelivery(post(() => undefined)), { action: 'Default', options: {}, source: 'implicit' });
  const thrown = await h.postdelivery(post(() => { throw new Error('x'); }));
  assert.equal(thrown.action, 'Default');
  assert.equal(thrown.source, 'error');
  const late = await h.postdelivery(post((c) => c.Bounce(), true));
  assert.equal(late.action, 'Default');
  assert.match(late.error!, /delivered/);
  assert.equal((await h.postdelivery(post((c) => c.Default(), true))).source, 'action');
  assert.deepEqual((await h.postdelivery(post((c) => c.Delete(typeof c.Try === 'function' ? { reason: 'has Try' } : {})))).options, {}, 'postdelivery has no Try');
});

test('SetMetaData replaces the metadata (strings only) and is returned with any outcome; GetMetaData sees it', async () => {
  const h = hooks();
  const o = await h.predelivery(pre((c) => {
    const before = c.GetMetaData();
    c.SetMetaData({ ...before, b: '2' });
    c.context.seen = c.GetMetaData();
    return c.Try();
  }, { a: '1' }));
  assert.deepEqual(o.metadata, { a: '1', b: '2' });
  const bad = await h.predelivery(pre((c) => c.SetMetaData({ n: 1 })));
  assert.equal(bad.action, 'Queue', 'a non-string value is a hook error');
  const kept = await h.postdelivery(post((c) => c.SetMetaData({ x: 'y' })));
  assert.deepEqual(kept.metadata, { x: 'y' });
});

test('hook log lines are attributed to the hook and the queue id', async () => {
  const h = hooks();
  log.lines.length = 0;
  await h.predelivery(pre((c) => c.log('hello', { hook: 'spoofed', n: 1 })));
  assert.deepEqual(log.lines[0], { msg: 'hello', fields: { hook: 'predelivery', n: 1, transactionid: 't', queueid: 1 } });
});

test('a delivery hook that fails to load is a config error naming scripting.hooks.predelivery', () => {
  const config = { file: '/x/smtpd-app.yaml', servers: [], scripting: { hooks: { predelivery: '/nonexistent/pre.ts' }, timeout: 5 } } as unknown as RunningConfig;
  assert.throws(() => loadHooks(config, log), (e: unknown) => e instanceof ConfigInvalidError && e.errors.some((x) => x.path === 'scripting.hooks.predelivery'));
});
