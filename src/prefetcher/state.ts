import type { SlabRef } from './slab.ts';

const EMPTY64 = new Float64Array(0);
const EMPTY32 = new Float32Array(0);
const EMPTY16 = new Uint16Array(0);

/** Per-queue state: shared by the queue's streams (one per principal). */
export class QueueState {
  requests = 0;
  /** The queue's data-key reuse period (ms), as the host last gave it (per queue). */
  reuseMs = 300_000;
  /** Exponentially decayed request count (time constant: the prefetcher's rate window). */
  decayedCount = 0;
  decayedAt = 0;
  backlog = 0;
  /** A receive or delete was seen, or a front-end reported the backlog: the queue has consumers. */
  consumersSeen = false;
  /** Decayed count of receives, for the consumer rate. */
  receiveCount = 0;
  receiveAt = 0;
  /** Decayed requests per node index (per-(queue, node) state), allocated at the second node seen. */
  nodeCounts: Float32Array | null = null;
  firstNode = -1;
  /** When the backlog's decrypt keys were last asked for. */
  backlogPrefetchAt = -Infinity;
  // Feedback, per queue.
  prefetchesUsed = 0;
  prefetchesWasted = 0;
  missesAvoided = 0;
  demandMisses = 0;
  /**
   * Most queues have one principal: its stream is held directly, and a Map only exists for the
   * others (a Map costs ~200 bytes even with one entry).
   */
  private first: StreamState | null = null;
  private others: Map<string, StreamState> | null = null;

  constructor(readonly id: string) {}

  get streamCount(): number {
    return (this.first ? 1 : 0) + (this.others?.size ?? 0);
  }

  streamOf(principal: string): StreamState | undefined {
    const first = this.first;
    if (first !== null && first.principal === principal) return first;
    return this.others?.get(principal);
  }

  addStream(s: StreamState): void {
    if (this.first === null) this.first = s;
    else (this.others ??= new Map()).set(s.principal, s);
  }

  /** Removes `s` if it is the queue's stream for its principal; false when it was not. */
  removeStream(s: StreamState): boolean {
    if (this.first === s) {
      this.first = null;
      return true;
    }
    if (this.others?.get(s.principal) !== s) return false;
    this.others.delete(s.principal);
    if (this.others.size === 0) this.others = null;
    return true;
  }

  *streams(): IterableIterator<StreamState> {
    if (this.first) yield this.first;
    if (this.others) yield* this.others.values();
  }
}

/**
 * Per-(queue, principal) state: one key slot, its history and its plan. The models' numbers and
 * the ensemble's weights live in the stream's slab (see SlabPool); these fields say where.
 */
export class StreamState implements SlabRef {
  f64: Float64Array = EMPTY64;
  f32: Float32Array = EMPTY32;
  u16: Uint16Array = EMPTY16;
  o64 = 0;
  o32 = 0;
  o16 = 0;
  slot = -1;
  lastAt = -Infinity;
  firstAt = Infinity;
  requests = 0;
  /** Exponentially decayed request count (the prefetcher's rate window), shared by rate models. */
  decayedCount = 0;
  decayedAt = 0;
  /** Start of the key the offline optimum would be using (for the KMS budget). */
  optimalAnchor = -Infinity;
  /** Until when the stream's current key is known to be valid in the key tier. */
  coveredUntil = -Infinity;
  /** When the planner should look at this stream next (Infinity: no plan). */
  dueAt = Infinity;
  /** Position in the prefetcher's due-heap; −1 when not in it. */
  heapIndex = -1;
  /**
   * The prefetch asked for and not yet scored: 0 when none, else a number that identifies it.
   * Each model's window probability for it is in the slab (see Ensemble.openWindow).
   */
  openId = 0;
  /** When its key was expected in the nodes (the planned moment). */
  openAt = 0;
  /** Expiry of the key delivered; Infinity until the delivery is confirmed. */
  openExpiresAt = Infinity;
  /** Ensemble probability of a request in the key's life, at decision time. */
  openProbability = 0;
  inFlight = false;

  constructor(readonly queue: QueueState, readonly principal: string) {}
}
