import type { Clock } from '../core/clock.ts';
import type { QueueOp } from '../bus/types.ts';
import type { PrefetchInstruction } from '../metadata/types.ts';

/** What a policy sees of one request after the node served it (or started waiting). */
export interface RequestObservation {
  at: number;
  queueId: string;
  principal: string;
  nodeId: string;
  op: QueueOp;
  /** Whether the node's cache held a valid key. */
  hit: boolean;
  /** Expiry of the key that served the request (hits only). */
  keyExpiresAt: number | undefined;
}

/** What the system offers a policy: ids, times and the prefetch API. Never a key. */
export interface PolicyContext {
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
}

/**
 * A key-prefetching policy. Baselines implement it in the simulator; the Predictive Key
 * Prefetcher implements it too, so every policy is measured on the very same system.
 */
export interface Policy {
  readonly name: string;
  start(context: PolicyContext): void;
  onRequest(observation: RequestObservation): void;
  /** Called once at the end of the trace. */
  finish?(): void;
}
