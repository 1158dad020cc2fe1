import type { Clock, Timer } from '../core/clock.ts';
import { PkpError } from '../core/errors.ts';

export type CallClass = 'demand' | 'background';

export interface KmsSchedulerOptions {
  clock: Clock;
  /** Most KMS calls in flight at once. Default 64. */
  maxInFlight?: number;
  /** Budget for background (prefetch/refresh) calls, per second. Default 50. Infinity: no limit. */
  backgroundPerSecond?: number;
  /** Most background calls waiting; beyond it the oldest is dropped. Default 1,000. */
  backgroundQueueLimit?: number;
  onDropped?: () => void;
}

interface Job {
  run: () => void;
  drop: (error: Error) => void;
}

/**
 * Orders KMS calls: demand calls start first; background calls (prefetch, refresh) start only when
 * a slot is free, no demand call waits, and the background budget (a token bucket on the clock)
 * allows. Background overflow drops the oldest waiting call, counted, never a crash.
 */
export class KmsScheduler {
  private readonly clock: Clock;
  private readonly maxInFlight: number;
  private readonly ratePerMs: number;
  private readonly burst: number;
  private readonly queueLimit: number;
  private readonly onDropped: (() => void) | undefined;
  private readonly demand: Job[] = [];
  private readonly background: Job[] = [];
  private inFlight = 0;
  private tokens: number;
  private tokensAt: number;
  private wakeTimer: Timer | null = null;
  dropped = 0;

  constructor(options: KmsSchedulerOptions) {
    this.clock = options.clock;
    this.maxInFlight = options.maxInFlight ?? 64;
    const perSecond = options.backgroundPerSecond ?? 50;
    if (!(perSecond >= 0)) throw new RangeError('backgroundPerSecond must be >= 0');
    this.ratePerMs = perSecond / 1000;
    this.burst = Number.isFinite(perSecond) ? Math.max(1, perSecond) : Infinity;
    this.tokens = this.burst;
    this.tokensAt = this.clock.now();
    this.queueLimit = options.backgroundQueueLimit ?? 1_000;
    this.onDropped = options.onDropped;
  }

  /** Runs `call` when its class's turn comes; resolves or rejects with its result. */
  schedule<T>(callClass: CallClass, call: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const job: Job = {
        run: () => {
          this.inFlight++;
          call().then(resolve, reject).finally(() => {
            this.inFlight--;
            this.pump();
          });
        },
        drop: reject,
      };
      if (callClass === 'demand') this.demand.push(job);
      else {
        this.background.push(job);
        if (this.background.length > this.queueLimit) {
          this.dropped++;
          this.onDropped?.();
          this.background.shift()!.drop(new PkpError('PrefetchDropped', 'background KMS queue full'));
        }
      }
      this.pump();
    });
  }

  get waiting(): number {
    return this.demand.length + this.background.length;
  }

  /** Rejects every waiting call (shutdown). */
  close(): void {
    this.wakeTimer?.cancel();
    this.wakeTimer = null;
    for (const job of [...this.demand.splice(0), ...this.background.splice(0)]) {
      job.drop(new PkpError('ServiceClosed', 'metadata service is closing'));
    }
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.demand.length > 0) this.demand.shift()!.run();
    while (this.inFlight < this.maxInFlight && this.demand.length === 0 && this.background.length > 0) {
      if (!this.takeToken()) {
        this.wakeWhenTokenDue();
        return;
      }
      this.background.shift()!.run();
    }
  }

  private takeToken(): boolean {
    if (this.burst === Infinity) return true;
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.tokensAt) * this.ratePerMs);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private wakeWhenTokenDue(): void {
    if (this.wakeTimer || this.ratePerMs === 0) return;
    const waitMs = Math.ceil((1 - this.tokens) / this.ratePerMs);
    this.wakeTimer = this.clock.setTimer(waitMs, () => {
      this.wakeTimer = null;
      this.pump();
    });
  }
}
