import { rateOf } from './decay.ts';
import { poissonSurvival, StatelessModel, type StreamState } from './model.ts';

/**
 * Hot-queue detection: the stream's recent request rate (an exponentially weighted count over a
 * window), read as a Poisson process. Right for busy streams, where the next request is seconds
 * away; it forgets an idle stream within a few windows.
 */
export class HotModel extends StatelessModel {
  readonly name = 'hot';
  constructor(private readonly windowMs: number) {
    super();
  }

  survival(s: StreamState, now: number, t: number): number {
    if (s.requests < 2) return Number.NaN;
    return poissonSurvival(rateOf(s.decayedCount, s.decayedAt, now, this.windowMs), t - now);
  }
}
