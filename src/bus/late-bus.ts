import { RetryOpen, type RetryPacing } from '../core/retry-open.ts';
import type { BusStats, EventBus, PkpEvent, SubscribeOptions, Unsubscribe } from './types.ts';

export interface LateBusOptions extends RetryPacing {
  partitions: number;
  /** Events held while the bus is not open yet; beyond, they are dropped (counted). Default 10,000. */
  maxHeld?: number;
  onOpened?: () => void;
}

interface Subscription {
  handler: (event: PkpEvent) => void;
  options: SubscribeOptions | undefined;
  stop?: Unsubscribe;
  stopped: boolean;
}

/**
 * A bus whose transport may not answer yet when the process starts (NATS started after PKP): it
 * opens the real bus in the background, retrying, and holds what is published meanwhile (bounded),
 * then hands it over. Publishing keeps its contract: never throws, never waits.
 */
export class LateBus implements EventBus {
  readonly partitions: number;
  private inner: EventBus | undefined;
  private held: PkpEvent[] = [];
  private heldDropped = 0;
  private readonly subscriptions = new Set<Subscription>();
  private readonly opening: RetryOpen<EventBus>;
  private closed = false;

  private constructor(open: () => Promise<EventBus>, private readonly options: LateBusOptions) {
    this.partitions = options.partitions;
    this.opening = new RetryOpen(open, {
      clock: options.clock, retryMs: options.retryMs, onUnreachable: options.onUnreachable,
      onOpen: (bus) => this.opened(bus), discard: (bus) => bus.close(),
    });
  }

  /** Tries once before returning (a transport that is up is used from the first event), then in the background. */
  static async start(open: () => Promise<EventBus>, options: LateBusOptions): Promise<LateBus> {
    const bus = new LateBus(open, options);
    await bus.opening.start();
    return bus;
  }

  /** Whether the real bus is open. */
  get isOpen(): boolean {
    return this.inner !== undefined;
  }

  publish(event: PkpEvent): void {
    if (this.inner) return this.inner.publish(event);
    if (this.closed || this.held.length >= (this.options.maxHeld ?? 10_000)) this.heldDropped++;
    else this.held.push(event);
  }

  subscribe(handler: (event: PkpEvent) => void, options?: SubscribeOptions): Unsubscribe {
    const subscription: Subscription = { handler, options, stopped: false };
    this.subscriptions.add(subscription);
    if (this.inner) subscription.stop = this.inner.subscribe(handler, options);
    return () => {
      subscription.stopped = true;
      subscription.stop?.();
      this.subscriptions.delete(subscription);
    };
  }

  async flush(): Promise<void> {
    await this.inner?.flush();
  }

  /** Events held are counted as published when handed over (by the real bus) or dropped here. */
  stats(): BusStats {
    const inner = this.inner?.stats() ?? { published: 0, dropped: 0, delivered: 0, rejected: 0, handlerErrors: 0 };
    return { ...inner, published: inner.published + this.held.length + this.heldDropped, dropped: inner.dropped + this.heldDropped };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.opening.cancel();
    this.heldDropped += this.held.length;
    this.held = [];
    await this.inner?.close();
  }

  private opened(bus: EventBus): void {
    this.inner = bus;
    for (const subscription of this.subscriptions) if (!subscription.stopped) subscription.stop = bus.subscribe(subscription.handler, subscription.options);
    const held = this.held;
    this.held = [];
    for (const event of held) bus.publish(event);
    this.options.onOpened?.();
  }
}
