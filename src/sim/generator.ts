/**
 * Synthetic workload generator: a trace with the structure a key prefetcher has to learn —
 * Zipf-skewed queue popularity, time-of-day / day-of-week / day-of-month seasonality, cron-like
 * queues, on/off bursts, trends, regime changes, queues that appear or go away, several
 * principals a queue, and consumers that receive and delete what producers send.
 *
 * Generated one minute at a time across all queues, so memory is one minute of events whatever
 * the span. Same options, same events (and byte-identical files).
 */
import { open } from 'node:fs/promises';
import { Random } from '../core/random.ts';
import { emptyStats, flatten } from './traces/source.ts';
import type { LoadStats, TraceEvent, TraceOp, TraceSource } from './traces/types.ts';

export interface GeneratorOptions {
  /** Default 1. */
  seed?: number;
  /** Number of queues. Default 200. */
  queues?: number;
  /** Span in days (fractions allowed, whole minutes). Default 7. */
  days?: number;
  /** Mean requests per second over all queues and the whole span (approximate). Default 20. */
  meanRatePerSecond?: number;
  /** Size of the principal pool that queues draw producers and consumers from. Default 50. */
  principals?: number;
  /** Time of the first minute, ms since the epoch; calendar effects use its UTC date. Default 0. */
  startMs?: number;
  /** Zipf exponent of queue popularity. Default 1. */
  zipfExponent?: number;
  /** When > 0, a `node` column names one of this many front-ends (uniformly). Default 0: no column. */
  nodes?: number;
}

export type QueueKind = 'steady' | 'diurnal' | 'monthly' | 'cron' | 'bursty' | 'trend' | 'regime' | 'new' | 'gone';
export const QUEUE_KINDS: readonly QueueKind[] = [
  'steady',
  'diurnal',
  'monthly',
  'cron',
  'bursty',
  'trend',
  'regime',
  'new',
  'gone',
];

/** Poisson arrivals at a rate shaped by the calendar. */
export interface SeasonalPattern {
  type: 'seasonal';
  /** Mean sends per second over a long span. */
  sendRate: number;
  /** Time-of-day amplitude in [0, 1): rate × (1 + daily·cos(2π(hour − peakHour)/24)). */
  daily: number;
  peakHour: number;
  /** Saturday and Sunday factor; weekdays get the factor that keeps the weekly mean at 1. */
  weekend: number;
  /** Day-of-month spike on the 1st, the 15th and the last day: factor 1 + monthly there. */
  monthly: number;
}

/** A job that fires every `periodMin` minutes at a fixed second, sending a batch. */
export interface CronPattern {
  type: 'cron';
  sendRate: number;
  periodMin: number;
  /** Fires in minutes where (minute since epoch − phaseMin) is a multiple of the period. */
  phaseMin: number;
  second: number;
  /** Standard deviation of the firing instant (clamped to ±3σ and inside the minute); 0 = exact. */
  jitterMs: number;
  weekdaysOnly: boolean;
  /** Mean messages per firing (at least one is always sent). */
  batch: number;
}

/** Alternating on and off periods of exponential length; Poisson arrivals while on. */
export interface OnOffPattern {
  type: 'onoff';
  sendRate: number;
  onMeanMs: number;
  offMeanMs: number;
}

export type Pattern = SeasonalPattern | CronPattern | OnOffPattern;

export interface QueueSpec {
  index: number;
  /** `q017-cron`: the kind is in the name, so a trace explains itself. */
  name: string;
  kind: QueueKind;
  /** Zipf share of the total rate (before the active-window correction). */
  share: number;
  pattern: Pattern;
  /** Regime change: from `atMs` on the queue follows `pattern` instead. */
  regime?: { atMs: number; pattern: Pattern };
  /** Rate multiplier grows (or shrinks) exponentially to `factor` × the start rate at the end. */
  trendFactor?: number;
  /** No events before `activeFromMs` nor from `activeToMs` on (minute-aligned). */
  activeFromMs: number;
  activeToMs: number;
  /** Principals that send, most active first. */
  producers: string[];
  /** Principals that receive and delete. */
  consumers: string[];
  /** Chance a sent message is received, chance a received one is deleted, mean delay before receive. */
  receiveProb: number;
  deleteProb: number;
  receiveDelayMs: number;
}

export interface GeneratorSummary {
  events: number;
  queues: number;
  firstMs: number;
  lastMs: number;
  /** ops by kind: send, receive, delete. */
  ops: Record<TraceOp, number>;
}

interface Resolved {
  seed: number;
  queues: number;
  minutes: number;
  meanRatePerSecond: number;
  principals: number;
  startMs: number;
  zipfExponent: number;
  nodes: number;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** Share of queues of each kind once every kind has one queue. */
const KIND_WEIGHTS: Record<QueueKind, number> = {
  diurnal: 0.28,
  steady: 0.1,
  cron: 0.16,
  bursty: 0.14,
  trend: 0.08,
  regime: 0.08,
  monthly: 0.06,
  new: 0.07,
  gone: 0.03,
};
const CRON_PERIODS = [1, 2, 5, 10, 15, 30, 60];

/** Checks the options and fills defaults; throws an Error naming the bad option. */
export function resolveOptions(options: GeneratorOptions = {}): Resolved {
  const seed = options.seed ?? 1;
  const queues = options.queues ?? 200;
  const days = options.days ?? 7;
  const rate = options.meanRatePerSecond ?? 20;
  const principals = options.principals ?? 50;
  const startMs = options.startMs ?? 0;
  const zipf = options.zipfExponent ?? 1;
  const nodes = options.nodes ?? 0;
  const need = (ok: boolean, what: string, value: unknown): void => {
    if (!ok) throw new Error(`${what}, got ${String(value)}`);
  };
  need(Number.isSafeInteger(seed), 'seed must be an integer', seed);
  need(Number.isInteger(queues) && queues >= 1 && queues <= 100_000, 'queues must be an integer in 1..100000', queues);
  need(Number.isFinite(days) && days > 0 && days <= 3660, 'days must be a number in (0, 3660]', days);
  need(Number.isFinite(rate) && rate > 0 && rate <= 1e6, 'meanRatePerSecond must be a number in (0, 1e6]', rate);
  need(Number.isInteger(principals) && principals >= 1 && principals <= 1e6, 'principals must be an integer in 1..1000000', principals);
  need(Number.isSafeInteger(startMs) && startMs >= 0, 'startMs must be a non-negative integer', startMs);
  need(Number.isFinite(zipf) && zipf >= 0 && zipf <= 5, 'zipfExponent must be a number in [0, 5]', zipf);
  need(Number.isInteger(nodes) && nodes >= 0 && nodes <= 10_000, 'nodes must be an integer in 0..10000', nodes);
  const minutes = Math.max(1, Math.round(days * 1440));
  // Whole minutes keep cron firings and active windows aligned to the calendar.
  const start = Math.ceil(startMs / MINUTE) * MINUTE;
  return { seed, queues, minutes, meanRatePerSecond: rate, principals, startMs: start, zipfExponent: zipf, nodes };
}

/** The queues a generation with these options will have: deterministic, cheap, no events. */
export function planQueues(options: GeneratorOptions = {}): QueueSpec[] {
  return plan(resolveOptions(options));
}

function plan(o: Resolved): QueueSpec[] {
  const rng = new Random(o.seed).fork('plan');
  const span = o.minutes * MINUTE;
  const end = o.startMs + span;
  const atFraction = (lo: number, hi: number): number =>
    o.startMs + Math.round((lo + (hi - lo) * rng.next()) * o.minutes) * MINUTE;
  const between = (lo: number, hi: number): number => lo + (hi - lo) * rng.next();

  // Every kind once (when there are enough queues), the rest drawn by weight, in shuffled order.
  const kinds: QueueKind[] = shuffle(QUEUE_KINDS.slice(), rng).slice(0, o.queues);
  const total = QUEUE_KINDS.reduce((s, k) => s + KIND_WEIGHTS[k], 0);
  while (kinds.length < o.queues) {
    let x = rng.next() * total;
    let pick: QueueKind = 'steady';
    for (const k of QUEUE_KINDS) {
      x -= KIND_WEIGHTS[k];
      if (x < 0) {
        pick = k;
        break;
      }
    }
    kinds.push(pick);
  }
  shuffle(kinds, rng);

  // Zipf popularity over a random ranking of the queues.
  const ranks = shuffle(Array.from({ length: o.queues }, (_, i) => i), rng);
  const weights = ranks.map((r) => 1 / Math.pow(r + 1, o.zipfExponent));
  const weightSum = weights.reduce((a, b) => a + b, 0);

  const seasonal = (sendRate: number, strong: boolean): SeasonalPattern => ({
    type: 'seasonal',
    sendRate,
    daily: strong ? between(0.5, 0.95) : between(0.1, 0.5),
    peakHour: between(8, 18),
    weekend: strong ? between(0.15, 0.8) : between(0.6, 1),
    monthly: 0,
  });
  const cron = (sendRate: number): CronPattern => {
    const periodMin = CRON_PERIODS[rng.int(CRON_PERIODS.length)]!;
    const batch = Math.max(1, sendRate * periodMin * 60);
    return {
      type: 'cron',
      sendRate,
      periodMin,
      phaseMin: rng.int(periodMin),
      second: 5 + rng.int(50),
      jitterMs: rng.next() < 0.4 ? Math.round(between(200, 1500)) : 0,
      weekdaysOnly: rng.next() < 0.25,
      batch,
    };
  };
  const onoff = (sendRate: number): OnOffPattern => ({
    type: 'onoff',
    sendRate,
    onMeanMs: Math.round(between(1, 15) * MINUTE),
    offMeanMs: Math.round(Math.exp(between(Math.log(10), Math.log(240))) * MINUTE),
  });
  const anyPattern = (type: Pattern['type'], sendRate: number): Pattern =>
    type === 'cron' ? cron(sendRate) : type === 'onoff' ? onoff(sendRate) : seasonal(sendRate, rng.next() < 0.5);

  const pool = Array.from({ length: o.principals }, (_, i) => `p${String(i).padStart(3, '0')}`);
  const width = String(o.queues - 1).length < 3 ? 3 : String(o.queues - 1).length;

  const specs: QueueSpec[] = [];
  for (let i = 0; i < o.queues; i++) {
    const kind = kinds[i]!;
    const share = weights[i]! / weightSum;
    const receiveProb = between(0.85, 1);
    const deleteProb = between(0.9, 1);
    // Requests per message sent, so that shares are of all requests, not of sends.
    const sendRate = (o.meanRatePerSecond * share) / (1 + receiveProb * (1 + deleteProb));
    const spec: QueueSpec = {
      index: i,
      name: `q${String(i).padStart(width, '0')}-${kind}`,
      kind,
      share,
      pattern: seasonal(sendRate, true),
      activeFromMs: o.startMs,
      activeToMs: end,
      producers: pick(pool, 1 + rng.int(3), rng),
      consumers: pick(pool, 1 + rng.int(2), rng),
      receiveProb,
      deleteProb,
      receiveDelayMs: Math.round(Math.exp(between(Math.log(200), Math.log(20_000)))),
    };
    switch (kind) {
      case 'steady':
        spec.pattern = { ...seasonal(sendRate, false), daily: 0, weekend: 1 };
        break;
      case 'diurnal':
        break;
      case 'monthly':
        spec.pattern = { ...seasonal(sendRate, false), monthly: between(3, 8) };
        break;
      case 'cron':
        spec.pattern = cron(sendRate);
        break;
      case 'bursty':
        spec.pattern = onoff(sendRate);
        break;
      case 'trend':
        spec.pattern = seasonal(sendRate, false);
        spec.trendFactor = rng.next() < 0.6 ? between(2, 6) : between(0.15, 0.5);
        break;
      case 'regime': {
        const types: Pattern['type'][] = ['seasonal', 'cron', 'onoff'];
        const a = types[rng.int(3)]!;
        const b = types.filter((t) => t !== a)[rng.int(2)]!;
        spec.pattern = anyPattern(a, sendRate);
        spec.regime = { atMs: atFraction(0.3, 0.7), pattern: anyPattern(b, sendRate * between(0.3, 3)) };
        break;
      }
      case 'new':
        spec.pattern = rng.next() < 0.7 ? seasonal(sendRate, true) : cron(sendRate);
        spec.activeFromMs = atFraction(0.15, 0.75);
        break;
      case 'gone':
        spec.activeToMs = atFraction(0.25, 0.85);
        break;
    }
    specs.push(spec);
  }
  normalizeRates(specs, o);
  return specs;
}

/**
 * Scales every queue's rate so that the expected total matches the requested mean, counting the
 * windows of new and gone queues, regime changes and cron batches (at least one message a firing).
 */
function normalizeRates(specs: QueueSpec[], o: Resolved): void {
  const span = o.minutes * MINUTE;
  const patternRate = (p: Pattern): number =>
    p.type === 'cron' ? (p.batch / (p.periodMin * 60)) * (p.weekdaysOnly ? 5 / 7 : 1) : p.sendRate;
  const expected = (s: QueueSpec): number => {
    const window = s.activeToMs - s.activeFromMs;
    let sends = patternRate(s.pattern);
    if (s.regime !== undefined) {
      const before = (s.regime.atMs - s.activeFromMs) / window;
      sends = before * sends + (1 - before) * patternRate(s.regime.pattern);
    }
    return sends * (window / span) * (1 + s.receiveProb * (1 + s.deleteProb));
  };
  const total = specs.reduce((sum, s) => sum + expected(s), 0);
  const factor = o.meanRatePerSecond / total;
  const scale = (p: Pattern): void => {
    p.sendRate *= factor;
    if (p.type === 'cron') p.batch = Math.max(1, p.sendRate * p.periodMin * 60);
  };
  for (const s of specs) {
    scale(s.pattern);
    if (s.regime !== undefined) scale(s.regime.pattern);
  }
}

/** Calendar facts of one minute, shared by every queue. */
interface Calendar {
  hour: number;
  weekend: boolean;
  monthSpike: boolean;
  /** Fraction of the span elapsed, for trends. */
  progress: number;
}

function calendar(t: number, o: Resolved): Calendar {
  const d = new Date(t);
  const dom = d.getUTCDate();
  const lastDay = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  const dow = d.getUTCDay();
  return {
    hour: ((t % DAY) + MINUTE / 2) / HOUR,
    weekend: dow === 0 || dow === 6,
    monthSpike: dom === 1 || dom === 15 || dom === lastDay,
    progress: (t - o.startMs) / (o.minutes * MINUTE),
  };
}

const OPS: readonly TraceOp[] = ['send', 'receive', 'delete'];
const SEND = 0;
const RECEIVE = 1;
const DELETE = 2;
/** Sort keys pack (ms after the minute's start) × 2^26 + insertion order, exact in a double. */
const SEQ_SPACE = 1 << 26;
/** Follow-ups land at most this long after their send, so carried events stay few. */
const MAX_RECEIVE_DELAY = 55_000;
const MAX_DELETE_DELAY = 5_000;

/** One minute of events, sorted, as parallel arrays (no object a event). */
export interface MinuteEvents {
  length: number;
  t: Float64Array;
  queue: Int32Array;
  op: Uint8Array;
  principal: Int32Array;
  node: Int32Array;
}

/** Events being collected: grows by doubling, reused minute after minute. */
class EventBuffer implements MinuteEvents {
  length = 0;
  t = new Float64Array(4096);
  queue = new Int32Array(4096);
  op = new Uint8Array(4096);
  principal = new Int32Array(4096);
  node = new Int32Array(4096);

  push(t: number, queue: number, op: number, principal: number, node: number): void {
    if (this.length === this.t.length) this.grow();
    const i = this.length++;
    this.t[i] = t;
    this.queue[i] = queue;
    this.op[i] = op;
    this.principal[i] = principal;
    this.node[i] = node;
  }

  private grow(): void {
    const n = this.t.length * 2;
    const t = new Float64Array(n);
    t.set(this.t);
    this.t = t;
    const q = new Int32Array(n);
    q.set(this.queue);
    this.queue = q;
    const op = new Uint8Array(n);
    op.set(this.op);
    this.op = op;
    const p = new Int32Array(n);
    p.set(this.principal);
    this.principal = p;
    const nd = new Int32Array(n);
    nd.set(this.node);
    this.node = nd;
  }
}

/** Per-queue state while generating. */
interface Live {
  spec: QueueSpec;
  rng: Random;
  /** Indices into the principal pool. */
  producers: number[];
  producerCdf: number[];
  consumers: number[];
  /** On/off state of the current pattern. */
  on: boolean;
  switchAt: number;
  onoffFor: Pattern | undefined;
}

/**
 * Generates the trace minute by minute. Each yielded view is valid until the next step; events
 * beyond the minute (late receives and deletes) are carried to the next one.
 */
export function* generateMinutes(options: GeneratorOptions = {}): Generator<MinuteEvents> {
  const o = resolveOptions(options);
  const specs = plan(o);
  const root = new Random(o.seed).fork('events');
  const nodeRng = root.fork('nodes');
  const principalIndex = (p: string): number => Number(p.slice(1));
  const live: Live[] = specs.map((spec) => {
    const w = spec.producers.map((_, i) => 1 / (i + 1));
    const sum = w.reduce((a, b) => a + b, 0);
    let acc = 0;
    return {
      spec,
      rng: root.fork(spec.name),
      producers: spec.producers.map(principalIndex),
      producerCdf: w.map((x) => (acc += x / sum)),
      consumers: spec.consumers.map(principalIndex),
      on: false,
      switchAt: 0,
      onoffFor: undefined,
    };
  });

  let buf = new EventBuffer();
  let carry = new EventBuffer();
  const out = new EventBuffer();
  let keys = new Float64Array(4096);

  for (let m = 0; m < o.minutes; m++) {
    const t0 = o.startMs + m * MINUTE;
    const t1 = t0 + MINUTE;
    const cal = calendar(t0, o);
    // Start from the follow-ups that earlier minutes pushed into this one.
    [buf, carry] = [carry, buf];
    carry.length = 0;
    for (const q of live) emitQueue(q, t0, cal, buf);

    const n = buf.length;
    if (n >= SEQ_SPACE) throw new Error(`more than ${SEQ_SPACE} events in one minute: lower the rate`);
    if (keys.length < n) keys = new Float64Array(Math.max(n, keys.length * 2));
    for (let i = 0; i < n; i++) keys[i] = (buf.t[i]! - t0) * SEQ_SPACE + i;
    const sorted = keys.subarray(0, n).sort();
    out.length = 0;
    for (let k = 0; k < n; k++) {
      const key = sorted[k]!;
      const i = key % SEQ_SPACE;
      const t = buf.t[i]!;
      // The last minute keeps its stragglers, so every send's follow-ups are in the trace.
      if (t < t1 || m === o.minutes - 1) {
        out.push(t, buf.queue[i]!, buf.op[i]!, buf.principal[i]!, o.nodes > 0 ? nodeRng.int(o.nodes) : -1);
      } else {
        carry.push(t, buf.queue[i]!, buf.op[i]!, buf.principal[i]!, -1);
      }
    }
    buf.length = 0;
    if (out.length > 0) yield out;
  }
}

function emitQueue(q: Live, t0: number, cal: Calendar, buf: EventBuffer): void {
  const s = q.spec;
  if (t0 < s.activeFromMs || t0 >= s.activeToMs) return;
  const pattern = s.regime !== undefined && t0 >= s.regime.atMs ? s.regime.pattern : s.pattern;
  let scale = 1;
  if (s.trendFactor !== undefined) {
    // Exponential growth to the factor, divided by its mean so the long-run share holds.
    const f = s.trendFactor;
    scale = Math.pow(f, cal.progress) / ((f - 1) / Math.log(f));
  }
  const rng = q.rng;
  switch (pattern.type) {
    case 'seasonal': {
      let rate = pattern.sendRate * scale;
      rate *= 1 + pattern.daily * Math.cos((2 * Math.PI * (cal.hour - pattern.peakHour)) / 24);
      rate *= cal.weekend ? pattern.weekend : (7 - 2 * pattern.weekend) / 5;
      // Three spike days a month of ~30: dividing by the mean keeps the share.
      if (pattern.monthly > 0) rate *= (cal.monthSpike ? 1 + pattern.monthly : 1) / (1 + pattern.monthly * 0.1);
      const n = rng.poisson(rate * 60);
      for (let i = 0; i < n; i++) send(q, t0 + rng.int(MINUTE), buf);
      break;
    }
    case 'cron': {
      const minute = Math.floor(t0 / MINUTE);
      if ((minute - pattern.phaseMin) % pattern.periodMin !== 0) return;
      if (pattern.weekdaysOnly && cal.weekend) return;
      let at = pattern.second * 1000;
      if (pattern.jitterMs > 0) {
        const z = Math.max(-3, Math.min(3, rng.normal()));
        at = Math.max(0, Math.min(MINUTE - 1, Math.round(at + z * pattern.jitterMs)));
      }
      const n = 1 + rng.poisson(Math.max(0, pattern.batch * scale - 1));
      // The batch goes out back to back from the firing instant, a large one faster, never
      // past the minute.
      const gap = Math.min(50, 20_000 / n);
      let t = t0 + at;
      for (let i = 0; i < n; i++) {
        send(q, t, buf);
        t = Math.min(t0 + MINUTE - 1, t + Math.round(rng.exponential(gap)));
      }
      break;
    }
    case 'onoff': {
      if (q.onoffFor !== pattern) {
        // Fresh pattern (start or regime change): start in the stationary on/off proportion.
        q.onoffFor = pattern;
        q.on = rng.next() < pattern.onMeanMs / (pattern.onMeanMs + pattern.offMeanMs);
        q.switchAt = t0 + Math.round(rng.exponential(q.on ? pattern.onMeanMs : pattern.offMeanMs));
      }
      const onRate = (pattern.sendRate * scale * (pattern.onMeanMs + pattern.offMeanMs)) / pattern.onMeanMs / 1000;
      let cursor = t0;
      const t1 = t0 + MINUTE;
      while (cursor < t1) {
        const segEnd = Math.min(q.switchAt, t1);
        if (q.on && segEnd > cursor) {
          const n = rng.poisson(onRate * (segEnd - cursor));
          for (let i = 0; i < n; i++) send(q, cursor + rng.int(segEnd - cursor), buf);
        }
        if (q.switchAt <= t1) {
          q.on = !q.on;
          q.switchAt += Math.max(1, Math.round(rng.exponential(q.on ? pattern.onMeanMs : pattern.offMeanMs)));
        }
        cursor = segEnd;
      }
      break;
    }
  }
}

/** A send by one of the queue's producers, and the receive and delete that follow it. */
function send(q: Live, t: number, buf: EventBuffer): void {
  const rng = q.rng;
  const u = rng.next();
  let p = 0;
  while (p < q.producerCdf.length - 1 && u >= q.producerCdf[p]!) p++;
  const qi = q.spec.index;
  buf.push(t, qi, SEND, q.producers[p]!, -1);
  if (rng.next() >= q.spec.receiveProb) return;
  const consumer = q.consumers[rng.int(q.consumers.length)]!;
  const rt = t + Math.min(MAX_RECEIVE_DELAY, Math.round(rng.exponential(q.spec.receiveDelayMs)));
  buf.push(rt, qi, RECEIVE, consumer, -1);
  if (rng.next() >= q.spec.deleteProb) return;
  buf.push(rt + Math.min(MAX_DELETE_DELAY, Math.round(rng.exponential(150))), qi, DELETE, consumer, -1);
}

/** The generated trace as a replayable source (each iteration regenerates it from the start). */
export function syntheticTrace(options: GeneratorOptions = {}): TraceSource & {
  readonly stats: LoadStats;
  batches(): AsyncIterable<TraceEvent[]>;
} {
  resolveOptions(options);
  const source = {
    stats: emptyStats(),
    async *batches(): AsyncGenerator<TraceEvent[]> {
      const stats = emptyStats();
      source.stats = stats;
      const specs = planQueues(options);
      const names = specs.map((s) => s.name);
      const pool = principalNames(specs);
      const nodes = nodeNames(resolveOptions(options).nodes);
      for (const ev of generateMinutes(options)) {
        const batch: TraceEvent[] = new Array(ev.length);
        for (let i = 0; i < ev.length; i++) {
          const e: TraceEvent = { t: ev.t[i]!, queue: names[ev.queue[i]!]!, op: OPS[ev.op[i]!]!, principal: pool[ev.principal[i]!]! };
          if (ev.node[i]! >= 0) e.node = nodes[ev.node[i]!]!;
          batch[i] = e;
        }
        stats.rows += ev.length;
        stats.events += ev.length;
        yield batch;
      }
    },
    [Symbol.asyncIterator](): AsyncIterator<TraceEvent> {
      return flatten(source.batches());
    },
  };
  return source;
}

/** Principal names by pool index (only the ones some queue uses are needed). */
function principalNames(specs: QueueSpec[]): string[] {
  const names: string[] = [];
  for (const s of specs) for (const p of [...s.producers, ...s.consumers]) names[Number(p.slice(1))] = p;
  return names;
}

function nodeNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `n${i}`);
}

/** Writes the trace as generic CSV (`ts_ms,queue,op,principal[,node]`) and sums it up. */
export async function writeSyntheticTrace(path: string, options: GeneratorOptions = {}): Promise<GeneratorSummary> {
  const o = resolveOptions(options);
  const specs = planQueues(options);
  const queuePrefix = specs.map((s) => `,${s.name},`);
  const opText = OPS.map((op) => `${op},`);
  const pool = principalNames(specs);
  const nodes = nodeNames(o.nodes).map((n) => `,${n}`);
  const summary: GeneratorSummary = { events: 0, queues: specs.length, firstMs: -1, lastMs: -1, ops: { send: 0, receive: 0, delete: 0 } };
  const file = await open(path, 'w');
  try {
    let text = o.nodes > 0 ? 'ts_ms,queue,op,principal,node\n' : 'ts_ms,queue,op,principal\n';
    for (const ev of generateMinutes(options)) {
      for (let i = 0; i < ev.length; i++) {
        const op = ev.op[i]!;
        text += ev.t[i]! + queuePrefix[ev.queue[i]!]! + opText[op]! + pool[ev.principal[i]!]!;
        text += o.nodes > 0 ? `${nodes[ev.node[i]!]!}\n` : '\n';
        summary.ops[OPS[op]!]++;
      }
      if (summary.firstMs < 0) summary.firstMs = ev.t[0]!;
      summary.lastMs = ev.t[ev.length - 1]!;
      summary.events += ev.length;
      // Write in chunks of about a megabyte: few syscalls, bounded memory.
      if (text.length > 1 << 20) {
        await file.write(text);
        text = '';
      }
    }
    await file.write(text);
  } finally {
    await file.close();
  }
  return summary;
}

function shuffle<T>(a: T[], rng: Random): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** `n` distinct items (fewer if the pool is smaller), in random order. */
function pick(pool: string[], n: number, rng: Random): string[] {
  const k = Math.min(n, pool.length);
  const chosen = new Set<number>();
  const out: string[] = [];
  while (out.length < k) {
    const i = rng.int(pool.length);
    if (chosen.has(i)) continue;
    chosen.add(i);
    out.push(pool[i]!);
  }
  return out;
}
