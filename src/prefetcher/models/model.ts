import type { SlabLayout } from '../slab.ts';
import type { QueueState, StreamState } from '../state.ts';

/**
 * A model of when a key stream — the requests of one (queue, principal), which all need that
 * stream's current data key — makes its next request. Models see counts and times only.
 *
 * Every model answers the same question, so the ensemble can mix them and score them on the same
 * outcomes: the probability that the stream makes no request in (now, t], given all it has seen.
 *
 * A model keeps its per-stream numbers in the stream's slab (see SlabPool): it declares how many
 * it needs (`layout`), the ensemble tells it once where they start (`place`), and it reads them at
 * `stream.f32[stream.o32 + offset]` and the like. That keeps memory per stream to the numbers.
 */
export interface Model {
  readonly name: string;
  /** Numbers kept per stream. */
  readonly layout: SlabLayout;
  /** Where this model's numbers start in every stream's slab; called once, by the ensemble. */
  place(offsets: SlabLayout): void;
  /** Sets up a new stream (its numbers are zero), before its first request is observed. */
  init(stream: StreamState, at: number): void;
  /** Learns from one request of the stream. Called before the stream's own fields are updated. */
  observe(stream: StreamState, at: number): void;
  /**
   * P(no request of the stream in (now, t]), t ≥ now; NaN when the model has nothing to say yet
   * (the ensemble then leaves it out and does not score it).
   */
  survival(stream: StreamState, now: number, t: number): number;
}

/** A model's view of its queue, for models that learn queue-wide facts (backlog, principals). */
export type { QueueState, StreamState };

/** Base for models with numbers in the slab: keeps the offsets, refuses to be placed twice elsewhere. */
export abstract class SlabModel implements Model {
  abstract readonly name: string;
  abstract readonly layout: SlabLayout;
  protected o64 = 0;
  protected o32 = 0;
  protected o16 = 0;
  private placed = false;

  place(offsets: SlabLayout): void {
    if (this.placed && (offsets.f64 !== this.o64 || offsets.f32 !== this.o32 || offsets.u16 !== this.o16)) {
      throw new Error(`model ${this.name} is already placed in another ensemble with a different layout`);
    }
    this.o64 = offsets.f64;
    this.o32 = offsets.f32;
    this.o16 = offsets.u16;
    this.placed = true;
  }

  init(_stream: StreamState, _at: number): void {}

  abstract observe(stream: StreamState, at: number): void;
  abstract survival(stream: StreamState, now: number, t: number): number;
}

/**
 * A model that reads only the stream's and queue's shared fields (rates, backlog): it keeps no
 * numbers of its own per stream and learns nothing beyond what the prefetcher already records.
 */
export abstract class StatelessModel implements Model {
  abstract readonly name: string;
  readonly layout: SlabLayout = { f64: 0, f32: 0, u16: 0 };
  abstract survival(stream: StreamState, now: number, t: number): number;

  place(): void {}
  init(): void {}
  observe(): void {}
}

/** exp(-rate·dt) with the guards every rate-based model needs. */
export function poissonSurvival(ratePerMs: number, dtMs: number): number {
  if (!(ratePerMs > 0) || !(dtMs > 0)) return 1;
  return Math.exp(-ratePerMs * dtMs);
}
