import type { Model, StreamState } from './model.ts';

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
 */
export class Ensemble {
  readonly size: number;
  /** Population weights: the average of every stream's updates, the prior for a new stream. */
  readonly globalWeights: Float64Array;
  private readonly fixedShare: number;
  private readonly floor: number;
  private readonly scratch: Float64Array;

  constructor(readonly models: readonly Model[], options: EnsembleOptions = {}) {
    this.size = models.length;
    this.globalWeights = new Float64Array(this.size).fill(1 / this.size);
    this.fixedShare = options.fixedShare ?? 0.02;
    this.floor = options.floor ?? 0.01;
    this.scratch = new Float64Array(this.size);
  }

  initialWeights(): Float32Array {
    return Float32Array.from(this.globalWeights);
  }

  /** Weighted survival of the stream's next request, P(none in (now, t]); NaN when every model abstains. */
  survival(s: StreamState, now: number, t: number): number {
    let total = 0;
    let mixed = 0;
    for (let m = 0; m < this.size; m++) {
      const w = s.weights[m]!;
      if (w <= 0) continue;
      const v = this.models[m]!.survival(s.modelStates[m], s, now, t);
      if (Number.isNaN(v)) continue;
      total += w;
      mixed += w * v;
    }
    return total > 0 ? mixed / total : Number.NaN;
  }

  /** Each model's probability of a request in [from, to) given none before `from`, as seen at `now`. */
  windowProbabilities(s: StreamState, now: number, from: number, to: number, out: Float32Array): void {
    for (let m = 0; m < this.size; m++) {
      const model = this.models[m]!;
      const a = model.survival(s.modelStates[m], s, now, from);
      const b = model.survival(s.modelStates[m], s, now, to);
      out[m] = Number.isNaN(a) || Number.isNaN(b) || a <= 0 ? Number.NaN : 1 - b / a;
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
      const state = s.modelStates[m];
      const before = model.survival(state, s, from, Math.max(from, at - tolerance));
      const after = model.survival(state, s, from, at + tolerance);
      p[m] = Number.isNaN(before) || Number.isNaN(after) ? Number.NaN : before - after;
    }
    this.update(s.weights, p);
  }

  /** Scores a prefetch: used (a request came in the window) or wasted, against each model's window probability. */
  scoreWindow(s: StreamState, byModel: Float32Array, requested: boolean): void {
    const p = this.scratch;
    for (let m = 0; m < this.size; m++) {
      const q = byModel[m]!;
      p[m] = Number.isNaN(q) ? Number.NaN : requested ? q : 1 - q;
    }
    this.update(s.weights, p);
  }

  private update(weights: Float32Array, p: Float64Array): void {
    let before = 0;
    let after = 0;
    let scored = 0;
    for (let m = 0; m < this.size; m++) {
      const v = p[m]!;
      if (Number.isNaN(v)) continue;
      scored++;
      before += weights[m]!;
      const w = weights[m]! * Math.max(this.floor, Math.min(1, v));
      weights[m] = w;
      after += w;
    }
    if (scored < 2 || !(after > 0)) return;
    // The scored models share what they held before (abstainers keep theirs), then every model gets the fixed share back.
    const rescale = before / after;
    let sum = 0;
    for (let m = 0; m < this.size; m++) {
      if (!Number.isNaN(p[m]!)) weights[m] = weights[m]! * rescale;
      sum += weights[m]!;
    }
    const share = this.fixedShare;
    for (let m = 0; m < this.size; m++) {
      const w = (weights[m]! / sum) * (1 - share) + share / this.size;
      weights[m] = w;
      // The population prior drifts slowly towards what streams learn.
      this.globalWeights[m] = this.globalWeights[m]! * 0.999 + w * 0.001;
    }
  }
}
