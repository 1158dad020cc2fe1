import { InlineFitter, type Fitter, type Forecast } from './arima-fit.ts';
import { poissonSurvival, type Model, type StreamState } from './model.ts';

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

/** Per-stream state of the ARIMA model: ~600 bytes with the defaults. */
export class ArimaState {
  /** Requests per interval (saturating), a ring indexed by interval index mod its length. */
  readonly counts: Uint16Array;
  /** Expected requests in each of the `horizon` intervals from `forecastFrom`. */
  readonly forecast: Float32Array;
  /** Interval index of the newest slot of the ring (the interval of the latest request). */
  newest: number;
  /** Interval index of the stream's first request: the history is what came after. */
  readonly first: number;
  /** Interval index `forecast[0]` is for; NaN while there is no forecast. */
  forecastFrom = Number.NaN;
  /** Mean of the forecast, the rate assumed beyond its end (requests per interval). */
  forecastMean = 0;
  /** When the latest fit was asked for (the time of its data). */
  fittedAt = -Infinity;
  /** A fit is in flight (asynchronous fitter). */
  pending = false;

  constructor(slots: number, horizon: number, interval: number) {
    // One buffer, two views: fewer allocations, less memory per stream.
    const countBytes = Math.ceil((slots * 2) / 4) * 4;
    const buffer = new ArrayBuffer(countBytes + horizon * 4);
    this.counts = new Uint16Array(buffer, 0, slots);
    this.forecast = new Float32Array(buffer, countBytes, horizon);
    this.newest = interval;
    this.first = interval;
  }
}

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
export class ArimaModel implements Model<ArimaState> {
  readonly name = 'arima';
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
    this.intervalMs = options.intervalMs ?? 15 * 60_000;
    this.historyIntervals = Math.max(1, Math.floor(options.historyIntervals ?? 192));
    this.minIntervals = Math.max(1, Math.floor(options.minIntervals ?? 96));
    this.refitEveryMs = options.refitEveryMs ?? 6 * 3_600_000;
    this.horizon = Math.max(1, Math.floor(options.horizon ?? 8));
    this.season = Math.max(1, Math.round(DAY_MS / this.intervalMs));
    this.fitter = options.fitter ?? new InlineFitter();
  }

  create(_s: StreamState, at: number): ArimaState {
    // The ring holds the completed history plus the current (partial) interval.
    return new ArimaState(this.historyIntervals + 1, this.horizon, Math.floor(at / this.intervalMs));
  }

  observe(st: ArimaState, _s: StreamState, at: number): void {
    const idx = Math.floor(at / this.intervalMs);
    const counts = st.counts;
    const n = counts.length;
    if (idx > st.newest) {
      if (idx - st.newest >= n) counts.fill(0);
      else for (let i = st.newest + 1; i <= idx; i++) counts[mod(i, n)] = 0;
      st.newest = idx;
    } else if (st.newest - idx >= n) {
      return; // older than the ring (out of order): nothing to add it to
    }
    const slot = mod(idx, n);
    if (counts[slot]! < 0xffff) counts[slot]!++;
    this.maybeFit(st, at);
  }

  survival(st: ArimaState, _s: StreamState, now: number, t: number): number {
    const from = st.forecastFrom;
    if (Number.isNaN(from)) return Number.NaN;
    const I = this.intervalMs;
    const end = from + this.horizon;
    const nowIdx = Math.floor(now / I);
    if (nowIdx < from || nowIdx >= end) return Number.NaN;
    if (!(t > now)) return 1;
    const endMs = end * I;
    const stop = Math.min(t, endMs);
    let expected = 0;
    for (let a = now; a < stop; ) {
      const k = Math.min(end - 1, Math.floor(a / I));
      const b = Math.min(stop, (k + 1) * I);
      if (!(b > a)) break;
      expected += (st.forecast[k - from]! * (b - a)) / I;
      a = b;
    }
    if (t > endMs && st.forecastMean > 0) expected += (st.forecastMean * (t - endMs)) / I;
    return poissonSurvival(1, expected);
  }

  bytes(st: ArimaState): number {
    // The shared buffer (388 + 32 bytes by default), two views, the object: ~600 bytes.
    return st.counts.buffer.byteLength + 2 * 64 + 48;
  }

  /** Asks for a fit when the stream has enough history, the last fit is old and none is in flight. */
  private maybeFit(st: ArimaState, at: number): void {
    if (st.pending || at - st.fittedAt < this.refitEveryMs) return;
    const have = Math.min(this.historyIntervals, st.newest - st.first);
    if (have < this.minIntervals) return;
    // The completed intervals before the current one, oldest first; the forecast starts at the
    // current interval.
    const counts = st.counts;
    const n = counts.length;
    const series = new Float64Array(have);
    for (let k = 0; k < have; k++) series[k] = counts[mod(st.newest - have + k, n)]!;
    const from = st.newest;
    st.fittedAt = at;
    this.fitsRequested++;
    let result: Promise<Forecast> | Forecast;
    try {
      result = this.fitter.fit(series, this.season, this.horizon);
    } catch {
      this.fitFailures++;
      return;
    }
    if (isPromiseLike(result)) {
      st.pending = true;
      // The state may belong to a stream dropped meanwhile: writing into it is then harmless.
      result.then(
        (f) => {
          st.pending = false;
          this.accept(st, from, f);
        },
        () => {
          st.pending = false;
          this.fitFailures++;
        },
      );
    } else {
      this.accept(st, from, result);
    }
  }

  /** Stores a forecast starting at interval `from`, unless it is unusable (then counts a failure). */
  private accept(st: ArimaState, from: number, f: Forecast): void {
    const values = f?.values;
    if (!Array.isArray(values) || values.length < this.horizon || !values.slice(0, this.horizon).every(Number.isFinite)) {
      this.fitFailures++;
      return;
    }
    let sum = 0;
    for (let k = 0; k < this.horizon; k++) {
      const v = Math.max(0, values[k]!);
      st.forecast[k] = v;
      sum += st.forecast[k]!;
    }
    st.forecastFrom = from;
    st.forecastMean = sum / this.horizon;
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
