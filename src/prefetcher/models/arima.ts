import { InlineFitter, type Fitter, type Forecast } from './arima-fit.ts';
import type { SlabLayout } from '../slab.ts';
import { poissonSurvival, SlabModel, type StreamState } from './model.ts';

const DAY_MS = 86_400_000;

export interface ArimaOptions {
  /** Length of one counting interval (ms). Default 15 min. */
  intervalMs?: number;
  /** Completed intervals of history kept per stream. Default 192 (two days of 15-min intervals). */
  historyIntervals?: number;
  /** Completed intervals of history needed before the first fit. Default 96 (one day). */
  minIntervals?: number;
  /** A stream is refitted at most this often (ms), on one of its requests. Default 6 h. */
  refitEveryMs?: number;
  /** Intervals forecast by each fit. Default 8 (two hours). */
  horizon?: number;
  /**
   * Where fits run. Default: an `InlineFitter` (synchronous, deterministic; ~0.1 s per fit on the
   * caller's thread). Live use should pass a `WorkerFitter` and close it on shutdown.
   */
  fitter?: Fitter;
}

/** Slab f64 offsets of the model's per-stream fields. */
const NEWEST = 0; // interval index of the newest ring slot (the interval of the latest request)
const FORECAST_FROM = 1; // interval index forecast[0] is for; NaN while there is no forecast
const FORECAST_MEAN = 2; // mean of the forecast, the rate assumed beyond its end (requests per interval)
const FITTED_AT = 3; // when the latest fit was asked for (the time of its data); −Infinity before
const PENDING = 4; // 1 while a fit is in flight (asynchronous fitter)
const FIRST = 5; // interval index of the stream's first request: the history is what came after
const FIELDS = 6;

/**
 * SARIMA forecast of the stream's requests per interval. Counts requests in 15-min intervals over
 * the last two days; every 6 h (once a day of history exists) fits a seasonal ARIMA with a daily
 * season and forecasts the next 2 h of counts, read as a piecewise-constant Poisson rate. The fit
 * is guarded: a divergent one is replaced by the seasonal-naive forecast (same interval yesterday).
 *
 * Abstains when no forecast covers the current interval: before the first fit, and between the
 * end of one forecast and the next refit (which happens on a request of the stream).
 *
 * Fits run in a `Fitter`: inline (synchronous) or in a worker (the forecast lands in the state
 * when the fit resolves). Failed fits are counted, never thrown.
 */
export class ArimaModel extends SlabModel {
  readonly name = 'arima';
  readonly layout: SlabLayout;
  readonly intervalMs: number;
  readonly historyIntervals: number;
  readonly minIntervals: number;
  readonly refitEveryMs: number;
  readonly horizon: number;
  /** Seasonal period in intervals: one day. */
  readonly season: number;
  readonly fitter: Fitter;
  /** Fits asked of the fitter. */
  fitsRequested = 0;
  /** Forecasts received and stored (including seasonal-naive fallbacks). */
  fitsDone = 0;
  /** Fits that threw, rejected, or returned an unusable forecast. */
  fitFailures = 0;
  /** Forecasts received that were seasonal-naive (a divergent or impossible SARIMA fit). */
  naiveFallbacks = 0;

  constructor(options: ArimaOptions = {}) {
    super();
    this.intervalMs = options.intervalMs ?? 15 * 60_000;
    this.historyIntervals = Math.max(1, Math.floor(options.historyIntervals ?? 192));
    this.minIntervals = Math.max(1, Math.floor(options.minIntervals ?? 96));
    this.refitEveryMs = options.refitEveryMs ?? 6 * 3_600_000;
    this.horizon = Math.max(1, Math.floor(options.horizon ?? 8));
    this.season = Math.max(1, Math.round(DAY_MS / this.intervalMs));
    this.fitter = options.fitter ?? new InlineFitter();
    // The ring holds the completed history plus the current (partial) interval.
    this.layout = { f64: FIELDS, f32: this.horizon, u16: this.historyIntervals + 1 };
  }

  override init(s: StreamState, at: number): void {
    const o = s.o64 + this.o64;
    s.f64[o + NEWEST] = s.f64[o + FIRST] = Math.floor(at / this.intervalMs);
    s.f64[o + FORECAST_FROM] = Number.NaN;
    s.f64[o + FITTED_AT] = -Infinity;
  }

  observe(s: StreamState, at: number): void {
    const o = s.o64 + this.o64;
    const idx = Math.floor(at / this.intervalMs);
    const counts = s.u16;
    const c = s.o16 + this.o16;
    const n = this.historyIntervals + 1;
    const newest = s.f64[o + NEWEST]!;
    if (idx > newest) {
      if (idx - newest >= n) counts.fill(0, c, c + n);
      else for (let i = newest + 1; i <= idx; i++) counts[c + mod(i, n)] = 0;
      s.f64[o + NEWEST] = idx;
    } else if (newest - idx >= n) {
      return; // older than the ring (out of order): nothing to add it to
    }
    const slot = c + mod(idx, n);
    if (counts[slot]! < 0xffff) counts[slot]!++;
    this.maybeFit(s, at);
  }

  survival(s: StreamState, now: number, t: number): number {
    const o = s.o64 + this.o64;
    const from = s.f64[o + FORECAST_FROM]!;
    if (Number.isNaN(from)) return Number.NaN;
    const I = this.intervalMs;
    const end = from + this.horizon;
    const nowIdx = Math.floor(now / I);
    if (nowIdx < from || nowIdx >= end) return Number.NaN;
    if (!(t > now)) return 1;
    const forecast = s.f32;
    const f = s.o32 + this.o32;
    const endMs = end * I;
    const stop = Math.min(t, endMs);
    let expected = 0;
    for (let a = now; a < stop; ) {
      const k = Math.min(end - 1, Math.floor(a / I));
      const b = Math.min(stop, (k + 1) * I);
      if (!(b > a)) break;
      expected += (forecast[f + k - from]! * (b - a)) / I;
      a = b;
    }
    const mean = s.f64[o + FORECAST_MEAN]!;
    if (t > endMs && mean > 0) expected += (mean * (t - endMs)) / I;
    return poissonSurvival(1, expected);
  }

  /** Interval index the stream's forecast starts at; NaN without one (for tests and the operator's view). */
  forecastFrom(s: StreamState): number {
    return s.f64[s.o64 + this.o64 + FORECAST_FROM]!;
  }

  /** A fit for the stream is in flight. */
  pending(s: StreamState): boolean {
    return s.f64[s.o64 + this.o64 + PENDING] === 1;
  }

  /** Requests counted in interval `idx`, if it is still in the ring. */
  countAt(s: StreamState, idx: number): number {
    const n = this.historyIntervals + 1;
    const newest = s.f64[s.o64 + this.o64 + NEWEST]!;
    if (idx > newest || newest - idx >= n) return 0;
    return s.u16[s.o16 + this.o16 + mod(idx, n)]!;
  }

  /** Asks for a fit when the stream has enough history, the last fit is old and none is in flight. */
  private maybeFit(s: StreamState, at: number): void {
    const o = s.o64 + this.o64;
    const f64 = s.f64;
    if (f64[o + PENDING] === 1 || at - f64[o + FITTED_AT]! < this.refitEveryMs) return;
    const newest = f64[o + NEWEST]!;
    const have = Math.min(this.historyIntervals, newest - f64[o + FIRST]!);
    if (have < this.minIntervals) return;
    // The completed intervals before the current one, oldest first; the forecast starts at the
    // current interval.
    const n = this.historyIntervals + 1;
    const c = s.o16 + this.o16;
    const series = new Float64Array(have);
    for (let k = 0; k < have; k++) series[k] = s.u16[c + mod(newest - have + k, n)]!;
    f64[o + FITTED_AT] = at;
    this.fitsRequested++;
    let result: Promise<Forecast> | Forecast;
    try {
      result = this.fitter.fit(series, this.season, this.horizon);
    } catch {
      this.fitFailures++;
      return;
    }
    if (isPromiseLike(result)) {
      f64[o + PENDING] = 1;
      const slot = s.slot;
      result.then(
        (forecast) => {
          // The stream may have been dropped meanwhile (its slot freed, perhaps reused): then
          // the answer is dropped too.
          if (s.slot !== slot) return;
          s.f64[s.o64 + this.o64 + PENDING] = 0;
          this.accept(s, newest, forecast);
        },
        () => {
          if (s.slot === slot) s.f64[s.o64 + this.o64 + PENDING] = 0;
          this.fitFailures++;
        },
      );
    } else {
      this.accept(s, newest, result);
    }
  }

  /** Stores a forecast starting at interval `from`, unless it is unusable (then counts a failure). */
  private accept(s: StreamState, from: number, f: Forecast): void {
    const values = f?.values;
    if (!Array.isArray(values) || values.length < this.horizon || !values.slice(0, this.horizon).every(Number.isFinite)) {
      this.fitFailures++;
      return;
    }
    const forecast = s.f32;
    const base = s.o32 + this.o32;
    let sum = 0;
    for (let k = 0; k < this.horizon; k++) {
      forecast[base + k] = Math.max(0, values[k]!);
      sum += forecast[base + k]!;
    }
    const o = s.o64 + this.o64;
    s.f64[o + FORECAST_FROM] = from;
    s.f64[o + FORECAST_MEAN] = sum / this.horizon;
    this.fitsDone++;
    if (f.method === 'seasonal-naive') this.naiveFallbacks++;
  }
}

function mod(i: number, n: number): number {
  const r = i % n;
  return r < 0 ? r + n : r;
}

function isPromiseLike<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}
