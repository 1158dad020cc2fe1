import { ArimaModel } from './arima.ts';
import type { Fitter } from './arima-fit.ts';
import { HotModel } from './hot.ts';
import { IdleTimeModel } from './idle-time.ts';
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
}

/** The ensemble's members, in a fixed order (weights are stored by position). */
export function defaultModels(rateWindowMs: number, options: ModelOptions = {}): Model[] {
  return [
    new HotModel(rateWindowMs),
    new SeasonalModel(options.seasonalSlots ?? 48),
    new IdleTimeModel(options.idleGaps ?? 24),
    new QueueLoadModel(rateWindowMs, options.minPollMs ?? 20_000),
    new PrincipalModel(rateWindowMs),
    new ArimaModel({ fitter: options.arimaFitter }),
  ] as Model[];
}
