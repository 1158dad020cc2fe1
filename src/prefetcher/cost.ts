/**
 * What a prefetch decision weighs, in one unit (the cost of a demand miss = 1 by default). The
 * defaults say: a wasted KMS call costs as much as two misses — KMS calls are billed and
 * quota-limited, and a prefetcher that buys recall with calls is no better than a shorter
 * reuse period — and holding a key in a node's cache for a second costs a little (exposure).
 */
export interface CostModel {
  /** A request that waits for a key (latency on the request path). Default 1. */
  missCost: number;
  /** One KMS call that serves no request. Default 2. */
  kmsCallCost: number;
  /**
   * One key held in the front-ends' caches for one second without being used, however many of
   * them hold it. Default 0.0004. Not per node: full fan-out delivers a key to every node that may
   * serve its stream, and a price per copy made pkp buy fewer keys the more front-ends there
   * were (timer subset, 16 against 4 front-ends: 4–5 % more misses). The node·seconds are still
   * counted (PrefetcherStats.exposureKeySeconds).
   */
  residentKeySecondCost: number;
}

export const DEFAULT_COSTS: CostModel = { missCost: 1, kmsCallCost: 2, residentKeySecondCost: 0.0004 };

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
export function thresholdOf(costs: CostModel, kmsPriceFactor = 1): number {
  const kms = costs.kmsCallCost * kmsPriceFactor;
  return kms / (costs.missCost + kms);
}

/**
 * Holds the prefetcher's key generation near a budget relative to the fewest keys the requests
 * seen could have been served with (the offline optimum, counted online: a new key whenever a
 * request comes after the last counted key's life). When the prefetcher generates more than
 * (1 + maxOverhead) times that, the price of a KMS call in its cost model goes up; when less, down.
 * This is the cost model's KMS price tuned from observed outcomes.
 */
/**
 * Largest log-ratio error one key event feeds the budget's per-event step. Small: the price then
 * moves by steady steps, not by the size of a burst (measured: 0.1 let a regime change's burst
 * of waste hold prefetching down for 3 hours; 0.02 recovers in 15 minutes).
 */
const MAX_STEP_ERROR = 0.02;
/** Largest log-ratio error the per-window step acts on (the same steadiness, per half hour). */
const MAX_WINDOW_ERROR = 0.1;
/**
 * The window's step is shared over at least this many key events. A ratio over n events is noisy
 * by about 1/√n, as large as MAX_WINDOW_ERROR at 100: with fewer, the price chased noise (held-out
 * bursty trace, ~20 key events per half hour: the price fell to its floor and the cap refused
 * 34,000 times, 1,416 misses at 1.105× against 1,363 at 1.102× with this floor).
 */
const MIN_WINDOW_EVENTS = 100;
/**
 * The price aims at this share of the budget's overhead, not all of it. Aimed at all of it, the
 * ratio the price follows (with a lag) ends above (1 + X) about half the time, held there only by
 * the cap's slack (queue sample @0.1: 1.102×, all functions @0.2: 1.201×); a cap without slack
 * refuses bluntly instead (queue @0.1: 279–321 misses against 219). 0.97 ended within it on both
 * samples at both budgets (measured: 0.94 spent less for more misses).
 */
const AIM_SHARE = 0.97;
/** Keys the hard cap allows beyond (1 + X) × the optimum: room for the first prefetches. */
const CAP_SLACK_KEYS = 2;
/**
 * Most the cap's pressure multiplies the price by. At 20 the threshold of the default costs is
 * 0.98 even at a price factor of 1: only keys all but sure to be used, and soon, pass.
 */
const MAX_PRESSURE = 20;

export class KmsBudget {
  private optimal = 0;
  private generated = 0;
  /** Counts since the start, for the hard cap (see allows). */
  private totalOptimal = 0;
  private totalGenerated = 0;
  private at = 0;
  private startedAt = Number.NaN;
  private logFactor = 0;

  constructor(
    readonly maxOverhead: number,
    /** Memory of the counts (ms): the budget follows the last half hour, what the prefetcher does now. */
    private readonly windowMs = 30 * 60_000,
    /** Log-price step per key event per unit of (clamped) log-ratio error. */
    private readonly gain = 0.05,
    /**
     * Log-price change per window per unit of (clamped) log-ratio error: e^0.2 per half hour at
     * the clamp. (Measured: 3 or more made the regime-change trace's price swing after the change,
     * back for good after 25 reuse periods instead of 3.)
     */
    private readonly windowGain = 2,
    private readonly maxFactor = 16,
    /**
     * Lowest price. Low: a large budget must be spendable (at 1/16 the queue sample's curve stopped
     * at 1.27× with X = 0.4); the planner still weighs residency and the key life lost early.
     */
    private readonly minFactor = 1 / 256,
  ) {}

  /** Multiplier on the KMS call's cost. */
  get factor(): number {
    return Math.exp(this.logFactor);
  }

  /**
   * The price the planner weighs a KMS call at: the factor, raised while the keys generated since
   * the start are between the aim and the hard cap (`pending` as in allows), as 1 / the share of
   * that room still left. This is the cap's shadow price. Without it the price, steered by a
   * ratio only a fraction of a per cent over its aim, hardly moved there, and the cap refused
   * whichever stream asked next. Streams that renew at every expiry asked most, and for them a
   * refusal is a sure miss. (Held-out orchestration subset, 13 streams, X = 0.1: 365 refusals,
   * 265 misses at 1.107×; with the pressure, 208 at 1.099×.)
   */
  priceWith(pending: number): number {
    const used = this.totalGenerated - pending;
    const aim = (1 + this.maxOverhead * AIM_SHARE) * this.totalOptimal;
    if (used <= aim) return this.factor;
    const cap = this.capKeys();
    const left = (cap - used) / (cap - aim);
    return this.factor * Math.min(MAX_PRESSURE, 1 / Math.max(left, 1 / MAX_PRESSURE));
  }

  /** Generated keys over the optimum's, over the window (1 when nothing yet). */
  get ratio(): number {
    return this.optimal > 0 ? this.generated / this.optimal : 1;
  }

  optimalKey(now: number): void {
    this.decay(now);
    this.optimal++;
    this.totalOptimal++;
    this.adjust(now);
  }

  generatedKey(now: number): void {
    this.decay(now);
    this.generated++;
    this.totalGenerated++;
    this.adjust(now);
  }

  /**
   * Whether one more prefetched key keeps the keys generated since the start within the budget,
   * (1 + maxOverhead) × the optimum's. `pending` keys were generated ahead of the request that
   * will count them in the optimum (at most one per stream), so they are not yet an excess. The
   * price steers the spending; this cap holds the invariant when the price lags (a burst of waste).
   */
  allows(pending: number): boolean {
    return this.totalGenerated - pending + 1 <= this.capKeys();
  }

  /** The most keys the hard cap lets have been generated since the start. */
  private capKeys(): number {
    return (1 + this.maxOverhead) * this.totalOptimal + CAP_SLACK_KEYS;
  }

  private decay(now: number): void {
    if (now <= this.at) return;
    const f = Math.exp((this.at - now) / this.windowMs);
    this.optimal *= f;
    this.generated *= f;
    this.at = now;
  }

  private adjust(now: number): void {
    if (Number.isNaN(this.startedAt)) this.startedAt = now;
    if (this.optimal < 5) return;
    // In log space and clamped: a burst of waste (a pattern that just changed) moves the price no
    // faster than a shortfall brings it back, so it cannot wind up for hours after the burst.
    // The recent ratio steers; the ratio since the start, when it is over, too, so the hard cap
    // (allows) is reached rarely and the price, not the cap, picks what to drop.
    const total = this.totalOptimal > 0 ? this.totalGenerated / this.totalOptimal : 1;
    const target = 1 + this.maxOverhead * AIM_SHARE;
    const raw = Math.max(Math.log(this.ratio / target), total > target ? Math.log(total / target) : -Infinity);
    // Before a window has passed, a shortfall says little (the models are still silent) and the
    // price may only rise: an overspend is real from the first key. (Measured: letting it fall
    // then, with a faster window step, made the price plunge and the cap refuse for hours: queue
    // sample @0.1 410 misses instead of 211.)
    const warm = now - this.startedAt >= this.windowMs;
    // Two steps, the larger wins: a fixed one per key event (fast where keys are many) and a
    // window's step shared over the window's key events (events = its decayed counts), so a
    // trace with few keys (a few hundred streams) still moves its price by up to e^0.2 per half
    // hour. (The per-event step alone took the queue sample's price to 0.14 in 8 h with X = 0.4.)
    const perEvent = this.gain * Math.max(warm ? -MAX_STEP_ERROR : 0, Math.min(MAX_STEP_ERROR, raw));
    // The window's step follows the recent ratio only: the ratio since the start carries a regime
    // change's burst of waste for hours, and at this speed it would hold the price up as long.
    const recent = Math.log(this.ratio / target);
    // A budget far from spent since the start lets the price fall by as much as that shortfall, not
    // by the clamp alone: with a large X the price otherwise fell e^0.2 per half hour at most, and
    // the queue sample's curve stopped at 1.25× (117 misses) whatever X; now it goes on to 1.64×
    // (77 misses) at X = 1. Near the aim the shortfall is below the clamp and nothing changes.
    const fall = Math.max(MAX_WINDOW_ERROR, total < target ? Math.log(target / total) : 0);
    const perWindow = (this.windowGain * Math.max(warm ? -fall : 0, Math.min(MAX_WINDOW_ERROR, recent))) / Math.max(MIN_WINDOW_EVENTS, this.optimal + this.generated);
    const step = Math.abs(perEvent) > Math.abs(perWindow) ? perEvent : perWindow;
    this.logFactor = Math.max(Math.log(this.minFactor), Math.min(Math.log(this.maxFactor), this.logFactor + step));
  }
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

  constructor(
    readonly base: () => number,
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
    // Every bucket fades, not just this one: a bucket that stopped getting prefetches (it was
    // judged not worth them) drifts back to trusting the models, so it can be tried again.
    for (let i = 0; i < this.buckets; i++) {
      this.used[i]! *= this.decay;
      this.total[i]! *= this.decay;
    }
    const b = this.bucketOf(predicted);
    this.used[b]! += used ? 1 : 0;
    this.total[b]! += 1;
  }

  private bucketOf(p: number): number {
    return Math.min(this.buckets - 1, Math.max(0, Math.floor(p * this.buckets)));
  }
}
