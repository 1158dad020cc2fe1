import type { Clock, Timer } from '../core/clock.ts';
import type { AccessEvent, BusStats, EventBus, PkpEvent, SubscribeOptions, Unsubscribe } from './types.ts';

/**
 * A front-end's access events, counted per (queue, node, principal, op) over an interval and
 * published as one event each (count, first and last time), so bus traffic grows with the
 * active queues, not with the requests. Other events pass straight through. A miss is never held
 * back: the prefetcher learns of it at once, as it must to renew a key in time.
 */
export class AccessAggregator implements EventBus {
  private readonly open = new Map<string, AccessEvent>();
  private timer: Timer | undefined;
  readonly partitions: number;

  constructor(private readonly bus: EventBus, private readonly clock: Clock, private readonly intervalMs = 1_000) {
    if (!(intervalMs > 0)) throw new RangeError('the aggregation interval must be > 0 ms');
    this.partitions = bus.partitions;
  }

  publish(event: PkpEvent): void {
    if (event.type !== 'access' || event.keyHit === false) {
      this.bus.publish(event);
      return;
    }
    const key = `${event.queueId}\u0000${event.nodeId}\u0000${event.principal}\u0000${event.op}`;
    const open = this.open.get(key);
    if (open) {
      open.count! += 1;
      open.at = event.at;
      open.bytes += event.bytes;
      if (event.keyExpiresAt !== undefined) open.keyExpiresAt = event.keyExpiresAt;
      if (event.prefetchedFirstUse) open.prefetchedFirstUse = true;
      return;
    }
    this.open.set(key, { ...event, count: 1, firstAt: event.at });
    this.timer ??= this.clock.setTimer(this.intervalMs, () => this.drain());
  }

  subscribe(handler: (event: PkpEvent) => void, options?: SubscribeOptions): Unsubscribe {
    return this.bus.subscribe(handler, options);
  }

  async flush(): Promise<void> {
    this.drain();
    await this.bus.flush();
  }

  stats(): BusStats {
    return this.bus.stats();
  }

  async close(): Promise<void> {
    this.drain();
    await this.bus.close();
  }

  /** Publishes every open count. */
  private drain(): void {
    this.timer?.cancel();
    this.timer = undefined;
    for (const event of this.open.values()) this.bus.publish(event);
    this.open.clear();
  }
}
