/**
 * Child process for spool-crash.test.ts (not a test itself): opens the spool given as argv[2],
 * then commits transactions in a loop (16 in flight) until killed, printing one line per
 * acknowledgement to stdout (a pipe, written synchronously on Linux):
 *   S <id>  before commit() is called        C <id>  after commit() resolved
 *   U <id>  after update() resolved          X <id>  before the removes are called
 *   R <id>  after both remove() resolved
 * Bounded: stops by itself after 20,000 commits or 30 s.
 */
import { randomUUID } from 'node:crypto';
import { openSpool } from '../../src/spool/journal';

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function one(spool: Awaited<ReturnType<typeof openSpool>>, n: number): Promise<void> {
  const id = randomUUID();
  say(`S ${id}`);
  const body = Buffer.alloc(2000 + (n % 7) * 1000, n & 0xff);
  await spool.commit({ id, meta: { n }, bodies: [body], entries: [{ queue: 1, meta: { v: 0 } }, { queue: 2, meta: { v: 0 } }] });
  say(`C ${id}`);
  if (n % 3 === 0) {
    await spool.update(id, 1, { v: 'u' });
    say(`U ${id}`);
  }
  if (n % 5 === 0) {
    say(`X ${id}`);
    await spool.remove(id, 1);
    await spool.remove(id, 2);
    say(`R ${id}`);
  }
}

async function main(): Promise<void> {
  const spool = await openSpool({ path: process.argv[2], fsync: true, corrupt: 'unlink', minfree: { bytes: 0, inodes: 0 }, segmentSize: 256 * 1024 });
  await spool.recover(() => undefined);
  say('READY');
  const deadline = Date.now() + 30_000;
  let n = 0;
  const worker = async (): Promise<void> => {
    while (n < 20_000 && Date.now() < deadline) await one(spool, n++);
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  await spool.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
