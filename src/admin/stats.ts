/**
 * What the dashboard and the demo line show: the service's counters sampled once a second into a
 * one-hour ring, so every figure can be given over a recent window (10 s, a minute, an hour) rather
 * than since start. Ids, counts and times only: no body, attribute value or key is ever read.
 */
import type { EventBus } from '../bus/types.ts';
import type { Clock } from '../core/clock.ts';
import type { Metrics } from '../core/metrics.ts';
import type { KeyCache } from '../keycache/key-cache.ts';
import type { CountingKms } from '../kms/types.ts';
import type { Prefetcher } from '../prefetcher/prefetcher.ts';
import { everyQueueCounts } from '../store/queue-counts.ts';
import type { MessageStore } from '../store/types.ts';

export interface StatsParts {
  clock: Clock;
  store: MessageStore;
  kms: CountingKms;
  metrics: Metrics;
  bus: EventBus;
  frontends: { nodeId: string; cache: KeyCache }[];
  prefetcher: Prefetcher | undefined;
}

/** Cumulative counts at one instant. */
interface Sample {
  at: number;
  requests: number;
  nodes: { hits: number; misses: number }[];
  issued: number;
  used: number;
  wasted: number;
  demandMisses: number;
  kms: { demand: number; prefetch: number; refresh: number };
  /** Request latency histogram (all actions): cumulative count per upper bound. */
  latency: number[];
}

/** Per-queue request counts at one sample: kept for the last few seconds only (see QUEUE_RING). */
interface QueueSample {
  at: number;
  sends: Map<string, number>;
  receives: Map<string, number>;
}

const RING = 3600;
/**
 * Per-queue rates are shown over the last 10 s only, so per-queue counts are kept for 11 samples,
 * not the hour: copies of a 10,000-queue map every second for an hour would be 36 M entries.
 */
const QUEUE_RING = 11;
/** Queues shown at most (deepest first): the table stays readable and bounded. */
const MAX_QUEUES = 50;

export class ServiceStats {
  private readonly samples: Sample[] = [];
  private readonly queueSamples: QueueSample[] = [];
  private readonly sends = new Map<string, number>();
  private readonly receives = new Map<string, number>();
  private readonly unsubscribe: () => void;
  private timer: NodeJS.Timeout | undefined;
  private bounds: number[] = [];

  constructor(private readonly parts: StatsParts) {
    this.unsubscribe = parts.bus.subscribe((event) => {
      if (event.type !== 'access') return;
      if (event.op === 'send') this.sends.set(event.queueId, (this.sends.get(event.queueId) ?? 0) + 1);
      else if (event.op === 'receive') this.receives.set(event.queueId, (this.receives.get(event.queueId) ?? 0) + 1);
    });
  }

  /** Samples now and every second (real time: this watches a running service). */
  start(): this {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), 1000);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.unsubscribe();
  }

  async sample(): Promise<void> {
    const { frontends, prefetcher, kms, metrics } = this.parts;
    const histogram = await metrics.requestSeconds.get();
    const byBound = new Map<number, number>();
    let requests = 0;
    for (const v of histogram.values) {
      if (v.metricName?.endsWith('_bucket')) {
        const labels = v.labels as Record<string, string | number | undefined>;
        const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
        byBound.set(le, (byBound.get(le) ?? 0) + v.value);
      } else if (v.metricName?.endsWith('_count')) requests += v.value;
    }
    this.bounds = [...byBound.keys()].sort((a, b) => a - b);
    const k = kms.counts().byReason;
    let demandMisses = 0;
    for (const f of frontends) demandMisses += f.cache.stats.misses;
    this.samples.push({
      at: this.parts.clock.now(),
      requests,
      nodes: frontends.map((f) => ({ hits: f.cache.stats.hits, misses: f.cache.stats.misses })),
      issued: prefetcher?.stats.issued ?? 0,
      used: prefetcher?.stats.used ?? 0,
      wasted: prefetcher?.stats.wasted ?? 0,
      demandMisses,
      kms: { demand: k.demand, prefetch: k.prefetch, refresh: k.refresh },
      latency: this.bounds.map((b) => byBound.get(b)!),
    });
    if (this.samples.length > RING) this.samples.shift();
    this.queueSamples.push({ at: this.parts.clock.now(), sends: new Map(this.sends), receives: new Map(this.receives) });
    if (this.queueSamples.length > QUEUE_RING) this.queueSamples.shift();
  }

  /** The newest sample and the oldest one no older than `ms` before it. */
  private window(ms: number): [Sample, Sample] | undefined {
    const last = this.samples.at(-1);
    if (!last) return undefined;
    let first = last;
    for (let i = this.samples.length - 1; i >= 0 && last.at - this.samples[i]!.at <= ms; i--) first = this.samples[i]!;
    return [first, last];
  }

  /** Figures over the last `ms`: rates per second, ratios of the counts in the window (null: nothing happened). */
  windowed(ms: number) {
    const w = this.window(ms);
    if (!w) return undefined;
    const [a, b] = w;
    const seconds = Math.max(1e-3, (b.at - a.at) / 1000);
    const ratio = (x: number, y: number): number | null => (x + y > 0 ? x / (x + y) : null);
    const used = b.used - a.used;
    const wasted = b.wasted - a.wasted;
    const misses = b.demandMisses - a.demandMisses;
    return {
      seconds,
      requestsPerSecond: (b.requests - a.requests) / seconds,
      nodes: this.parts.frontends.map((f, i) => ({
        node: f.nodeId,
        hitRatio: ratio(b.nodes[i]!.hits - a.nodes[i]!.hits, b.nodes[i]!.misses - a.nodes[i]!.misses),
      })),
      hitRatio: ratio(sum(b.nodes, 'hits') - sum(a.nodes, 'hits'), sum(b.nodes, 'misses') - sum(a.nodes, 'misses')),
      prefetch: { issued: b.issued - a.issued, used, wasted, precision: ratio(used, wasted), recall: ratio(used, misses) },
      kms: { demand: b.kms.demand - a.kms.demand, prefetch: b.kms.prefetch - a.kms.prefetch, refresh: b.kms.refresh - a.kms.refresh },
      latency: { p50: this.quantile(a, b, 0.5), p99: this.quantile(a, b, 0.99) },
    };
  }

  /** A latency quantile (seconds) from the histogram counts that arrived between two samples, interpolated within its bucket. */
  private quantile(a: Sample, b: Sample, q: number): number | null {
    const counts = b.latency.map((c, i) => c - (a.latency[i] ?? 0));
    const total = counts.at(-1) ?? 0;
    if (total <= 0) return null;
    const rank = q * total;
    for (let i = 0; i < counts.length; i++) {
      if (counts[i]! >= rank) {
        const lower = i > 0 ? this.bounds[i - 1]! : 0;
        const upper = Number.isFinite(this.bounds[i]!) ? this.bounds[i]! : lower;
        const below = i > 0 ? counts[i - 1]! : 0;
        const inBucket = counts[i]! - below;
        return inBucket > 0 ? lower + ((upper - lower) * (rank - below)) / inBucket : upper;
      }
    }
    return null;
  }

  /** Everything the dashboard shows, as JSON: current state, windowed figures and per-second series. */
  async snapshot(seriesSeconds = 600) {
    const { store, frontends, prefetcher, clock } = this.parts;
    const now = clock.now();
    const minute = this.windowed(60_000);
    const hour = this.windowed(3_600_000);
    const a = this.queueSamples[0];
    const b = this.queueSamples.at(-1);
    const perSecond = (m: 'sends' | 'receives', queueId: string): number => {
      if (!a || !b) return 0;
      return ((b[m].get(queueId) ?? 0) - (a[m].get(queueId) ?? 0)) / Math.max(1e-3, (b.at - a.at) / 1000);
    };
    const queues = (await everyQueueCounts(store, now)).map(({ queue, counts }) => ({
      name: queue.name, visible: counts.visible, inFlight: counts.inFlight, delayed: counts.delayed,
      sendPerSecond: perSecond('sends', queue.queueId), receivePerSecond: perSecond('receives', queue.queueId),
    }));
    queues.sort((x, y) => y.visible + y.inFlight + y.delayed - (x.visible + x.inFlight + x.delayed) || (x.name < y.name ? -1 : 1));
    const budget = prefetcher?.budget;
    return {
      at: now,
      queueCount: queues.length,
      queues: queues.slice(0, MAX_QUEUES),
      nodes: frontends.map((f, i) => ({
        node: f.nodeId, entries: f.cache.size, hitRatio1m: minute?.nodes[i]!.hitRatio ?? null, hitRatio1h: hour?.nodes[i]!.hitRatio ?? null,
      })),
      prefetcher: prefetcher
        ? {
            on: true,
            issued: prefetcher.stats.issued, used: prefetcher.stats.used, wasted: prefetcher.stats.wasted,
            windowSeconds: 300, ...pick(this.windowed(300_000)?.prefetch),
            threshold: prefetcher.threshold,
            kmsBudget: { maxOverhead: Number.isFinite(budget!.maxOverhead) ? budget!.maxOverhead : null, priceFactor: prefetcher.kmsPrice, overhead: budget!.ratio },
          }
        : { on: false },
      series: this.series(seriesSeconds),
    };
  }

  /** Per-second series over the last `seconds`: x in unix seconds, one y array per line. */
  private series(seconds: number) {
    const s = this.samples.slice(-seconds - 1);
    const t: number[] = [];
    const demand: number[] = [];
    const prefetch: number[] = [];
    const refresh: number[] = [];
    const rps: number[] = [];
    const p50: (number | null)[] = [];
    const p99: (number | null)[] = [];
    for (let i = 1; i < s.length; i++) {
      const a = s[i - 1]!;
      const b = s[i]!;
      const dt = Math.max(1e-3, (b.at - a.at) / 1000);
      t.push(b.at / 1000);
      demand.push((b.kms.demand - a.kms.demand) / dt);
      prefetch.push((b.kms.prefetch - a.kms.prefetch) / dt);
      refresh.push((b.kms.refresh - a.kms.refresh) / dt);
      rps.push((b.requests - a.requests) / dt);
      // Latency over a sliding 10 s so that quiet seconds do not make the line jump.
      const from = s[Math.max(0, i - 10)]!;
      const ms = (x: number | null) => (x === null ? null : x * 1000);
      p50.push(ms(this.quantile(from, b, 0.5)));
      p99.push(ms(this.quantile(from, b, 0.99)));
    }
    return { t, kms: { demand, prefetch, refresh }, requestsPerSecond: rps, latencyMs: { p50, p99 } };
  }
}

const sum = (xs: { hits: number; misses: number }[], k: 'hits' | 'misses'): number => xs.reduce((acc, x) => acc + x[k], 0);
const pick = (p: { precision: number | null; recall: number | null } | undefined) => ({ precision: p?.precision ?? null, recall: p?.recall ?? null });
