import type { Model, StreamState } from './model.ts';

/** The last gaps between a stream's requests, newest last (a ring). */
export class GapRing {
  readonly gaps: Float32Array;
  count = 0;
  next = 0;

  constructor(size: number) {
    this.gaps = new Float32Array(size);
  }

  push(gap: number): void {
    this.gaps[this.next] = gap;
    this.next = (this.next + 1) % this.gaps.length;
    if (this.count < this.gaps.length) this.count++;
  }
}

/**
 * Idle-time distribution: what wakes a quiet stream, and when. The stream's recent gaps between
 * requests, smoothed by a kernel and weighted towards the newest, give the distribution of the
 * next gap; conditioned on the time already idle, that is the survival of the next request.
 * Periodic (timer-driven) streams show up as a tight cluster of gaps; a pattern that changes
 * washes out of the ring within a few gaps.
 */
export class IdleTimeModel implements Model<GapRing> {
  readonly name = 'idle-time';
  /** Weight of a gap relative to the next newer one. */
  private readonly ageDecay: number;

  constructor(private readonly size = 24, halfLifeGaps = 8) {
    this.ageDecay = Math.pow(0.5, 1 / halfLifeGaps);
  }

  create(): GapRing {
    return new GapRing(this.size);
  }

  observe(ring: GapRing, s: StreamState, at: number): void {
    if (s.requests > 0 && at >= s.lastAt) ring.push(at - s.lastAt);
  }

  survival(ring: GapRing, s: StreamState, now: number, t: number): number {
    if (ring.count < 2) return Number.NaN;
    const idle = Math.max(0, now - s.lastAt);
    const base = this.gapSurvival(ring, idle);
    if (base < 0.02) return Number.NaN; // idle longer than (almost) every gap seen: no information
    return Math.min(1, this.gapSurvival(ring, t - s.lastAt) / base);
  }

  /** P(gap > x): kernel-smoothed, recency-weighted. */
  gapSurvival(ring: GapRing, x: number): number {
    const { gaps, count } = ring;
    const size = gaps.length;
    let weight = 1;
    let total = 0;
    let above = 0;
    for (let k = 1; k <= count; k++) {
      const g = gaps[(ring.next - k + size) % size]!;
      // Logistic kernel: width grows with the gap (timers drift, minute-level traces jitter).
      const width = 1_000 + 0.02 * g;
      const z = (g - x) / width;
      above += weight / (1 + Math.exp(-z));
      total += weight;
      weight *= this.ageDecay;
    }
    return above / total;
  }

  bytes(ring: GapRing): number {
    return ring.gaps.byteLength + 48;
  }
}
