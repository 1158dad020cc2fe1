import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IndexedMinHeap } from '../src/core/indexed-heap.ts';
import { Random } from '../src/core/random.ts';
import { emptySlab, SlabPool } from '../src/prefetcher/slab.ts';

test('SlabPool: slots across chunks are disjoint; a released slot comes back zeroed and is reused first', () => {
  const pool = new SlabPool({ f64: 2, f32: 3, u16: 5 }, 4);
  assert.equal(pool.bytesPerSlot, 2 * 8 + 3 * 4 + 5 * 2);
  const refs = Array.from({ length: 10 }, () => emptySlab());
  refs.forEach((r, i) => {
    pool.alloc(r);
    r.f64.fill(i + 1, r.o64, r.o64 + 2);
    r.f32.fill(i + 1, r.o32, r.o32 + 3);
    r.u16.fill(i + 1, r.o16, r.o16 + 5);
  });
  assert.equal(pool.slotsInUse, 10);
  assert.equal(pool.allocatedBytes, 3 * 4 * pool.bytesPerSlot, 'three chunks of four slots');
  // Every slot still holds what was written to it: no two refs overlap.
  refs.forEach((r, i) => {
    assert.deepEqual([...r.f64.subarray(r.o64, r.o64 + 2)], [i + 1, i + 1]);
    assert.deepEqual([...r.f32.subarray(r.o32, r.o32 + 3)], [i + 1, i + 1, i + 1]);
    assert.deepEqual([...r.u16.subarray(r.o16, r.o16 + 5)], Array(5).fill(i + 1));
  });
  const freed = refs[5]!;
  const slot = freed.slot;
  pool.release(freed);
  assert.equal(freed.slot, -1, 'a released ref points at nothing');
  assert.equal(pool.slotsInUse, 9);
  pool.release(freed); // twice: harmless
  assert.equal(pool.slotsInUse, 9);
  const again = emptySlab();
  pool.alloc(again);
  assert.equal(again.slot, slot, 'the freed slot is reused first');
  assert.deepEqual([...again.f64.subarray(again.o64, again.o64 + 2)], [0, 0]);
  assert.deepEqual([...again.f32.subarray(again.o32, again.o32 + 3)], [0, 0, 0]);
  assert.deepEqual([...again.u16.subarray(again.o16, again.o16 + 5)], [0, 0, 0, 0, 0]);
  assert.throws(() => pool.alloc(again), /already holds a slot/);
  assert.throws(() => new SlabPool({ f64: -1, f32: 0, u16: 0 }), /non-negative integer/);
  assert.throws(() => new SlabPool({ f64: 0, f32: 1.5, u16: 0 }), /non-negative integer/);
});

test('IndexedMinHeap: pops in order through pushes, keys moved both ways and removals (against a sorted list)', () => {
  const rnd = new Random(7);
  type Item = { key: number; heapIndex: number };
  const heap = new IndexedMinHeap<Item>((a, b) => a.key < b.key);
  const items: Item[] = Array.from({ length: 200 }, () => ({ key: 0, heapIndex: -1 }));
  const inHeap = new Set<Item>();
  for (let step = 0; step < 5_000; step++) {
    const item = items[rnd.int(items.length)]!;
    const r = rnd.next();
    if (r < 0.7) {
      item.key = Math.floor(rnd.next() * 1_000_000); // a new key, earlier or later
      if (inHeap.has(item)) heap.update(item);
      else heap.push(item);
      inHeap.add(item);
    } else if (r < 0.85) {
      heap.remove(item);
      inHeap.delete(item);
      assert.equal(item.heapIndex, -1);
    } else if (heap.size > 0) {
      const top = heap.pop()!;
      assert.equal(top.key, Math.min(...[...inHeap].map((x) => x.key)), `step ${step}: the top is the smallest`);
      inHeap.delete(top);
    }
    assert.equal(heap.size, inHeap.size);
  }
  assert.throws(() => heap.push(heap.peek()!), /already in a heap/);
  const popped: number[] = [];
  for (let top = heap.pop(); top; top = heap.pop()) popped.push(top.key);
  assert.deepEqual(popped, [...inHeap].map((x) => x.key).sort((a, b) => a - b));
  assert.ok(items.every((x) => x.heapIndex === -1));
});
