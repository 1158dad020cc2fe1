import type { SlabLayout } from '../slab.ts';
import { SlabModel, type StreamState } from './model.ts';

/** Slab f32 offsets: [long count, long next, short count, short next, long share, long ring…, short ring…]. */
const LONG_COUNT = 0;
const LONG_NEXT = 1;
const SHORT_COUNT = 2;
const SHORT_NEXT = 3;
const LONG_SHARE = 4;
const HEADER = 5;

/**
 * The stream's own idle-time distribution, as a key's renewal sees it. Gaps are split at the
 * queue's reuse period: gaps longer than it are what a key must survive (an idle period), and a
 * busy stream's many short gaps must not wash them out of memory, so each kind has its own ring
 * (the last `longSize` long gaps, the last `shortSize` short ones) and a decayed share of long
 * gaps says how to mix them. Each gap is smoothed by a kernel growing with its length and newer
 * gaps weigh more; conditioned on the idle time so far, that is the survival of the next request.
 */
export class LongIdleModel extends SlabModel {
  readonly name = 'long-idle';
  readonly layout: SlabLayout;
  private readonly ageDecay: number;

  constructor(
    private readonly longSize = 20,
    private readonly shortSize = 12,
    halfLifeGaps = 8,
    /** Memory of the long-gap share, in gaps. */
    private readonly shareMemory = 20,
  ) {
    super();
    if (!Number.isInteger(longSize) || longSize < 2 || longSize > 1024) throw new RangeError('long-idle ring size must be an integer in [2, 1024]');
    if (!Number.isInteger(shortSize) || shortSize < 2 || shortSize > 1024) throw new RangeError('long-idle short ring size must be an integer in [2, 1024]');
    this.layout = { f64: 0, f32: HEADER + longSize + shortSize, u16: 0 };
    this.ageDecay = Math.pow(0.5, 1 / halfLifeGaps);
  }

  observe(s: StreamState, at: number): void {
    if (s.requests === 0 || at < s.lastAt) return;
    const gap = at - s.lastAt;
    const f = s.f32;
    const o = s.o32 + this.o32;
    const long = gap >= s.queue.reuseMs;
    const countAt = long ? LONG_COUNT : SHORT_COUNT;
    const size = long ? this.longSize : this.shortSize;
    const ring = o + HEADER + (long ? 0 : this.longSize);
    const next = f[o + countAt + 1]!;
    f[ring + next] = gap;
    f[o + countAt + 1] = next + 1 === size ? 0 : next + 1;
    if (f[o + countAt]! < size) f[o + countAt]!++;
    const n = f[o + LONG_COUNT]! + f[o + SHORT_COUNT]!;
    const memory = Math.min(n, this.shareMemory);
    f[o + LONG_SHARE] = f[o + LONG_SHARE]! + ((long ? 1 : 0) - f[o + LONG_SHARE]!) / memory;
  }

  /** Long gaps held for the stream. */
  longCount(s: StreamState): number {
    return s.f32[s.o32 + this.o32 + LONG_COUNT]!;
  }

  survival(s: StreamState, now: number, t: number): number {
    const f = s.f32;
    const o = s.o32 + this.o32;
    const longs = f[o + LONG_COUNT]!;
    const shorts = f[o + SHORT_COUNT]!;
    if (longs + shorts < 2) return Number.NaN;
    const idle = Math.max(0, now - s.lastAt);
    const x = t - s.lastAt;
    const share = f[o + LONG_SHARE]!;
    let base = 0;
    let above = 0;
    // The most of either ring that lies past the idle time: the test below is on the rings' own
    // shares, not on the mixture, or a stream of bursts (many short gaps to one long one, so a long
    // share near 0.01) would be taken for one idle past every gap it ever had.
    let left = 0;
    if (longs > 0) {
      const r = this.ring(f, o + HEADER, f[o + LONG_NEXT]!, longs, this.longSize, idle, x);
      base += share * r.base;
      above += share * r.above;
      left = r.base;
    }
    if (shorts > 0) {
      const r = this.ring(f, o + HEADER + this.longSize, f[o + SHORT_NEXT]!, shorts, this.shortSize, idle, x);
      base += (1 - share) * r.base;
      above += (1 - share) * r.above;
      left = Math.max(left, r.base);
    }
    // Idle longer than (almost) every gap seen: the stream may still wake, ever less likely the
    // longer it sleeps. A heavy tail, P(gap > x | gap > idle) = idle / x, keeps a price on that
    // (measured alone on the Azure queue sample at a KMS price of 0.25: 155 → 141 misses).
    if (!(left > 0.01) || !(base > 0)) return idle > 0 ? idle / Math.max(idle, x) : Number.NaN;
    return Math.min(1, above / base);
  }

  /** Weighted shares of a ring's kernels above `idle` and above `x` (newest gap weighs most). */
  private ring(f: Float32Array, start: number, next: number, count: number, size: number, idle: number, x: number): { base: number; above: number } {
    let k = next;
    let weight = 1;
    let total = 0;
    let base = 0;
    let above = 0;
    for (let n = 0; n < count; n++) {
      k = k === 0 ? size - 1 : k - 1;
      const g = f[start + k]!;
      const h = 3_000 + 0.08 * g;
      total += weight;
      base += weight * kernelAbove((g - idle) / h);
      above += weight * kernelAbove((g - x) / h);
      weight *= this.ageDecay;
    }
    this.result.base = base / total;
    this.result.above = above / total;
    return this.result;
  }

  private readonly result = { base: 0, above: 0 };
}

/** Share of an Epanechnikov kernel at u = (gap − x) / h that lies above x. */
function kernelAbove(u: number): number {
  if (u >= 1) return 1;
  if (u <= -1) return 0;
  return 0.5 + 0.75 * u - 0.25 * u * u * u;
}
