import { AccessAggregator } from '../../bus/access-aggregator.ts';
import type { EventBus, PkpEvent } from '../../bus/types.ts';
import { observationsOf } from '../../prefetcher/aggregated.ts';
import { Prefetcher, type PrefetcherOptions } from '../../prefetcher/prefetcher.ts';
import type { QueueStatsObservation } from '../../prefetcher/types.ts';
import type { Policy, PolicyContext, RequestObservation } from '../policy.ts';

export interface PkpPolicyOptions extends PrefetcherOptions {
  /**
   * Replay as distributed front-ends report: hits counted per (queue, node, principal, op) over this
   * many ms by the same AccessAggregator, expanded as the live prefetcher expands them. Default: each request.
   */
  aggregateMs?: number;
}

/** The Predictive Key Prefetcher as a simulator policy: the very object the service runs live. */
export class PkpPolicy implements Policy {
  readonly name = 'pkp';
  prefetcher: Prefetcher | undefined;
  private aggregator: AccessAggregator | undefined;

  constructor(private readonly options: PkpPolicyOptions = {}) {}

  start(context: PolicyContext): void {
    const { aggregateMs, ...options } = this.options;
    const prefetcher = new Prefetcher(context, options);
    this.prefetcher = prefetcher;
    if (aggregateMs !== undefined) {
      const toPrefetcher: EventBus = {
        partitions: 1,
        publish: (event: PkpEvent) => {
          if (event.type === 'access') for (const o of observationsOf(event)) prefetcher.observe(o);
        },
        subscribe: () => () => undefined,
        flush: async () => undefined,
        stats: () => ({ published: 0, dropped: 0, delivered: 0, rejected: 0, handlerErrors: 0 }),
        close: async () => undefined,
      };
      this.aggregator = new AccessAggregator(toPrefetcher, context.clock, aggregateMs);
    }
  }

  onRequest(o: RequestObservation): void {
    if (!this.aggregator) return this.prefetcher!.observe(o);
    this.aggregator.publish({
      type: 'access', at: o.at, queueId: o.queueId, nodeId: o.nodeId, principal: o.principal, op: o.op, bytes: 0,
      keyHit: o.hit, keyExpiresAt: o.keyExpiresAt, prefetchedFirstUse: o.prefetchedFirstUse,
    });
  }

  onQueueStats(observation: QueueStatsObservation): void {
    this.prefetcher!.observeQueueStats(observation);
  }

  finish(): void {
    this.prefetcher?.stop();
  }
}
