/**
 * `J` QueueUnloadRequest: take the entries matching a condition out of the queue into queue
 * files (queue-file.ts), one file per transaction, and answer their paths (`hqfpaths`).
 *
 * Halon keeps one HQF file per transaction in its spool; unloading drops the messages from the
 * running queue and leaves their files for the operator to move elsewhere and load there (or
 * back) with `E` import. Halyard's spool is a journal, so the files are written here: into the
 * unload folder (`<spool.path>/unloaded/` in the daemon), named `<transaction>.hqf` (`-2`, `-3`
 * … when that name is taken), each written to a temporary name, fsynced, linked to its name
 * and the folder fsynced — and only then are the entries removed from the spool and the
 * queue. A crash in between leaves the message both in a file and queued, never in neither.
 *
 * Request fields (halon-api.md §5.5):
 * - `conditions`: as for list and update (none = every entry);
 * - `freeze`: the entries are written in HOLD, so importing the file does not deliver them
 *   until released (without it they keep ACTIVE, DEFER with its retry time, or HOLD);
 * - `partial`: a transaction of which only some queued recipients match is unloaded in part
 *   (the file holds the matching ones); without it such a transaction stays queued whole.
 * Response: `hqfpaths` (absolute), `partial` = transactions that matched only in part
 * (unloaded in part with `partial`, left queued without it), `working` = matching entries
 * being delivered or changed by another request, left alone.
 * Errors: `ControlError` when the daemon has no unload folder. A file that cannot be written
 * leaves its entries queued (logged); so does a spool removal that fails (logged: that file
 * then duplicates a queued entry).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { QueueEntry } from '../model/types';
import type { QueueStore } from '../queue/store';
import type { Spool } from '../spool/types';
import type { Claims, Taken } from './queue-claim';
import { ControlError } from './context';
import type * as M from './messages';
import { encodeQueueFile } from './queue-file';

export interface UnloadDeps {
  store: Pick<QueueStore, 'transaction' | 'delete' | 'has' | 'setState'>;
  spool: Pick<Spool, 'remove' | 'readBody'>;
  claims: Claims;
  /** The folder files are written to; undefined = unload is not offered. */
  dir: string | undefined;
  log: { info(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
}

/** Transactions written at once (each is a read of its bodies, a file write and an fsync). */
const FILE_BATCH = 32;

interface Group {
  txid: string;
  taken: Taken[];
}

export async function unload(deps: UnloadDeps, req: M.QueueUnloadRequest, found: readonly QueueEntry[]): Promise<M.QueueUnloadResponse> {
  const dir = deps.dir;
  if (!dir) throw new ControlError('queue unload is not available in this daemon');
  const { groups, partial, working } = claimGroups(deps, found, req.partial === true);
  const paths: string[] = [];
  try {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o750 });
    for (let i = 0; i < groups.length; i += FILE_BATCH) {
      const batch = groups.slice(i, i + FILE_BATCH);
      const written = await Promise.all(batch.map((g) => writeFile(deps, dir, g, req.freeze === true)));
      await syncDir(dir);
      for (let k = 0; k < batch.length; k++) {
        const file = written[k];
        if (file === undefined) continue;
        paths.push(file);
        await removeQueued(deps, batch[k], file);
      }
    }
  } finally {
    deps.claims.release(groups.flatMap((g) => g.taken));
  }
  deps.log.info({ files: paths.length, partial, working, freeze: req.freeze === true, dir }, 'queue unloaded by the control socket');
  return { hqfpaths: paths, partial, working };
}

/** Group the matches by transaction and claim what will be unloaded (synchronously). */
function claimGroups(deps: UnloadDeps, found: readonly QueueEntry[], allowPartial: boolean): { groups: Group[]; partial: number; working: number } {
  const byTx = new Map<string, QueueEntry[]>();
  for (const e of found) {
    const list = byTx.get(e.id.transaction);
    if (list) list.push(e);
    else byTx.set(e.id.transaction, [e]);
  }
  const groups: Group[] = [];
  let partial = 0;
  let working = 0;
  for (const [txid, matched] of byTx) {
    const free = matched.filter((e) => !deps.claims.working(e));
    working += matched.length - free.length;
    if (free.length === 0) continue;
    if (free.length < deps.store.transaction(txid).length) {
      partial++;
      if (!allowPartial) continue;
    }
    groups.push({ txid, taken: free.map((e) => deps.claims.claim(e)) });
  }
  return { groups, partial, working };
}

/** Write one transaction's file; its path, or undefined when it could not be written. */
async function writeFile(deps: UnloadDeps, dir: string, g: Group, freeze: boolean): Promise<string | undefined> {
  const tmp = path.join(dir, `.${g.txid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const data = encodeQueueFile(await fileOf(deps, g, freeze));
    const fh = await fs.promises.open(tmp, 'wx', 0o640);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return await linkFree(tmp, dir, g.txid);
  } catch (err) {
    deps.log.error({ transactionid: g.txid, err: (err as Error).message }, 'queue unload: file not written; the entries stay queued');
    return undefined;
  } finally {
    await fs.promises.unlink(tmp).catch(() => undefined);
  }
}

/** The file's content: the taken entries, with only the bodies they use (renumbered). */
async function fileOf(deps: UnloadDeps, g: Group, freeze: boolean): Promise<Parameters<typeof encodeQueueFile>[0]> {
  const used = [...new Set(g.taken.map((x) => x.e.body))].sort((a, b) => a - b);
  const bodies = await Promise.all(used.map((b) => deps.spool.readBody(g.txid, b)));
  const first = g.taken[0].e;
  const entries = g.taken.map(({ e, previous }): QueueEntry => ({ ...e, id: { ...e.id }, state: freeze ? 'HOLD' : previous, body: used.indexOf(e.body) }));
  return { transaction: g.txid, ts: first.ts, serverid: first.serverid, sender: first.sender, bodies, entries };
}

/** Link `tmp` to `<txid>.hqf`, or `<txid>-N.hqf` when taken (link never replaces a file). */
async function linkFree(tmp: string, dir: string, txid: string): Promise<string> {
  for (let n = 1; ; n++) {
    const file = path.join(dir, n === 1 ? `${txid}.hqf` : `${txid}-${n}.hqf`);
    try {
      await fs.promises.link(tmp, file);
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || n >= 1000) throw err;
    }
  }
}

/** fsync the folder, so the new names survive a crash (the files' data already did). */
async function syncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function removeQueued(deps: UnloadDeps, g: Group, file: string): Promise<void> {
  await Promise.all(g.taken.map(async ({ e, previous }) => {
    try {
      await deps.spool.remove(e.id.transaction, e.id.queue);
      deps.store.delete(e);
    } catch (err) {
      if (deps.store.has(e)) deps.store.setState(e, previous);
      deps.log.error({ id: `${e.id.transaction}:${e.id.queue}`, file, err: (err as Error).message }, 'queue unload: entry written to its file but still queued; importing that file would duplicate it');
    }
  }));
}
