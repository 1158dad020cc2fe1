/** The prefetcher's record of one prefetch it asked for, kept until its outcome is known. */
export interface OpenPrefetch {
  /** When the key was expected to be in the nodes (the planned moment). */
  at: number;
  /** Expiry of the key delivered; Infinity until the delivery is confirmed. */
  expiresAt: number;
  /** Ensemble probability of a request in the key's life, at decision time. */
  probability: number;
  /** Each model's probability of the same (NaN where it abstained), for the feedback loop. */
  byModel: Float32Array;
}

/** Per-queue state: shared by the queue's streams (one per principal). */
export class QueueState {
  requests = 0;
  /** Exponentially decayed request count (time constant: the prefetcher's rate window). */
  decayedCount = 0;
  decayedAt = 0;
  backlog = 0;
  /** A receive or delete was seen, or a front-end reported the backlog: the queue has consumers. */
  consumersSeen = false;
  /** Decayed count of receives, for the consumer rate. */
  receiveCount = 0;
  receiveAt = 0;
  typicalBytes = 0;
  /** Decayed requests per node index (per-(queue, node) state), allocated at the second node seen. */
  nodeCounts: Float32Array | null = null;
  firstNode = -1;
  readonly streams = new Map<string, StreamState>();
  // Feedback, per queue.
  prefetchesUsed = 0;
  prefetchesWasted = 0;
  missesAvoided = 0;
  demandMisses = 0;

  constructor(readonly id: string) {}
}

/** Per-(queue, principal) state: one key slot, its history, its models and its plan. */
export class StreamState {
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
  /** Ensemble weights, one per model. */
  weights: Float32Array;
  /** Each model's state (same order as the models). */
  readonly modelStates: unknown[];
  /** When the planner should look at this stream next (Infinity: no plan). */
  dueAt = Infinity;
  /** Bumped whenever dueAt changes, so stale heap entries are recognised. */
  dueVersion = 0;
  open: OpenPrefetch | null = null;
  inFlight = false;

  constructor(readonly queue: QueueState, readonly principal: string, weights: Float32Array, modelStates: unknown[]) {
    this.weights = weights;
    this.modelStates = modelStates;
  }
}
