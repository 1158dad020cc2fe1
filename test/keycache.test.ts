import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../src/core/clock.ts';
import { Random } from '../src/core/random.ts';
import { KeyCache, type KeyCacheEntryView } from '../src/keycache/key-cache.ts';
import type { CachedKey } from '../src/keycache/types.ts';

// Every assert.ok here carries a message: without one, a failing assert.ok makes Node re-read this
// source to quote the expression, which can hang the test runner on a TypeScript file.

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
  assert.ok(cache.getEncrypt('q', 'p'), 'served before expiry');
  await clock.advanceTo(1000);
  // The expiry timer already dropped and zeroed it.
  assert.equal(cache.size, 0);
  assert.ok(k.material.every((b) => b === 0), 'expired key zeroed');
  assert.equal(cache.getEncrypt('q', 'p'), undefined);
  assert.equal(cache.stats.expired, 1);
});

test('an already-expired key is refused and zeroed', () => {
  const clock = new VirtualClock(5000);
  const cache = new KeyCache({ clock });
  const k = key('q', 'p', 5000);
  assert.equal(cache.put('encrypt', k), false);
  assert.ok(k.material.every((b) => b === 0), 'refused key zeroed');
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
  assert.ok(cache.getEncrypt('a', 'p'), 'a held');
  assert.equal(cache.getEncrypt('b', 'p'), undefined);
  assert.equal(cache.stats.evicted, 1);
  assert.equal(cache.size, 2);
  assert.ok(!a.material.every((b) => b === 0), 'a intact');
});

test('capacity in bytes is enforced', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxBytes: 3 * (32 + 64 + 256) });
  for (let i = 0; i < 10; i++) cache.put('encrypt', key(`q${i}`, 'p', 1e6));
  assert.equal(cache.size, 3);
  assert.ok(cache.byteSize <= 3 * (32 + 64 + 256), 'within maxBytes');
});

const ENTRY_BYTES = 32 + 64 + 256;


const zeroed = (k: CachedKey): boolean => k.material.every((b) => b === 0);
const intact = (k: CachedKey): boolean => k.material.every((b) => b === 7);

test('under entry pressure the lowest-scored unused prefetch goes first, before any LRU entry', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxEntries: 5, prefetchShare: 0.6 });
  const d1 = key('d1', 'p', 1e6);
  const d2 = key('d2', 'p', 1e6);
  const a = key('a', 'p', 1e6);
  const b = key('b', 'p', 1e6);
  const c = key('c', 'p', 1e6);
  cache.put('encrypt', d1); // least recently used
  cache.put('encrypt', d2);
  cache.put('encrypt', a, { prefetched: true, score: 0.9 });
  cache.put('encrypt', b, { prefetched: true, score: 0.3 });
  cache.put('encrypt', c, { prefetched: true, score: 0.6 });
  assert.equal(cache.probationSize, 3);
  const present = (): string[] => ['d1', 'd2', 'a', 'b', 'c', 'e', 'f', 'g', 'h'].filter((q) => cache.hasEncrypt(q, 'p'));

  cache.put('encrypt', key('e', 'p', 1e6)); // b (0.3) goes, not d1 (LRU tail) nor a newer/higher prefetch
  assert.deepEqual(present(), ['d1', 'd2', 'a', 'c', 'e']);
  assert.ok(zeroed(b), 'b zeroed');
  cache.put('encrypt', key('f', 'p', 1e6)); // then c (0.6)
  assert.deepEqual(present(), ['d1', 'd2', 'a', 'e', 'f']);
  assert.ok(zeroed(c), 'c zeroed');
  cache.put('encrypt', key('g', 'p', 1e6)); // then a (0.9), though every LRU entry is older
  assert.deepEqual(present(), ['d1', 'd2', 'e', 'f', 'g']);
  assert.ok(zeroed(a), 'a zeroed');
  assert.equal(cache.probationSize, 0);
  cache.put('encrypt', key('h', 'p', 1e6)); // probation empty: now the LRU tail
  assert.deepEqual(present(), ['d2', 'e', 'f', 'g', 'h']);
  assert.ok(zeroed(d1) && intact(d2), 'd1 zeroed, d2 intact');
  assert.equal(cache.stats.prefetchedWasted, 3);
  assert.equal(cache.stats.evicted, 4);
});

test('probation ties: the older of two equally scored prefetches goes first', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxEntries: 3, prefetchShare: 1 });
  const older = key('older', 'p', 1e6);
  cache.put('encrypt', older, { prefetched: true, score: 0.5 });
  cache.put('encrypt', key('newer', 'p', 1e6), { prefetched: true, score: 0.5 });
  cache.put('encrypt', key('high', 'p', 1e6), { prefetched: true, score: 0.8 });
  cache.put('encrypt', key('d', 'p', 1e6));
  assert.equal(cache.hasEncrypt('older', 'p'), false);
  assert.ok(zeroed(older), 'older zeroed');
  assert.ok(cache.hasEncrypt('newer', 'p') && cache.hasEncrypt('high', 'p') && cache.hasEncrypt('d', 'p'), 'newer, high and d held');
  // At its share, a newcomer scored like the lowest entry takes the older one's place.
  const capped = new KeyCache({ clock, maxEntries: 8, prefetchShare: 0.25 });
  const first = key('first', 'p', 1e6);
  capped.put('encrypt', first, { prefetched: true, score: 0.5 });
  capped.put('encrypt', key('second', 'p', 1e6), { prefetched: true, score: 0.5 });
  assert.equal(capped.put('encrypt', key('third', 'p', 1e6), { prefetched: true, score: 0.5 }), true);
  assert.equal(capped.hasEncrypt('first', 'p'), false);
  assert.ok(zeroed(first), 'first zeroed');
  assert.equal(capped.probationSize, 2);
});

test('a used prefetch joins the LRU: other probation entries go first, then it ages like any entry', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxEntries: 4, prefetchShare: 0.5 });
  const p = key('p', 'x', 1e6);
  const q = key('q', 'x', 1e6);
  cache.put('encrypt', p, { prefetched: true, score: 0.1 });
  cache.put('encrypt', q, { prefetched: true, score: 0.9 });
  cache.put('encrypt', key('d1', 'x', 1e6));
  cache.put('encrypt', key('d2', 'x', 1e6));
  assert.equal(cache.probationSize, 2);
  assert.ok(cache.getEncrypt('p', 'x'), 'p hit'); // first use: LRU order is now p, d2, d1
  assert.equal(cache.probationSize, 1);
  const present = (): string[] => ['p', 'q', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6'].filter((s) => cache.hasEncrypt(s, 'x'));

  cache.put('encrypt', key('d3', 'x', 1e6)); // q is on probation: it goes, though its score is higher than p's
  assert.deepEqual(present(), ['p', 'd1', 'd2', 'd3']);
  assert.ok(zeroed(q), 'q zeroed');
  cache.put('encrypt', key('d4', 'x', 1e6)); // then plain LRU: d1, d2, then p
  assert.deepEqual(present(), ['p', 'd2', 'd3', 'd4']);
  cache.put('encrypt', key('d5', 'x', 1e6));
  assert.deepEqual(present(), ['p', 'd3', 'd4', 'd5']);
  assert.ok(intact(p), 'p intact');
  cache.put('encrypt', key('d6', 'x', 1e6));
  assert.deepEqual(present(), ['d3', 'd4', 'd5', 'd6']);
  assert.ok(zeroed(p), 'p zeroed');
  assert.equal(cache.stats.prefetchedUsed, 1);
  assert.equal(cache.stats.prefetchedWasted, 1);
});

test('share cap in entries: probation keeps at most its share; a newcomer scored below all of it is refused', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxEntries: 8, prefetchShare: 0.25 });
  const keys = [0.5, 0.2, 0.8, 0.6, 0.1].map((score, i) => ({ k: key(`p${i}`, 'x', 1e6), score }));
  const results = keys.map(({ k, score }) => {
    const ok = cache.put('encrypt', k, { prefetched: true, score });
    assert.ok(cache.probationSize <= 2, 'probation within share');
    return ok;
  });
  assert.deepEqual(results, [true, true, true, true, false]);
  assert.equal(cache.probationSize, 2);
  assert.equal(cache.size, 2);
  // p1 (0.2) made room for p2 (0.8), then p0 (0.5) for p3 (0.6); p4 (0.1) was refused.
  assert.deepEqual(keys.map(({ k }) => cache.hasEncrypt(k.queueId, 'x')), [false, false, true, true, false]);
  assert.deepEqual(keys.map(({ k }) => zeroed(k)), [true, true, false, false, true]);
  assert.equal(cache.stats.prefetchRefused, 1);
  assert.equal(cache.stats.prefetchedInserted, 4);
  assert.equal(cache.stats.inserted, 4);
  assert.equal(cache.stats.evicted, 2);
  assert.equal(cache.stats.prefetchedWasted, 2);
});

test('share cap in bytes: probation bytes stay within the share of maxBytes', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxBytes: 8 * ENTRY_BYTES, prefetchShare: 0.25 });
  const keys = [0.5, 0.2, 0.8, 0.6, 0.1].map((score, i) => ({ k: key(`p${i}`, 'x', 1e6), score }));
  const results = keys.map(({ k, score }) => cache.put('encrypt', k, { prefetched: true, score }));
  assert.deepEqual(results, [true, true, true, true, false]);
  assert.equal(cache.probationSize, 2);
  assert.equal(cache.byteSize, 2 * ENTRY_BYTES);
  assert.deepEqual(keys.map(({ k }) => zeroed(k)), [true, true, false, false, true]);
  assert.equal(cache.stats.prefetchRefused, 1);

  // A key twice the size needs both slots: both (lower-scored) entries make room for it.
  const big = key('big', 'x', 1e6);
  big.encryptedDek = Buffer.alloc(64 + ENTRY_BYTES, 1);
  assert.equal(cache.put('encrypt', big, { prefetched: true, score: 0.9 }), true);
  assert.equal(cache.probationSize, 1);
  assert.equal(cache.byteSize, 2 * ENTRY_BYTES);
  assert.ok(zeroed(keys[2]!.k) && zeroed(keys[3]!.k), 'p2 and p3 zeroed');
  // Bigger than the whole share: refused whatever its score, nothing evicted.
  const huge = key('huge', 'x', 1e6);
  huge.encryptedDek = Buffer.alloc(64 + 2 * ENTRY_BYTES, 1);
  assert.equal(cache.put('encrypt', huge, { prefetched: true, score: 1 }), false);
  assert.ok(zeroed(huge) && intact(big), 'huge zeroed, big intact');
  assert.equal(cache.stats.prefetchRefused, 2);
  // A newcomer that would need room held by a higher-scored entry is refused, nothing evicted.
  const mid = key('mid', 'x', 1e6);
  assert.equal(cache.put('encrypt', mid, { prefetched: true, score: 0.85 }), false);
  assert.ok(zeroed(mid) && intact(big), 'mid zeroed, big intact');
  assert.ok(cache.byteSize <= 8 * ENTRY_BYTES, 'within maxBytes');
});

test('demand entries are never evicted by prefetched inserts once probation is at its share', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxEntries: 8, prefetchShare: 0.25 });
  const demand = Array.from({ length: 6 }, (_, i) => key(`d${i}`, 'x', 1e6));
  for (const k of demand) cache.put('encrypt', k);
  cache.put('encrypt', key('pa', 'x', 1e6), { prefetched: true, score: 0.5 });
  cache.put('encrypt', key('pb', 'x', 1e6), { prefetched: true, score: 0.5 });
  assert.equal(cache.size, 8);
  assert.equal(cache.probationSize, 2);
  for (let i = 0; i < 40; i++) {
    cache.put('encrypt', key(`n${i}`, 'x', 1e6), { prefetched: true, score: ((i * 37) % 100) / 100 });
    assert.equal(cache.size, 8);
    assert.ok(cache.probationSize <= 2, 'probation within share');
    assert.ok(demand.every((k) => cache.hasEncrypt(k.queueId, 'x') && intact(k)), 'every demand entry held and intact');
  }
  assert.ok(cache.stats.prefetchRefused > 0, 'some prefetches refused');
});

test('below its share, a prefetch may displace the LRU tail only when probation has nothing below it', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxEntries: 4, prefetchShare: 0.5 });
  const demand = Array.from({ length: 3 }, (_, i) => key(`d${i}`, 'x', 1e6));
  for (const k of demand) cache.put('encrypt', k);
  const low = key('low', 'x', 1e6);
  cache.put('encrypt', low, { prefetched: true, score: 0.2 });
  // Full, probation (1) under its share (2): the probation entry scored below the newcomer goes.
  assert.equal(cache.put('encrypt', key('hi', 'x', 1e6), { prefetched: true, score: 0.7 }), true);
  assert.ok(zeroed(low), 'low zeroed');
  assert.ok(demand.every((k) => cache.hasEncrypt(k.queueId, 'x')), 'every demand entry held');
  // The newcomer would itself be the first to go: refused, nothing evicted.
  const lower = key('lower', 'x', 1e6);
  assert.equal(cache.put('encrypt', lower, { prefetched: true, score: 0.1 }), false);
  assert.ok(zeroed(lower) && cache.hasEncrypt('hi', 'x'), 'lower zeroed, hi held');
  assert.ok(demand.every((k) => cache.hasEncrypt(k.queueId, 'x')), 'every demand entry held');
  // Once 'hi' is used, probation is empty: a prefetch may take the LRU tail's place.
  cache.getEncrypt('hi', 'x');
  assert.equal(cache.put('encrypt', key('next', 'x', 1e6), { prefetched: true, score: 0.1 }), true);
  assert.equal(cache.hasEncrypt('d0', 'x'), false);
  assert.ok(zeroed(demand[0]!), 'd0 zeroed');
});

test('a refused prefetch leaves the entry it would have replaced in place', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxEntries: 4, prefetchShare: 0.25 });
  const current = key('q', 'p', 1000);
  cache.put('encrypt', current);
  cache.put('encrypt', key('other', 'p', 1e6), { prefetched: true, score: 0.9 });
  const later = key('q', 'p', 2000);
  assert.equal(cache.put('encrypt', later, { prefetched: true, score: 0.5 }), false);
  assert.ok(zeroed(later) && intact(current), 'later zeroed, current intact');
  assert.equal(cache.getEncrypt('q', 'p')?.expiresAt, 1000);
  // Refused while replacing an entry on probation: that entry keeps its rank (it goes first later).
  const byBytes = new KeyCache({ clock, maxBytes: 4 * ENTRY_BYTES, prefetchShare: 0.5 });
  byBytes.put('encrypt', key('d1', 'p', 1e6));
  byBytes.put('encrypt', key('d2', 'p', 1e6));
  const r = key('r', 'p', 1e6);
  byBytes.put('encrypt', r, { prefetched: true, score: 0.2 });
  byBytes.put('encrypt', key('s', 'p', 1e6), { prefetched: true, score: 0.9 });
  const bigger = key('r', 'p', 2e6);
  bigger.encryptedDek = Buffer.alloc(65, 1); // needs s's room too, and s outranks it
  assert.equal(byBytes.put('encrypt', bigger, { prefetched: true, score: 0.5 }), false);
  assert.ok(zeroed(bigger) && intact(r), 'bigger zeroed, r intact');
  byBytes.put('encrypt', key('d3', 'p', 1e6));
  assert.equal(byBytes.hasEncrypt('r', 'p'), false);
  assert.ok(zeroed(r) && byBytes.hasEncrypt('s', 'p') && byBytes.hasEncrypt('d1', 'p'), 'r went first');
  // A replacement on probation frees its own slot in the share.
  const onProbation = key('r', 'p', 1e6);
  const cache2 = new KeyCache({ clock, maxEntries: 4, prefetchShare: 0.25 });
  cache2.put('encrypt', onProbation, { prefetched: true, score: 0.9 });
  assert.equal(cache2.put('encrypt', key('r', 'p', 2e6), { prefetched: true, score: 0.1 }), true);
  assert.equal(cache2.peekEncrypt('r', 'p')?.key.expiresAt, 2e6);
  assert.equal(cache2.probationSize, 1);
  assert.ok(zeroed(onProbation), 'replaced entry zeroed');
});

test('used prefetches leave stale probation slots behind without disturbing the eviction order', () => {
  const clock = new VirtualClock(0);
  const evicted: string[] = [];
  const cache = new KeyCache({
    clock, maxEntries: 120, prefetchShare: 1,
    onEvent: (kind, _use, queueId) => { if (kind === 'evicted') evicted.push(queueId); },
  });
  const scoreOf = (i: number): number => ((i * 37) % 100) / 100;
  for (let i = 0; i < 100; i++) cache.put('encrypt', key(`p${i}`, 'x', 1e6), { prefetched: true, score: scoreOf(i) });
  for (let i = 0; i < 100; i++) if (i % 10 !== 0) cache.getEncrypt(`p${i}`, 'x'); // 90 leave probation
  cache.put('encrypt', key('last', 'x', 1e6), { prefetched: true, score: 1 });
  assert.equal(cache.probationSize, 11);
  for (let i = 0; i < 19; i++) cache.put('encrypt', key(`d${i}`, 'x', 1e6));
  assert.equal(cache.size, 120);
  assert.deepEqual(evicted, []);
  for (let i = 0; i < 13; i++) cache.put('encrypt', key(`e${i}`, 'x', 1e6));
  const onProbation = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90].sort((a, b) => scoreOf(a) - scoreOf(b)).map((i) => `p${i}`);
  // Probation by score, then the LRU tail: the first entries used.
  assert.deepEqual(evicted, [...onProbation, 'last', 'p1', 'p2']);
  assert.equal(cache.probationSize, 0);
});

test('lastHitWasPrefetchedFirstUse is true exactly after the first hit of a prefetched entry', async () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock });
  assert.equal(cache.lastHitWasPrefetchedFirstUse, false);
  cache.put('encrypt', key('pre', 'p', 1e6), { prefetched: true, score: 0.5 });
  cache.put('encrypt', key('dem', 'p', 1e6));
  const dec = key('dq', 'p', 1e6);
  cache.put('decrypt', dec, { prefetched: true, score: 0.5 });
  cache.put('encrypt', key('soon', 'p', 100), { prefetched: true, score: 0.5 });

  assert.ok(cache.getEncrypt('pre', 'p'), 'pre hit');
  assert.equal(cache.lastHitWasPrefetchedFirstUse, true);
  assert.ok(cache.getEncrypt('pre', 'p'), 'pre hit again');
  assert.equal(cache.lastHitWasPrefetchedFirstUse, false);
  assert.ok(cache.getEncrypt('dem', 'p'), 'dem hit');
  assert.equal(cache.lastHitWasPrefetchedFirstUse, false);
  assert.ok(cache.getDecrypt(dec.dekId, 'dq'), 'dq hit');
  assert.equal(cache.lastHitWasPrefetchedFirstUse, true);
  assert.equal(cache.getEncrypt('missing', 'p'), undefined);
  assert.equal(cache.lastHitWasPrefetchedFirstUse, false);
  assert.ok(cache.getDecrypt(dec.dekId, 'dq'), 'dq hit again');
  assert.equal(cache.lastHitWasPrefetchedFirstUse, false);
  await clock.advanceTo(100);
  assert.equal(cache.getEncrypt('soon', 'p'), undefined); // expired, never used: no first use
  assert.equal(cache.lastHitWasPrefetchedFirstUse, false);
  assert.equal(cache.stats.prefetchedUsed, 2);
});

test('lastHitWasFirstUse is true exactly after the first hit of any entry, prefetched or not', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock });
  cache.put('encrypt', key('dem', 'p', 1e6));
  cache.put('encrypt', key('pre', 'p', 1e6), { prefetched: true, score: 0.5 });
  const seen: boolean[] = [];
  for (const queue of ['dem', 'dem', 'pre', 'missing', 'pre']) {
    cache.getEncrypt(queue, 'p');
    seen.push(cache.lastHitWasFirstUse);
  }
  assert.deepEqual(seen, [true, false, true, false, false]);
});

test('every key that leaves (probation eviction, share eviction, refusal, LRU eviction) is zeroed', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock, maxEntries: 4, prefetchShare: 0.5 });
  const all: CachedKey[] = [];
  const put = (name: string, options?: { prefetched: boolean; score: number }): CachedKey => {
    const k = key(name, 'x', 1e6);
    all.push(k);
    cache.put('encrypt', k, options);
    return k;
  };
  put('d0'); put('d1');
  put('p0', { prefetched: true, score: 0.3 });
  put('p1', { prefetched: true, score: 0.6 });
  put('p2', { prefetched: true, score: 0.9 }); // share: p0 goes
  put('p3', { prefetched: true, score: 0.1 }); // refused
  put('d2'); // pressure: p1 goes
  cache.getEncrypt('p2', 'x');
  put('d3'); // LRU tail: d0
  put('d4'); // LRU tail: d1
  const held = new Set(['d2', 'd3', 'd4', 'p2']);
  assert.equal(cache.size, 4);
  for (const k of all) {
    assert.equal(cache.hasEncrypt(k.queueId, 'x'), held.has(k.queueId), k.queueId);
    assert.equal(zeroed(k), !held.has(k.queueId), k.queueId);
  }
  cache.clear();
  assert.ok(all.every(zeroed), 'all zeroed after clear');
  assert.equal(cache.probationSize, 0);
});

test('randomised: limits, share, eviction order and zeroization hold under mixed load', async () => {
  const clock = new VirtualClock(0);
  const rng = new Random(42);
  const maxEntries = 40;
  const maxBytes = 30 * ENTRY_BYTES;
  const share = 0.3;
  interface Live { view: KeyCacheEntryView; score: number; seq: number; lastUse: number }
  const live = new Map<string, Live>();
  let tick = 0;
  let inserting: KeyCacheEntryView | undefined; // the prefetched entry a put is making room for
  const onProbation = (l: Live): boolean => l.view.prefetched && !l.view.used;
  const slotOf = (view: KeyCacheEntryView): string => `${view.use}:${view.use === 'encrypt' ? view.key.queueId : view.key.dekId}`;
  const scores = new Map<CachedKey, number>();
  const cache = new KeyCache({
    clock, maxEntries, maxBytes, prefetchShare: share, expiryTimer: false,
    onEvent: (kind, _use, _queueId, view) => {
      if (view === undefined) return;
      const slot = slotOf(view);
      if (kind === 'inserted') {
        live.set(slot, { view, score: scores.get(view.key) ?? 0, seq: tick, lastUse: tick });
        if (view.prefetched) inserting = view;
      } else if (kind === 'hit') {
        live.get(slot)!.lastUse = tick;
      } else if (kind === 'evicted' || kind === 'expired') {
        const gone = live.get(slot)!;
        assert.ok(gone.view === view, 'the entry that left is the one recorded');
        live.delete(slot);
        if (kind !== 'evicted') return;
        const others = [...live.values()];
        if (onProbation(gone)) {
          for (const o of others.filter(onProbation)) {
            assert.ok(gone.score < o.score || (gone.score === o.score && gone.seq < o.seq), 'probation victim ranks lowest');
          }
        } else {
          assert.deepEqual(others.filter((o) => onProbation(o) && o.view !== inserting), [], 'LRU victim only when probation is empty');
          for (const o of others.filter((o) => !onProbation(o))) assert.ok(gone.lastUse < o.lastUse, 'LRU victim is least recent');
        }
      }
    },
  });
  const all: CachedKey[] = [];
  for (let op = 0; op < 4000; op++) {
    tick++;
    await clock.advanceTo(clock.now() + rng.int(3));
    const r = rng.next();
    const name = `q${rng.int(120)}`;
    if (r < 0.45) {
      const k = key(name, 'x', clock.now() + 50 + rng.int(400));
      k.encryptedDek = Buffer.alloc(32 + rng.int(200), 1);
      const prefetched = rng.next() < 0.6;
      const score = Math.round(rng.next() * 10) / 10;
      scores.set(k, prefetched ? score : 0);
      all.push(k);
      inserting = undefined;
      cache.put('encrypt', k, prefetched ? { prefetched, score } : {});
      inserting = undefined;
    } else {
      const before = live.get(`encrypt:${name}`);
      const wasFirstUse = before !== undefined && clock.now() < before.view.key.expiresAt && onProbation(before);
      cache.getEncrypt(name, 'x');
      assert.equal(cache.lastHitWasPrefetchedFirstUse, wasFirstUse);
    }
    assert.ok(cache.size <= maxEntries && cache.byteSize <= maxBytes, 'within maxEntries and maxBytes');
    const probation = [...live.values()].filter(onProbation);
    assert.equal(cache.probationSize, probation.length);
    assert.ok(probation.length <= Math.floor(share * maxEntries), 'probation entries within share');
    const probationBytes = probation.reduce((n, l) => n + l.view.key.material.length + l.view.key.encryptedDek.length + 256, 0);
    assert.ok(probationBytes <= share * maxBytes, 'probation bytes within share');
    assert.equal(cache.size, live.size);
  }
  const held = new Set([...live.values()].map((l) => l.view.key));
  for (const k of all) assert.equal(zeroed(k), !held.has(k));
  assert.ok(cache.stats.prefetchRefused > 0 && cache.stats.prefetchedUsed > 0 && cache.stats.evicted > 0 && cache.stats.expired > 0, 'every path exercised');
});

test('prefetchShare must be in (0, 1]', () => {
  const clock = new VirtualClock(0);
  for (const prefetchShare of [0, -0.1, 1.01, Number.NaN]) {
    assert.throws(() => new KeyCache({ clock, prefetchShare }), RangeError);
  }
  assert.ok(new KeyCache({ clock, prefetchShare: 1 }), 'share 1 accepted');
});

test('a replacement only happens with a key that expires later', () => {
  const clock = new VirtualClock(0);
  const cache = new KeyCache({ clock });
  cache.put('encrypt', key('q', 'p', 2000));
  const older = key('q', 'p', 1500);
  assert.equal(cache.put('encrypt', older), false);
  assert.ok(older.material.every((b) => b === 0), 'refused key zeroed');
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
  assert.ok(keys.every((k) => k.dekId === 'q-p-1000000'), 'every caller got the loaded key');
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
  assert.ok(a.material.every((x) => x === 0) && b.material.every((x) => x === 0), 'both zeroed');
  assert.equal(cache.stats.residentMs, 600);
});
