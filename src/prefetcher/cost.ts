/**
 * What a prefetch decision weighs, in one unit (the cost of a demand miss = 1 by default). The
 * defaults say: a wasted KMS call costs as much as three misses — KMS calls are billed and
 * quota-limited, and a prefetcher that buys recall with calls is no better than a shorter
 * reuse period — and holding a key in a node's cache for a second costs a little (exposure).
 */
export interface CostModel {
  /** A request that waits for a key (latency on the request path). Default 1. */
  missCost: number;
  /** One KMS call that serves no request. Default 3. */
  kmsCallCost: number;
  /** One key held in one node's cache for one second without being used. Default 0.0001. */
  residentKeySecondCost: number;
}

export const DEFAULT_COSTS: CostModel = { missCost: 1, kmsCallCost: 3, residentKeySecondCost: 0.0001 };

export function validateCosts(costs: CostModel): CostModel {
  for (const [name, value] of Object.entries(costs)) {
    if (!(typeof value === 'number' && Number.isFinite(value) && value >= 0)) throw new RangeError(`cost ${name} must be a finite number >= 0`);
  }
  if (!(costs.missCost > 0)) throw new RangeError('cost missCost must be > 0');
  return costs;
}

/**
 * The probability threshold the cost model implies: prefetch a new key when the chance that a
 * request comes within its life exceeds kms / (miss + kms). Break-even: below it, the expected
 * wasted call costs more than the expected miss saved.
 */
export function thresholdOf(costs: CostModel): number {
  return costs.kmsCallCost / (costs.missCost + costs.kmsCallCost);
}

/**
 * Tunes the decision from outcomes: the models' probabilities are calibrated against what
 * happened to the prefetches made on them (used or wasted), in buckets of predicted
 * probability, starting from "the models are right" and moving with the evidence. A prefetch is
 * made when the calibrated probability reaches the cost model's threshold; the threshold in
 * force, on the models' own scale, is the lowest predicted probability that does.
 */
export class ThresholdTuner {
  private readonly used: Float64Array;
  private readonly total: Float64Array;
  resolved = 0;

  constructor(
    private readonly base: () => number,
    private readonly buckets = 20,
    /** Pseudo-outcomes at the bucket's own probability: how much evidence it takes to move it. */
    private readonly prior = 4,
    /** Old outcomes fade, so calibration follows the models as they learn. */
    private readonly decay = 0.995,
  ) {
    this.used = new Float64Array(buckets);
    this.total = new Float64Array(buckets);
  }

  /** The probability of use a prediction of `p` has turned out to mean. */
  calibrated(p: number): number {
    const b = this.bucketOf(p);
    const mid = (b + 0.5) / this.buckets;
    return (this.used[b]! + this.prior * mid) / (this.total[b]! + this.prior);
  }

  /** Whether a prediction of `p` is worth a prefetch. */
  accepts(p: number): boolean {
    return this.calibrated(p) >= this.base();
  }

  /** The lowest predicted probability accepted now (reported as the threshold). */
  get threshold(): number {
    for (let b = 0; b < this.buckets; b++) {
      const p = (b + 0.5) / this.buckets;
      if (this.accepts(p)) return b / this.buckets;
    }
    return 1;
  }

  record(predicted: number, used: boolean): void {
    this.resolved++;
    const b = this.bucketOf(predicted);
    this.used[b] = this.used[b]! * this.decay + (used ? 1 : 0);
    this.total[b] = this.total[b]! * this.decay + 1;
  }

  private bucketOf(p: number): number {
    return Math.min(this.buckets - 1, Math.max(0, Math.floor(p * this.buckets)));
  }
}
