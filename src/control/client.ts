/**
 * A control-socket client (halyardctl, tests): connects to a Unix socket or to TCP (with
 * TLS), announces the API version once, then sends requests and reads their replies in order.
 *
 * Inputs: where to connect; per request a command character and an optional body.
 * Outputs: each request resolves with its reply: status '+' with the protobuf payload, or
 * 'E' with the error text. Log frames ('=') that arrive meanwhile go to `onLog`.
 * Invariants: replies are matched to requests by order (the protocol has no ids); requests
 * may be pipelined. Every wait is bounded by `timeoutMs`.
 * Errors: connection failures reject `connect` with a `ControlConnectError`; a protocol error,
 * a closed connection or a timeout rejects every pending request with one.
 */
import net from 'node:net';
import tls from 'node:tls';
import { encodeRequest, encodeVersion, ReplyDecoder, type ApiVersion } from './framing';

/** The API version Halyard's client announces: the Halon schema it implements (6.4-era). */
export const CLIENT_API_VERSION: ApiVersion = { major: 6, minor: 4 };

export type ControlTarget = { path: string } | { host: string; port: number; tls?: tls.ConnectionOptions };

export interface Reply {
  status: '+' | 'E';
  payload: Buffer;
}

export class ControlConnectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlConnectError';
  }
}

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

function describe(target: ControlTarget): string {
  return 'path' in target ? target.path : `${target.host}:${target.port}`;
}

export class ControlClient {
  private readonly decoder = new ReplyDecoder();
  private readonly pending: Pending[] = [];
  private failure: Error | undefined;
  private timer: NodeJS.Timeout | undefined;
  onLog: ((payload: Buffer) => void) | undefined;

  private constructor(
    private readonly sock: net.Socket,
    private readonly timeoutMs: number,
  ) {
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (err) => this.fail(new ControlConnectError(`control socket: ${err.message}`)));
    sock.on('close', () => this.fail(new ControlConnectError('the daemon closed the control connection')));
  }

  static connect(target: ControlTarget, opts: { timeoutMs?: number; version?: ApiVersion } = {}): Promise<ControlClient> {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    return new Promise((resolve, reject) => {
      const secure = 'port' in target && target.tls !== undefined;
      const sock =
        'path' in target
          ? net.connect({ path: target.path })
          : secure
            ? tls.connect({ host: target.host, port: target.port, ...target.tls })
            : net.connect({ host: target.host, port: target.port });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new ControlConnectError(`cannot connect to ${describe(target)}: timed out`));
      }, timeoutMs);
      sock.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new ControlConnectError(`cannot connect to ${describe(target)}: ${err.code ?? err.message}`));
      });
      sock.once(secure ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        sock.write(encodeVersion(opts.version ?? CLIENT_API_VERSION));
        resolve(new ControlClient(sock, timeoutMs));
      });
    });
  }

  /** Send one request; resolves with its reply. */
  request(command: string, body?: Uint8Array): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Reply>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.armTimer();
      this.sock.write(encodeRequest(command, body));
    });
  }

  /** Write raw bytes (tests of malformed input). */
  writeRaw(bytes: Buffer): void {
    this.sock.write(bytes);
  }

  /** Wait for the next reply without sending anything (after `writeRaw`). */
  nextReply(): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Reply>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.armTimer();
    });
  }

  close(): void {
    clearTimeout(this.timer);
    this.sock.end();
    this.sock.destroy();
  }

  private armTimer(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fail(new ControlConnectError(`no reply from the daemon within ${this.timeoutMs} ms`)), this.timeoutMs);
  }

  private onData(chunk: Buffer): void {
    this.decoder.push(chunk);
    for (;;) {
      const ev = this.decoder.next();
      if (ev.kind === 'incomplete') return;
      if (ev.kind === 'error') return this.fail(new ControlConnectError(`control protocol: ${ev.reason}`));
      if (ev.status === '=') {
        this.onLog?.(ev.payload);
        continue;
      }
      const p = this.pending.shift();
      if (!p) return this.fail(new ControlConnectError('control protocol: a reply arrived that nothing asked for'));
      p.resolve({ status: ev.status, payload: ev.payload });
      if (this.pending.length) this.armTimer();
      else clearTimeout(this.timer);
    }
  }

  private fail(err: Error): void {
    clearTimeout(this.timer);
    this.failure ??= err;
    for (const p of this.pending.splice(0)) p.reject(this.failure);
    this.sock.destroy();
  }
}
