import { decayTo, rateOf } from './decay.ts';
import { poissonSurvival, StatelessModel, type StreamState } from './model.ts';

/**
 * Principal behaviour: a principal's share of its queue's recent requests times the queue's rate.
 * It lets a principal seen rarely borrow the rhythm of a busy queue. Abstains on single-principal
 * queues, where it would repeat the hot model.
 */
export class PrincipalModel extends StatelessModel {
  readonly name = 'principal';
  constructor(private readonly windowMs: number) {
    super();
  }

  survival(s: StreamState, now: number, t: number): number {
    const q = s.queue;
    if (q.streamCount < 2 || q.requests < 4) return Number.NaN;
    const queueCount = decayTo(q.decayedCount, q.decayedAt, now, this.windowMs);
    if (!(queueCount > 0)) return Number.NaN;
    const share = decayTo(s.decayedCount, s.decayedAt, now, this.windowMs) / queueCount;
    return poissonSurvival(share * rateOf(q.decayedCount, q.decayedAt, now, this.windowMs), t - now);
  }
}
