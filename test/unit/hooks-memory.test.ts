import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InProcessMemoryStore } from '../../src/hooks/memory';

test('store returns the previous value; fetch returns a copy', () => {
  const m = new InProcessMemoryStore();
  assert.equal(m.store('k', { list: [1, 2] }), undefined);
  const v = m.fetch('k') as { list: number[] };
  v.list.push(3);
  assert.deepEqual(m.fetch('k'), { list: [1, 2] });
  assert.deepEqual(m.store('k', 'new'), { list: [1, 2] });
  assert.equal(m.exists('k'), true);
  assert.equal(m.exists('other'), false);
});

test('delete returns what the key held; list is sorted', () => {
  const m = new InProcessMemoryStore();
  for (const k of ['b', 'c', 'a']) m.store(k, k);
  assert.deepEqual(m.list(), ['a', 'b', 'c']);
  assert.equal(m.delete('b'), 'b');
  assert.equal(m.delete('b'), undefined);
  assert.equal(m.size, 2);
});

test('inc and dec count from 0 and refuse non-numbers', () => {
  const m = new InProcessMemoryStore();
  assert.equal(m.inc('n'), 1);
  assert.equal(m.inc('n', 5), 6);
  assert.equal(m.dec('n', 2), 4);
  assert.equal(m.fetch('n'), 4);
  m.store('s', 'text');
  assert.throws(() => m.inc('s'), /holds a string, not a number/);
  assert.throws(() => m.store('u', undefined as never), TypeError);
  assert.throws(() => m.store('f', 1n as never), TypeError);
});
