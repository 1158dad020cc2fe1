import type { Clock, Timer } from '../core/clock.ts';
import { IndexedMinHeap } from '../core/indexed-heap.ts';
import { MinHeap } from '../core/min-heap.ts';
import { zeroize } from '../crypto/zero.ts';
import type { KeyUsageKind } from '../bus/types.ts';
import type { CachedKey } from './types.ts';

export type KeyUse = 'encrypt' | 'decrypt';

/** What the cache reports about an entry. Never the key material. */
export interface KeyCacheEntryView {
  readonly use: KeyUse;
  readonly key: CachedKey;
  readonly prefetched: boolean;
  readonly insertedAt: number;
  /** Whether any request has used the entry since it was inserted. */
  readonly used: boolean;
}

export type KeyCacheListener = (kind: KeyUsageKind, use: KeyUse, queueId: string, entry: KeyCacheEntryView | undefined) => void;

export interface KeyCacheOptions {
  clock: Clock;
  /** Most entries held (encrypt and decrypt together). Default 10,000. */
  maxEntries?: number;
  /** Most bytes held, counted as key material + encrypted DEK + a fixed overhead. Default 8 MiB. */
  maxBytes?: number;
  /**
   * Set a clock timer at the earliest expiry so an expired key is zeroed at once (default true).
   * The simulator turns it off and relies on lazy expiry, which gives the same answers.
   */
  expiryTimer?: boolean;
  /**
   * Most of the capacity (of maxEntries and of maxBytes alike) that prefetched keys not yet used may
   * hold, in (0, 1]. Default 0.25.
   */
  prefetchShare?: number;
  onEvent?: KeyCacheListener;
}

/** Bytes an entry is charged beyond its buffers: map slot, strings, bookkeeping. */
const ENTRY_OVERHEAD_BYTES = 256;

class Entry implements KeyCacheEntryView {
  prev: Entry | null = null;
  next: Entry | null = null;
  used = false;
  removed = false;
  /** A prefetched entry no request has used yet: outside the LRU list, in the probation heap. */
  onProbation: boolean;
  /** Place in the probation heap (−1: not in it; also while an insert plans its victims). */
  heapIndex = -1;
  /** The key's expiry, on the entry itself: the expiry heap compares it often, and keys come in several shapes. */
  readonly expiresAt: number;

  constructor(
    readonly use: KeyUse,
    readonly key: CachedKey,
    readonly prefetched: boolean,
    /** The prefetcher's confidence (0..1) that the key will be used; orders probation evictions. */
    readonly score: number,
    readonly insertedAt: number,
    readonly bytes: number,
    /** Insertion order; breaks score ties (the older goes first). */
    readonly seq: number,
  ) {
    this.onProbation = prefetched;
    this.expiresAt = key.expiresAt;
  }
}

/** Probation order: lowest score first, then oldest insert first. */
function probationBefore(a: Entry, b: Entry): boolean {
  return a.score < b.score || (a.score === b.score && a.seq < b.seq);
}

export interface KeyCacheStats {
  hits: number;
  misses: number;
  expired: number;
  evicted: number;
  inserted: number;
  prefetchedInserted: number;
  /** Prefetched entries that were used by a request before they left the cache. */
  prefetchedUsed: number;
  /** Prefetched entries that left the cache (expiry, eviction, replacement) without any use. */
  prefetchedWasted: number;
  /** The same three, for prefetched entries inserted at or after `windowStart` only (a measured window). */
  windowPrefetchedInserted: number;
  windowPrefetchedUsed: number;
  windowPrefetchedWasted: number;
  /**
   * Prefetched keys refused at insert (not counted as inserted): probation was full of keys scored
   * at least as high, or the key would have been the first to go.
   */
  prefetchRefused: number;
  /** Key·milliseconds of residency of entries that have left the cache. */
  residentMs: number;
  peakEntries: number;
}

/** Single-flight slot names (the miss path only; lookups use nested maps, see KeyCache). */
export function encryptSlot(queueId: string, principal: string): string {
  return `e\u0000${queueId}\u0000${principal}`;
}

/** Per queue too: a request for queue B never joins (or is handed) a fetch of queue A's key. */
export function decryptSlot(queueId: string, dekId: string): string {
  return `d\u0000${queueId}\u0000${dekId}`;
}

/**
 * A node's key cache: LRU with a prefetch score. Entries never outlive their key's expiry; plaintext
 * is zeroed whenever an entry leaves. A prediction is only a guess until a request uses it, so unused
 * prefetched keys wait on probation apart from the LRU: under pressure the least likely of them go
 * before any key that demand has touched, and they may hold only `prefetchShare` of the capacity, so
 * a burst of prefetches can never starve demand. A prefetched key's first use makes it an LRU entry.
 */
export class KeyCache {
  // Encrypt entries by queue then principal, decrypt entries by DEK id: lookups use the caller's
  // own strings, whose hashes V8 caches; a concatenated key would be re-hashed on every hit.
  private readonly encryptEntries = new Map<string, Map<string, Entry>>();
  private readonly decryptEntries = new Map<string, Entry>();
  private count = 0;
  /** Most recently used at head. */
  private head: Entry | null = null;
  private tail: Entry | null = null;
  private bytes = 0;
  private readonly clock: Clock;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly maxProbationEntries: number;
  private readonly maxProbationBytes: number;
  private readonly useExpiryTimer: boolean;
  private readonly onEvent: KeyCacheListener | undefined;
  /** Min-heap of entries by expiry; removed entries are skipped lazily. */
  private readonly expiryHeap = new MinHeap<Entry>((a, b) => a.expiresAt < b.expiresAt);
  /** Probation entries by (score, seq); an entry leaves it the moment it leaves probation. */
  private readonly probationHeap = new IndexedMinHeap<Entry>(probationBefore);
  private probationCount = 0;
  private probationBytes = 0;
  private seq = 0;
  private expiryTimer: Timer | null = null;
  private expiryTimerAt = Infinity;
  private readonly flights = new Map<string, Promise<CachedKey>>();
  /** Start of the measured window for the window* counters (see startWindow). */
  private windowStart = -Infinity;

  /** Starts a measured window (the simulator's warm-up end): the window* counters restart and count prefetches inserted from `at` on. */
  startWindow(at: number): void {
    this.windowStart = at;
    this.stats.windowPrefetchedInserted = 0;
    this.stats.windowPrefetchedUsed = 0;
    this.stats.windowPrefetchedWasted = 0;
  }
  readonly stats: KeyCacheStats = {
    hits: 0, misses: 0, expired: 0, evicted: 0, inserted: 0,
    prefetchedInserted: 0, prefetchedUsed: 0, prefetchedWasted: 0, windowPrefetchedInserted: 0, windowPrefetchedUsed: 0, windowPrefetchedWasted: 0, prefetchRefused: 0, residentMs: 0, peakEntries: 0,
  };
  /**
   * True right after a getEncrypt/getDecrypt hit that was the first use of a prefetched entry (a miss
   * the prefetch avoided), false after any other lookup.
   */
  lastHitWasPrefetchedFirstUse = false;
  /** True right after a hit that was the first use of its entry, prefetched or not. */
  lastHitWasFirstUse = false;

  constructor(options: KeyCacheOptions) {
    this.clock = options.clock;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.maxBytes = options.maxBytes ?? 8 * 1024 * 1024;
    this.useExpiryTimer = options.expiryTimer ?? true;
    this.onEvent = options.onEvent;
    if (!(this.maxEntries >= 1) || !(this.maxBytes >= 1)) throw new RangeError('KeyCache capacity must be at least 1');
    const share = options.prefetchShare ?? 0.25;
    if (!(share > 0 && share <= 1)) throw new RangeError('KeyCache prefetchShare must be in (0, 1]');
    // The epsilon keeps e.g. 0.29 × 100 from rounding down to 28.
    this.maxProbationEntries = Math.floor(share * this.maxEntries + 1e-9);
    this.maxProbationBytes = share * this.maxBytes;
  }

  get size(): number {
    return this.count;
  }

  get byteSize(): number {
    return this.bytes;
  }

  /** Prefetched entries not used yet (on probation). */
  get probationSize(): number {
    return this.probationCount;
  }

  /** The current encrypt key of (queue, principal), or undefined (a miss). Counts a hit or a miss. */
  getEncrypt(queueId: string, principal: string): CachedKey | undefined {
    return this.lookup(this.encryptEntries.get(queueId)?.get(principal), 'encrypt', queueId);
  }

  /**
   * The decrypt key for a DEK id, or undefined (a miss). Only for the queue the key belongs to: a
   * DEK id that another queue's message names is a miss, and the KMS (which binds the queue as
   * encryption context) then refuses it.
   */
  getDecrypt(dekId: string, queueId: string): CachedKey | undefined {
    const entry = this.decryptEntries.get(dekId);
    return this.lookup(entry !== undefined && entry.key.queueId === queueId ? entry : undefined, 'decrypt', queueId);
  }

  /**
   * Drops the encrypt entry of (queue, principal) if it still holds this DEK: the key reached its
   * use limit, which ends its life as expiry does. Returns whether an entry was dropped.
   */
  retireEncrypt(queueId: string, principal: string, dekId: string): boolean {
    const entry = this.encryptEntries.get(queueId)?.get(principal);
    if (entry === undefined || entry.key.dekId !== dekId) return false;
    this.remove(entry, 'expired', this.clock.now(), true);
    return true;
  }

  /** Whether a valid entry is present, without counting or touching recency. */
  hasEncrypt(queueId: string, principal: string): boolean {
    const entry = this.encryptEntries.get(queueId)?.get(principal);
    return entry !== undefined && this.clock.now() < entry.expiresAt;
  }

  peekEncrypt(queueId: string, principal: string): KeyCacheEntryView | undefined {
    const entry = this.encryptEntries.get(queueId)?.get(principal);
    return entry !== undefined && this.clock.now() < entry.expiresAt ? entry : undefined;
  }

  peekDecrypt(dekId: string, queueId?: string): CachedKey | undefined {
    const entry = this.decryptEntries.get(dekId);
    if (entry === undefined || (queueId !== undefined && entry.key.queueId !== queueId)) return undefined;
    return this.clock.now() < entry.expiresAt ? entry.key : undefined;
  }

  /**
   * Inserts a key the cache takes ownership of (it will zero `key.material`). An already-expired
   * key is refused and zeroed. An entry for the same slot is replaced only by a key that expires later.
   * A prefetched key goes on probation; it is refused (zeroed, counted in `prefetchRefused`, nothing
   * else changed) when making room for it would mean evicting it first: see planPrefetchedInsert.
   */
  put(use: KeyUse, key: CachedKey, options: { prefetched?: boolean; score?: number } = {}): boolean {
    const now = this.clock.now();
    if (now >= key.expiresAt) {
      zeroize(key.material);
      return false;
    }
    let existing = use === 'encrypt' ? this.encryptEntries.get(key.queueId)?.get(key.principal) : this.decryptEntries.get(key.dekId);
    if (existing) {
      if (existing.expiresAt >= key.expiresAt && now < existing.expiresAt) {
        zeroize(key.material);
        return false;
      }
      if (now >= existing.expiresAt) {
        this.remove(existing, 'evicted', now, false);
        existing = undefined;
      }
    }
    const prefetched = options.prefetched ?? false;
    const bytes = key.material.length + key.encryptedDek.length + ENTRY_OVERHEAD_BYTES;
    const score = clampScore(options.score ?? (prefetched ? 1 : 0));
    let victims: Entry[] | undefined;
    if (prefetched) {
      // Expired entries free room before anything valid is judged.
      this.sweepExpired(now);
      victims = this.planPrefetchedInsert(score, bytes, existing);
      if (victims === undefined) {
        zeroize(key.material);
        this.stats.prefetchRefused++;
        return false;
      }
    }
    // A valid entry being replaced: the new key expires later.
    if (existing) this.remove(existing, 'evicted', now, false);
    const entry = new Entry(use, key, prefetched, score, now, bytes, this.seq++);
    this.index(entry);
    if (prefetched) this.addToProbation(entry);
    else this.linkAtHead(entry);
    this.bytes += bytes;
    this.pushExpiry(entry);
    this.stats.inserted++;
    if (prefetched) {
      this.stats.prefetchedInserted++;
      if (now >= this.windowStart) this.stats.windowPrefetchedInserted++;
    }
    this.onEvent?.('inserted', use, key.queueId, entry);
    if (victims) for (const victim of victims) this.remove(victim, 'evicted', now, true);
    this.sweepExpired(now);
    this.evictToFit(now);
    if (this.count > this.stats.peakEntries) this.stats.peakEntries = this.count;
    return !entry.removed;
  }

  /**
   * Single flight: the first caller for a slot runs `loader`; callers arriving while it runs share
   * its promise. The loaded key is inserted before the promise resolves.
   */
  load(use: KeyUse, slot: string, loader: () => Promise<CachedKey>): Promise<CachedKey> {
    const pending = this.flights.get(slot);
    if (pending) return pending;
    const flight = loader().finally(() => this.flights.delete(slot));
    this.flights.set(slot, flight);
    return flight;
  }

  /** Number of loads in flight (one per slot). */
  get inFlight(): number {
    return this.flights.size;
  }

  /** Drops every expired entry now. Returns how many went. */
  sweepExpired(now = this.clock.now()): number {
    let dropped = 0;
    const heap = this.expiryHeap;
    for (let top = heap.peek(); top !== undefined; top = heap.peek()) {
      if (top.removed) {
        heap.pop();
        continue;
      }
      if (top.expiresAt > now) break;
      heap.pop();
      this.remove(top, 'expired', now, true);
      dropped++;
    }
    this.armExpiryTimer();
    return dropped;
  }

  /** Zeroes and drops everything (shutdown). Residency is counted up to now. */
  clear(): void {
    const now = this.clock.now();
    for (const entry of this.entries()) this.remove(entry, 'evicted', now, false);
    this.expiryHeap.reset([]);
    this.probationHeap.clear();
    this.expiryTimer?.cancel();
    this.expiryTimer = null;
    this.expiryTimerAt = Infinity;
  }

  /** Key·ms of residency so far, including entries still held (counted up to now or expiry). */
  residentMsUntil(now = this.clock.now()): number {
    let total = this.stats.residentMs;
    for (const entry of this.entries()) total += Math.max(0, Math.min(now, entry.expiresAt) - entry.insertedAt);
    return total;
  }

  private lookup(entry: Entry | undefined, use: KeyUse, queueId: string): CachedKey | undefined {
    if (entry === undefined) {
      this.lastHitWasPrefetchedFirstUse = false;
      this.lastHitWasFirstUse = false;
      this.stats.misses++;
      this.onEvent?.('miss', use, queueId, undefined);
      return undefined;
    }
    const now = this.clock.now();
    if (now >= entry.expiresAt) {
      this.lastHitWasPrefetchedFirstUse = false;
      this.lastHitWasFirstUse = false;
      this.remove(entry, 'expired', now, true);
      this.stats.misses++;
      this.onEvent?.('miss', use, queueId, undefined);
      return undefined;
    }
    this.lastHitWasFirstUse = !entry.used;
    this.lastHitWasPrefetchedFirstUse = !entry.used && this.firstUse(entry);
    this.stats.hits++;
    if (entry !== this.head) {
      this.unlink(entry);
      this.linkAtHead(entry);
    }
    this.onEvent?.('hit', use, queueId, entry);
    return entry.key;
  }

  /**
   * Marks an entry used. A prefetched one leaves probation for the LRU head; returns whether it
   * was prefetched. Kept out of lookup so the hit path stays small.
   */
  private firstUse(entry: Entry): boolean {
    entry.used = true;
    if (!entry.onProbation) return false;
    this.stats.prefetchedUsed++;
    if (entry.insertedAt >= this.windowStart) this.stats.windowPrefetchedUsed++;
    this.leaveProbation(entry);
    this.linkAtHead(entry);
    return true;
  }

  /**
   * Which entries a prefetched insert of (score, bytes) must evict, or undefined if it is refused.
   * The newcomer is ranked among the probation entries (lowest score first, the older first on a
   * tie, so the newcomer last among equals). First probation must fit within its share, then the
   * cache within its limits, taking probation entries before the LRU tail. If the newcomer would be
   * the next to go at any step, it is refused and nothing is evicted. `replacing` (the entry for the
   * same slot, which the insert removes) counts as already gone.
   */
  private planPrefetchedInsert(score: number, bytes: number, replacing: Entry | undefined): Entry[] | undefined {
    const heap = this.probationHeap;
    const replacingOnProbation = replacing !== undefined && replacing.onProbation;
    let probationCount = this.probationCount - (replacingOnProbation ? 1 : 0);
    let probationBytes = this.probationBytes - (replacingOnProbation ? replacing.bytes : 0);
    let count = this.count - (replacing ? 1 : 0);
    let totalBytes = this.bytes - (replacing ? replacing.bytes : 0);
    const victims: Entry[] = [];
    let poppedReplacing = false;
    // Pops the lowest probation entry if it must go before the newcomer; undefined if none must.
    const nextProbationVictim = (): Entry | undefined => {
      for (let top = heap.pop(); top !== undefined; top = heap.pop()) {
        if (top === replacing) {
          poppedReplacing = true;
          continue;
        }
        if (top.score <= score) return top;
        heap.push(top);
        return undefined;
      }
      return undefined;
    };
    let refused = false;
    let lru = this.tail;
    for (;;) {
      const overShare = probationCount + 1 > this.maxProbationEntries || probationBytes + bytes > this.maxProbationBytes;
      const overCapacity = count + 1 > this.maxEntries || totalBytes + bytes > this.maxBytes;
      if (!overShare && !overCapacity) break;
      // Probation entries go first; the LRU tail only when probation is empty and within its share.
      let victim: Entry | undefined;
      if (probationCount > 0) victim = nextProbationVictim();
      else if (!overShare) {
        if (lru !== null && lru === replacing) lru = lru.prev;
        victim = lru ?? undefined;
        lru = lru?.prev ?? null;
      }
      if (victim === undefined) {
        refused = true;
        break;
      }
      victims.push(victim);
      if (victim.onProbation) {
        probationCount--;
        probationBytes -= victim.bytes;
      }
      count--;
      totalBytes -= victim.bytes;
    }
    if (!refused) return victims; // the caller removes them; probation victims are out of the heap already
    for (const victim of victims) if (victim.onProbation) heap.push(victim);
    if (poppedReplacing) heap.push(replacing!);
    return undefined;
  }

  /** Frees space: unused prefetched entries, lowest score first, then the least recently used. */
  private evictToFit(now: number): void {
    while (this.count > this.maxEntries || this.bytes > this.maxBytes) {
      const victim = this.probationHeap.pop() ?? this.tail;
      if (victim === null) return;
      this.remove(victim, 'evicted', now, true);
    }
  }

  private addToProbation(entry: Entry): void {
    this.probationCount++;
    this.probationBytes += entry.bytes;
    this.probationHeap.push(entry);
  }

  private leaveProbation(entry: Entry): void {
    entry.onProbation = false;
    this.probationHeap.remove(entry);
    this.probationCount--;
    this.probationBytes -= entry.bytes;
  }

  private remove(entry: Entry, kind: 'expired' | 'evicted', now: number, report: boolean): void {
    if (entry.removed) return;
    entry.removed = true;
    this.unindex(entry);
    if (entry.onProbation) this.leaveProbation(entry);
    else this.unlink(entry);
    this.bytes -= entry.bytes;
    this.stats.residentMs += Math.max(0, Math.min(now, entry.expiresAt) - entry.insertedAt);
    if (kind === 'expired') this.stats.expired++;
    else this.stats.evicted++;
    if (entry.prefetched && !entry.used) {
      this.stats.prefetchedWasted++;
      if (entry.insertedAt >= this.windowStart) this.stats.windowPrefetchedWasted++;
    }
    if (report) this.onEvent?.(kind, entry.use, entry.key.queueId, entry);
    zeroize(entry.key.material);
  }

  private index(entry: Entry): void {
    const { queueId, principal, dekId } = entry.key;
    if (entry.use === 'encrypt') {
      let byPrincipal = this.encryptEntries.get(queueId);
      if (!byPrincipal) this.encryptEntries.set(queueId, (byPrincipal = new Map()));
      byPrincipal.set(principal, entry);
    } else {
      this.decryptEntries.set(dekId, entry);
    }
    this.count++;
  }

  private unindex(entry: Entry): void {
    const { queueId, principal, dekId } = entry.key;
    if (entry.use === 'encrypt') {
      const byPrincipal = this.encryptEntries.get(queueId);
      if (byPrincipal?.get(principal) === entry) {
        byPrincipal.delete(principal);
        if (byPrincipal.size === 0) this.encryptEntries.delete(queueId);
        this.count--;
      }
    } else if (this.decryptEntries.get(dekId) === entry) {
      this.decryptEntries.delete(dekId);
      this.count--;
    }
  }

  private entries(): Entry[] {
    const all: Entry[] = [...this.decryptEntries.values()];
    for (const byPrincipal of this.encryptEntries.values()) all.push(...byPrincipal.values());
    return all;
  }

  private linkAtHead(entry: Entry): void {
    entry.prev = null;
    entry.next = this.head;
    if (this.head) this.head.prev = entry;
    this.head = entry;
    if (!this.tail) this.tail = entry;
  }

  private unlink(entry: Entry): void {
    if (entry.prev) entry.prev.next = entry.next;
    else if (this.head === entry) this.head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else if (this.tail === entry) this.tail = entry.prev;
    entry.prev = null;
    entry.next = null;
  }

  private pushExpiry(entry: Entry): void {
    this.expiryHeap.push(entry);
    // Removed entries stay in the heap until they reach the top; rebuild when they dominate it.
    if (this.expiryHeap.size > 64 && this.expiryHeap.size > 4 * this.count) this.expiryHeap.reset(this.entries());
  }

  private armExpiryTimer(): void {
    if (!this.useExpiryTimer) return;
    const next = this.expiryHeap.peek()?.expiresAt ?? Infinity;
    if (next === this.expiryTimerAt) return;
    this.expiryTimer?.cancel();
    this.expiryTimer = null;
    this.expiryTimerAt = next;
    if (next === Infinity) return;
    this.expiryTimer = this.clock.setTimer(next - this.clock.now(), () => {
      this.expiryTimer = null;
      this.expiryTimerAt = Infinity;
      this.sweepExpired();
    });
  }
}

function clampScore(score: number): number {
  return Number.isFinite(score) ? Math.min(1, Math.max(0, score)) : 0;
}
