/**
 * Crash safety: a child process commits, updates and removes in a loop and prints every
 * acknowledgement; the parent kills it with SIGKILL after ~300 acknowledged commits. Reopening
 * the spool must give back every acknowledged commit (with its acknowledged update), none of the
 * acknowledged removals, and nothing that was never submitted. Done twice on the same spool, so
 * the second run also starts from a recovered (possibly torn) spool.
 *
 * SIGKILL loses the process, not the page cache: this checks the write path's ordering and
 * recovery from torn tails, not the disk's honouring of fsync (see docs/spool.md §2).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { openRecovered, options, removeDir, tempDir } from './spool-helpers';

const CHILD = path.join(__dirname, 'spool-crash-child.js');

interface Acks {
  submitted: Set<string>;
  committed: Set<string>;
  updated: Set<string>;
  removing: Set<string>;
  removed: Set<string>;
}

/** Run the child until `commits` acknowledgements, then SIGKILL it. Bounded by 20 s. */
function runAndKill(dir: string, commits: number): Promise<Acks> {
  const acks: Acks = { submitted: new Set(), committed: new Set(), updated: new Set(), removing: new Set(), removed: new Set() };
  const child = spawn(process.execPath, [CHILD, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const sets: Record<string, Set<string>> = { S: acks.submitted, C: acks.committed, U: acks.updated, X: acks.removing, R: acks.removed };
  createInterface({ input: child.stdout }).on('line', (line) => {
    const [kind, id] = line.split(' ');
    sets[kind]?.add(id);
    if (kind === 'C' && acks.committed.size === commits) child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child ended by itself (${code}): ${stderr}`));
      else resolve(acks);
    });
  });
}

test('every commit acknowledged before SIGKILL is recovered; acknowledged removals stay removed', async (t) => {
  const dir = await tempDir();
  t.after(() => removeDir(dir));
  const history: Acks[] = [];
  for (let round = 0; round < 2; round++) {
    history.push(await runAndKill(dir, 300));
    const { spool, txs, report } = await openRecovered(options(dir));
    await spool.close();
    const all = { submitted: new Set<string>(), removed: new Set<string>() };
    for (const h of history) {
      h.submitted.forEach((id) => all.submitted.add(id));
      h.removed.forEach((id) => all.removed.add(id));
    }
    const acks = history[round];
    assert.ok(acks.committed.size >= 300, `round ${round}: ${acks.committed.size} acknowledged`);
    for (const h of history) {
      for (const id of h.committed) {
        if (h.removing.has(id)) continue; // removal under way: either outcome is right
        const tx = txs.get(id);
        assert.ok(tx, `round ${round}: acknowledged ${id} lost`);
        if (h.updated.has(id)) assert.deepEqual(tx.entries.find((e) => e.queue === 1)?.meta, { v: 'u' });
      }
    }
    for (const id of all.removed) assert.equal(txs.has(id), false, `removed ${id} came back`);
    for (const id of txs.keys()) assert.ok(all.submitted.has(id), `${id} was never submitted`);
    assert.ok(report.corrupt.every((c) => c.action === 'unlink'));
  }
});
