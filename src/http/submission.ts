/**
 * HTTP submission servers (halon-api.md §8): servers of `type: http|https` in smtpd.yaml,
 * one endpoint `POST /v1/submission`.
 *
 * Inputs: the startup server (listeners), its running settings and hooks (read per request,
 * so a reload applies to the next request), the ingress, a logger, an id generator.
 * Flow per request: `X-API-Key` checked against the server's `apikeys` (constant time) → the
 * multipart body read and validated (submission-parse.ts) → a Received header prepended →
 * the server's eod hook runs with `arguments.metadata` and `arguments.http` (without an eod
 * hook every recipient is queued on the server's transport, as for SMTP) → the entries are
 * committed through the ingress, which resolves only once they are durable → the JSON answer.
 * Output (halon-api.md §8): `{"result":{"code","enhanced","reason"},"transaction":{"id"},
 * "metadata":{…}}` — compact, or indented with `?pretty=true`; `metadata` is
 * `arguments.metadata` after the hook (a hook may set values for the caller).
 * HTTP status: 200 queued (or accepted and discarded by the hook); the hook's refusals in the
 * same JSON shape: a 4xx SMTP code (Defer, try later) → 503, a 5xx code (Reject, do not
 * retry as is) → 422; spool full or not writable → 503 with 452/451. Errors before a
 * transaction exists are `{"error": "<reason>"}`: 401 bad or missing key (also when the
 * server has no keys: an open submission port would be an open relay), 400 malformed body,
 * options or address (the reason names the field), 413 over `phases.data.maxsize`, 404 other
 * paths, 405 other methods.
 * Invariants: 200 is sent only after the commit resolved; a client that went away before
 * the hook finished still gets its message queued (the request was complete), like SMTP
 * after the final dot. Details go to the log; the client gets bland reasons for failures.
 */
import type http from 'node:http';
import type tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { ListenerConfig, RunningServer, StartupServer } from '../config/types';
import type { LoadedHooks, HookOutcome } from '../hooks/runtime';
import { EodMail } from '../hooks/mail';
import type { ConnectionInfo } from '../hooks/types';
import type { Ingress } from '../model/ingress';
import { formatQueueId, type Reply } from '../model/types';
import { rfc5322Date } from '../smtp/trace';
import { EntryCollector, Transaction, type TxRecipient } from '../smtp/transaction';
import type { Logger } from '../util/log';
import { apiKeyMatches, closeServer, createServer, listen } from './common';
import { OPTIONS_MAX, parseSubmission, SubmissionError, type ParsedSubmission } from './submission-parse';
import { renderSubmissionOpenApi } from './openapi';

export interface SubmissionRuntime {
  server: RunningServer;
  hooks: LoadedHooks;
  resolveKey?: (pkiId: string) => string | undefined;
}

export interface SubmissionServerOptions {
  startup: StartupServer;
  runtime: () => SubmissionRuntime;
  ingress: Ingress;
  log: Logger;
  hostname: string;
  newId: () => string;
  /** For `type: https`: the default certificate, and an SNI chooser (reloadable). */
  tls?: { key: string; cert: string; choose?: (servername: string) => tls.SecureContext | undefined };
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

const PATH = '/v1/submission';

function json(res: http.ServerResponse, a: Answer, pretty: boolean): void {
  const text = pretty ? `${JSON.stringify(a.body, null, 2)}\n` : JSON.stringify(a.body);
  res.writeHead(a.status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function error(status: number, reason: string): Answer {
  return { status, body: { error: reason } };
}

function resultBody(r: Reply, txid: string, metadata: Record<string, string>): Record<string, unknown> {
  return { result: { code: r.code, enhanced: r.enhanced, reason: r.reason }, transaction: { id: txid }, metadata };
}

/** SMTP reply class → HTTP status (see the module comment). */
function statusFor(code: number): number {
  if (code >= 200 && code < 300) return 200;
  return code >= 500 ? 422 : 503;
}

function outcomeReply(o: HookOutcome, fallback: string): Reply {
  return { code: o.code, enhanced: o.enhanced, reason: o.reason.length ? o.reason : [fallback] };
}

/** The trace field for a message received over HTTP (RFC 5321 §4.4 form, `with HTTP(S)`). */
export function httpReceived(remoteip: string, hostname: string, secure: boolean, id: string, recipient: string | undefined, ts: number): Buffer {
  const literal = remoteip.includes(':') ? `[IPv6:${remoteip}]` : `[${remoteip}]`;
  const forPart = recipient ? `\r\n\tfor <${recipient.replace(/[^\x21-\x7e\u0080-\uffff]/g, '?')}>` : '';
  return Buffer.from(`Received: from ${literal} (unknown ${literal})\r\n\tby ${hostname} with ${secure ? 'HTTPS' : 'HTTP'} id ${id}${forPart};\r\n\t${rfc5322Date(ts)}\r\n`, 'utf8');
}

function headerRecord(req: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (k === 'x-api-key' || v === undefined) continue; // the secret stays out of hooks and logs
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** Consume the rest of a request body; false when more than `limit` bytes were left. */
function drain(req: http.IncomingMessage, limit: number): Promise<boolean> {
  return new Promise((resolve) => {
    let seen = 0;
    const done = (ok: boolean) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      resolve(ok);
    };
    const onData = (c: Buffer) => {
      seen += c.length;
      if (seen > limit) {
        req.pause();
        done(false);
      }
    };
    const onEnd = () => done(true);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onEnd);
    req.resume();
  });
}

export class SubmissionServer {
  private readonly servers: http.Server[] = [];
  private readonly secure: boolean;

  constructor(private readonly opts: SubmissionServerOptions) {
    this.secure = opts.startup.type === 'https';
  }

  async listen(): Promise<void> {
    try {
      for (const l of this.opts.startup.listeners) await this.bind(l);
    } catch (err) {
      await this.close(0);
      throw err;
    }
  }

  private async bind(l: ListenerConfig): Promise<void> {
    const t = this.opts.tls;
    const server = createServer((req, res) => void this.handle(req, res), this.secure && t ? { key: t.key, cert: t.cert, ...(t.choose ? { SNICallback: (name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => cb(null, t.choose?.(name)) } : {}) } : undefined);
    this.servers.push(server);
    try {
      await listen(server, l.port, l.address);
    } catch (err) {
      throw new Error(`HTTP submission server "${this.opts.startup.id}" cannot listen on ${l.address ?? '*'}:${l.port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }

  addresses(): Array<{ address: string; port: number }> {
    return this.servers.map((s) => s.address() as AddressInfo | null).filter((a): a is AddressInfo => !!a).map((a) => ({ address: a.address, port: a.port }));
  }

  /** Stop accepting; requests in flight finish (bounded by `ms`). */
  async close(ms = 10_000): Promise<void> {
    await Promise.all(this.servers.map((s) => closeServer(s, ms)));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://submission');
    const pretty = url.searchParams.get('pretty') === 'true';
    let answer: Answer;
    try {
      answer = await this.answer(req, url);
    } catch (err) {
      this.opts.log.error({ serverid: this.opts.startup.id, err: (err as Error).message }, 'http submission failed');
      answer = error(500, 'internal error');
    }
    // Read what is left of a refused request before answering: a client still sending its
    // body would otherwise see a reset instead of our answer. Bounded: past the limit the
    // connection is closed after the answer.
    if (!req.readableEnded && !(await drain(req, this.opts.runtime().server.limits.maxsize + OPTIONS_MAX))) res.setHeader('Connection', 'close');
    if (answer.status === 405) res.setHeader('Allow', 'POST');
    json(res, answer, pretty);
  }

  private async answer(req: http.IncomingMessage, url: URL): Promise<Answer> {
    if (url.pathname === '/openapi.json' && req.method === 'GET') return { status: 200, body: JSON.parse(renderSubmissionOpenApi()) };
    if (url.pathname !== PATH) return error(404, 'not found');
    if (req.method !== 'POST') return error(405, 'method not allowed');
    const rt = this.opts.runtime();
    if (!apiKeyMatches(req.headers['x-api-key'], rt.server.apikeys)) {
      this.opts.log.info({ serverid: this.opts.startup.id, remoteip: req.socket.remoteAddress }, 'http submission refused: bad api key');
      return error(401, 'invalid or missing X-API-Key');
    }
    let parsed: ParsedSubmission;
    try {
      parsed = await parseSubmission(req, { maxsize: rt.server.limits.maxsize, recipients: rt.server.limits.recipients });
    } catch (err) {
      if (!(err instanceof SubmissionError)) throw err;
      this.opts.log.info({ serverid: this.opts.startup.id, remoteip: req.socket.remoteAddress, status: err.status, reason: err.message }, 'http submission refused');
      return error(err.status, err.message);
    }
    return this.submit(req, url, rt, parsed);
  }

  private connection(req: http.IncomingMessage): ConnectionInfo {
    const s = req.socket;
    return { id: this.opts.newId(), remoteip: s.remoteAddress ?? '', remoteport: s.remotePort ?? 0, localip: s.localAddress ?? '', localport: s.localPort ?? 0, serverid: this.opts.startup.id };
  }

  private async submit(req: http.IncomingMessage, url: URL, rt: SubmissionRuntime, p: ParsedSubmission): Promise<Answer> {
    const ts = Date.now();
    const o = p.options;
    const tx = new Transaction(this.opts.newId(), o.sender, o.senderaddress, {}, { smtputf8: o.smtputf8 });
    for (const r of o.recipients) tx.recipients.push({ recipient: r.recipient, address: r.address, params: {}, transportid: rt.server.transport, rcpt: {} } satisfies TxRecipient);
    const connection = this.connection(req);
    const received = httpReceived(connection.remoteip, this.opts.hostname, this.secure, tx.id, o.recipients.length === 1 ? o.recipients[0].recipient : undefined, ts);
    const message = Buffer.concat([received, p.message]);
    const collector = new EntryCollector(tx, this.opts.startup.id, ts);
    const metadata = { ...o.metadata };
    let outcome: HookOutcome | null = null;
    if (rt.hooks.has(this.opts.startup.id, 'eod')) {
      const mail = new EodMail(message, { onQueue: (q) => collector.add(q), ...(rt.resolveKey ? { resolveKey: rt.resolveKey } : {}) });
      const http = { path: url.pathname, query: Object.fromEntries(url.searchParams), headers: headerRecord(req) };
      outcome = await rt.hooks.run(this.opts.startup.id, 'eod', { arguments: { mail, metadata, http }, connection, transaction: { ...tx.info(), ts: ts / 1000 }, context: {} });
      if (outcome.action !== 'Accept') {
        const r = outcomeReply(outcome, 'Rejected');
        this.logTx(tx.id, connection, o.recipients.length, [], outcome.action, r.code);
        return { status: statusFor(r.code), body: resultBody(r, tx.id, metadata) };
      }
    } else {
      for (const r of tx.recipients) collector.add({ sender: tx.sender, recipient: r.recipient, transportid: r.transportid, options: {}, body: message });
    }
    const custom = outcome && outcome.options.reason !== undefined ? outcomeReply(outcome, 'OK') : undefined;
    if (collector.entries.length === 0) {
      this.logTx(tx.id, connection, o.recipients.length, [], 'discarded', 250);
      return { status: 200, body: resultBody(custom ?? { code: 250, enhanced: [2, 0, 0], reason: ['Ok'] }, tx.id, metadata) };
    }
    return this.commit(tx.id, connection, collector, o.recipients.length, metadata, custom);
  }

  private async commit(txid: string, connection: ConnectionInfo, collector: EntryCollector, recipients: number, metadata: Record<string, string>, custom: Reply | undefined): Promise<Answer> {
    const from = { remoteip: connection.remoteip, remoteport: connection.remoteport, localip: connection.localip, localport: connection.localport, helo: '', tls: this.secure };
    try {
      await this.opts.ingress.commit(collector.transaction(from));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const r: Reply = e.code === 'SPOOL_FULL' ? { code: 452, enhanced: [4, 3, 1], reason: ['Insufficient system storage'] } : { code: 451, enhanced: [4, 3, 0], reason: ['Temporary failure, try again later'] };
      this.opts.log.error({ serverid: this.opts.startup.id, transaction: txid, err: e.message, code: e.code }, 'queueing failed');
      this.logTx(txid, connection, recipients, [], 'failed', r.code);
      return { status: 503, body: resultBody(r, txid, metadata) };
    }
    const queueids = collector.entries.map((e) => formatQueueId(e.id));
    this.logTx(txid, connection, recipients, queueids, 'queued', 250);
    return { status: 200, body: resultBody(custom ?? { code: 250, enhanced: [2, 0, 0], reason: [`Ok: queued as ${txid}`] }, txid, metadata) };
  }

  private logTx(txid: string, c: ConnectionInfo, recipients: number, queueids: string[], decision: string, code: number): void {
    this.opts.log.info({ serverid: this.opts.startup.id, transaction: txid, remoteip: c.remoteip, recipients, queueids, decision, code }, 'http submission');
  }
}
