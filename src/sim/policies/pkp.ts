import { Prefetcher, type PrefetcherOptions } from '../../prefetcher/prefetcher.ts';
import type { QueueStatsObservation } from '../../prefetcher/types.ts';
import type { Policy, PolicyContext, RequestObservation } from '../policy.ts';

/** The Predictive Key Prefetcher as a simulator policy: the very object the service runs live. */
export class PkpPolicy implements Policy {
  readonly name = 'pkp';
  prefetcher: Prefetcher | undefined;

  constructor(private readonly options: PrefetcherOptions = {}) {}

  start(context: PolicyContext): void {
    this.prefetcher = new Prefetcher(context, this.options);
  }

  onRequest(observation: RequestObservation): void {
    this.prefetcher!.observe(observation);
  }

  onQueueStats(observation: QueueStatsObservation): void {
    this.prefetcher!.observeQueueStats(observation);
  }

  finish(): void {
    this.prefetcher?.stop();
  }
}
