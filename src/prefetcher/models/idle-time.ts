import type { SlabLayout } from '../slab.ts';
import { SlabModel, type StreamState } from './model.ts';

/**
 * Idle-time distribution: what wakes a quiet stream, and when. The stream's recent gaps between
 * requests, smoothed by a kernel and weighted towards the newest, give the distribution of the
 * next gap; conditioned on the time already idle, that is the survival of the next request.
 * Periodic (timer-driven) streams show up as a tight cluster of gaps; a pattern that changes
 * washes out of the ring within a few gaps.
 *
 * Slab: f32 [count, next, gap₀ … gap₍size−1₎], the gaps a ring (ms; float32 keeps 7 digits).
 */
export class IdleTimeModel extends SlabModel {
  readonly name = 'idle-time';
  readonly layout: SlabLayout;
  /** Weight of a gap relative to the next newer one. */
  private readonly ageDecay: number;

  constructor(private readonly size = 24, halfLifeGaps = 8) {
    super();
    if (!Number.isInteger(size) || size < 2 || size > 1024) throw new RangeError('idle-time ring size must be an integer in [2, 1024]');
    this.layout = { f64: 0, f32: 2 + size, u16: 0 };
    this.ageDecay = Math.pow(0.5, 1 / halfLifeGaps);
  }

  observe(s: StreamState, at: number): void {
    if (s.requests === 0 || at < s.lastAt) return;
    const f = s.f32;
    const o = s.o32 + this.o32;
    const next = f[o + 1]!;
    f[o + 2 + next] = at - s.lastAt;
    f[o + 1] = next + 1 === this.size ? 0 : next + 1;
    if (f[o]! < this.size) f[o]!++;
  }

  /** Gaps held for the stream. */
  count(s: StreamState): number {
    return s.f32[s.o32 + this.o32]!;
  }

  survival(s: StreamState, now: number, t: number): number {
    if (this.count(s) < 2) return Number.NaN;
    // P(gap > idle) and P(gap > t − lastAt) in one pass over the ring (this runs on every scored arrival).
    const idle = Math.max(0, now - s.lastAt);
    const f = s.f32;
    const o = s.o32 + this.o32;
    const count = f[o]!;
    const size = this.size;
    const x = t - s.lastAt;
    let k = f[o + 1]!;
    let weight = 1;
    let total = 0;
    let base = 0;
    let above = 0;
    for (let n = 0; n < count; n++) {
      k = k === 0 ? size - 1 : k - 1; // newest first
      const g = f[o + 2 + k]!;
      const h = 3_000 + 0.06 * g;
      total += weight;
      base += weight * kernelAbove((g - idle) / h);
      above += weight * kernelAbove((g - x) / h);
      weight *= this.ageDecay;
    }
    if (base < 0.02 * total) return Number.NaN; // idle longer than (almost) every gap seen: no information
    return Math.min(1, above / base);
  }
}

/**
 * The share of an Epanechnikov kernel centred on a gap that lies above x, with u = (gap − x) / h
 * and a half-width h growing with the gap (timers drift, minute-level traces jitter). Compact
 * support: most gaps are far from x and cost one comparison.
 */
function kernelAbove(u: number): number {
  if (u >= 1) return 1;
  if (u <= -1) return 0;
  return 0.5 + 0.75 * u - 0.25 * u * u * u;
}
