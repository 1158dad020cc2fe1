import type { QueueState, StreamState } from '../state.ts';

/**
 * A model of when a key stream — the requests of one (queue, principal), which all need that
 * stream's current data key — makes its next request. Models see counts and times only.
 *
 * Every model answers the same question, so the ensemble can mix them and score them on the same
 * outcomes: the probability that the stream makes no request in (now, t], given all it has seen.
 */
export interface Model<S = unknown> {
  readonly name: string;
  /** Fresh per-stream state, or null when the model keeps none. Kept small: memory is budgeted per queue. */
  create(stream: StreamState, at: number): S;
  /** Learns from one request of the stream. Called before the stream's own fields are updated. */
  observe(state: S, stream: StreamState, at: number): void;
  /**
   * P(no request of the stream in (now, t]), t ≥ now; NaN when the model has nothing to say yet
   * (the ensemble then leaves it out and does not score it).
   */
  survival(state: S, stream: StreamState, now: number, t: number): number;
  /** Approximate bytes held by the state (for the per-queue memory report). */
  bytes(state: S): number;
}

/** A model's view of its queue, for models that learn queue-wide facts (backlog, principals). */
export type { QueueState, StreamState };

/**
 * A model that reads only the stream's and queue's shared fields (rates, backlog): it keeps no
 * state of its own per stream and learns nothing beyond what the prefetcher already records.
 */
export abstract class StatelessModel implements Model<null> {
  abstract readonly name: string;
  abstract survival(state: null, stream: StreamState, now: number, t: number): number;

  create(): null {
    return null;
  }

  observe(): void {}

  bytes(): number {
    return 0;
  }
}

/** exp(-rate·dt) with the guards every rate-based model needs. */
export function poissonSurvival(ratePerMs: number, dtMs: number): number {
  if (!(ratePerMs > 0) || !(dtMs > 0)) return 1;
  return Math.exp(-ratePerMs * dtMs);
}
