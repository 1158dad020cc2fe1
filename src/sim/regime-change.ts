/**
 * A regime-change trace: queues, one principal each, that follow one access pattern for the first
 * half of the span and a clearly different one (other period and phase, or timer ↔ random
 * arrivals) from the middle on, all at the same instant. It isolates the question "how fast does
 * a policy re-learn a queue whose pattern changed?", which the mixed generator (`generator.ts`)
 * answers only in aggregate. Small enough to build in memory; same options, same events.
 */
import { open } from 'node:fs/promises';
import { Random } from '../core/random.ts';
import type { GeneratorSummary } from './generator.ts';
import type { TraceEvent } from './traces/types.ts';

/** A job firing every `periodMin` minutes (at phaseMin, phaseMin + period, … after the regime starts). */
export interface TimerRegime {
  type: 'timer';
  periodMin: number;
  phaseMin: number;
  /** Standard deviation of each firing instant (clamped to ±3σ). */
  jitterMs: number;
  /** Mean messages a firing (at least one). */
  batch: number;
}

/** Poisson arrivals at perHour × (1 + daily·cos(2π(hour − peakHour)/24)). */
export interface DiurnalRegime {
  type: 'diurnal';
  perHour: number;
  daily: number;
  peakHour: number;
}

/** On and off periods of exponential length; Poisson arrivals at perMinute while on. */
export interface BurstRegime {
  type: 'bursts';
  onMeanMin: number;
  offMeanMin: number;
  perMinute: number;
}

export type Regime = TimerRegime | DiurnalRegime | BurstRegime;

export interface RegimeQueue {
  name: string;
  principal: string;
  before: Regime;
  after: Regime;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** A regime before its phases are drawn (timers get theirs from the seed). */
export type PatternShape = { type: 'timer'; periodMin: number } | DiurnalRegime | BurstRegime;
const timer = (periodMin: number): PatternShape => ({ type: 'timer', periodMin });

/**
 * The pattern pairs, before → after, that queue i follows (i modulo their number). Every timer
 * period is longer than the default 300 s reuse period, so a reactive cache misses nearly every
 * firing and only a policy that knows the pattern avoids it.
 */
export const REGIME_PAIRS: readonly (readonly [PatternShape, PatternShape])[] = [
  [timer(7), timer(23)],
  [timer(40), timer(11)],
  [timer(13), timer(31)],
  [timer(25), timer(6)],
  [timer(19), { type: 'bursts', onMeanMin: 6, offMeanMin: 50, perMinute: 1 }],
  [{ type: 'diurnal', perHour: 4, daily: 0.8, peakHour: 14 }, timer(17)],
];

export interface RegimeChangeOptions {
  /** Default 1. */
  seed?: number;
  /**
   * Number of queues, one principal each; queue i follows pair i mod 6 with its own phases.
   * Default 24 (each pair four times): a 30-minute window then holds a few hundred requests,
   * enough for its miss ratio to mean something.
   */
  queues?: number;
  /** Span in days; the change is at the middle (rounded down to a whole hour). Default 2. */
  days?: number;
  /** Time of the first event, ms since the epoch, rounded up to a whole hour. Default 0. */
  startMs?: number;
}

export interface RegimeChangeTrace {
  /** Every event, in time order. */
  events: TraceEvent[];
  startMs: number;
  /** From this instant on, every queue follows its `after` regime. */
  changeAtMs: number;
  endMs: number;
  queues: RegimeQueue[];
}

/** Checks the options and fills defaults; throws an Error naming the bad option. */
export function resolveRegimeChange(options: RegimeChangeOptions = {}): { seed: number; queues: number; startMs: number; changeAtMs: number; endMs: number } {
  const seed = options.seed ?? 1;
  const queues = options.queues ?? 24;
  const days = options.days ?? 2;
  const start = options.startMs ?? 0;
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  if (!Number.isInteger(queues) || queues < 1 || queues > 10_000) throw new Error(`queues must be an integer in 1..10000, got ${queues}`);
  if (!Number.isFinite(days) || days < 2 / 24 || days > 366) throw new Error(`days must be a number from 2/24 (two hours) to 366, got ${days}`);
  if (!Number.isSafeInteger(start) || start < 0) throw new Error(`startMs must be a non-negative integer, got ${start}`);
  // Whole hours keep the change on a window boundary of any reuse period that divides an hour.
  const startMs = Math.ceil(start / HOUR) * HOUR;
  const endMs = startMs + Math.round(days * DAY);
  const changeAtMs = startMs + Math.floor((endMs - startMs) / 2 / HOUR) * HOUR;
  return { seed, queues, startMs, changeAtMs, endMs };
}

/** Builds the trace. Throws on a bad option. */
export function regimeChangeTrace(options: RegimeChangeOptions = {}): RegimeChangeTrace {
  const { seed, queues: count, startMs, changeAtMs, endMs } = resolveRegimeChange(options);
  const root = new Random(seed);
  const planRng = root.fork('plan');
  // A timer's phase is drawn, so the old and the new firings are not aligned by construction.
  const regime = (shape: PatternShape): Regime =>
    shape.type === 'timer' ? { type: 'timer', periodMin: shape.periodMin, phaseMin: planRng.int(shape.periodMin), jitterMs: 3_000, batch: 2 } : shape;
  const width = String(count - 1).length;
  const queues: RegimeQueue[] = [];
  for (let i = 0; i < count; i++) {
    const [before, after] = REGIME_PAIRS[i % REGIME_PAIRS.length]!;
    const name = `rc${String(i).padStart(width, '0')}-${label(before)}-${label(after)}`;
    queues.push({ name, principal: `p${i}`, before: regime(before), after: regime(after) });
  }
  const keyed: { t: number; seq: number; e: TraceEvent }[] = [];
  for (const q of queues) {
    const rng = root.fork(q.name);
    const emit = (t: number, op: TraceEvent['op']): void => {
      keyed.push({ t, seq: keyed.length, e: { t, queue: q.name, op, principal: q.principal } });
    };
    const message = (t: number): void => {
      // A consumer on the same principal receives and deletes it a moment later.
      const received = t + Math.min(30_000, Math.round(rng.exponential(1_500)));
      emit(t, 'send');
      emit(received, 'receive');
      emit(received + Math.min(5_000, Math.round(rng.exponential(150))), 'delete');
    };
    arrivals(q.before, startMs, changeAtMs, rng, message);
    arrivals(q.after, changeAtMs, endMs, rng, message);
  }
  keyed.sort((x, y) => x.t - y.t || x.seq - y.seq);
  return { events: keyed.map((k) => k.e), startMs, changeAtMs, endMs, queues };
}

/** `timer7`, `diurnal`, `bursts`: the queue's name says what it does. */
function label(shape: PatternShape): string {
  return shape.type === 'timer' ? `timer${shape.periodMin}` : shape.type;
}

/** Calls `message` for each message the regime sends in [from, to), in time order. */
function arrivals(r: Regime, from: number, to: number, rng: Random, message: (t: number) => void): void {
  switch (r.type) {
    case 'timer': {
      const period = r.periodMin * MINUTE;
      for (let fire = from + r.phaseMin * MINUTE; fire < to; fire += period) {
        const z = Math.max(-3, Math.min(3, rng.normal()));
        let t = Math.max(from, Math.round(fire + z * r.jitterMs));
        const n = 1 + rng.poisson(r.batch - 1);
        for (let i = 0; i < n && t < to; i++, t += Math.round(rng.exponential(200))) message(t);
      }
      break;
    }
    case 'diurnal': {
      // Thinning: candidates at the peak rate, each kept with the rate's share of the peak.
      const peak = (r.perHour * (1 + r.daily)) / HOUR;
      for (let t = from + rng.exponential(1 / peak); t < to; t += rng.exponential(1 / peak)) {
        const hour = (t % DAY) / HOUR;
        const rate = (r.perHour * (1 + r.daily * Math.cos((2 * Math.PI * (hour - r.peakHour)) / 24))) / HOUR;
        if (rng.next() < rate / peak) message(Math.round(t));
      }
      break;
    }
    case 'bursts': {
      let on = rng.next() < r.onMeanMin / (r.onMeanMin + r.offMeanMin);
      for (let t = from; t < to; on = !on) {
        const until = Math.min(to, t + rng.exponential((on ? r.onMeanMin : r.offMeanMin) * MINUTE));
        if (on) for (let a = t + rng.exponential(MINUTE / r.perMinute); a < until; a += rng.exponential(MINUTE / r.perMinute)) message(Math.round(a));
        t = until;
      }
      break;
    }
  }
}

/** Writes the trace as generic CSV (`ts_ms,queue,op,principal`), the format `pkp replay` reads. */
export async function writeRegimeChangeTrace(path: string, options: RegimeChangeOptions = {}): Promise<GeneratorSummary> {
  const trace = regimeChangeTrace(options);
  const summary: GeneratorSummary = {
    events: trace.events.length,
    queues: trace.queues.length,
    firstMs: trace.events[0]?.t ?? -1,
    lastMs: trace.events.at(-1)?.t ?? -1,
    ops: { send: 0, receive: 0, delete: 0 },
  };
  const lines = ['ts_ms,queue,op,principal'];
  for (const e of trace.events) {
    lines.push(`${e.t},${e.queue},${e.op},${e.principal}`);
    summary.ops[e.op]++;
  }
  const file = await open(path, 'w');
  try {
    await file.write(lines.join('\n') + '\n');
  } finally {
    await file.close();
  }
  return summary;
}
