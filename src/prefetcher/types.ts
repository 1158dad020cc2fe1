import type { Clock } from '../core/clock.ts';
import type { QueueOp } from '../bus/types.ts';
import type { PrefetchInstruction } from '../metadata/types.ts';

/**
 * What the system offers the prefetcher (and every simulator policy): ids, times and the
 * prefetch API. Nothing here can return key material: `prefetch` answers with an expiry time.
 */
export interface PrefetchHost {
  readonly clock: Clock;
  readonly nodeIds: readonly string[];
  /** Nodes the load balancer may send this queue's next request to. */
  nodesFor(queueId: string): readonly string[];
  reuseMsOf(queueId: string): number;
  /** Typical time from a prefetch instruction to the key being in a node's cache. */
  readonly expectedFetchMs: number;
  /**
   * Asks the metadata service to obtain and deliver a key ahead of need. Resolves with the expiry
   * of the key delivered, or undefined when none was; never rejects.
   */
  prefetch(instruction: PrefetchInstruction): Promise<number | undefined>;
  /**
   * Asks the metadata service to deliver the decrypt keys of a queue's waiting messages to the
   * nodes that serve its receives (the service looks the DEKs up; ids only here). Resolves with
   * the number of keys delivered; never rejects. Absent where backlogs are not known (the simulator).
   */
  prefetchDecrypt?(instruction: BacklogPrefetch): Promise<number>;
}

/** A decrypt-key prefetch for a queue's backlog: ids and a score, nothing else. */
export interface BacklogPrefetch {
  queueId: string;
  nodeIds: string[];
  /** P(a consumer receives within a key's life), 0..1: protects the keys in the nodes' caches. */
  score: number;
  /** Messages, in receive order, whose DEKs may be bought from the KMS (see DecryptPrefetchInstruction). */
  buyMessages?: number;
}

/** One request as a front-end served it: ids, times and what its key cache did. Never a key. */
export interface AccessObservation {
  at: number;
  queueId: string;
  principal: string;
  nodeId: string;
  op: QueueOp;
  /** Whether the node's cache held a valid key. */
  hit: boolean;
  /** Expiry of the key that served the request (hits only). */
  keyExpiresAt: number | undefined;
  /** The hit was the first use of a key a prefetch had delivered: a miss avoided. */
  prefetchedFirstUse: boolean;
}

/** One request of retained history (a trace event has this shape). */
export interface HistoryEvent {
  t: number;
  queue: string;
  principal?: string;
  node?: string;
  op: QueueOp;
}

/** History in time order, in batches. */
export type HistoryBatches = AsyncIterable<readonly HistoryEvent[]> | Iterable<readonly HistoryEvent[]>;

/** Queue statistics a front-end reports now and then (the seed's "queue metadata"). */
export interface QueueStatsObservation {
  at: number;
  queueId: string;
  /** Messages stored and not yet deleted. */
  backlog: number;
}
