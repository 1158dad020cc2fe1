import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../src/core/clock.ts';
import { KeyCache } from '../src/keycache/key-cache.ts';
import type { CachedKey } from '../src/keycache/types.ts';

function key(queueId: string, principal: string, expiresAt: number, fill = 7): CachedKey {
  return {
    dekId: `${queueId}-${principal}-${expiresAt}`, queueId, principal, kmsKeyId: 'k',
    material: Buffer.alloc(32, fill), encryptedDek: Buffer.alloc(64, 1), issuedAt: 0, expiresAt,
  };
}

test('a hit returns the key; a miss returns undefined; both are counted', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock });
  assert.equal(cache.getEncrypt('q', 'p'), undefined);
  cache.put('encrypt', key('q', 'p', 1000));
  assert.equal(cache.getEncrypt('q', 'p')?.dekId, 'q-p-1000');
  assert.equal(cache.getEncrypt('q', 'other'), undefined);
  assert.deepEqual([cache.stats.hits, cache.stats.misses], [1, 2]);
});

test('an entry is never served at or after its expiry, and its material is zeroed', async () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock });
  const k = key('q', 'p', 1000);
  cache.put('encrypt', k);
  await clock.advanceTo(999);
  assert.ok(cache.getEncrypt('q', 'p'));
  await clock.advanceTo(1000);
  // The expiry timer already dropped and zeroed it.
  assert.equal(cache.size, 0);
  assert.ok(k.material.every((b) => b === 0));
  assert.equal(cache.getEncrypt('q', 'p'), undefined);
  assert.equal(cache.stats.expired, 1);
});

test('an already-expired key is refused and zeroed', () => {
  const clock = new VirtualClock(5000);
  const cache = new KeyCache({ clock });
  const k = key('q', 'p', 5000);
  assert.equal(cache.put('encrypt', k), false);
  assert.ok(k.material.every((b) => b === 0));
  assert.equal(cache.size, 0);
});

test('capacity in entries evicts the least recently used and zeroes it', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxEntries: 2 });
  const a = key('a', 'p', 1e6);
  cache.put('encrypt', a);
  cache.put('encrypt', key('b', 'p', 1e6));
  cache.getEncrypt('a', 'p'); // a is now most recent
  cache.put('encrypt', key('c', 'p', 1e6));
  assert.ok(cache.getEncrypt('a', 'p'));
  assert.equal(cache.getEncrypt('b', 'p'), undefined);
  assert.equal(cache.stats.evicted, 1);
  assert.equal(cache.size, 2);
  assert.ok(!a.material.every((b) => b === 0));
});

test('capacity in bytes is enforced', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxBytes: 3 * (32 + 64 + 256) });
  for (let i = 0; i < 10; i++) cache.put('encrypt', key(`q${i}`, 'p', 1e6));
  assert.equal(cache.size, 3);
  assert.ok(cache.byteSize <= 3 * (32 + 64 + 256));
});

test('an unused prefetched entry is passed over by the evictor; a used one is not', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxEntries: 2 });
  cache.put('encrypt', key('pre', 'p', 1e6), { prefetched: true, score: 1 });
  cache.put('encrypt', key('b', 'p', 1e6));
  cache.put('encrypt', key('c', 'p', 1e6)); // LRU is 'pre' but it is spared; 'b' goes
  assert.ok(cache.hasEncrypt('pre', 'p'));
  assert.equal(cache.hasEncrypt('b', 'p'), false);
  assert.ok(cache.getEncrypt('pre', 'p')); // used now: no more protection
  cache.put('encrypt', key('d', 'p', 1e6)); // LRU is 'c'
  cache.put('encrypt', key('e', 'p', 1e6)); // LRU is 'pre' (used) → evicted
  assert.equal(cache.hasEncrypt('pre', 'p'), false);
  assert.equal(cache.stats.prefetchedUsed, 1);
  assert.equal(cache.stats.prefetchedWasted, 0);
});

test('protection is bounded: unused prefetches alone still get evicted', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxEntries: 3 });
  for (let i = 0; i < 6; i++) cache.put('encrypt', key(`p${i}`, 'p', 1e6), { prefetched: true, score: 1 });
  assert.equal(cache.size, 3);
  assert.equal(cache.stats.prefetchedWasted, 3);
});

test('a replacement only happens with a key that expires later', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock });
  cache.put('encrypt', key('q', 'p', 2000));
  const older = key('q', 'p', 1500);
  assert.equal(cache.put('encrypt', older), false);
  assert.ok(older.material.every((b) => b === 0));
  assert.equal(cache.getEncrypt('q', 'p')?.expiresAt, 2000);
  assert.equal(cache.put('encrypt', key('q', 'p', 3000)), true);
  assert.equal(cache.getEncrypt('q', 'p')?.expiresAt, 3000);
});

test('single flight: concurrent loads share one loader call', async () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock });
  let calls = 0;
  const loader = async () => {
    calls++;
    await new Promise<void>((resolve) => clock.setTimer(10, resolve));
    const k = key('q', 'p', 1e6);
    cache.put('encrypt', k);
    return k;
  };
  const all = Array.from({ length: 50 }, () => cache.load('encrypt', 'slot', loader));
  await clock.advance(10);
  const keys = await Promise.all(all);
  assert.equal(calls, 1);
  assert.ok(keys.every((k) => k.dekId === 'q-p-1000000'));
  assert.equal(cache.inFlight, 0);
});

test('clear zeroes every key; resident time counts up to removal or expiry', async () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, expiryTimer: false });
  const a = key('a', 'p', 100);
  const b = key('b', 'p', 1000);
  cache.put('encrypt', a);
  cache.put('encrypt', b);
  await clock.advanceTo(500);
  assert.equal(cache.residentMsUntil(), 100 + 500);
  cache.clear();
  assert.ok(a.material.every((x) => x === 0) && b.material.every((x) => x === 0));
  assert.equal(cache.stats.residentMs, 600);
});
