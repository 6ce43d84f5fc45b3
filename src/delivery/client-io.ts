/**
 * Reply stream: the socket side of the outbound client session.
 *
 * Inputs: a connected socket (plain, later possibly replaced by its TLS wrapper), reply limits.
 * Outputs: `read(state, seconds)` → the next reply in order, or an AttemptError; `write(data,
 * state, seconds)` → undefined once the data is handed to the kernel buffer (waiting for 'drain'
 * when the socket says so: back-pressure), or an AttemptError.
 *
 * Invariants:
 * - Replies are queued as they arrive and handed out in order, so pipelined commands (RFC 2920)
 *   can be written at once and their replies read one by one.
 * - The first failure is sticky (peer closed, socket error, time-out, reply syntax): every later
 *   read or write returns it at once, and the socket is destroyed. A time-out leaves the
 *   session in an unknown state, so it ends it (RFC 5321 §4.5.3.2: the client closes).
 * - At most one read and one write are outstanding (the session is sequential).
 * Errors: none thrown; failures are AttemptError values with type 'network', 'timeout' or
 * 'protocol', all temporary.
 */
import type { Socket } from 'node:net';
import { ReplyParser } from './client-reply';
import type { AttemptError, ReplyLimits, SmtpState } from './client-types';
import type { Reply } from '../model/types';

export type ReadResult = { reply: Reply } | { error: AttemptError };

type Fault = { kind: 'closed' } | { kind: 'error'; code: string } | { kind: 'protocol'; message: string } | { kind: 'timeout'; state?: SmtpState; what: string };

interface Waiter {
  state: SmtpState;
  resolve: (r: ReadResult) => void;
  timer: NodeJS.Timeout;
}

export class ReplyStream {
  private socket: Socket;
  private parser: ReplyParser;
  private queue: Reply[] = [];
  private waiter: Waiter | undefined;
  private fault: Fault | undefined;
  private faultListeners = new Set<() => void>();
  private readonly onData = (chunk: Buffer): void => this.received(chunk);
  private readonly onError = (err: NodeJS.ErrnoException): void => this.failWith({ kind: 'error', code: err.code ?? err.message });
  private readonly onClose = (): void => this.failWith({ kind: 'closed' });

  constructor(socket: Socket, limits?: ReplyLimits) {
    this.socket = socket;
    this.parser = new ReplyParser(limits);
    this.listen(socket);
  }

  get current(): Socket {
    return this.socket;
  }

  get failed(): boolean {
    return this.fault !== undefined;
  }

  /** Replies or partial reply octets received and not yet read (unsolicited data when idle). */
  get hasUnread(): boolean {
    return this.queue.length > 0 || this.parser.buffered;
  }

  /** Called once when the stream fails (peer closed, error, time-out). Returns an unsubscribe. */
  onFault(listener: () => void): () => void {
    if (this.fault) {
      listener();
      return () => undefined;
    }
    this.faultListeners.add(listener);
    return () => this.faultListeners.delete(listener);
  }

  read(state: SmtpState, seconds: number): Promise<ReadResult> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve({ reply: queued });
    if (this.fault) return Promise.resolve({ error: this.describe(this.fault, state) });
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.failWith({ kind: 'timeout', state, what: `waiting for the ${state} reply` }), seconds * 1000);
      this.waiter = { state, resolve, timer };
    });
  }

  /** Write; when the kernel buffer is full wait for 'drain' at most `seconds`. */
  write(data: string | Buffer, state: SmtpState, seconds: number, what = 'sending'): Promise<AttemptError | undefined> {
    if (this.fault) return Promise.resolve(this.describe(this.fault, state));
    const flushed = this.socket.write(data);
    if (flushed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.socket.off('drain', done);
        this.faultListeners.delete(done);
        resolve(this.fault ? this.describe(this.fault, state) : undefined);
      };
      const timer = setTimeout(() => this.failWith({ kind: 'timeout', state, what }), seconds * 1000);
      this.socket.on('drain', done);
      this.faultListeners.add(done);
    });
  }

  /**
   * Stop listening to the current socket and hand it over (STARTTLS). Refused when the peer sent
   * anything after the last reply read: that data was sent before TLS and must not be trusted
   * afterwards (the STARTTLS response-injection problem, RFC 3207 §5 / CVE-2011-0411).
   */
  detach(): Socket | undefined {
    if (this.hasUnread || this.fault) return undefined;
    this.unlisten(this.socket);
    // Errors during the handover must not be unhandled; the TLS wrapper reports them.
    this.socket.on('error', () => undefined);
    return this.socket;
  }

  /** Continue on a new socket (the TLS wrapper of the detached one), with a fresh parser. */
  attach(socket: Socket, limits?: ReplyLimits): void {
    this.socket = socket;
    this.parser = new ReplyParser(limits);
    this.listen(socket);
  }

  /** Fail the stream now (used for time-outs outside read/write, e.g. the TLS handshake). */
  abort(state: SmtpState | undefined, what: string): void {
    this.failWith({ kind: 'timeout', state, what });
  }

  destroy(): void {
    this.failWith({ kind: 'closed' });
  }

  private listen(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private unlisten(socket: Socket): void {
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('close', this.onClose);
  }

  private received(chunk: Buffer): void {
    const { replies, error } = this.parser.feed(chunk);
    for (const r of replies) this.deliver(r);
    if (error) this.failWith({ kind: 'protocol', message: error.message });
  }

  private deliver(reply: Reply): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.resolve({ reply });
    } else {
      this.queue.push(reply);
    }
  }

  private failWith(fault: Fault): void {
    if (this.fault) return;
    this.fault = fault;
    this.socket.destroy();
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.resolve({ error: this.describe(fault, w.state) });
    }
    const listeners = [...this.faultListeners];
    this.faultListeners.clear();
    for (const l of listeners) l();
  }

  private describe(fault: Fault, state: SmtpState): AttemptError {
    switch (fault.kind) {
      case 'closed':
        return { temporary: true, type: 'network', state, message: `connection closed by the peer in state ${state}` };
      case 'error':
        return { temporary: true, type: 'network', state, message: `connection error in state ${state}: ${fault.code}` };
      case 'protocol':
        return { temporary: true, type: 'protocol', state, message: `invalid reply in state ${state}: ${fault.message}` };
      case 'timeout':
        return { temporary: true, type: 'timeout', state: fault.state ?? state, message: `timed out ${fault.what}` };
      default:
        return assertNever(fault);
    }
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected ${JSON.stringify(x)}`);
}
