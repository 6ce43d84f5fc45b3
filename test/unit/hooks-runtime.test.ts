/**
 * Hook runtime: outcomes of every SMTP phase for actions, implicit ends, throws, timeouts and
 * API misuse, as the server (and so the SMTP peer) sees them; load errors listed all at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigInvalidError, type HookRef, type RunningConfig, type SmtpPhase } from '../../src/config/types';
import { loadHooks, type HookLogger, type HookOutcome, type LoadedHooks } from '../../src/hooks/runtime';
import { EodMail } from '../../src/hooks/mail';

const FIXTURES = resolve(__dirname, '../../../test/fixtures/hooks');
const DELEGATE = join(FIXTURES, 'delegate.cjs');
const ACTION_PHASES = ['connect', 'helo', 'auth', 'mailfrom', 'rcptto', 'eod'] as const;
type ActionPhase = (typeof ACTION_PHASES)[number];

interface Line {
  level: 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  msg: string;
}

class CaptureLog implements HookLogger {
  lines: Line[] = [];
  info(fields: object, msg: string): void {
    this.lines.push({ level: 'info', fields: fields as Record<string, unknown>, msg });
  }
  warn(fields: object, msg: string): void {
    this.lines.push({ level: 'warn', fields: fields as Record<string, unknown>, msg });
  }
  error(fields: object, msg: string): void {
    this.lines.push({ level: 'error', fields: fields as Record<string, unknown>, msg });
  }
}

function makeConfig(hooks: Partial<Record<SmtpPhase, HookRef[]>>, servers: Array<{ id: string; hooks: Partial<Record<SmtpPhase, string>> }>, timeout = 5): RunningConfig {
  return { file: '/etc/halyard/smtpd-app.yaml', servers, scripting: { hooks, timeout } } as unknown as RunningConfig;
}

/** Every phase runs delegate.cjs, whose behaviour the test passes in `context.impl`. */
function delegateHooks(timeout = 5): { hooks: LoadedHooks; log: CaptureLog } {
  const refs: Partial<Record<SmtpPhase, HookRef[]>> = {};
  const ids: Partial<Record<SmtpPhase, string>> = {};
  for (const phase of [...ACTION_PHASES, 'disconnect'] as SmtpPhase[]) {
    refs[phase] = [{ id: `${phase}-hook`, path: DELEGATE }];
    ids[phase] = `${phase}-hook`;
  }
  const log = new CaptureLog();
  return { hooks: loadHooks(makeConfig(refs, [{ id: 'mx', hooks: ids }], timeout), log), log };
}

type Impl = (ctx: Record<string, any>) => unknown;

function input(impl: Impl, extra: Record<string, unknown> = {}): never {
  return {
    connection: { id: 'conn-1', remoteip: '127.0.0.1', remoteport: 40000, localip: '127.0.0.1', localport: 25, serverid: 'mx' },
    transaction: { id: 'tx-1', recipients: [] },
    context: { impl },
    arguments: {},
    ...extra,
  } as never;
}

function run(hooks: LoadedHooks, phase: SmtpPhase, impl: Impl, extra?: Record<string, unknown>): Promise<HookOutcome> {
  return hooks.run('mx', phase, input(impl, extra));
}

const DEFAULTS: Record<ActionPhase, Record<'Accept' | 'Reject' | 'Defer', [number, number[]]>> = {
  connect: { Accept: [220, [2, 0, 0]], Reject: [521, [5, 7, 1]], Defer: [421, [4, 7, 1]] },
  helo: { Accept: [250, [2, 0, 0]], Reject: [554, [5, 7, 1]], Defer: [450, [4, 7, 1]] },
  auth: { Accept: [235, [2, 7, 0]], Reject: [535, [5, 7, 8]], Defer: [454, [4, 7, 0]] },
  mailfrom: { Accept: [250, [2, 1, 0]], Reject: [554, [5, 7, 1]], Defer: [450, [4, 7, 1]] },
  rcptto: { Accept: [250, [2, 1, 5]], Reject: [554, [5, 7, 1]], Defer: [450, [4, 7, 1]] },
  eod: { Accept: [250, [2, 0, 0]], Reject: [550, [5, 7, 1]], Defer: [421, [4, 7, 1]] },
};

const ERROR_CODES: Record<ActionPhase, [number, number[]]> = {
  connect: [421, [4, 3, 0]],
  helo: [450, [4, 3, 0]],
  auth: [454, [4, 7, 0]],
  mailfrom: [450, [4, 3, 0]],
  rcptto: [450, [4, 3, 0]],
  eod: [421, [4, 3, 0]],
};

test('each action gives the documented default code in every phase', async () => {
  const { hooks } = delegateHooks();
  for (const phase of ACTION_PHASES) {
    for (const action of ['Accept', 'Reject', 'Defer'] as const) {
      const o = await run(hooks, phase, (ctx) => void ctx[action]());
      const [code, enhanced] = DEFAULTS[phase][action];
      assert.equal(o.action, action, `${phase} ${action}`);
      assert.equal(o.code, code, `${phase} ${action}`);
      assert.deepEqual(o.enhanced, enhanced, `${phase} ${action}`);
      assert.equal(o.source, 'action');
      assert.equal(o.disconnect, code === 421, `${phase} ${action}: 421 closes the connection`);
    }
  }
});

test('ending without an action: Accept, except auth (Reject 535) and eod (Defer 421)', async () => {
  const { hooks, log } = delegateHooks();
  for (const phase of ACTION_PHASES) {
    const o = await run(hooks, phase, () => undefined);
    assert.equal(o.source, 'implicit');
    const expected = phase === 'auth' ? 'Reject' : phase === 'eod' ? 'Defer' : 'Accept';
    assert.equal(o.action, expected, phase);
    assert.deepEqual([o.code, o.enhanced], DEFAULTS[phase][expected], phase);
  }
  assert.equal(log.lines.length, 0, 'an implicit end is not an error');
});

test('a throwing hook: Defer with bland text, one error line with stack and attribution', async () => {
  const { hooks, log } = delegateHooks();
  for (const phase of ACTION_PHASES) {
    log.lines = [];
    const o = await run(hooks, phase, () => {
      throw new Error('db password is hunter2');
    });
    assert.equal(o.action, 'Defer', phase);
    assert.equal(o.source, 'error');
    assert.deepEqual([o.code, o.enhanced], ERROR_CODES[phase], phase);
    assert.ok(!o.reason.join(' ').includes('hunter2'), 'the peer never sees the exception');
    assert.equal(o.error, 'db password is hunter2');
    assert.equal(log.lines.length, 1);
    const [line] = log.lines;
    assert.equal(line.level, 'error');
    assert.equal(line.fields.hook, `${phase}-hook`);
    assert.equal(line.fields.phase, phase);
    assert.equal(line.fields.serverid, 'mx');
    assert.equal(line.fields.connection, 'conn-1');
    assert.match(String(line.fields.stack), /hunter2\n\s+at /);
  }
});

test('an async hook that rejects, or throws a non-Error, is an error outcome too', async () => {
  const { hooks } = delegateHooks();
  const a = await run(hooks, 'rcptto', async () => {
    await Promise.resolve();
    throw new TypeError('x is undefined');
  });
  assert.equal(a.source, 'error');
  assert.equal(a.code, 450);
  const b = await run(hooks, 'mailfrom', () => {
    throw 'a string';
  });
  assert.equal(b.source, 'error');
  assert.match(b.error ?? '', /a string/);
});

test('a TypeScript hook that throws is logged with the .ts line', async () => {
  const log = new CaptureLog();
  const hooks = loadHooks(makeConfig({ mailfrom: [{ id: 'mf', path: join(FIXTURES, 'throws.ts') }] }, [{ id: 'mx', hooks: { mailfrom: 'mf' } }]), log);
  const o = await hooks.run('mx', 'mailfrom', input(() => undefined, { arguments: { sender: 'a@b.example' } }));
  assert.equal(o.source, 'error');
  assert.match(String(log.lines[0].fields.stack), /throws\.ts:6:/);
});

test('a hook running past scripting.timeout: Defer, a log line, later result ignored', async () => {
  const { hooks, log } = delegateHooks(0.05);
  let lateAccept: (() => void) | undefined;
  const o = await run(hooks, 'rcptto', (ctx) => {
    lateAccept = () => ctx.Accept();
    return new Promise(() => undefined);
  });
  assert.equal(o.action, 'Defer');
  assert.equal(o.source, 'timeout');
  assert.deepEqual([o.code, o.enhanced], [450, [4, 3, 0]]);
  assert.equal(log.lines.filter((l) => l.level === 'error').length, 1);
  assert.equal(log.lines[0].fields.timeout, 0.05);
  assert.doesNotThrow(() => lateAccept?.(), 'a late action neither throws nor changes anything');
  assert.equal(log.lines.at(-1)?.level, 'warn');
});

test('a hook that finishes within the timeout is not affected by it', async () => {
  const { hooks } = delegateHooks(1);
  const o = await run(hooks, 'helo', async (ctx) => {
    await new Promise((r) => setTimeout(r, 5));
    return ctx.Reject('not today');
  });
  assert.equal(o.action, 'Reject');
  assert.deepEqual(o.reason, ['not today']);
});

test('a second action throws "action already taken" and makes the call an error, even if caught', async () => {
  const { hooks, log } = delegateHooks();
  let thrown: unknown;
  const o = await run(hooks, 'rcptto', (ctx) => {
    ctx.Accept();
    try {
      ctx.Reject();
    } catch (err) {
      thrown = err;
    }
  });
  assert.match(String(thrown), /action already taken/);
  assert.equal(o.source, 'error');
  assert.equal(o.action, 'Defer');
  assert.equal(log.lines.length, 1);
});

test('return Accept() and returning an action object both count', async () => {
  const { hooks } = delegateHooks();
  const a = await run(hooks, 'mailfrom', (ctx) => ctx.Accept({ sender: 'new@example.com' }));
  assert.equal(a.action, 'Accept');
  assert.deepEqual(a.options, { sender: 'new@example.com' });
  const b = await run(hooks, 'rcptto', () => ({ action: 'Reject', reason: 'no such user' }));
  assert.equal(b.action, 'Reject');
  assert.deepEqual(b.reason, ['no such user']);
});

test('reply codes of the wrong class are a hook error', async () => {
  const { hooks } = delegateHooks();
  const cases: Impl[] = [
    (ctx) => ctx.Reject('x', { reply_codes: { code: 450 } }),
    (ctx) => ctx.Defer('x', { reply_codes: { code: 550 } }),
    (ctx) => ctx.Reject('x', { reply_codes: { code: 550, enhanced: [4, 1, 1] } }),
    (ctx) => ctx.Defer('x', { reply_codes: { code: 451, enhanced: [4, 1] } }),
    (ctx) => ctx.Reject('x', { reply_codes: { code: 250 } }),
  ];
  for (const impl of cases) {
    const o = await run(hooks, 'rcptto', impl);
    assert.equal(o.source, 'error');
    assert.equal(o.code, 450);
    assert.match(o.error ?? '', /reply_codes/);
  }
});

test('reply_codes override code and enhanced code', async () => {
  const { hooks } = delegateHooks();
  const a = await run(hooks, 'rcptto', (ctx) => ctx.Reject('No such user', { reply_codes: { code: 550, enhanced: [5, 1, 1] } }));
  assert.deepEqual([a.code, a.enhanced, a.reason], [550, [5, 1, 1], ['No such user']]);
  const b = await run(hooks, 'mailfrom', (ctx) => ctx.Defer(undefined, { reply_codes: { code: 451 } }));
  assert.deepEqual([b.code, b.enhanced], [451, [4, 7, 1]], 'code alone keeps the default enhanced code');
  assert.deepEqual(b.reason, ['Sender deferred, try again later'], 'no reason: the default text');
  const c = await run(hooks, 'eod', (ctx) => ctx.Defer('later', { reply_codes: { code: 451, enhanced: [4, 3, 0] } }));
  assert.deepEqual([c.code, c.disconnect], [451, false], 'eod Defer with 451 keeps the connection');
});

test('a reason with line breaks or an array gives a multi-line reply; control characters go', async () => {
  const { hooks } = delegateHooks();
  const a = await run(hooks, 'helo', (ctx) => ctx.Reject('first\nsecond\r\nthird'));
  assert.deepEqual(a.reason, ['first', 'second', 'third']);
  const b = await run(hooks, 'helo', (ctx) => ctx.Reject(['one', 'two\nthree', 'bell\x07']));
  assert.deepEqual(b.reason, ['one', 'two', 'three', 'bell ']);
  const c = await run(hooks, 'helo', (ctx) => ctx.Reject(42));
  assert.equal(c.source, 'error');
});

test('disconnect option is passed through', async () => {
  const { hooks } = delegateHooks();
  const o = await run(hooks, 'mailfrom', (ctx) => ctx.Reject('go away', { disconnect: true }));
  assert.equal(o.disconnect, true);
  const p = await run(hooks, 'mailfrom', (ctx) => ctx.Reject('go away', { disconnect: 'yes' }));
  assert.equal(p.source, 'error');
});

test('Accept options land in options untouched; unknown or mistyped options are hook errors', async () => {
  const { hooks } = delegateHooks();
  const cases: Array<[ActionPhase, Record<string, unknown>]> = [
    ['connect', { reason: 'Welcome', remoteip: '192.0.2.1', remoteptr: 'mail.example.org' }],
    ['helo', { extensions: ['PIPELINING', 'SIZE 1000'], host: 'client.example', reason: ['hi', 'there'] }],
    ['auth', { username: 'alice' }],
    ['mailfrom', { sender: 'bounce@example.com' }],
    ['rcptto', { recipient: 'user@example.com', transportid: 'inbound' }],
    ['eod', { reason: 'Queued' }],
  ];
  for (const [phase, options] of cases) {
    const o = await run(hooks, phase, (ctx) => void ctx.Accept(options));
    assert.equal(o.source, 'action', phase);
    assert.equal(o.options, options, `${phase}: the same object`);
  }
  const helo = await run(hooks, 'helo', (ctx) => void ctx.Accept({ reason: ['hi', 'there'] }));
  assert.deepEqual(helo.reason, ['hi', 'there']);
  const typo = await run(hooks, 'rcptto', (ctx) => void ctx.Accept({ transportId: 'x' }));
  assert.equal(typo.source, 'error');
  assert.match(typo.error ?? '', /unknown option "transportId"/);
  const wrong = await run(hooks, 'helo', (ctx) => void ctx.Accept({ extensions: 'PIPELINING' }));
  assert.equal(wrong.source, 'error');
});

test('log() writes an attributed line the hook cannot re-attribute', async () => {
  const { hooks, log } = delegateHooks();
  await run(hooks, 'rcptto', (ctx) => {
    ctx.log('checked recipient', { user: 'bob', hook: 'spoofed' });
    ctx.Accept();
  });
  assert.equal(log.lines.length, 1);
  assert.equal(log.lines[0].level, 'info');
  assert.equal(log.lines[0].msg, 'checked recipient');
  assert.deepEqual(log.lines[0].fields, { user: 'bob', hook: 'rcptto-hook', phase: 'rcptto', serverid: 'mx', connection: 'conn-1', transaction: 'tx-1' });
});

test('the eod message is closed when the phase ends: a late queue() throws', async () => {
  const { hooks } = delegateHooks(0.05);
  const queued: string[] = [];
  const mail = new EodMail(Buffer.from('Subject: x\r\n\r\nhi\r\n'), {
    onQueue: (a) => {
      queued.push(a.recipient);
      return { transaction: 'tx-1', queue: queued.length };
    },
  });
  let late: (() => unknown) | undefined;
  const o = await run(hooks, 'eod', (ctx) => {
    ctx.arguments.mail.queue('', 'a@example.com', 'inbound');
    late = () => ctx.arguments.mail.queue('', 'b@example.com', 'inbound');
    return new Promise(() => undefined);
  }, { arguments: { mail, metadata: {} } });
  assert.equal(o.source, 'timeout');
  assert.throws(() => late?.(), /eod phase has ended/);
  assert.deepEqual(queued, ['a@example.com']);
});

test('the disconnect hook gets no actions; its errors are logged', async () => {
  const { hooks, log } = delegateHooks();
  let keys: string[] = [];
  await run(hooks, 'disconnect', (ctx) => {
    keys = Object.keys(ctx);
  });
  assert.ok(!keys.includes('Accept') && keys.includes('log'));
  const o = await run(hooks, 'disconnect', () => {
    throw new Error('boom');
  });
  assert.equal(o.source, 'error');
  assert.equal(log.lines.length, 1);
});

test('has() follows servers[].hooks; run() without a hook rejects', async () => {
  const log = new CaptureLog();
  const hooks = loadHooks(
    makeConfig({ rcptto: [{ id: 'r', path: DELEGATE }] }, [{ id: 'mx', hooks: { rcptto: 'r' } }, { id: 'sub', hooks: {} }]),
    log,
  );
  assert.equal(hooks.has('mx', 'rcptto'), true);
  assert.equal(hooks.has('mx', 'eod'), false);
  assert.equal(hooks.has('sub', 'rcptto'), false);
  assert.equal(hooks.has('nope', 'rcptto'), false);
  await assert.rejects(hooks.run('sub', 'rcptto', input(() => undefined)), /no rcptto hook/);
});

test('loadHooks lists every module that fails to load, and unknown hook ids', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'halyard-hooks-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'syntax.ts'), 'export default function ( {\n');
  writeFileSync(join(dir, 'nofn.js'), 'module.exports = { a: 1 };\n');
  const config = makeConfig(
    {
      helo: [{ id: 'ok', path: DELEGATE }, { id: 'bad', path: join(dir, 'syntax.ts') }],
      eod: [{ id: 'e', path: join(dir, 'nofn.js') }],
      rcptto: [{ id: 'missing', path: join(dir, 'missing.ts') }],
    },
    [{ id: 'mx', hooks: { helo: 'bad', eod: 'e', mailfrom: 'ghost' } }],
  );
  let error: unknown;
  try {
    loadHooks(config, new CaptureLog());
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof ConfigInvalidError);
  const paths = error.errors.map((e) => e.path).sort();
  assert.deepEqual(paths, ['scripting.hooks.eod.0.path', 'scripting.hooks.helo.1.path', 'scripting.hooks.rcptto.0.path', 'servers.0.phases.mailfrom.hook']);
  assert.ok(error.errors.every((e) => e.file === '/etc/halyard/smtpd-app.yaml'));
  assert.match(error.message, /syntax\.ts:2:\d+: syntax error/);
  assert.match(error.message, /missing\.ts: file not found/);
  assert.match(error.message, /nofn\.js: a hook module must export a function/);
  assert.match(error.message, /no mailfrom hook with id "ghost"/);
});
