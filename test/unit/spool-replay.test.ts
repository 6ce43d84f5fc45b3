/**
 * Replay of spool records: an entry updated many times keeps exactly its latest state, whether
 * the new text is shorter, a little longer (written in place) or much longer than the last.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Replay, TextArena } from '../../src/spool/replay';

const ID = '6f1c2a40-9d3e-4b7a-8c11-0123456789ab';
const b = (s: string): Buffer => Buffer.from(s, 'utf8');

test('the latest UPDATE of each entry wins, in place or not, and the other entries are untouched', () => {
  const r = new Replay<number>();
  r.apply({ type: 'tx', id: ID, meta: b('{}'), entries: [{ queue: 1, meta: b('{"state":"ACTIVE","n":0}') }, { queue: 2, meta: b('{"state":"DEFER"}') }], bodies: [] }, 1, 1, 0, 100, []);
  const states = [
    '{"state":"HOLD","n":1}', // shorter: in place
    '{"state":"ACTIVE","n":22}', // a little longer: within the room
    '{"state":"DEFER","n":3,"error":"' + 'x'.repeat(300) + '"}', // much longer: a new copy
    '{"state":"HOLD","n":4,"note":"ünïcødé"}',
  ];
  let off = 100;
  for (const st of states) r.apply({ type: 'update', id: ID, queue: 1, meta: b(st) }, 1, 1, (off += 50), 50, []);
  const tx = r.txs.get(ID)!;
  assert.equal(r.textOf(tx, 0)?.toString('utf8'), states.at(-1));
  assert.equal(r.textOf(tx, 1)?.toString('utf8'), '{"state":"DEFER"}');
  assert.deepEqual(tx.durable, [1, 1, off, 2, 1, 0]);
  r.apply({ type: 'remove', id: ID, queue: 1 }, 1, 1, off + 50, 20, []);
  r.apply({ type: 'update', id: ID, queue: 2, meta: b('{"state":"HOLD"}') }, 1, 1, off + 70, 20, []);
  assert.equal(r.textOf(tx, 0)?.toString('utf8'), '{"state":"HOLD"}', 'entry 2 is now the first');
});

test('a text at the end of an arena chunk never gets room past the chunk', () => {
  const arena = new TextArena();
  const chunk = 16 * 1024 * 1024;
  const first = arena.put(Buffer.alloc(chunk - 10, 0x61), 64);
  assert.equal(first, 0);
  const next = arena.put(b('0123456789'));
  assert.equal(next, chunk, 'the spare bytes did not fit: the next text starts a new chunk');
  const r = new Replay<number>();
  // Fill most of a chunk with one long entry, then updates near the boundary stay readable.
  r.apply({ type: 'tx', id: ID, meta: b('{}'), entries: [{ queue: 1, meta: Buffer.alloc(chunk - 40, 0x62) }, { queue: 2, meta: b('{"a":1}') }], bodies: [] }, 1, 1, 0, 10, []);
  for (let i = 0; i < 5; i++) r.apply({ type: 'update', id: ID, queue: 2, meta: b(`{"a":${'9'.repeat(i * 20)}}`) }, 1, 1, 10 + i, 1, []);
  assert.equal(r.textOf(r.txs.get(ID)!, 1)?.toString('utf8'), `{"a":${'9'.repeat(80)}}`);
});
