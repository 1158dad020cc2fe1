import { poissonSurvival, type Model, type StreamState } from './model.ts';

const DAY_MS = 86_400_000;

/** Per-stream seasonal profile: decayed request counts by time of day, day of week, day of month. */
export class SeasonalProfile {
  /** One buffer, three views: fewer allocations, less memory per stream. */
  readonly counts: Float32Array;
  readonly timeOfDay: Float32Array;
  readonly dayOfWeek: Float32Array;
  readonly dayOfMonth: Float32Array;
  /** Day (since the epoch) the counts were last decayed to, and its day of the month (0-based). */
  day = -1;
  dayOfMonthIndex = 0;
  firstAt = Infinity;

  constructor(slots: number) {
    this.counts = new Float32Array(slots + 7 + 31);
    this.timeOfDay = this.counts.subarray(0, slots);
    this.dayOfWeek = this.counts.subarray(slots, slots + 7);
    this.dayOfMonth = this.counts.subarray(slots + 7);
  }
}

/**
 * Seasonal profiles: the stream's rate in each slot of the day, scaled by how busy this day of the
 * week and this day of the month have been, read as a non-homogeneous Poisson process. Counts
 * decay day by day so an old season fades. Abstains until a whole day has been seen; the week
 * factor needs two weeks and the month factor two months.
 */
export class SeasonalModel implements Model<SeasonalProfile> {
  readonly name = 'seasonal';
  private readonly slotMs: number;

  constructor(private readonly slots = 48, private readonly dailyDecay = 0.9, private readonly maxHorizonMs = 2 * DAY_MS) {
    this.slotMs = DAY_MS / slots;
  }

  create(_s: StreamState, at: number): SeasonalProfile {
    const p = new SeasonalProfile(this.slots);
    p.firstAt = at;
    p.day = Math.floor(at / DAY_MS);
    p.dayOfMonthIndex = new Date(at).getUTCDate() - 1;
    return p;
  }

  observe(p: SeasonalProfile, _s: StreamState, at: number): void {
    this.decayTo(p, Math.floor(at / DAY_MS));
    const slot = Math.floor((at % DAY_MS) / this.slotMs);
    p.timeOfDay[slot]!++;
    p.dayOfWeek[dayOfWeek(at)]!++;
    p.dayOfMonth[p.dayOfMonthIndex]!++;
  }

  survival(p: SeasonalProfile, _s: StreamState, now: number, t: number): number {
    const seenMs = now - p.firstAt;
    if (seenMs < DAY_MS) return Number.NaN;
    // Effective days of exposure, with the same decay as the counts.
    const days = Math.min(seenMs / DAY_MS, 1 / (1 - this.dailyDecay));
    const end = Math.min(t, now + this.maxHorizonMs);
    const weekFactors = seenMs >= 14 * DAY_MS ? normalised(p.dayOfWeek) : null;
    const monthFactors = seenMs >= 60 * DAY_MS ? normalised(p.dayOfMonth) : null;
    const decay = Math.pow(this.dailyDecay, Math.max(0, Math.floor(now / DAY_MS) - p.day));
    let expected = 0;
    for (let from = now; from < end; ) {
      const slotStart = from - (from % this.slotMs);
      const to = Math.min(end, slotStart + this.slotMs);
      let rate = (decay * p.timeOfDay[Math.floor((from % DAY_MS) / this.slotMs)]!) / (days * this.slotMs);
      if (weekFactors) rate *= weekFactors[dayOfWeek(from)]!;
      if (monthFactors) rate *= monthFactors[new Date(from).getUTCDate() - 1]!;
      expected += rate * (to - from);
      from = to;
    }
    // Beyond the horizon the stream is assumed to go on at its average rate.
    if (t > end) expected += ((t - end) * sum(p.timeOfDay) * decay) / (days * DAY_MS);
    return poissonSurvival(1, expected);
  }

  bytes(p: SeasonalProfile): number {
    return p.counts.byteLength + 3 * 64 + 48;
  }

  private decayTo(p: SeasonalProfile, day: number): void {
    if (day <= p.day) return;
    const f = Math.pow(this.dailyDecay, day - p.day);
    const counts = p.counts;
    for (let i = 0; i < counts.length; i++) counts[i]! *= f;
    p.day = day;
    // Once a day, not once a request: a Date per event showed in the ingest profile.
    p.dayOfMonthIndex = new Date(day * DAY_MS).getUTCDate() - 1;
  }
}

/** 0 = Sunday (1970-01-01 was a Thursday). */
function dayOfWeek(t: number): number {
  return (Math.floor(t / DAY_MS) + 4) % 7;
}

function sum(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v;
  return s;
}

/** Each entry over the mean of the non-empty ones: 1 for an average day, 0 for a day with nothing. */
function normalised(a: Float32Array): Float32Array {
  const mean = sum(a) / a.length;
  const out = new Float32Array(a.length);
  if (mean > 0) for (let i = 0; i < a.length; i++) out[i] = a[i]! / mean;
  else out.fill(1);
  return out;
}
