/**
 * Helpers shared by the delivery end-to-end tests: a running-config builder for a daemon that
 * relays to test sinks on loopback, and bounded waiting.
 */
import { defaultSmtpd, writeConfig, type ConfigSet, type Daemon, type LogLine } from './harness';

export interface AppOptions {
  /** YAML list items under the single transport group's `transports:` (indented 6). */
  transports: string;
  /** The group's retry block body (indented 6), e.g. 'count: 2\n      intervals: [...]'. */
  retry?: string;
  /** Transport id used for DSNs; absent = no DSNs. */
  dsn?: string;
  /** Extra top-level YAML (resolver, scripting, queues...). */
  top?: string;
  /** Server transport. Default 'out'. */
  transport?: string;
}

export function deliveryApp(o: AppOptions): string {
  return `version: "6.8"
servers:
  - id: default
    transport: ${o.transport ?? 'out'}
transportgroups:
  - id: default
${o.retry ? `    retry:\n      ${o.retry}\n` : ''}${o.dsn ? `    dsn: { transport: ${o.dsn} }\n` : ''}    transports:
${o.transports}
${o.top ?? ''}`;
}

/** A transport delivering to a fixed loopback port. */
export function fixed(id: string, port: number, extra = ''): string {
  return `      - id: ${id}\n        connection: { server: 127.0.0.1, port: ${port} }\n${extra}`;
}

export function deliveryConfig(app: string, files: Record<string, string> = {}): ConfigSet {
  return writeConfig({ smtpd: defaultSmtpd(), app, files, deliver: true });
}

/** Poll `pred` every 20 ms until true; throws with `what` after `ms`. */
export async function waitUntil(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Delivery log records (msg 'delivery') of a daemon. */
export function deliveries(d: Daemon, pred: (l: LogLine) => boolean = () => true): LogLine[] {
  return d.logs.filter((l) => l.msg === 'delivery' && pred(l));
}

export function queueIdOf(reply: string): string {
  const m = /queued as ([0-9a-f-]{36})/.exec(reply);
  if (!m) throw new Error(`no queue id in ${JSON.stringify(reply)}`);
  return m[1];
}
