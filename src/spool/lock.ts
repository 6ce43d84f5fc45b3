/**
 * Exclusive lock on a spool directory, so two daemons (or two opens in one process) never
 * append to the same segments.
 *
 * The lock is a file `<dir>/lock` holding the owner's pid. Acquire: create it exclusively
 * (O_CREAT|O_EXCL). If it exists, it is honoured when its pid is alive and is not this process,
 * or when this process already holds it (tracked in memory); otherwise it is stale (the owner
 * died: SIGKILL, power loss) and is replaced atomically (write a temporary file, rename).
 * A stale lock naming this process's own pid is normal after a restart in a container where the
 * daemon always gets the same pid, hence the in-memory set instead of "pid === mine".
 *
 * Output: a release function (removes the file if it still names this process).
 * Errors: SpoolLockedError (code 'SPOOL_LOCKED') with the holder's pid; I/O errors as is.
 * Limitation: two processes racing to replace the same stale lock can both succeed; this guards
 * against an accidental second start, not against a hostile one.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

export class SpoolLockedError extends Error {
  readonly code = 'SPOOL_LOCKED';
  constructor(readonly dir: string, readonly pid: number | null) {
    super(pid === null ? `spool ${dir} is already open in this process` : `spool ${dir} is locked by running process ${pid}`);
  }
}

/** Lock files held by this process (absolute paths). */
const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readPid(file: string): Promise<number | null> {
  try {
    const pid = Number.parseInt(await fsp.readFile(file, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function createExclusive(file: string): Promise<boolean> {
  try {
    await fsp.writeFile(file, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

async function replaceStale(dir: string, file: string): Promise<void> {
  const tmp = path.join(dir, `lock.${process.pid}.tmp`);
  await fsp.writeFile(tmp, `${process.pid}\n`, { mode: 0o644 });
  await fsp.rename(tmp, file);
  if ((await readPid(file)) !== process.pid) throw new SpoolLockedError(dir, await readPid(file));
}

async function take(dir: string, file: string): Promise<void> {
  if (await createExclusive(file)) return;
  const pid = await readPid(file);
  if (pid !== null && pid !== process.pid && alive(pid)) throw new SpoolLockedError(dir, pid);
  await replaceStale(dir, file);
}

export async function acquireLock(dir: string): Promise<() => Promise<void>> {
  const file = path.join(await fsp.realpath(dir), 'lock');
  if (held.has(file)) throw new SpoolLockedError(dir, null);
  held.add(file);
  try {
    await take(dir, file);
  } catch (err) {
    held.delete(file);
    throw err;
  }
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    held.delete(file);
    if ((await readPid(file)) === process.pid) await fsp.unlink(file).catch(() => undefined);
  };
}
