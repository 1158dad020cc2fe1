import { SlabPool, type SlabLayout } from '../slab.ts';
import { StreamState, type QueueState } from '../state.ts';
import type { Model } from './model.ts';

export interface EnsembleOptions {
  /** Share of weight passed back to every model after each update, so a model can recover. Default 0.02. */
  fixedShare?: number;
  /** Floor on a model's scored probability, so one surprise cannot zero a weight. Default 0.01. */
  floor?: number;
}

/**
 * Mixes the models' survival curves with weights learned online, per stream. Each scored outcome
 * multiplies a model's weight by the probability it gave that outcome (Bayesian model averaging),
 * then a fixed share is spread back (so a model that was wrong before a pattern changed can win
 * again). A model that abstains (NaN) is left out of the mix and out of the update.
 *
 * It also lays out every stream's slab: its own f32 [weight per model, open prefetch's probability
 * per model], then each model's numbers (see Model.place), and creates streams in that layout.
 */
export class Ensemble {
  readonly size: number;
  /** Population weights: the average of every stream's updates, the prior for a new stream. */
  readonly globalWeights: Float64Array;
  private readonly fixedShare: number;
  private readonly floor: number;
  private readonly scratch: Float64Array;
  /** Where every stream's numbers live. */
  readonly pool: SlabPool;

  constructor(readonly models: readonly Model[], options: EnsembleOptions = {}) {
    this.size = models.length;
    const at: SlabLayout = { f64: 0, f32: 2 * this.size, u16: 0 };
    for (const m of models) {
      m.place({ ...at });
      at.f64 += m.layout.f64;
      at.f32 += m.layout.f32;
      at.u16 += m.layout.u16;
    }
    this.pool = new SlabPool(at);
    this.globalWeights = new Float64Array(this.size).fill(1 / this.size);
    this.fixedShare = options.fixedShare ?? 0.02;
    this.floor = options.floor ?? 0.01;
    this.scratch = new Float64Array(this.size);
  }

  /** A new stream in its slab, weights at the population's, each model set up; `at` is its first request. */
  newStream(queue: QueueState, principal: string, at: number): StreamState {
    const s = new StreamState(queue, principal);
    this.pool.alloc(s);
    for (let m = 0; m < this.size; m++) s.f32[s.o32 + m] = this.globalWeights[m]!;
    for (const m of this.models) m.init(s, at);
    return s;
  }

  /** Frees a dropped stream's slab. */
  release(s: StreamState): void {
    this.pool.release(s);
  }

  /** The stream's weight for model `m`. */
  weight(s: StreamState, m: number): number {
    return s.f32[s.o32 + m]!;
  }

  /** Weighted survival of the stream's next request, P(none in (now, t]); NaN when every model abstains. */
  survival(s: StreamState, now: number, t: number): number {
    let total = 0;
    let mixed = 0;
    for (let m = 0; m < this.size; m++) {
      const w = s.f32[s.o32 + m]!;
      if (w <= 0) continue;
      const v = this.models[m]!.survival(s, now, t);
      if (Number.isNaN(v)) continue;
      total += w;
      mixed += w * v;
    }
    return total > 0 ? mixed / total : Number.NaN;
  }

  /**
   * Records, for the prefetch being opened, each model's probability of a request in [from, to)
   * given none before `from`, as seen at `now` (scored by `scoreWindow` when the outcome is known).
   */
  openWindow(s: StreamState, now: number, from: number, to: number): void {
    const out = s.o32 + this.size;
    for (let m = 0; m < this.size; m++) {
      const model = this.models[m]!;
      const a = model.survival(s, now, from);
      const b = model.survival(s, now, to);
      s.f32[out + m] = Number.isNaN(a) || Number.isNaN(b) || a <= 0 ? Number.NaN : 1 - b / a;
    }
  }

  /**
   * Scores a request that came `gap` after the previous one (call before the models observe it):
   * each model is rewarded by the probability it gave a request within `tolerance` of that time.
   */
  scoreArrival(s: StreamState, at: number, tolerance: number): void {
    const from = s.lastAt;
    const p = this.scratch;
    for (let m = 0; m < this.size; m++) {
      const model = this.models[m]!;
      const before = model.survival(s, from, Math.max(from, at - tolerance));
      const after = model.survival(s, from, at + tolerance);
      p[m] = Number.isNaN(before) || Number.isNaN(after) ? Number.NaN : before - after;
    }
    this.update(s, p);
  }

  /** Scores the open prefetch: used (a request came in the window) or wasted, against each model's window probability. */
  scoreWindow(s: StreamState, requested: boolean): void {
    const p = this.scratch;
    const byModel = s.o32 + this.size;
    for (let m = 0; m < this.size; m++) {
      const q = s.f32[byModel + m]!;
      p[m] = Number.isNaN(q) ? Number.NaN : requested ? q : 1 - q;
    }
    this.update(s, p);
  }

  private update(s: StreamState, p: Float64Array): void {
    const weights = s.f32;
    const o = s.o32;
    let before = 0;
    let after = 0;
    let scored = 0;
    for (let m = 0; m < this.size; m++) {
      const v = p[m]!;
      if (Number.isNaN(v)) continue;
      scored++;
      before += weights[o + m]!;
      after += weights[o + m]! * Math.max(this.floor, Math.min(1, v));
    }
    // One model scored has no rival to lose weight to (multiplying alone would drive it to zero).
    if (scored < 2 || !(after > 0)) return;
    for (let m = 0; m < this.size; m++) {
      if (!Number.isNaN(p[m]!)) weights[o + m] = weights[o + m]! * Math.max(this.floor, Math.min(1, p[m]!));
    }
    // The scored models share what they held before (abstainers keep theirs), then every model gets the fixed share back.
    const rescale = before / after;
    let sum = 0;
    for (let m = 0; m < this.size; m++) {
      if (!Number.isNaN(p[m]!)) weights[o + m] = weights[o + m]! * rescale;
      sum += weights[o + m]!;
    }
    const share = this.fixedShare;
    for (let m = 0; m < this.size; m++) {
      const w = (weights[o + m]! / sum) * (1 - share) + share / this.size;
      weights[o + m] = w;
      // The population prior drifts slowly towards what streams learn.
      this.globalWeights[m] = this.globalWeights[m]! * 0.999 + w * 0.001;
    }
  }
}
