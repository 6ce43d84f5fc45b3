/**
 * halyard-api's HTTP server (halon-api.md §4.3): `POST /api/protobuf` relays one command to a
 * daemon's control socket; `GET /openapi.json` serves the OpenAPI description.
 *
 * Inputs: the loaded api.yaml (listeners, secret, control sockets), a logger.
 * Flow per request: path and method → `X-API-Key` against `authentication.secret` (constant
 * time, src/http/common.ts) → body read up to the listener's `maxsize` → JSON → envelope and
 * payload check (envelope.ts) → a fresh control connection: version, command, body → the '+'
 * reply decoded into proto3 JSON, or the 'E' text.
 * Output statuses: 200 the response message as proto3 JSON (`{}` when the command has none,
 * `{"data": base64}` for byte replies); errors `{"error": "…"}`: 400 bad JSON, envelope or
 * payload; 401 wrong or missing key; 404 other paths; 405 other methods; 413 body over
 * maxsize; 422 the daemon's 'E' text (the request was well formed but the daemon refused it);
 * 502 the control socket cannot be reached or the connection broke.
 * Invariants: one control connection per HTTP request, closed after the reply (no state
 * shared between requests, so a broken daemon connection never poisons later requests); the
 * secret is checked before the body is read; the daemon's 'E' text is passed on verbatim
 * (Halon does the same, §3.5), other internals only go to the log.
 */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ControlClient, ControlConnectError, type ControlTarget } from '../control/client';
import { decodeMessage, MalformedMessageError } from '../control/schema';
import type { ApiConfig, ApiControlSocket, ApiListener, ApiProgram } from '../config/api';
import { apiKeyMatches, closeServer, createServer, listen } from '../http/common';
import type { Logger } from '../util/log';
import { ApiError, parseEnvelope, type Relay } from './envelope';
import { renderOpenApi } from './openapi';

const RELAY_PATH = '/api/protobuf';
const OPENAPI_PATH = '/openapi.json';
/** Longest wait for a daemon reply; queue commands over large queues can take a while. */
const CONTROL_TIMEOUT_MS = 120_000;

interface Answer {
  status: number;
  body: unknown;
  /** `body` is already JSON text. */
  raw?: boolean;
  /** Close the connection after answering (the rest of the request was not read). */
  close?: boolean;
}

function send(res: http.ServerResponse, a: Answer): void {
  const text = a.raw ? String(a.body) : `${JSON.stringify(a.body)}\n`;
  res.writeHead(a.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...(a.close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

function fail(status: number, error: string): Answer {
  return { status, body: { error } };
}

/**
 * Read the body; 'too-large' as soon as it is declared or grows beyond `max` (the rest is
 * discarded, not buffered, so memory stays bounded by maxsize).
 */
function readBody(req: http.IncomingMessage, max: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      req.resume();
      return resolve('too-large');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.resume();
        resolve('too-large');
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function controlTarget(s: ApiControlSocket): ControlTarget {
  if ('path' in s) return { path: s.path };
  if (!s.tls) return { host: s.host, port: s.port };
  const tls = {
    rejectUnauthorized: s.tls.verify,
    servername: s.tls.verifyname ?? s.host,
    ...(s.tls.certificate ? { cert: s.tls.certificate.data } : {}),
    ...(s.tls.privatekey ? { key: s.tls.privatekey.data } : {}),
  };
  return { host: s.host, port: s.port, tls };
}

export class ApiServer {
  private readonly servers: http.Server[] = [];
  private readonly programs: ReadonlySet<ApiProgram>;
  private readonly openapi = renderOpenApi();

  constructor(
    private readonly config: ApiConfig,
    private readonly log: Logger,
  ) {
    this.programs = new Set(Object.keys(config.controlsockets) as ApiProgram[]);
  }

  /** Bind every listener; resolves with the bound addresses in listener order. */
  async start(): Promise<AddressInfo[]> {
    const out: AddressInfo[] = [];
    for (const l of this.config.listeners) {
      const server = createServer((req, res) => this.handle(l, req, res), l.tls);
      this.servers.push(server);
      out.push(await listen(server, l.port, l.address));
    }
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => closeServer(s)));
  }

  private handle(l: ApiListener, req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = Date.now();
    this.answer(l, req)
      .catch((err: unknown) => {
        this.log.error({ err }, 'api request failed');
        return fail(500, 'internal error');
      })
      .then((a) => {
        send(res, a);
        this.log.info({ method: req.method, path: req.url, status: a.status, ms: Date.now() - started, remote: req.socket.remoteAddress }, 'api request');
      })
      .catch(() => undefined);
  }

  private async answer(l: ApiListener, req: http.IncomingMessage): Promise<Answer> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === OPENAPI_PATH) {
      return req.method === 'GET' || req.method === 'HEAD' ? { status: 200, body: this.openapi, raw: true } : fail(405, 'method not allowed (GET only)');
    }
    if (path !== RELAY_PATH) return fail(404, 'not found');
    if (req.method !== 'POST') return fail(405, 'method not allowed (POST only)');
    if (this.config.secret !== undefined && !apiKeyMatches(req.headers['x-api-key'], [this.config.secret])) {
      req.resume();
      return { ...fail(401, 'missing or wrong X-API-Key'), close: true };
    }
    const body = await readBody(req, l.maxsize);
    if (body === 'too-large') return { ...fail(413, `the request body is larger than ${l.maxsize} bytes`), close: true };
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return fail(400, `the body is not JSON: ${(err as Error).message}`);
    }
    try {
      return await this.relay(parseEnvelope(parsed, this.programs));
    } catch (err) {
      if (err instanceof ApiError) return fail(err.status, err.message);
      throw err;
    }
  }

  private async relay(r: Relay): Promise<Answer> {
    const target = controlTarget(this.config.controlsockets[r.program]!);
    let client: ControlClient;
    try {
      client = await ControlClient.connect(target, { timeoutMs: CONTROL_TIMEOUT_MS, version: r.version });
    } catch (err) {
      this.log.warn({ program: r.program, err: (err as Error).message }, 'control socket unreachable');
      return fail(502, `the ${r.program} control socket cannot be reached`);
    }
    try {
      const reply = await client.request(r.info.letter, r.body);
      this.log.info({ program: r.program, command: r.name, status: reply.status }, 'api command');
      if (reply.status === 'E') return fail(422, reply.payload.toString('utf8'));
      return { status: 200, body: this.decode(r, reply.payload) };
    } catch (err) {
      if (!(err instanceof ControlConnectError)) throw err;
      this.log.warn({ program: r.program, err: err.message }, 'control connection failed');
      return fail(502, `the ${r.program} control connection failed`);
    } finally {
      client.close();
    }
  }

  private decode(r: Relay, payload: Buffer): unknown {
    if (r.info.raw) return { data: payload.toString('base64') };
    if (!r.info.response) return {};
    try {
      return decodeMessage(r.info.response, payload, 'json');
    } catch (err) {
      if (!(err instanceof MalformedMessageError)) throw err;
      this.log.error({ err: err.message, command: r.name }, 'daemon reply does not decode');
      throw new ApiError(502, `the ${r.program} daemon sent a reply that does not decode`);
    }
  }
}
