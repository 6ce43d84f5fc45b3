/**
 * The monitor listener of halyard-smtpd (halon-api.md §1): `GET /metrics`, `/ready`,
 * `/healthy` on `monitor.listener` (HTTP, or HTTPS when `monitor.type: https`).
 *
 * Inputs: the listener, optional TLS key/certificate, and callbacks into the daemon: the
 * running `monitor` settings (api keys, health thresholds; reloadable), the number of queued
 * messages, and a `collect` that gathers the figures for `/metrics`.
 * Behaviour:
 * - `/ready`: 503 until `markReady()` (spool loaded, every listener bound), then 200 for good;
 * - `/healthy`: 200, or 503 when not ready, shutting down (`markShuttingDown()`), or the
 *   queue is above `monitor.healthy.maxmessages.upper` — and then until it is below `.lower`
 *   (hysteresis, so a queue hovering at the limit does not make a load balancer flap);
 * - `/metrics`: OpenMetrics 1.0.0 text; Prometheus text 0.0.4 instead when the client asks for
 *   `text/plain` and not for OpenMetrics (what `promtool check metrics` reads: it cannot parse
 *   an OpenMetrics counter's `_total` sample). `X-API-Key` is required here, and only here,
 *   when `monitor.apikeys` is set (401 otherwise); `/ready` and `/healthy` never ask for one,
 *   as Kubernetes probes and load balancers send none.
 * - any other path 404; a method other than GET/HEAD 405 with `Allow: GET, HEAD`.
 * Errors: `listen` rejects when the port cannot be bound (the daemon then exits 1). A failing
 * `collect` answers 500 and logs why. Bodies are short plain text; details go to the log.
 */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RunningConfig } from '../config/types';
import { CONTENT_TYPES, renderFamilies, type ExpositionFormat } from '../util/openmetrics';
import type { Logger } from '../util/log';
import { apiKeyMatches, closeServer, createServer, listen } from './common';
import { metricFamilies, type MetricsInput } from './metrics';

export interface MonitorOptions {
  listener: { port: number; address?: string };
  tls?: { key: string; cert: string };
  /** The running config's `monitor` block (read on each request: reloads apply at once). */
  settings: () => RunningConfig['monitor'];
  /** Messages in the queue now (every state). */
  queued: () => number;
  /** Figures for /metrics beyond ready/healthy; undefined before the spool is loaded. */
  collect: () => Promise<Omit<MetricsInput, 'ready' | 'healthy' | 'now'> | undefined>;
  log: Logger;
}

/** The health rule alone (pure apart from its one bit of hysteresis state). */
export class HealthGate {
  private overloaded = false;

  /** Re-evaluate with the queue size now; true = too many messages. */
  tooManyMessages(queued: number, limits: { upper: number; lower: number }): boolean {
    if (!this.overloaded && queued > limits.upper) this.overloaded = true;
    else if (this.overloaded && queued < limits.lower) this.overloaded = false;
    return this.overloaded;
  }
}

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

export class MonitorServer {
  private ready = false;
  private stopping = false;
  private readonly gate = new HealthGate();
  private readonly server: http.Server;
  private readonly routes: Record<string, Route> = {
    '/ready': (_req, res) => this.plain(res, this.ready ? 200 : 503, this.ready ? 'ready' : 'not ready'),
    '/healthy': (_req, res) => {
      const reason = this.unhealthyReason();
      this.plain(res, reason ? 503 : 200, reason ?? 'healthy');
    },
    '/metrics': (req, res) => this.metrics(req, res),
  };

  constructor(private readonly opts: MonitorOptions) {
    this.server = createServer((req, res) => void this.handle(req, res), opts.tls);
  }

  async listen(): Promise<AddressInfo> {
    return listen(this.server, this.opts.listener.port, this.opts.listener.address);
  }

  address(): AddressInfo | undefined {
    return (this.server.address() as AddressInfo | null) ?? undefined;
  }

  /** One-way: the process has finished starting. */
  markReady(): void {
    this.ready = true;
  }

  markShuttingDown(): void {
    this.stopping = true;
  }

  close(ms?: number): Promise<void> {
    return closeServer(this.server, ms);
  }

  /** Why /healthy answers 503 now, or undefined when healthy. */
  unhealthyReason(): string | undefined {
    const over = this.gate.tooManyMessages(this.opts.queued(), this.opts.settings().healthy.maxmessages);
    if (!this.ready) return 'not ready';
    if (this.stopping) return 'shutting down';
    if (over) return 'too many messages queued';
    return undefined;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const route = Object.hasOwn(this.routes, path) ? this.routes[path] : undefined;
    if (!route) return this.plain(res, 404, 'not found');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return this.plain(res, 405, 'method not allowed');
    }
    try {
      await route(req, res);
    } catch (err) {
      this.opts.log.error({ path, err: (err as Error).message }, 'monitor request failed');
      if (!res.headersSent) this.plain(res, 500, 'internal error');
      else res.destroy();
    }
  }

  private async metrics(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const keys = this.opts.settings().apikeys;
    if (keys.length > 0 && !apiKeyMatches(req.headers['x-api-key'], keys)) return this.plain(res, 401, 'unauthorized');
    const healthy = this.unhealthyReason() === undefined;
    const extra = await this.opts.collect();
    const format = negotiate(req.headers.accept);
    const text = renderFamilies(metricFamilies({ ready: this.ready, healthy, now: Date.now(), ...extra }), format);
    this.send(res, 200, CONTENT_TYPES[format], text);
  }

  private plain(res: http.ServerResponse, status: number, text: string): void {
    this.send(res, status, 'text/plain; charset=utf-8', `${text}\n`);
  }

  private send(res: http.ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }
}

/** OpenMetrics unless the client asks for the Prometheus text format and not for OpenMetrics. */
export function negotiate(accept: string | undefined): ExpositionFormat {
  const a = (accept ?? '').toLowerCase();
  return a.includes('text/plain') && !a.includes('application/openmetrics-text') ? 'prometheus' : 'openmetrics';
}
