import { checkPartitions, partitionOf } from './partition.ts';
import type { BusStats, EventBus, PkpEvent, SubscribeOptions, Unsubscribe } from './types.ts';

interface Subscriber {
  handler: (event: PkpEvent) => void;
  /** undefined: every partition. */
  partitions: ReadonlySet<number> | undefined;
}

/**
 * The embedded bus: delivers synchronously to every subscriber. A throwing subscriber is reported
 * and skipped, never allowed to break the publisher (prefetching fails open). Holds no history.
 */
export class InProcessBus implements EventBus {
  readonly partitions: number;
  private readonly subscribers = new Set<Subscriber>();
  private readonly counts: BusStats = { published: 0, dropped: 0, delivered: 0, rejected: 0, handlerErrors: 0 };
  private closed = false;

  constructor(private readonly onHandlerError: (error: unknown) => void = () => {}, options: { partitions?: number } = {}) {
    this.partitions = checkPartitions(options.partitions ?? 1);
  }

  publish(event: PkpEvent): void {
    this.counts.published++;
    if (this.closed) {
      this.counts.dropped++;
      return;
    }
    const partition = this.partitions === 1 ? 0 : partitionOf(event.queueId, this.partitions);
    for (const subscriber of this.subscribers) {
      if (subscriber.partitions !== undefined && !subscriber.partitions.has(partition)) continue;
      try {
        this.counts.delivered++;
        subscriber.handler(event);
      } catch (error) {
        this.counts.handlerErrors++;
        this.onHandlerError(error);
      }
    }
  }

  subscribe(handler: (event: PkpEvent) => void, options: SubscribeOptions = {}): Unsubscribe {
    const subscriber: Subscriber = { handler, partitions: options.partitions && new Set(options.partitions) };
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  async flush(): Promise<void> {}

  stats(): BusStats {
    return { ...this.counts };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subscribers.clear();
  }
}
