/**
 * Memory per queued recipient in the in-memory queue (QueueStore), measured with the V8 heap.
 *
 *   node --expose-gc dist/bench/queue-memory.js [entries=100000] [recipients-per-transaction=1] [attempted=0]
 *
 * With attempted=1, DEFER entries carry their last attempt's localip, remotemx, remoteip and
 * grouping, as after a delivery attempt and a restart.
 *
 * Builds entries the way spool recovery does (JSON metadata decoded by queue/codec.ts, one
 * transaction id string shared by the entries of a transaction), adds them to a QueueStore with
 * a realistic mix of states (80 % ACTIVE, 15 % DEFER, 5 % HOLD; a quarter with a jobid), and
 * prints heap growth per entry after a full GC. Bodies are not in memory (they stay in the spool).
 */
import { randomUUID } from 'node:crypto';
import { decodeEntry, encodeEntry } from '../src/queue/codec';
import { QueueStore } from '../src/queue/store';
import type { QueueEntry } from '../src/model/types';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}

const N = Number(process.argv[2] ?? 100_000);
const PER_TX = Math.max(1, Number(process.argv[3] ?? 1));
const ATTEMPTED = process.argv[4] === '1';

function sample(tx: string, queue: number, i: number): QueueEntry {
  const state = i % 20 === 0 ? 'HOLD' : i % 7 === 0 ? 'DEFER' : 'ACTIVE';
  const e = entryOf(tx, queue, i, state);
  if (ATTEMPTED && state === 'DEFER') {
    e.localip = `192.0.2.${1 + (i % 4)}`;
    e.remotemx = `mx.domain${i % 2000}.example`;
    e.remoteip = `198.51.100.${i % 250}`;
    e.grouping = `domain${i % 2000}.example`;
  }
  return e;
}

function entryOf(tx: string, queue: number, i: number, state: 'HOLD' | 'DEFER' | 'ACTIVE'): QueueEntry {
  return {
    id: { transaction: tx, queue },
    ts: Date.now(),
    serverid: 'inbound',
    sender: `sender${i % 5000}@example.com`,
    senderaddress: { localpart: `sender${i % 5000}`, domain: 'example.com' },
    recipient: `user${i}@domain${i % 2000}.example`,
    recipientaddress: { localpart: `user${i}`, domain: `domain${i % 2000}.example` },
    transportid: i % 3 === 0 ? 'mx' : 'outbound',
    tenantid: '',
    jobid: i % 4 === 0 ? `job-${i % 50}` : '',
    priority: 0,
    metadata: {},
    quotas: [],
    tags: [],
    dsn: {},
    state,
    retry: state === 'DEFER' ? 1 : 0,
    retryts: state === 'DEFER' ? Date.now() + 60_000 + i : 0,
    body: 0,
    size: 5120,
  };
}

function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

// Recovery reads each entry's JSON text from a segment buffer and parses it. The text is made
// inside the measured loop: V8 may keep parsed strings as slices of their source text, so
// whatever the source costs while entries live is counted.
const before = heap();
const store = new QueueStore();
for (let i = 0; i < N; i += PER_TX) {
  const tx = Buffer.from(randomUUID(), 'latin1').toString('latin1');
  for (let q = 1; q <= PER_TX && i + q - 1 < N; q++) {
    const text = Buffer.from(JSON.stringify(encodeEntry(sample(tx, q, i + q - 1)))).toString('utf8');
    store.add(decodeEntry(tx, q, JSON.parse(text)));
  }
}
const after = heap();
const per = (after - before) / N;
process.stdout.write(
  `${N} entries, ${PER_TX} per transaction${ATTEMPTED ? ', DEFER attempted' : ''}: ${((after - before) / 1048576).toFixed(1)} MiB, ${per.toFixed(0)} bytes per entry ` +
  `(ACTIVE ${store.count('ACTIVE')}, DEFER ${store.count('DEFER')}, HOLD ${store.count('HOLD')})\n`,
);
// Keep the store alive until measured.
if (store.size !== N) process.exit(1);
