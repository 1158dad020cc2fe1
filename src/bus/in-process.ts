import type { EventBus, PkpEvent, Unsubscribe } from './types.ts';

/**
 * The embedded bus: delivers synchronously to every subscriber. A throwing subscriber is reported
 * and skipped, never allowed to break the publisher (prefetching fails open).
 */
export class InProcessBus implements EventBus {
  private readonly handlers = new Set<(event: PkpEvent) => void>();

  constructor(private readonly onHandlerError: (error: unknown) => void = () => {}) {}

  publish(event: PkpEvent): void {
    for (const handler of this.handlers) {
      try {
        handler(event);
      } catch (error) {
        this.onHandlerError(error);
      }
    }
  }

  subscribe(handler: (event: PkpEvent) => void): Unsubscribe {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  async close(): Promise<void> {
    this.handlers.clear();
  }
}
