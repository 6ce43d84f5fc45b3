/**
 * `E` QueueImportRequest: put a message into the queue, durably, through the ingress (the
 * same door SMTP and HTTP submission use: spool commit with fsync, then the in-memory queue).
 *
 * Inputs: `data.hqf` — a Halyard queue file (queue-file.ts), as `J` unload writes it: the
 * entries come back with their envelope, queue fields and state (ACTIVE, DEFER or HOLD; an
 * unload with `freeze` wrote HOLD); or `data.rfc822` — a raw message whose envelope is read
 * from its header fields (header-envelope.ts), every recipient ACTIVE on the transport of the
 * first server of the running configuration. `reset` gives a new transaction id, sets the
 * reception time to now, or sets the retry count to 0 (Halon's three switches).
 * Empty `serverid`/`transportid` in a queue file (halyardctl writes them so when the operator
 * gave none) take the same defaults. Bodies get CRLF line ends (RFC 5322 §2.1) and each
 * entry's size is its body's.
 * Output: `{transactionid}` once the transaction is on disk and queued.
 * Errors (`ControlError`, nothing imported): no data or both kinds, a bad queue file, no
 * recipient, a transport the running configuration lacks, a transaction id that is still
 * queued or still in the spool (import it with `reset.transactionid`), the spool at
 * `spool.minfree`. Other write failures are internal errors.
 */
import type { RunningConfig } from '../config/types';
import { toCrlf } from '../http/submission-parse';
import type { Ingress } from '../model/ingress';
import { newQueueEntry, type AcceptedTransaction, type QueueEntry } from '../model/types';
import type { QueueStore } from '../queue/store';
import { findTransport } from '../scheduler/plan';
import { ControlError } from './context';
import { envelopeFromHeaders } from './header-envelope';
import type * as M from './messages';
import { decodeQueueFile, QueueFileError, type QueueFile } from './queue-file';

export interface ImportDeps {
  ingress: Ingress;
  store: Pick<QueueStore, 'transaction'>;
  config: () => RunningConfig;
  hostname: string;
  newId: () => string;
  now: () => number;
  log: { info(obj: object, msg?: string): void };
}

export async function importMessage(deps: ImportDeps, req: M.QueueImportRequest): Promise<M.QueueImportResponse> {
  const config = deps.config();
  const file = read(deps, config, req.data);
  const reset = req.reset ?? {};
  const t = deps.now();
  const id = reset.transactionid?.value ? deps.newId() : file.transaction;
  const ts = reset.ts?.value ? t : file.ts;
  const { serverid, transportid } = defaults(config);
  const bodies = file.bodies.map(toCrlf);
  const entries = file.entries.map((e): QueueEntry => ({
    ...e,
    id: { transaction: id, queue: e.id.queue },
    ts: reset.ts?.value ? t : e.ts,
    serverid: e.serverid || serverid,
    transportid: e.transportid || transportid,
    retry: reset.retrycount?.value ? 0 : e.retry,
    size: bodies[e.body].length,
  }));
  for (const e of entries) {
    if (!findTransport(config, e.transportid)) throw new ControlError(`no transport ${JSON.stringify(e.transportid)} in the running configuration; nothing imported`);
  }
  if (deps.store.transaction(id).length > 0) throw new ControlError(`transaction ${id} is queued already; import with reset.transactionid to give the copy a new id`);
  const tx: AcceptedTransaction = {
    id,
    ts,
    serverid: file.serverid || serverid,
    sender: file.sender,
    from: { remoteip: '', remoteport: 0, localip: '', localport: 0, helo: deps.hostname, tls: false },
    bodies,
    entries,
  };
  await commit(deps, tx);
  deps.log.info({ transactionid: id, recipients: entries.length, states: [...new Set(entries.map((e) => e.state))] }, 'queue import by the control socket');
  return { transactionid: id };
}

/** The request's data as a queue file (a raw message gets a new id and its header envelope). */
function read(deps: ImportDeps, config: RunningConfig, data: M.QueueImportRequest['data']): QueueFile {
  const hqf = data?.hqf;
  const raw = data?.rfc822;
  if (hqf?.length && raw?.length) throw new ControlError('give data.rfc822 or data.hqf, not both');
  if (hqf?.length) {
    try {
      return decodeQueueFile(Buffer.from(hqf));
    } catch (err) {
      if (err instanceof QueueFileError) throw new ControlError(err.message);
      throw err;
    }
  }
  if (!raw?.length) throw new ControlError('nothing to import: give data.rfc822 (a message) or data.hqf (a queue file)');
  const env = envelopeFromHeaders(toCrlf(Buffer.from(raw)));
  if (env.recipients.length === 0) throw new ControlError('the message names no recipient in To, Cc or Bcc (halyardctl queue import --recipient gives an envelope)');
  const transaction = deps.newId();
  const ts = deps.now();
  const { serverid, transportid } = defaults(config);
  const entries = env.recipients.map((recipient, i) => newQueueEntry({ id: { transaction, queue: i + 1 }, ts, serverid, sender: env.sender, recipient, transportid, size: env.message.length }));
  return { transaction, ts, serverid, sender: env.sender, bodies: [env.message], entries };
}

/** Where a message without a server or transport of its own goes: the first server's. */
function defaults(config: RunningConfig): { serverid: string; transportid: string } {
  const first = config.servers[0];
  return { serverid: first?.id ?? '', transportid: first?.transport ?? '' };
}

async function commit(deps: ImportDeps, tx: AcceptedTransaction): Promise<void> {
  try {
    await deps.ingress.commit(tx);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'SPOOL_FULL') throw new ControlError('the spool is at spool.minfree; nothing imported');
    if (code === 'SPOOL_DUPLICATE') throw new ControlError(`transaction ${tx.id} is still in the spool; import with reset.transactionid to give the copy a new id`);
    throw err;
  }
}
