import { createRequire } from 'node:module';
import path from 'node:path';
import { parentPort, Worker, type MessagePort } from 'node:worker_threads';
import type ARIMA from 'arima';

/**
 * Fitting a (S)ARIMA model to a stream's request counts per interval, and the fitters that run it
 * inline (deterministic, for the simulator) or in a worker thread (never blocks the event loop).
 */

/** Expected request counts for the next `values.length` intervals, and how they were obtained. */
export interface Forecast {
  values: number[];
  method: 'sarima' | 'seasonal-naive';
}

/** Runs `fitForecast` somewhere: a value (inline) or a Promise (off-thread). */
export interface Fitter {
  fit(series: Float64Array | number[], season: number, horizon: number): Promise<Forecast> | Forecast;
}

/** (p, d, q)(P, D, Q)_s, in the `arima` package's terms. */
export interface SarimaOrder {
  p: number;
  d: number;
  q: number;
  P: number;
  D: number;
  Q: number;
  s: number;
}

/** Trains a model of the given order on the series and returns its `horizon` predictions; may throw. */
export type TrainFn = (series: number[], order: SarimaOrder, horizon: number) => number[];

export interface FitOptions {
  /** The training step (a seam for tests). Default: the `arima` package, Box-Jenkins estimation. */
  train?: TrainFn;
}

/**
 * The order fitted to `n` values with seasonal period `season`, or null when there is too little
 * data for any fit (the `arima` package needs ≥ 10 values; its seasonal models need ≥ 2 seasons
 * without seasonal differencing and ≥ 3 with).
 *
 * - n ≥ 3 seasons: SARIMA(1,0,1)(1,1,0)_s
 * - n ≥ 2 seasons: SARIMA(1,0,1)(1,0,0)_s (the default 2-day history lands here)
 * - otherwise:     ARIMA(1,0,1), no seasonal part
 */
export function chooseOrder(n: number, season: number): SarimaOrder | null {
  const s = Math.floor(season);
  if (s >= 2 && n >= 3 * s) return { p: 1, d: 0, q: 1, P: 1, D: 1, Q: 0, s };
  if (s >= 2 && n >= 2 * s) return { p: 1, d: 0, q: 1, P: 1, D: 0, Q: 0, s };
  if (n >= 10) return { p: 1, d: 0, q: 1, P: 0, D: 0, Q: 0, s: 0 };
  return null;
}

/**
 * Seasonal-naive forecast: each step takes the value one season earlier (two seasons earlier for
 * steps beyond a season, and so on). With less than one season of data: the mean, for every step.
 */
export function seasonalNaive(series: ArrayLike<number>, season: number, horizon: number): number[] {
  const n = series.length;
  const s = Math.floor(season);
  const out = new Array<number>(horizon);
  if (s >= 1 && n >= s) {
    for (let k = 0; k < horizon; k++) out[k] = series[n + k - s * Math.ceil((k + 1) / s)]!;
    return out;
  }
  let sum = 0;
  for (let i = 0; i < n; i++) sum += series[i]!;
  return out.fill(n > 0 ? sum / n : 0);
}

/**
 * Forecasts the next `horizon` values of a count series with SARIMA (order from `chooseOrder`),
 * guarded: when training throws, or any predicted value is not finite, is below
 * -(0.5 + 1% of the series' max), or above 3 × max + 10, the seasonal-naive forecast is returned
 * instead. Small negative predictions are clamped to 0. A constant series (or one too short to fit)
 * gets the seasonal-naive forecast directly, without fitting. Never throws; pure apart from the
 * `arima` package's internal memory.
 */
export function fitForecast(series: Float64Array | number[], season: number, horizon: number, options: FitOptions = {}): Forecast {
  const xs = Array.from(series, (v) => (Number.isFinite(v) ? v : 0));
  const h = Math.max(0, Math.floor(horizon));
  const naive = (): Forecast => ({ values: seasonalNaive(xs, season, h).map((v) => Math.max(0, v)), method: 'seasonal-naive' });
  let max = -Infinity;
  let min = Infinity;
  for (const v of xs) {
    if (v > max) max = v;
    if (v < min) min = v;
  }
  const order = chooseOrder(xs.length, season);
  if (order === null || h === 0 || max === min) return naive();
  let predicted: number[];
  try {
    predicted = (options.train ?? trainWithArima)(xs, order, h);
  } catch {
    return naive();
  }
  if (!Array.isArray(predicted) || predicted.length < h) return naive();
  const upper = 3 * Math.max(0, max) + 10;
  const lower = -(0.5 + 0.01 * Math.max(0, max));
  const values = new Array<number>(h);
  for (let k = 0; k < h; k++) {
    const v = predicted[k]!;
    if (!Number.isFinite(v) || v < lower || v > upper) return naive();
    values[k] = Math.max(0, v);
  }
  return { values, method: 'sarima' };
}

type ArimaConstructor = typeof ARIMA;
let arimaCtor: ArimaConstructor | undefined;

/**
 * The `arima` package, loaded on first use (so a process that fits only in a worker never compiles
 * the WASM module on its main thread). It is instantiated with its stdout/stderr output silenced:
 * the native code prints warnings ("non-stationary seasonal AR part", ...) with console.log even
 * when `verbose` is false. Falls back to the package's own entry point if its layout ever changes.
 */
function arimaPackage(): ArimaConstructor {
  if (arimaCtor) return arimaCtor;
  const require = createRequire(import.meta.url);
  try {
    const dir = path.dirname(require.resolve('arima'));
    const createModule = require(path.join(dir, 'wasm', 'native-sync.js')) as (o: object) => unknown;
    const wasmBinary = require(path.join(dir, 'wrapper', 'native.bin.js')) as Uint8Array;
    const load = require(path.join(dir, 'load.js')) as (m: unknown) => ArimaConstructor;
    const quiet = (): void => {};
    arimaCtor = load(createModule({ wasmBinary, print: quiet, printErr: quiet }));
  } catch {
    arimaCtor = require('arima') as ArimaConstructor;
  }
  return arimaCtor;
}

/**
 * Box-Jenkins estimation (the package's method 2): exact maximum likelihood (method 0) takes
 * 10–100 s for a seasonal model with s = 96 on a few hundred values; Box-Jenkins takes ~0.1 s with
 * the same forecasts on our series. Unguarded: may throw or return divergent values.
 */
export function trainWithArima(series: number[], order: SarimaOrder, horizon: number): number[] {
  const Ctor = arimaPackage();
  // The native code may call exit(), which sets process.exitCode before throwing: undo that.
  const exitCode = process.exitCode;
  const model = new Ctor({ ...order, method: 2, verbose: false });
  try {
    model.train(series);
    return model.predict(horizon)[0];
  } catch (err) {
    arimaCtor = undefined; // the WASM instance may be left aborted: start a fresh one next time
    throw err;
  } finally {
    try {
      model.destroy();
    } catch {
      // already freed, or the instance aborted
    }
    process.exitCode = exitCode;
  }
}

/** Fits on the calling thread, synchronously: deterministic, for the simulator and tests. */
export class InlineFitter implements Fitter {
  constructor(private readonly options: FitOptions = {}) {}

  fit(series: Float64Array | number[], season: number, horizon: number): Forecast {
    return fitForecast(series, season, horizon, this.options);
  }
}

/** A fit request to the worker, and its answer. */
export interface FitRequest {
  id: number;
  series: Float64Array;
  season: number;
  horizon: number;
}
export type FitReply = { id: number; forecast: Forecast } | { id: number; error: string };

/** The worker's side: answers fit requests on `port` (the worker's parent port) until terminated. */
export function serveFits(port: MessagePort | null = parentPort): void {
  if (!port) throw new Error('serveFits: not in a worker thread');
  port.on('message', (m: FitRequest) => {
    let reply: FitReply;
    try {
      reply = { id: m.id, forecast: fitForecast(m.series, m.season, m.horizon) };
    } catch (err) {
      reply = { id: m.id, error: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(reply);
  });
}

export interface WorkerFitterOptions {
  /** Fits sent and not yet answered, at most; more are rejected (and counted). Default 256. */
  maxPending?: number;
  /** The worker's entry point. Default: `arima-worker.mjs` next to this file. */
  workerUrl?: URL;
}

interface Pending {
  resolve: (f: Forecast) => void;
  reject: (e: Error) => void;
}

/**
 * Runs `fitForecast` in one worker thread, so a fit (~0.1 s of CPU) never blocks the event loop.
 * Requests are queued in the worker's message port, at most `maxPending`. A crashed worker rejects
 * the fits it had; the next fit starts a new one. The worker does not keep the process alive while
 * idle; `close()` terminates it and makes every later fit reject.
 */
export class WorkerFitter implements Fitter {
  /** Fits rejected because `maxPending` were already waiting. */
  rejected = 0;
  /** Workers that died other than by `close()`. */
  crashes = 0;
  /** Fits answered. */
  completed = 0;
  private readonly maxPending: number;
  private readonly workerUrl: URL;
  private readonly pending = new Map<number, Pending>();
  private worker: Worker | null = null;
  private nextId = 1;
  private closed = false;

  constructor(options: WorkerFitterOptions = {}) {
    this.maxPending = options.maxPending ?? 256;
    this.workerUrl = options.workerUrl ?? new URL('./arima-worker.mjs', import.meta.url);
  }

  /** Fits waiting for an answer. */
  get queued(): number {
    return this.pending.size;
  }

  /** A worker is running (started by a fit, not yet crashed or closed). */
  get running(): boolean {
    return this.worker !== null;
  }

  fit(series: Float64Array | number[], season: number, horizon: number): Promise<Forecast> {
    if (this.closed) return Promise.reject(new Error('WorkerFitter is closed'));
    if (this.pending.size >= this.maxPending) {
      this.rejected++;
      return Promise.reject(new Error(`WorkerFitter: ${this.pending.size} fits already pending`));
    }
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    const data = Float64Array.from(series);
    return new Promise<Forecast>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) worker.ref();
      const request: FitRequest = { id, series: data, season, horizon };
      worker.postMessage(request, [data.buffer]);
    });
  }

  /** Terminates the worker; pending and later fits reject. Resolves when the worker has exited. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    this.rejectAll(new Error('WorkerFitter closed'));
    if (worker) await worker.terminate();
  }

  private start(): Worker {
    const worker = new Worker(this.workerUrl);
    this.worker = worker;
    worker.unref();
    worker.on('message', (reply: FitReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0 && this.worker === worker) worker.unref();
      this.completed++;
      if ('forecast' in reply) p.resolve(reply.forecast);
      else p.reject(new Error(reply.error));
    });
    worker.on('error', (err) => this.lost(worker, err));
    worker.on('exit', (code) => this.lost(worker, new Error(`ARIMA worker exited with code ${code}`)));
    return worker;
  }

  /** The worker died: its fits fail, and the next fit starts another. */
  private lost(worker: Worker, err: Error): void {
    if (this.worker !== worker) return; // closed, or already handled (an 'error' is followed by 'exit')
    this.worker = null;
    this.crashes++;
    this.rejectAll(err);
  }

  private rejectAll(err: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(err);
  }
}
