import { ArimaModel } from './arima.ts';
import type { Fitter } from './arima-fit.ts';
import { HotModel } from './hot.ts';
import { IdleTimeModel } from './idle-time.ts';
import { LongIdleModel } from './long-idle.ts';
import type { Model } from './model.ts';
import { PrincipalModel } from './principal.ts';
import { QueueLoadModel } from './queue-load.ts';
import { SeasonalModel } from './seasonal.ts';

export interface ModelOptions {
  /** Recent gaps the idle-time model keeps. Default 24. */
  idleGaps?: number;
  /** Time-of-day slots of the seasonal profile. Default 48 (30 min). */
  seasonalSlots?: number;
  /** Slowest consumer poll the queue-load model assumes while messages wait (ms). Default 20 s (SQS long poll). */
  minPollMs?: number;
  /**
   * Where ARIMA fits run. Default: inline (deterministic, for the simulator); the live service
   * passes a WorkerFitter so a fit never blocks the event loop.
   */
  arimaFitter?: Fitter;
  /** Only these models (by name, see MODEL_NAMES), e.g. to measure what one adds. Default: all. */
  only?: readonly string[];
}

export const MODEL_NAMES = ['long-idle', 'hot', 'seasonal', 'idle-time', 'queue-load', 'principal', 'arima'] as const;

/** A comma-separated list of model names, checked (see checkModelNames). */
export function parseModelList(text: string): string[] {
  return checkModelNames(text.split(',').map((m) => m.trim()).filter((m) => m !== ''));
}

/** The names, if each is a model's and there is at least one; else a RangeError naming the unknown ones. */
function checkModelNames(names: readonly string[]): string[] {
  const unknown = names.filter((name) => !(MODEL_NAMES as readonly string[]).includes(name));
  if (unknown.length > 0) throw new RangeError(`unknown model(s): ${unknown.join(', ')}; known: ${MODEL_NAMES.join(', ')}`);
  if (names.length === 0) throw new RangeError('at least one model is needed');
  return [...names];
}

/** The ensemble's members, in a fixed order (weights are stored by position). */
export function defaultModels(rateWindowMs: number, options: ModelOptions = {}): Model[] {
  const only = options.only && checkModelNames(options.only);
  const wanted = (name: (typeof MODEL_NAMES)[number]): boolean => !only || only.includes(name);
  const models: Model[] = [];
  // The stream's own idle-time distribution, the core of the pricing (see docs/replay).
  if (wanted('long-idle')) models.push(new LongIdleModel());
  if (wanted('hot')) models.push(new HotModel(rateWindowMs));
  if (wanted('seasonal')) models.push(new SeasonalModel(options.seasonalSlots ?? 48));
  if (wanted('idle-time')) models.push(new IdleTimeModel(options.idleGaps ?? 24));
  // Queue load predicts receives, which need decrypt keys (the backlog prefetch's), not the
  // stream's encrypt key: only when named.
  if (only?.includes('queue-load')) models.push(new QueueLoadModel(rateWindowMs, options.minPollMs ?? 20_000));
  if (wanted('principal')) models.push(new PrincipalModel(rateWindowMs));
  if (wanted('arima')) models.push(new ArimaModel({ fitter: options.arimaFitter }));
  return models;
}
