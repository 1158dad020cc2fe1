import type { EventBus, PkpEvent, Unsubscribe } from './types.ts';

/**
 * The embedded bus: delivers synchronously to every subscriber. A throwing subscriber is counted
 * and skipped, never allowed to break the publisher (prefetching fails open).
 */
export class InProcessBus implements EventBus {
  private readonly handlers = new Set<(event: PkpEvent) => void>();
  published = 0;
  handlerErrors = 0;

  publish(event: PkpEvent): void {
    this.published++;
    for (const handler of this.handlers) {
      try {
        handler(event);
      } catch {
        this.handlerErrors++;
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
