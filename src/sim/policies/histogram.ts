import type { Timer } from '../../core/clock.ts';
import type { Policy, PolicyContext, RequestObservation } from '../policy.ts';

export interface HistogramOptions {
  /** Histogram range (ms). Default 4 h. */
  rangeMs?: number;
  /** Bin width (ms). Default 1 min. */
  binMs?: number;
  /** Pre-warm percentile. Default 5. */
  headPercentile?: number;
  /** Keep-alive percentile. Default 99. */
  tailPercentile?: number;
  /** Below this coefficient of variation of the bin counts the histogram is not representative. Default 2. */
  minCv?: number;
  /** Fewest idle times before the histogram is trusted. Default 10. */
  minSamples?: number;
  /** Keep-alive used when the histogram is not representative (ms). Default 10 min. */
  fixedKeepAliveMs?: number;
  /** Share of idle times beyond the range above which the fixed keep-alive is used. Default 0.5. */
  maxOutOfRange?: number;
  /** Widening of the window on both sides, as in the paper (10 %). */
  margin?: number;
}

interface QueueState {
  last: number;
  bins: Uint32Array;
  samples: number;
  outOfRange: number;
  principals: Set<string>;
  timer: Timer | null;
  /** The current window in which the next request is expected (absolute ms). */
  windowStart: number;
  keepUntil: number;
  /** Until when the keys this policy delivered to the queue's nodes stay valid. */
  coveredUntil: number;
}

/**
 * The hybrid histogram policy of Shahrad et al. ("Serverless in the Wild", USENIX ATC 2020),
 * applied to keys: per queue, a histogram of idle times between requests. After a request the
 * queue's key is wanted from the head (5th percentile) to the tail (99th) of that histogram; the
 * policy makes sure a valid key is in the nodes' caches then, re-fetching when one expires. When
 * the histogram is not representative it falls back to a fixed keep-alive.
 */
export class HistogramPolicy implements Policy {
  readonly name = 'histogram';
  private context!: PolicyContext;
  private readonly rangeMs: number;
  private readonly binMs: number;
  private readonly head: number;
  private readonly tail: number;
  private readonly minCv: number;
  private readonly minSamples: number;
  private readonly fixedKeepAliveMs: number;
  private readonly maxOutOfRange: number;
  private readonly margin: number;
  private readonly queues = new Map<string, QueueState>();

  constructor(options: HistogramOptions = {}) {
    this.rangeMs = options.rangeMs ?? 4 * 3_600_000;
    this.binMs = options.binMs ?? 60_000;
    this.head = options.headPercentile ?? 5;
    this.tail = options.tailPercentile ?? 99;
    this.minCv = options.minCv ?? 2;
    this.minSamples = options.minSamples ?? 10;
    this.fixedKeepAliveMs = options.fixedKeepAliveMs ?? 10 * 60_000;
    this.maxOutOfRange = options.maxOutOfRange ?? 0.5;
    this.margin = options.margin ?? 0.1;
  }

  start(context: PolicyContext): void {
    this.context = context;
  }

  onRequest(o: RequestObservation): void {
    let q = this.queues.get(o.queueId);
    if (!q) {
      q = { last: o.at, bins: new Uint32Array(Math.ceil(this.rangeMs / this.binMs)), samples: 0, outOfRange: 0, principals: new Set(), timer: null, windowStart: 0, keepUntil: 0, coveredUntil: 0 };
      this.queues.set(o.queueId, q);
    } else {
      const idle = o.at - q.last;
      if (idle < this.rangeMs) q.bins[Math.floor(idle / this.binMs)]!++;
      else q.outOfRange++;
      q.samples++;
      q.last = o.at;
    }
    q.principals.add(o.principal);
    const window = this.window(q);
    q.windowStart = o.at + window.startMs;
    q.keepUntil = o.at + window.endMs;
    this.schedule(o.queueId, q);
  }

  finish(): void {
    for (const q of this.queues.values()) q.timer?.cancel();
  }

  /** The window after a request in which the next one is expected, as offsets (ms). */
  window(q: QueueState): { startMs: number; endMs: number } {
    const inRange = q.samples - q.outOfRange;
    if (q.samples < this.minSamples || inRange < q.samples * (1 - this.maxOutOfRange) || cv(q.bins) < this.minCv) {
      return { startMs: 0, endMs: this.fixedKeepAliveMs };
    }
    const headBin = percentileBin(q.bins, inRange, this.head);
    const tailBin = percentileBin(q.bins, inRange, this.tail);
    return {
      startMs: Math.max(0, headBin * this.binMs * (1 - this.margin)),
      endMs: (tailBin + 1) * this.binMs * (1 + this.margin),
    };
  }

  /**
   * Makes sure a valid key is in the queue's nodes from the window's start to its end: one fetch
   * just before the window opens (or before the delivered key runs out), repeated while the window
   * lasts. One timer per queue; a new request replaces it.
   */
  private schedule(queueId: string, q: QueueState): void {
    q.timer?.cancel();
    q.timer = null;
    const ctx = this.context;
    const lead = ctx.expectedFetchMs;
    const wantedAt = Math.max(q.windowStart, q.coveredUntil);
    if (wantedAt >= q.keepUntil) return;
    const at = Math.max(ctx.clock.now(), wantedAt - lead);
    q.timer = ctx.clock.setTimer(at - ctx.clock.now(), () => {
      q.timer = null;
      // The key delivered must still be valid when it is wanted, after its trip to the node.
      const minRemainingMs = Math.max(0, wantedAt - ctx.clock.now()) + lead;
      const nodeIds = [...ctx.nodesFor(queueId)];
      const fetches = [...q.principals].map((principal) => ctx.prefetch({ queueId, principal, nodeIds, reason: 'prefetch', minRemainingMs }));
      void Promise.all(fetches).then((expiries) => {
        const delivered = expiries.filter((e): e is number => e !== undefined);
        if (delivered.length === 0) return;
        q.coveredUntil = Math.min(...delivered);
        this.schedule(queueId, q);
      });
    });
  }
}

function cv(bins: Uint32Array): number {
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (const count of bins) {
    n++;
    sum += count;
    sumSq += count * count;
  }
  const mean = sum / n;
  if (mean === 0) return 0;
  return Math.sqrt(Math.max(0, sumSq / n - mean * mean)) / mean;
}

function percentileBin(bins: Uint32Array, total: number, percentile: number): number {
  const target = (percentile / 100) * total;
  let cumulative = 0;
  for (let i = 0; i < bins.length; i++) {
    cumulative += bins[i]!;
    if (cumulative >= target && cumulative > 0) return i;
  }
  return bins.length - 1;
}
