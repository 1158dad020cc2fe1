import type { Clock } from '../core/clock.ts';

/**
 * Long-poll parking, shared by all front-end nodes of a process: a ReceiveMessage that found
 * nothing waits here until a message may have arrived (notify) or its time is up.
 *
 * A receive that came back empty and a send that lands before the receive starts waiting must
 * not miss each other: the caller reads version(queueId) before it receives and passes it to
 * wait(); a notify in between makes wait() return at once.
 */
export class ReceiveWaiters {
  private readonly clock: Clock;
  private readonly maxWaiters: number;
  private readonly waiting = new Map<string, Set<() => void>>();
  /** Per queue, the sequence number of its last notify. */
  private readonly notified = new Map<string, number>();
  private sequence = 0;
  private count = 0;
  private isClosed = false;
  /** Waits refused because maxWaiters were already parked (they return at once: the client re-polls). */
  overflow = 0;

  private readonly onRefused: (() => void) | undefined;

  constructor(clock: Clock, options: { maxWaiters?: number; onRefused?: () => void } = {}) {
    this.clock = clock;
    this.maxWaiters = options.maxWaiters ?? 10_000;
    this.onRefused = options.onRefused;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Number of parked waiters. */
  get size(): number {
    return this.count;
  }

  version(queueId: string): number {
    return this.notified.get(queueId) ?? 0;
  }

  /**
   * Resolves on notify(queueId), when the clock reaches untilMs, or on closeAll(); at once when
   * `seen` is given and the queue was notified since, or when the service is closing. Resolves to
   * false when the wait was refused (maxWaiters already parked, or closing): the caller must answer
   * now (an empty receive) instead of polling again, which would spin without ever yielding.
   */
  wait(queueId: string, untilMs: number, seen?: number): Promise<boolean> {
    if (this.isClosed) return Promise.resolve(false);
    const remaining = untilMs - this.clock.now();
    if (remaining <= 0 || (seen !== undefined && seen !== this.version(queueId))) return Promise.resolve(true);
    if (this.count >= this.maxWaiters) {
      this.overflow++;
      this.onRefused?.();
      return Promise.resolve(false);
    }
    return new Promise<boolean>((resolve) => {
      let set = this.waiting.get(queueId);
      if (!set) this.waiting.set(queueId, (set = new Set()));
      const queueWaiters = set;
      let done = false;
      const wake = (): void => {
        if (done) return;
        done = true;
        timer.cancel();
        queueWaiters.delete(wake);
        if (queueWaiters.size === 0 && this.waiting.get(queueId) === queueWaiters) this.waiting.delete(queueId);
        this.count--;
        resolve(true);
      };
      queueWaiters.add(wake);
      this.count++;
      const timer = this.clock.setTimer(remaining, wake);
    });
  }

  /** Something changed in the queue (a message sent or made visible, the queue deleted). */
  notify(queueId: string): void {
    this.notified.set(queueId, ++this.sequence);
    const set = this.waiting.get(queueId);
    if (!set) return;
    for (const wake of [...set]) wake();
  }

  /** The queue is gone: wake its waiters and forget it. */
  forget(queueId: string): void {
    this.notify(queueId);
    this.notified.delete(queueId);
  }

  /** Shutdown: every waiter returns now, and later waits return at once. */
  closeAll(): void {
    this.isClosed = true;
    for (const set of [...this.waiting.values()]) {
      for (const wake of [...set]) wake();
    }
  }
}
