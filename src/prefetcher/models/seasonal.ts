import type { SlabLayout } from '../slab.ts';
import { poissonSurvival, SlabModel, type StreamState } from './model.ts';

const DAY_MS = 86_400_000;
/** Slab f32 offsets of the profile's header fields (the counts follow). */
const DAY = 0;
const DAY_OF_MONTH = 1;
const HEADER = 2;

/**
 * Seasonal profiles: the stream's rate in each slot of the day, scaled by how busy this day of the
 * week and this day of the month have been, read as a non-homogeneous Poisson process. Counts
 * decay day by day so an old season fades. Abstains until a whole day has been seen; the week
 * factor needs two weeks and the month factor two months.
 *
 * Slab: f32 [day the counts were decayed to, its day of the month (0-based), time-of-day counts
 * (slots), day-of-week counts (7), day-of-month counts (31)].
 */
export class SeasonalModel extends SlabModel {
  readonly name = 'seasonal';
  readonly layout: SlabLayout;
  private readonly slotMs: number;
  private readonly week: number;
  private readonly month: number;
  private readonly end: number;
  private readonly weekFactors = new Float64Array(7);
  private readonly monthFactors = new Float64Array(31);

  constructor(private readonly slots = 48, private readonly dailyDecay = 0.9, private readonly maxHorizonMs = 2 * DAY_MS) {
    super();
    if (!Number.isInteger(slots) || slots < 1 || DAY_MS % slots !== 0) throw new RangeError('seasonal slots must be a whole divisor of a day in ms');
    this.slotMs = DAY_MS / slots;
    this.week = HEADER + slots;
    this.month = this.week + 7;
    this.end = this.month + 31;
    this.layout = { f64: 0, f32: this.end, u16: 0 };
  }

  override init(s: StreamState, at: number): void {
    const o = s.o32 + this.o32;
    const day = Math.floor(at / DAY_MS);
    s.f32[o + DAY] = day;
    s.f32[o + DAY_OF_MONTH] = dayOfMonth(day);
  }

  observe(s: StreamState, at: number): void {
    const o = s.o32 + this.o32;
    this.decayTo(s, o, Math.floor(at / DAY_MS));
    const f = s.f32;
    f[o + HEADER + Math.floor((at % DAY_MS) / this.slotMs)]!++;
    f[o + this.week + dayOfWeek(at)]!++;
    f[o + this.month + f[o + DAY_OF_MONTH]!]!++;
  }

  survival(s: StreamState, now: number, t: number): number {
    const seenMs = now - s.firstAt;
    if (!(seenMs >= DAY_MS)) return Number.NaN;
    const f = s.f32;
    const o = s.o32 + this.o32;
    // Effective days of exposure, with the same decay as the counts.
    const days = Math.min(seenMs / DAY_MS, 1 / (1 - this.dailyDecay));
    const end = Math.min(t, now + this.maxHorizonMs);
    const useWeek = seenMs >= 14 * DAY_MS;
    const useMonth = seenMs >= 60 * DAY_MS;
    if (useWeek) normalise(f, o + this.week, 7, this.weekFactors);
    if (useMonth) normalise(f, o + this.month, 31, this.monthFactors);
    const decay = Math.pow(this.dailyDecay, Math.max(0, Math.floor(now / DAY_MS) - f[o + DAY]!));
    const scale = decay / (days * this.slotMs);
    let expected = 0;
    for (let from = now; from < end; ) {
      const slotStart = from - (from % this.slotMs);
      const to = Math.min(end, slotStart + this.slotMs);
      let rate = scale * f[o + HEADER + Math.floor((from % DAY_MS) / this.slotMs)]!;
      if (useWeek) rate *= this.weekFactors[dayOfWeek(from)]!;
      if (useMonth) rate *= this.monthFactors[dayOfMonth(Math.floor(from / DAY_MS))]!;
      expected += rate * (to - from);
      from = to;
    }
    // Beyond the horizon the stream is assumed to go on at its average rate.
    if (t > end) expected += ((t - end) * sum(f, o + HEADER, this.slots) * decay) / (days * DAY_MS);
    return poissonSurvival(1, expected);
  }

  private decayTo(s: StreamState, o: number, day: number): void {
    const f = s.f32;
    const last = f[o + DAY]!;
    if (day <= last) return;
    const factor = Math.pow(this.dailyDecay, day - last);
    for (let i = o + HEADER; i < o + this.end; i++) f[i]! *= factor;
    f[o + DAY] = day;
    // Once a day, not once a request: a Date per event showed in the ingest profile.
    f[o + DAY_OF_MONTH] = dayOfMonth(day);
  }
}

/** 0 = Sunday (1970-01-01 was a Thursday). */
function dayOfWeek(t: number): number {
  return (Math.floor(t / DAY_MS) + 4) % 7;
}

/** Day of the month, 0-based, of a day counted since the epoch. */
function dayOfMonth(day: number): number {
  return new Date(day * DAY_MS).getUTCDate() - 1;
}

function sum(a: Float32Array, from: number, n: number): number {
  let s = 0;
  for (let i = from; i < from + n; i++) s += a[i]!;
  return s;
}

/** Each entry over the mean: 1 for an average day, 0 for a day with nothing; all 1 when empty. */
function normalise(a: Float32Array, from: number, n: number, out: Float64Array): void {
  const mean = sum(a, from, n) / n;
  for (let i = 0; i < n; i++) out[i] = mean > 0 ? a[from + i]! / mean : 1;
}
