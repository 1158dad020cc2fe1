import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ArimaModel } from '../src/prefetcher/models/arima.ts';
import { chooseOrder, fitForecast, InlineFitter, seasonalNaive, trainWithArima, WorkerFitter, type Forecast } from '../src/prefetcher/models/arima-fit.ts';
import { Ensemble } from '../src/prefetcher/models/ensemble.ts';
import { QueueState, type StreamState } from '../src/prefetcher/state.ts';

const SEASON = 96; // 15-min intervals in a day
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/** 10 + 8·sin(2πi/96), rounded: a clean daily pattern of counts. */
const sine = (i: number): number => Math.round(10 + 8 * Math.sin((2 * Math.PI * i) / SEASON));
const series = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

/** A daily sine whose last value is a spike: the SARIMA fit explodes (≈ 4e11 at the first step). */
const divergent = (): number[] => series(2 * SEASON, (i) => (i === 2 * SEASON - 1 ? 1000 : sine(i)));

describe('fitForecast', () => {
  test('daily-seasonal series: SARIMA forecasts the true continuation (3 days and 2 days of history)', () => {
    for (const days of [3, 2]) {
      const n = days * SEASON;
      const f = fitForecast(series(n, sine), SEASON, 8);
      assert.equal(f.method, 'sarima', `${days} days`);
      assert.equal(f.values.length, 8);
      f.values.forEach((v, k) => assert.ok(Math.abs(v - sine(n + k)) < 0.5, `${days} days, step ${k}: ${v} vs ${sine(n + k)}`));
    }
  });

  test('orders: seasonal with ≥ 2 seasons (differenced with ≥ 3), ARIMA(1,0,1) below, nothing under 10 values', () => {
    assert.deepEqual(chooseOrder(288, SEASON), { p: 1, d: 0, q: 1, P: 1, D: 1, Q: 0, s: SEASON });
    assert.deepEqual(chooseOrder(192, SEASON), { p: 1, d: 0, q: 1, P: 1, D: 0, Q: 0, s: SEASON });
    assert.deepEqual(chooseOrder(191, SEASON), { p: 1, d: 0, q: 1, P: 0, D: 0, Q: 0, s: 0 });
    assert.equal(chooseOrder(9, SEASON), null);
  });

  test('a fit that really diverges falls back to seasonal-naive (the values one season earlier)', () => {
    const xs = divergent();
    const f = fitForecast(xs, SEASON, 8);
    assert.equal(f.method, 'seasonal-naive');
    assert.deepEqual(f.values, xs.slice(SEASON, SEASON + 8));
    // The guard is what tripped: the raw SARIMA forecast is far outside the bounds.
    const raw = trainWithArima(xs, chooseOrder(xs.length, SEASON)!, 8);
    assert.ok(raw.some((v) => !Number.isFinite(v) || v > 3 * 1000 + 10), `raw forecast ${raw.join(' ')}`);
  });

  test('a training that throws, or returns NaN / negative / huge values, falls back to seasonal-naive', () => {
    const xs = series(150, sine);
    const naive = xs.slice(150 - SEASON, 150 - SEASON + 8);
    const cases: Record<string, () => number[]> = {
      throws: () => {
        throw new Error('boom');
      },
      nan: () => [1, 2, Number.NaN, 4, 5, 6, 7, 8],
      infinite: () => [1, 2, 3, Infinity, 5, 6, 7, 8],
      negative: () => [1, 2, 3, 4, -5, 6, 7, 8],
      huge: () => [1, 2, 3, 4, 5, 6, 7, 3 * 18 + 11],
      short: () => [1, 2, 3],
    };
    for (const [name, train] of Object.entries(cases)) {
      const f = fitForecast(xs, SEASON, 8, { train });
      assert.equal(f.method, 'seasonal-naive', name);
      assert.deepEqual(f.values, naive, name);
    }
    // Small negatives are within tolerance and clamp to 0.
    const ok = fitForecast(xs, SEASON, 8, { train: () => [-0.4, 1, 2, 3, 4, 5, 6, 7] });
    assert.deepEqual(ok, { method: 'sarima', values: [0, 1, 2, 3, 4, 5, 6, 7] });
  });

  test('seasonal-naive: one season back (repeating past a season), the mean with less than a season', () => {
    assert.deepEqual(seasonalNaive([1, 2, 3, 4, 5], 3, 5), [3, 4, 5, 3, 4]);
    assert.deepEqual(seasonalNaive([1, 2, 3, 4, 5], 8, 3), [3, 3, 3]);
    assert.deepEqual(seasonalNaive([], 8, 2), [0, 0]);
    // Too short to fit, or constant: seasonal-naive without fitting.
    assert.deepEqual(fitForecast([2, 4, 6], SEASON, 2), { values: [4, 4], method: 'seasonal-naive' });
    assert.deepEqual(fitForecast(new Float64Array(200), SEASON, 2), { values: [0, 0], method: 'seasonal-naive' });
  });
});

describe('ArimaModel', () => {
  /** Requests every ~30 s from 00:00 to 12:00 UTC, none from 12:00 to 24:00. */
  /** A stream laid out for `model` alone. */
  function streamFor(model: ArimaModel, at: number): StreamState {
    return new Ensemble([model]).newStream(new QueueState('q'), 'p', at);
  }

  function busyMornings(model: ArimaModel, until: number): StreamState {
    let seed = 12345;
    const rnd = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
    let at = 0;
    const stream = streamFor(model, at);
    while (at < until) {
      if (at % DAY < 12 * HOUR) {
        model.observe(stream, at);
        stream.lastAt = at;
        if (stream.requests === 0) stream.firstAt = at;
        stream.requests++;
        at += 15_000 + Math.floor(rnd() * 30_000);
      } else {
        at = Math.ceil(at / DAY) * DAY;
      }
    }
    return stream;
  }

  test('abstains before a day of history; then a busy interval has a much lower survival than a quiet one', () => {
    // Refit hourly so that a fit lands near the end of the busy half-day (refits drift by < 1 min
    // an hour: the first request after the hour).
    const model = new ArimaModel({ fitter: new InlineFitter(), refitEveryMs: HOUR });
    const early = busyMornings(model, 11 * HOUR);
    assert.ok(Number.isNaN(model.survival(early, 11 * HOUR, 11 * HOUR + 10 * MIN)));
    assert.equal(model.fitsRequested, 0);

    const model2 = new ArimaModel({ fitter: new InlineFitter(), refitEveryMs: HOUR });
    const stream = busyMornings(model2, 2 * DAY + 11 * HOUR + 20 * MIN);
    assert.ok(model2.fitsDone > 0);
    assert.equal(model2.fitFailures, 0);
    assert.equal(model2.forecastFrom(stream), (2 * DAY + 11 * HOUR) / (15 * MIN), 'forecast from the 11:00 interval of day 3');
    const busy = model2.survival(stream, 2 * DAY + 11 * HOUR + 20 * MIN, 2 * DAY + 11 * HOUR + 30 * MIN);
    const quiet = model2.survival(stream, 2 * DAY + 12 * HOUR + MIN, 2 * DAY + 12 * HOUR + 11 * MIN);
    assert.ok(busy < 0.01, `busy survival ${busy}`);
    assert.ok(quiet > 0.5, `quiet survival ${quiet}`);
    // Survival is monotone in t, and past the forecast's end the mean rate applies.
    const far = model2.survival(stream, 2 * DAY + 12 * HOUR + MIN, 2 * DAY + 20 * HOUR);
    assert.ok(far <= quiet);
    // Outside the forecast's 2 hours: abstains.
    assert.ok(Number.isNaN(model2.survival(stream, 2 * DAY + 13 * HOUR, 2 * DAY + 14 * HOUR)));
    const { f64, f32, u16 } = model2.layout;
    assert.ok(f64 * 8 + f32 * 4 + u16 * 2 <= 480, 'slab bytes of the model per stream');
  });

  test('a fitter returning a Promise: the forecast lands on resolution; a rejection is counted, not thrown', async () => {
    let answer: (f: Forecast) => void = () => {};
    let fail: (e: Error) => void = () => {};
    let calls = 0;
    const fitter = {
      fit: (xs: Float64Array | number[], season: number, horizon: number): Promise<Forecast> => {
        calls++;
        assert.equal(xs.length, 96);
        assert.equal(season, 96);
        assert.equal(horizon, 8);
        return new Promise<Forecast>((resolve, reject) => {
          answer = resolve;
          fail = reject;
        });
      },
    };
    const model = new ArimaModel({ fitter });
    const stream = streamFor(model, 0);
    model.observe(stream, 0);
    model.observe(stream, DAY); // a day of (empty) history: asks for a fit
    model.observe(stream, DAY + 7 * HOUR); // one pending: no second fit
    assert.equal(calls, 1);
    assert.ok(Number.isNaN(model.survival(stream, DAY, DAY + MIN)));
    answer({ values: [4, 4, 4, 4, 4, 4, 4, 4], method: 'sarima' });
    await Promise.resolve();
    assert.equal(model.fitsDone, 1);
    // 4 requests per 15 min over 15 min.
    assert.ok(Math.abs(model.survival(stream, DAY, DAY + 15 * MIN) - Math.exp(-4)) < 1e-9);
    // Beyond the forecast's end, its mean rate.
    assert.ok(Math.abs(model.survival(stream, DAY, DAY + 3 * HOUR) - Math.exp(-4 * 12)) < 1e-9);

    model.observe(stream, DAY + 7 * HOUR + 1); // refit due (6 h after the first)
    assert.equal(calls, 2);
    fail(new Error('worker crashed'));
    await Promise.resolve();
    await Promise.resolve();
    assert.equal(model.fitFailures, 1);
    assert.equal(model.pending(stream), false);
  });

  test('the ring: counts per interval, gaps cleared, a gap longer than the ring clears it, saturating', () => {
    const model = new ArimaModel({ fitter: { fit: () => assert.fail('no fit expected') }, minIntervals: 1000 });
    const stream = streamFor(model, 0);
    for (let i = 0; i < 3; i++) model.observe(stream, i * MIN);
    model.observe(stream, 20 * MIN);
    assert.equal(model.countAt(stream, 0), 3);
    assert.equal(model.countAt(stream, 1), 1);
    assert.equal(model.countAt(stream, 2), 0, 'nothing counted past the newest interval');
    for (let i = 0; i < 70_000; i++) model.observe(stream, 20 * MIN);
    assert.equal(model.countAt(stream, 1), 0xffff);
    model.observe(stream, 3 * DAY);
    const newest = (3 * DAY) / (15 * MIN);
    let total = 0;
    for (let i = newest - 200; i <= newest; i++) total += model.countAt(stream, i);
    assert.equal(total, 1, 'a gap longer than the ring cleared it');
    assert.equal(model.countAt(stream, 1), 0);
  });
});

describe('WorkerFitter', () => {
  test('gives the same forecasts as fitForecast, and close() ends the worker', async () => {
    const fitter = new WorkerFitter();
    try {
      const inputs = [series(2 * SEASON, sine), divergent(), series(150, (i) => (i * 7) % 13)];
      const results = await Promise.all(inputs.map((xs) => fitter.fit(Float64Array.from(xs), SEASON, 8)));
      inputs.forEach((xs, i) => assert.deepEqual(results[i], fitForecast(xs, SEASON, 8)));
      assert.equal(results[1]!.method, 'seasonal-naive');
      assert.equal(fitter.running, true);
    } finally {
      await fitter.close();
    }
    assert.equal(fitter.running, false);
    assert.equal(fitter.crashes, 0);
    await assert.rejects(fitter.fit([1, 2, 3], SEASON, 8), /closed/);
  });

  test('a full queue rejects and counts; a crashed worker rejects its fits and is replaced', async () => {
    // A stand-in worker: answers with the series' first values, exits on a negative first value.
    const source = `
      import { parentPort } from 'node:worker_threads';
      parentPort.on('message', (m) => {
        if (m.series[0] < 0) process.exit(3);
        parentPort.postMessage({ id: m.id, forecast: { values: Array.from(m.series.slice(0, m.horizon)), method: 'sarima' } });
      });`;
    const fitter = new WorkerFitter({ workerUrl: new URL(`data:text/javascript,${encodeURIComponent(source)}`), maxPending: 2 });
    try {
      const a = fitter.fit([1, 2], 96, 2);
      const b = fitter.fit([3, 4], 96, 2);
      await assert.rejects(fitter.fit([5, 6], 96, 2), /pending/);
      assert.equal(fitter.rejected, 1);
      assert.deepEqual((await a).values, [1, 2]);
      assert.deepEqual((await b).values, [3, 4]);
      await assert.rejects(fitter.fit([-1, 0], 96, 2), /exited with code 3/);
      assert.equal(fitter.crashes, 1);
      assert.deepEqual((await fitter.fit([7, 8], 96, 2)).values, [7, 8]);
    } finally {
      await fitter.close();
    }
  });
});
