import { rateOf } from './decay.ts';
import { poissonSurvival, type Model, type StreamState } from './model.ts';

/**
 * Hot-queue detection: the stream's recent request rate (an exponentially weighted count over a
 * window), read as a Poisson process. Right for busy streams, where the next request is seconds
 * away; it forgets an idle stream within a few windows.
 */
export class HotModel implements Model<null> {
  readonly name = 'hot';
  constructor(private readonly windowMs: number) {}

  create(): null {
    return null;
  }

  observe(): void {}

  survival(_state: null, s: StreamState, now: number, t: number): number {
    if (s.requests < 2) return Number.NaN;
    return poissonSurvival(rateOf(s.decayedCount, s.decayedAt, now, this.windowMs), t - now);
  }

  /** Requests per second above which a stream counts as hot (reported, not used for decisions). */
  static isHot(s: StreamState, now: number, windowMs: number, perSecond: number): boolean {
    return rateOf(s.decayedCount, s.decayedAt, now, windowMs) * 1000 >= perSecond;
  }

  bytes(): number {
    return 0;
  }
}
