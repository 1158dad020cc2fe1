import type { Clock, Timer } from './clock.ts';

/** How the attempts are paced and a failure is told: what every user of RetryOpen is given. */
export interface RetryPacing {
  clock: Clock;
  /** Between two attempts. Default 1 s. */
  retryMs?: number;
  /** Told of the first failure only: the attempts that follow are quiet until one succeeds. */
  onUnreachable: (error: unknown) => void;
}

export interface RetryOpenOptions<T> extends RetryPacing {
  /** The opened thing, once (not after cancel). */
  onOpen: (value: T) => void;
  /** What is done with a value that arrives after cancel. */
  discard: (value: T) => Promise<unknown> | unknown;
}

/**
 * Opens something that may not answer yet (a broker started after this process): the first attempt
 * is awaited, so what is up is used at once; after a failure it tries again every retryMs in the
 * background until it succeeds or is cancelled.
 */
export class RetryOpen<T> {
  private timer: Timer | undefined;
  private cancelled = false;
  private failures = 0;

  constructor(private readonly open: () => Promise<T>, private readonly options: RetryOpenOptions<T>) {}

  /** Attempts so far that failed. */
  get failedAttempts(): number {
    return this.failures;
  }

  /** The first attempt; resolves whether or not it succeeded. */
  start(): Promise<void> {
    return this.attempt();
  }

  cancel(): void {
    this.cancelled = true;
    this.timer?.cancel();
  }

  private async attempt(): Promise<void> {
    let value: T;
    try {
      value = await this.open();
    } catch (error) {
      if (this.failures++ === 0) this.options.onUnreachable(error);
      if (!this.cancelled) this.timer = this.options.clock.setTimer(this.options.retryMs ?? 1_000, () => void this.attempt());
      return;
    }
    if (this.cancelled) {
      await this.options.discard(value);
      return;
    }
    this.options.onOpen(value);
  }
}
