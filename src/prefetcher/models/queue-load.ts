import { rateOf } from './decay.ts';
import { poissonSurvival, StatelessModel, type StreamState } from './model.ts';

/**
 * Queue load: messages waiting in a queue mean consumers will come for them. While the backlog is
 * non-empty the stream is expected at the consumers' recent receive rate (at least one poll per
 * `minPollMs`); with an empty backlog, or no consumer ever seen, the model has nothing to say.
 */
export class QueueLoadModel extends StatelessModel {
  readonly name = 'queue-load';
  constructor(private readonly windowMs: number, private readonly minPollMs: number) {
    super();
  }

  survival(s: StreamState, now: number, t: number): number {
    const q = s.queue;
    // Without consumers seen (or a backlog reported) a count of sends says nothing about receives.
    if (q.backlog <= 0 || !q.consumersSeen) return Number.NaN;
    const rate = Math.max(rateOf(q.receiveCount, q.receiveAt, now, this.windowMs), 1 / this.minPollMs);
    return poissonSurvival(rate, t - now);
  }
}
