import type { Timer } from '../../core/clock.ts';
import type { Policy, PolicyContext, RequestObservation } from '../policy.ts';

export interface IdlePriceOptions {
  /** The price of one key in misses: high spends few keys, low buys fewer misses. Default DEFAULT_LAMBDA (2). */
  lambda?: number;
  /** Gaps longer than the reuse period kept per stream. Default 20. */
  longGaps?: number;
  /** Gaps up to the reuse period kept per stream. Default 12. */
  shortGaps?: number;
  /** Scales each gap's kernel (its width follows the spread of the stream's gaps). Default 1. */
  smoothing?: number;
}

interface Stream {
  queueId: string;
  principal: string;
  last: number;
  long: number[];
  short: number[];
  /** Decayed share of gaps longer than the reuse period. */
  longShare: number;
  /** Expiry of the key the nodes hold, as far as this policy knows. */
  expiresAt: number;
  timer: Timer | undefined;
}

/** The price of a key in misses when none is named (`idle-price`). */
const DEFAULT_LAMBDA = 2;
/** `idle-price@<lambda>`: the baseline at a price of its own, a positive number. */
const PRICED_NAME = /^idle-price@(\d+(?:\.\d+)?)$/;

/** The price a policy name asks of this baseline (`idle-price`, `idle-price@0.75`), or undefined for another name. */
export function idlePriceLambda(name: string): number | undefined {
  if (name === 'idle-price') return DEFAULT_LAMBDA;
  const match = PRICED_NAME.exec(name);
  const lambda = match ? Number(match[1]) : 0;
  return lambda > 0 ? lambda : undefined;
}

/** Candidate starts per decision, at most (a grid of an eighth of the reuse period). */
const MAX_CANDIDATES = 2_000;

/**
 * A simple online baseline to read pkp's curve against: full fan-out (every key goes to every node
 * that may serve the stream), and at each key's expiry a choice of when, and whether, to have the
 * next key generated, from the stream's own recent gaps conditioned on the idle time so far:
 * maximise P(used within its life) - lambda * (P(wasted) + the expected share of its life lost
 * before first use). Both prices are in keys: a key wasted costs one, a key first used a share f
 * of its life after it was generated costs f (in a busy stream its successor is needed that much
 * earlier), and lambda turns keys into misses. It has no budget: lambda is its knob, and its points
 * are read beside pkp's curve.
 */
export class IdlePricePolicy implements Policy {
  readonly name: string;
  private context!: PolicyContext;
  private readonly lambda: number;
  private readonly longCap: number;
  private readonly shortCap: number;
  private readonly smoothing: number;
  private readonly streams = new Map<string, Stream>();

  constructor(options: IdlePriceOptions = {}) {
    this.lambda = options.lambda ?? DEFAULT_LAMBDA;
    this.longCap = options.longGaps ?? 20;
    this.shortCap = options.shortGaps ?? 12;
    this.smoothing = options.smoothing ?? 1;
    this.name = options.lambda === undefined ? 'idle-price' : `idle-price@${this.lambda}`;
  }

  start(context: PolicyContext): void {
    this.context = context;
  }

  onRequest(o: RequestObservation): void {
    if (o.op !== 'send') return;
    const key = `${o.queueId}\u0000${o.principal}`;
    let s = this.streams.get(key);
    const reuseMs = this.context.reuseMsOf(o.queueId);
    if (!s) {
      s = { queueId: o.queueId, principal: o.principal, last: o.at, long: [], short: [], longShare: 0.5, expiresAt: 0, timer: undefined };
      this.streams.set(key, s);
    } else {
      const gap = o.at - s.last;
      const isLong = gap > reuseMs;
      push(isLong ? s.long : s.short, gap, isLong ? this.longCap : this.shortCap);
      s.longShare = 0.9 * s.longShare + (isLong ? 0.1 : 0);
      s.last = o.at;
    }
    if (o.hit && o.keyExpiresAt !== undefined) {
      if (o.keyExpiresAt > s.expiresAt) this.decideAt(s, o.keyExpiresAt);
      return;
    }
    // A miss fetched a key for one node: the same key goes to every node that may serve the stream.
    if (!o.hit) this.deliver(s, 0);
  }

  finish(): void {
    for (const s of this.streams.values()) s.timer?.cancel();
  }

  private deliver(s: Stream, minRemainingMs: number): void {
    const ctx = this.context;
    void ctx.prefetch({ queueId: s.queueId, principal: s.principal, nodeIds: [...ctx.nodesFor(s.queueId)], reason: 'prefetch', minRemainingMs })
      .then((expiresAt) => {
        if (expiresAt !== undefined && expiresAt > s.expiresAt) this.decideAt(s, expiresAt);
      });
  }

  private decideAt(s: Stream, expiresAt: number): void {
    s.expiresAt = expiresAt;
    s.timer?.cancel();
    const ctx = this.context;
    // Decided a little ahead, so that a key wanted at once arrives as the old one expires.
    s.timer = ctx.clock.setTimer(expiresAt - 3 * ctx.expectedFetchMs - ctx.clock.now(), () => {
      s.timer = undefined;
      const start = this.bestStart(s, expiresAt);
      if (start === undefined) return;
      const lead = ctx.expectedFetchMs;
      s.timer = ctx.clock.setTimer(Math.max(0, start - lead - ctx.clock.now()), () => {
        s.timer = undefined;
        // A request since the expiry fetched its own key (a miss): this plan is moot. Otherwise a key
        // with less than half its life left is replaced by a successor.
        if (s.expiresAt > expiresAt) return;
        this.deliver(s, this.context.reuseMsOf(s.queueId) / 2);
      });
    });
  }

  /** When the next key should start its life (absolute ms), or undefined: no key is worth its price. */
  bestStart(s: Stream, expiresAt: number): number | undefined {
    const reuseMs = this.context.reuseMsOf(s.queueId);
    const idle = expiresAt - s.last;
    const widths = { long: this.width(s.long), short: this.width(s.short) };
    const survival = (x: number): number => this.survival(s, x, widths);
    const atIdle = survival(idle);
    if (atIdle <= 1e-9) return undefined;
    const step = Math.max(1, reuseMs / 8);
    const horizon = this.horizon(s);
    let best: number | undefined;
    let bestValue = 0;
    for (let k = 0; k < MAX_CANDIDATES; k++) {
      const from = idle + k * step;
      if (from > horizon) break;
      const to = from + reuseMs;
      const sFrom = survival(from) / atIdle;
      const sTo = survival(to) / atIdle;
      const used = sFrom - sTo;
      // The life lost before first use, in shares of a key: E[(gap - from) ; from < gap < to] / reuse,
      // exactly (∫ S - reuse·S(to)); a coarser estimate, priced at lambda, overcharged busy streams.
      const lost = Math.max(0, (this.integral(s, from, to, widths) / atIdle - reuseMs * sTo) / reuseMs);
      const value = used - this.lambda * (sTo + lost);
      if (value > bestValue) {
        bestValue = value;
        best = s.last + from;
      }
    }
    return best;
  }

  /**
   * Each gap's kernel, as a relative half-width: Silverman's rule on the gaps' logarithms (a regular
   * stream gets a narrow kernel, a scattered one a wide one), times the smoothing; at least 2 %, and
   * 20 % while there is only one gap.
   */
  private width(gaps: readonly number[]): number {
    if (gaps.length < 2) return 0.2 * this.smoothing;
    const logs = gaps.map((g) => Math.log(Math.max(1, g)));
    const mean = logs.reduce((a, b) => a + b, 0) / logs.length;
    const sd = Math.sqrt(logs.reduce((a, b) => a + (b - mean) ** 2, 0) / (logs.length - 1));
    return Math.max(0.02, Math.expm1(1.06 * sd * logs.length ** -0.2 * this.smoothing));
  }

  /** P(gap > x) from the stream's kept gaps, each smoothed, mixed by the share of long gaps. */
  private survival(s: Stream, x: number, widths: { long: number; short: number }): number {
    return mix(s, (gaps, w) => smoothedSurvival(gaps, x, w), widths);
  }

  /** ∫_a^b P(gap > x) dx, under the same kernels and mix as survival. */
  private integral(s: Stream, a: number, b: number, widths: { long: number; short: number }): number {
    return mix(s, (gaps, w) => smoothedIntegral(gaps, a, b, w), widths);
  }

  private horizon(s: Stream): number {
    let most = 0;
    for (const g of s.long) most = Math.max(most, g);
    for (const g of s.short) most = Math.max(most, g);
    return most * (1 + Math.max(this.width(s.long), this.width(s.short)));
  }
}

/** `of` applied to each ring of gaps (with its kernel width), mixed by the stream's share of long gaps. */
function mix(s: Stream, of: (gaps: readonly number[], width: number) => number, widths: { long: number; short: number }): number {
  if (s.long.length === 0) return s.short.length > 0 ? of(s.short, widths.short) : 0;
  if (s.short.length === 0) return of(s.long, widths.long);
  return s.longShare * of(s.long, widths.long) + (1 - s.longShare) * of(s.short, widths.short);
}

function push(ring: number[], value: number, cap: number): void {
  ring.push(value);
  if (ring.length > cap) ring.shift();
}

/** P(gap > x) when each kept gap g is spread evenly over [g/(1+w), g(1+w)]. */
function smoothedSurvival(gaps: readonly number[], x: number, w: number): number {
  let above = 0;
  for (const g of gaps) {
    const lo = g / (1 + w);
    const hi = g * (1 + w);
    if (x <= lo) above += 1;
    else if (x < hi) above += (hi - x) / (hi - lo);
  }
  return above / gaps.length;
}

/** ∫_a^b P(gap > x) dx under the kernels of smoothedSurvival. */
function smoothedIntegral(gaps: readonly number[], a: number, b: number, w: number): number {
  let total = 0;
  for (const g of gaps) {
    const lo = g / (1 + w);
    const hi = g * (1 + w);
    total += Math.max(0, Math.min(b, lo) - a);
    const x0 = Math.max(a, lo);
    const x1 = Math.min(b, hi);
    if (x1 > x0) total += (hi * (x1 - x0) - (x1 * x1 - x0 * x0) / 2) / (hi - lo);
  }
  return total / gaps.length;
}
