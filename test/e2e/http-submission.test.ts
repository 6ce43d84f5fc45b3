/**
 * HTTP submission as an application meets it: multipart POSTs to /v1/submission of a real
 * daemon (node's fetch + FormData as the curl-equivalent client), answers in JSON, and the
 * message in the spool.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import zlib from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, defaultSmtpd, spoolBody, spoolEntries, startDaemon, writeConfig, type Daemon } from './harness';
import { waitUntil } from './delivery-support';
import { SmtpSink } from '../support/smtp-sink';

const KEY = 'test-key-1';

function configs(eodHook?: string) {
  const smtpd = defaultSmtpd().replace('servers:\n', `servers:\n  - id: api\n    type: http\n    listeners:\n      - port: 0\n        address: 127.0.0.1\n`);
  const hookServer = eodHook ? `    phases:\n      eod:\n        hook: api\n      data:\n        maxsize: 2KiB\n` : `    phases:\n      data:\n        maxsize: 2KiB\n`;
  const app = `version: "6.8"
servers:
  - id: default
    transport: mx
  - id: api
    transport: mx
    apikeys:
      - other-key
      - ${KEY}
${hookServer}transportgroups:
  - id: default
    transports:
      - id: mx
${eodHook ? 'scripting:\n  hooks:\n    eod:\n      - id: api\n        path: hooks/api.js\n' : ''}`;
  return writeConfig({ smtpd, app, files: eodHook ? { 'hooks/api.js': eodHook, 'smtpd-suspend.yaml': 'suspends:\n  - {}\n' } : {} });
}

const MESSAGE = 'From: app@example.com\nTo: user@example.org\nSubject: from the web\n\nHello over HTTP.\n';

function form(parts: Record<string, string | Buffer | object>): FormData {
  const f = new FormData();
  for (const [name, v] of Object.entries(parts)) {
    const data = Buffer.isBuffer(v) ? v : typeof v === 'string' ? Buffer.from(v) : Buffer.from(JSON.stringify(v));
    const type = name.endsWith('.gzip') ? 'application/gzip' : name === 'options' ? 'application/json' : 'message/rfc822';
    f.append(name, new Blob([data], { type }), `${name}.bin`);
  }
  return f;
}

async function submit(d: Daemon, body: FormData | string, opts: { key?: string | null; query?: string; type?: string } = {}): Promise<{ status: number; text: string; json: Record<string, any> }> {
  const headers: Record<string, string> = {};
  if (opts.key !== null) headers['X-API-Key'] = opts.key ?? KEY;
  if (opts.type) headers['Content-Type'] = opts.type;
  const r = await fetch(`http://127.0.0.1:${d.ports('api')[0]}/v1/submission${opts.query ?? ''}`, { method: 'POST', headers, body });
  const text = await r.text();
  let json: Record<string, any> = {};
  try {
    json = JSON.parse(text);
  } catch {
    /* left empty: the test asserts on it */
  }
  return { status: r.status, text, json };
}

const OPTIONS = { sender: { localpart: 'app', domain: 'example.com' }, recipients: [{ localpart: 'user', domain: 'example.org' }], metadata: { campaign: 'spring' } };

test('submission: the manual example (options + rfc822) is queued durably and answered in JSON', async (t) => {
  const cfg = configs();
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const r = await submit(d, form({ options: OPTIONS, rfc822: MESSAGE }));
  assert.equal(r.status, 200, r.text);
  assert.ok(!r.text.includes('\n'), 'compact JSON by default');
  const id = r.json.transaction.id as string;
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.deepEqual(r.json.result, { code: 250, enhanced: [2, 0, 0], reason: [`Ok: queued as ${id}`] });
  assert.deepEqual(r.json.metadata, { campaign: 'spring' });
  const entries = (await spoolEntries(cfg)).filter((e) => e.id.startsWith(id));
  assert.equal(entries.length, 1);
  assert.equal(entries[0].entry.sender, 'app@example.com');
  assert.equal(entries[0].entry.recipient, 'user@example.org');
  assert.equal(entries[0].entry.transportid, 'mx');
  assert.equal(entries[0].entry.serverid, 'api');
  const body = (await spoolBody(cfg, entries[0].id)).toString('utf8');
  assert.match(body, /^Received: from \[127\.0\.0\.1\] \(unknown \[127\.0\.0\.1\]\)\r\n\tby mx\.test\.example with HTTP id /);
  assert.ok(body.endsWith('Subject: from the web\r\n\r\nHello over HTTP.\r\n'), 'LF line endings became CRLF');
  assert.ok(!/[^\r]\n/.test(body), 'no bare LF is stored');
});

test('submission: gzip parts, IDN domains, ?pretty=true', async (t) => {
  const d = await startDaemon(configs());
  t.after(() => d.stop());
  const options = { sender: 'app@example.com', recipients: [{ localpart: 'anna', domain: 'bücher.example' }] };
  const r = await submit(d, form({ 'options.gzip': zlib.gzipSync(JSON.stringify(options)), 'rfc822.gzip': zlib.gzipSync(MESSAGE) }), { query: '?pretty=true' });
  assert.equal(r.status, 200, r.text);
  assert.ok(r.text.includes('\n  "result": {\n'), 'indented JSON');
  assert.equal(r.json.result.code, 250);
  const entries = (await spoolEntries(d.config)).filter((e) => e.id.startsWith(r.json.transaction.id));
  assert.equal(entries[0].entry.recipient, 'anna@xn--bcher-kva.example', 'U-label domain stored as its A-label');
});

test('submission: 401 without a valid key, 404/405 elsewhere', async (t) => {
  const d = await startDaemon(configs());
  t.after(() => d.stop());
  for (const key of [null, 'wrong', `${KEY}x`]) {
    const r = await submit(d, form({ options: OPTIONS, rfc822: MESSAGE }), { key });
    assert.equal(r.status, 401);
    assert.deepEqual(r.json, { error: 'invalid or missing X-API-Key' });
  }
  assert.equal((await submit(d, form({ options: OPTIONS, rfc822: MESSAGE }), { key: 'other-key' })).status, 200, 'any configured key works');
  const port = d.ports('api')[0];
  assert.equal((await fetch(`http://127.0.0.1:${port}/v1/other`, { method: 'POST' })).status, 404);
  const g = await fetch(`http://127.0.0.1:${port}/v1/submission`);
  assert.equal(g.status, 405);
  assert.equal(g.headers.get('allow'), 'POST');
  assert.equal((await spoolEntries(d.config)).length, 1, 'nothing queued by refused requests');
  const api = await fetch(`http://127.0.0.1:${port}/openapi.json`);
  assert.equal(api.status, 200, 'the OpenAPI description is served without a key');
  assert.deepEqual(await api.json(), JSON.parse(fs.readFileSync(path.join(ROOT, 'docs/openapi/submission.json'), 'utf8')), 'and it is the committed one');
});

test('submission: 400 with the reason for malformed bodies, options and addresses; 413 over maxsize', async (t) => {
  const d = await startDaemon(configs());
  t.after(() => d.stop());
  const cases: Array<[FormData | string, RegExp, string?]> = [
    ['not multipart', /expected a multipart\/form-data body/, 'text/plain'],
    ['--x\r\ngarbage', /multipart|missing/, 'multipart/form-data; boundary=x'],
    [form({ options: '{"sender": ', rfc822: MESSAGE }), /^options: invalid JSON/],
    [form({ rfc822: MESSAGE }), /part "options" \(or "options.gzip"\) is missing/],
    [form({ options: OPTIONS }), /part "rfc822" \(or "rfc822.gzip"\) is missing/],
    [form({ options: OPTIONS, rfc822: MESSAGE, attachment: 'x' }), /unknown part "attachment"/],
    [form({ options: OPTIONS, 'options.gzip': zlib.gzipSync('{}'), rfc822: MESSAGE }), /either "options" or "options.gzip"/],
    [form({ options: { ...OPTIONS, recipients: [] }, rfc822: MESSAGE }), /recipients must be a non-empty array/],
    [form({ options: { ...OPTIONS, recipients: [{ localpart: 'a b', domain: 'example.org' }] }, rfc822: MESSAGE }), /recipients\[0\]: invalid local part/],
    [form({ options: { ...OPTIONS, sender: { localpart: 'x', domain: 'no_such..domain' } }, rfc822: MESSAGE }), /sender: invalid domain/],
    [form({ options: { ...OPTIONS, metadata: { n: 1 } }, rfc822: MESSAGE }), /metadata\.n: expected a string/],
    [form({ options: OPTIONS, 'rfc822.gzip': Buffer.from('not gzip') }), /"rfc822.gzip" is not gzip data/],
  ];
  for (const [body, reason, type] of cases) {
    const r = await submit(d, body, type ? { type } : {});
    assert.equal(r.status, 400, `${reason}: ${r.text}`);
    assert.match(r.json.error, reason);
  }
  const big = `Subject: big\n\n${'x'.repeat(3000)}\n`;
  const r = await submit(d, form({ options: OPTIONS, rfc822: big }));
  assert.equal(r.status, 413, r.text);
  assert.match(r.json.error, /larger than 2048 bytes/);
  const bomb = await submit(d, form({ options: OPTIONS, 'rfc822.gzip': zlib.gzipSync(big) }));
  assert.equal(bomb.status, 413, 'a small gzip part that inflates past maxsize');
  assert.equal((await spoolEntries(d.config)).length, 0);
});

test('submission: the eod hook sees metadata and http, its reject and defer come back as JSON', async (t) => {
  const hook = `module.exports = function ({ arguments: args, transaction, Accept, Reject, Defer }) {
  const m = args.metadata;
  if (m.verdict === 'reject') return Reject('no such campaign', { reply_codes: { code: 550, enhanced: [5, 7, 1] } });
  if (m.verdict === 'defer') return Defer('busy, later');
  for (const r of transaction.recipients) args.mail.queue(transaction.sender, r.address, r.transportid, { metadata: { campaign: m.campaign } });
  m.path = args.http.path;
  m.agent = args.http.headers['x-client'] ? 'seen' : 'missing';
  m.key = args.http.headers['x-api-key'] === undefined ? 'hidden' : 'leaked';
  Accept();
};
`;
  const cfg = configs(hook);
  const d = await startDaemon(cfg);
  t.after(() => d.stop());
  const rej = await submit(d, form({ options: { ...OPTIONS, metadata: { verdict: 'reject' } }, rfc822: MESSAGE }));
  assert.equal(rej.status, 422);
  assert.deepEqual(rej.json.result, { code: 550, enhanced: [5, 7, 1], reason: ['no such campaign'] });
  assert.match(rej.json.transaction.id, /^[0-9a-f-]{36}$/);
  const def = await submit(d, form({ options: { ...OPTIONS, metadata: { verdict: 'defer' } }, rfc822: MESSAGE }));
  assert.equal(def.status, 503);
  assert.equal(def.json.result.code, 421, 'the eod default Defer code');
  assert.deepEqual(def.json.result.reason, ['busy, later']);

  const port = d.ports('api')[0];
  const ok = await fetch(`http://127.0.0.1:${port}/v1/submission`, { method: 'POST', headers: { 'X-API-Key': KEY, 'X-Client': 'tests' }, body: form({ options: OPTIONS, rfc822: MESSAGE }) });
  const okJson = (await ok.json()) as Record<string, any>;
  assert.equal(ok.status, 200);
  assert.deepEqual(okJson.metadata, { campaign: 'spring', path: '/v1/submission', agent: 'seen', key: 'hidden' }, 'metadata as the hook left it');
  const entries = await spoolEntries(cfg);
  assert.equal(entries.length, 1, 'only the accepted submission is queued');
  assert.deepEqual(entries[0].entry.metadata, { campaign: 'spring' });
});

test('submission: keep-alive connection carries several submissions', async (t) => {
  const d = await startDaemon(configs());
  t.after(() => d.stop());
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const sockets = new Set<unknown>();
  for (let i = 0; i < 3; i++) {
    const boundary = 'b0undary';
    const body = `--${boundary}\r\nContent-Disposition: form-data; name="options"\r\n\r\n${JSON.stringify(OPTIONS)}\r\n--${boundary}\r\nContent-Disposition: form-data; name="rfc822"\r\n\r\n${MESSAGE}\r\n--${boundary}--\r\n`;
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: d.ports('api')[0], path: '/v1/submission', method: 'POST', agent, headers: { 'X-API-Key': KEY, 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': Buffer.byteLength(body) } }, (res) => {
        sockets.add(res.socket);
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(status, 200);
  }
  assert.equal(sockets.size, 1, 'one connection reused');
  assert.equal((await spoolEntries(d.config)).length, 3);
});

test('submission: the manual example is delivered to the next hop', async (t) => {
  const sink = await SmtpSink.start();
  t.after(() => sink.close());
  const smtpd = defaultSmtpd().replace('servers:\n', `servers:\n  - id: api\n    type: http\n    listeners:\n      - port: 0\n        address: 127.0.0.1\n`);
  const app = `version: "6.8"
servers:
  - id: default
    transport: out
  - id: api
    transport: out
    apikeys:
      - ${KEY}
transportgroups:
  - id: default
    transports:
      - id: out
        connection:
          server: 127.0.0.1
          port: ${sink.port}
        session:
          tls:
            mode: disabled
`;
  const d = await startDaemon(writeConfig({ smtpd, app, deliver: true }));
  t.after(() => d.stop());
  const r = await submit(d, form({ options: { sender: 'app@example.com', recipients: ['user@example.org'] }, rfc822: MESSAGE }));
  assert.equal(r.status, 200, r.text);
  await waitUntil(() => sink.transactions.length >= 1, 30_000, 'the submitted message at the sink');
  const x = sink.transactions[0];
  assert.deepEqual(x.rcpts.map((rc) => rc.address), ['user@example.org']);
  assert.match(x.data.toString(), /Subject: from the web\r\n/);
  assert.match(x.data.toString(), /Hello over HTTP\.\r\n/);

  // Addresses SMTP's RCPT takes are taken here too: an address literal, a quoted local part.
  const r2 = await submit(d, form({ options: { sender: 'app@example.com', recipients: ['"first last"@[127.0.0.1]', { localpart: 'ops', domain: '[IPv6:::1]' }] }, rfc822: MESSAGE }));
  assert.equal(r2.status, 200, r2.text);
  // Two destinations, so two transactions at the sink.
  await waitUntil(() => sink.transactions.length >= 3, 30_000, 'the message to address literals at the sink');
  assert.deepEqual(sink.transactions.slice(1).flatMap((tx) => tx.rcpts.map((rc) => rc.address)).sort(), ['"first last"@[127.0.0.1]', 'ops@[IPv6:::1]']);
});
