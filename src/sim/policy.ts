import type { AccessObservation, PrefetchHost, QueueStatsObservation } from '../prefetcher/types.ts';

/** What a policy sees of one request after the node served it (or started waiting). */
export type RequestObservation = AccessObservation;

/** What the system offers a policy: ids, times and the prefetch API. Never a key. */
export type PolicyContext = PrefetchHost;

/**
 * A key-prefetching policy. Baselines implement it in the simulator; the Predictive Key
 * Prefetcher implements it too, so every policy is measured on the very same system.
 */
export interface Policy {
  readonly name: string;
  start(context: PolicyContext): void;
  onRequest(observation: RequestObservation): void;
  /** A queue's backlog after a send or receive, as front-ends report it live. */
  onQueueStats?(observation: QueueStatsObservation): void;
  /** Called once at the end of the trace. */
  finish?(): void;
}
