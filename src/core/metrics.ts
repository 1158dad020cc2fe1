import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the prefetcher metrics read on each scrape (the Prefetcher satisfies it): counts only. */
export interface PrefetchMetricsSource {
  readonly stats: {
    readonly issued: number;
    readonly used: number;
    readonly wasted: number;
    readonly failed: number;
    readonly fanOuts: number;
    readonly backlogKeys: number;
    readonly streams: number;
  };
  readonly precision: number | null;
  readonly recall: number | null;
  readonly threshold: number;
}

/**
 * The prefetcher's counts, each exported as a counter of its own family: events (a key generated,
 * a key fanned out, a backlog's keys delivered) apart from outcomes (used, wasted, failed), so that
 * sum() over a family means something. Ratios (precision, recall) are left to PromQL.
 */
const PREFETCH_COUNTERS = {
  issued: { name: 'pkp_prefetches_issued_total', help: 'Prefetches that generated a new key (a KMS call)', stat: 'issued' },
  fanout: { name: 'pkp_prefetch_fanouts_total', help: 'Keys fetched on demand by one node and delivered to the queue\'s other likely nodes (no KMS call)', stat: 'fanOuts' },
  backlog: { name: 'pkp_prefetch_backlog_keys_total', help: 'Decrypt keys of waiting messages delivered to the nodes that may serve the queue\'s receives', stat: 'backlogKeys' },
} as const satisfies Record<string, { name: string; help: string; stat: keyof PrefetchMetricsSource['stats'] }>;
/** pkp_prefetch_outcomes_total{outcome}: how each prefetched key ended. */
const PREFETCH_OUTCOMES = { used: 'used', wasted: 'wasted', failed: 'failed' } as const satisfies Record<string, keyof PrefetchMetricsSource['stats']>;
type Exported = 'issued' | 'fanout' | 'backlog' | keyof typeof PREFETCH_OUTCOMES;

/** Per-queue depth gauges: at most this many queues (the deepest), so the label set stays bounded. Default. */
export const DEFAULT_QUEUE_METRICS = 10;

/** What the per-queue depth gauges read on each scrape. */
export interface QueueDepthSource {
  depths(): Promise<{ queue: string; visible: number; inFlight: number; delayed: number }[]>;
}

/** All Prometheus metrics of one service instance, on their own registry. */
export function createMetrics(options: { defaultMetrics?: boolean; queueMetrics?: number } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  let prefetchSource: PrefetchMetricsSource | undefined;
  let queueSource: QueueDepthSource | undefined;
  // The depth gauges and the queue count collect at once on a scrape: they share one read of the depths.
  let depthsRead: ReturnType<QueueDepthSource['depths']> | undefined;
  const depths = (source: QueueDepthSource) => (depthsRead ??= source.depths().finally(() => (depthsRead = undefined)));
  const queueLimit = options.queueMetrics ?? DEFAULT_QUEUE_METRICS;
  /** What each counter has been given so far of the source's own (cumulative) counts. */
  const exported: Record<Exported, number> = { issued: 0, fanout: 0, backlog: 0, used: 0, wasted: 0, failed: 0 };
  const read = (f: (source: PrefetchMetricsSource) => number | null): number => {
    if (!prefetchSource) return 0;
    try {
      const v = f(prefetchSource);
      return v !== null && Number.isFinite(v) ? v : 0;
    } catch {
      return 0;
    }
  };
  /** Brings a counter up to the source's count (counters only go up; a new source starts from 0). */
  const catchUp = (counter: { inc(value: number): void } | { inc(labels: { outcome: string }, value: number): void }, key: Exported, stat: keyof PrefetchMetricsSource['stats'], outcome?: string): void => {
    const total = read((src) => src.stats[stat]);
    const delta = Math.max(0, total - exported[key]);
    if (outcome !== undefined) (counter as { inc(labels: { outcome: string }, value: number): void }).inc({ outcome }, delta);
    else (counter as { inc(value: number): void }).inc(delta);
    exported[key] = Math.max(exported[key], total);
  };
  const prefetchCounter = (key: keyof typeof PREFETCH_COUNTERS) => new Counter({
    name: PREFETCH_COUNTERS[key].name, help: PREFETCH_COUNTERS[key].help, registers: [],
    collect() { if (prefetchSource) catchUp(this, key, PREFETCH_COUNTERS[key].stat); },
  });
  // Counted per request (several times a request, for the store's operations): kept as plain
  // numbers and handed to prom-client when scraped.
  const requestCounts = tally<'action' | 'code'>(['action', 'code']);
  const storeOpCounts = tally<'op'>(['op']);
  const keyCacheCounts = tally<'node' | 'kind' | 'use'>(['node', 'kind', 'use']);
  const metrics = {
    registry,
    buildInfo: new Gauge({ name: 'pkp_build_info', help: 'Always 1; labels name the running version', labelNames: ['version', 'node_version'] as const, registers }),
    requests: new Counter({
      name: 'pkp_sqs_requests_total', help: 'SQS requests by action and HTTP status code', labelNames: ['action', 'code'] as const, registers,
      collect() { requestCounts.flushInto(this); },
    }),
    requestSeconds: new Histogram({
      name: 'pkp_sqs_request_duration_seconds', help: 'SQS request latency by action', labelNames: ['action'] as const, registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25],
    }),
    keyCache: new Counter({
      name: 'pkp_keycache_events_total', help: 'Key-cache events per node', labelNames: ['node', 'kind', 'use'] as const, registers,
      collect() { keyCacheCounts.flushInto(this); },
    }),
    keyCacheEntries: new Gauge({ name: 'pkp_keycache_entries', help: 'Key-cache entries per node', labelNames: ['node'] as const, registers }),
    keyFetchSeconds: new Histogram({
      name: 'pkp_key_fetch_duration_seconds', help: 'Time a request waited for a key (demand misses)', labelNames: ['use'] as const, registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    }),
    kmsCalls: new Counter({ name: 'pkp_kms_calls_total', help: 'KMS calls by operation and reason', labelNames: ['operation', 'reason'] as const, registers }),
    kmsThrottled: new Counter({ name: 'pkp_kms_throttled_total', help: 'KMS calls refused by the quota', registers }),
    connectionsRefused: new Counter({ name: 'pkp_sqs_connections_refused_total', help: 'Connections closed at once because the endpoint held its maximum', registers }),
    longPollsRefused: new Counter({ name: 'pkp_sqs_long_polls_refused_total', help: 'Long polls answered empty at once because the most waiters were already parked', registers }),
    storeOps: new Counter({
      name: 'pkp_store_operations_total', help: 'Message-store operations', labelNames: ['op'] as const, registers,
      collect() { storeOpCounts.flushInto(this); },
    }),
    prefetchDropped: new Counter({ name: 'pkp_prefetch_dropped_total', help: 'Prefetch requests dropped (budget or queue full)', registers }),
    prefetchesIssued: prefetchCounter('issued'),
    prefetchFanouts: prefetchCounter('fanout'),
    prefetchBacklogKeys: prefetchCounter('backlog'),
    prefetchOutcomes: new Counter({
      name: 'pkp_prefetch_outcomes_total', help: 'How prefetched keys ended: used (a miss avoided), wasted (expired or evicted unused), failed (the KMS call failed)',
      labelNames: ['outcome'] as const, registers: [],
      collect() {
        if (!prefetchSource) return;
        for (const [outcome, stat] of Object.entries(PREFETCH_OUTCOMES)) catchUp(this, outcome as Exported, stat, outcome);
      },
    }),
    prefetchThreshold: new Gauge({
      name: 'pkp_prefetch_threshold', help: 'Probability threshold the prefetcher acts on (from the cost model, the calibration and the KMS budget)', registers: [],
      collect() { if (prefetchSource) this.set(read((src) => src.threshold)); },
    }),
    queueMessages: new Gauge({
      name: 'pkp_queue_messages', help: `Messages per queue and state, for the ${queueLimit} deepest queues (bounded label set; --metrics-queues)`,
      labelNames: ['queue', 'state'] as const, registers,
      async collect() {
        if (!queueSource || queueLimit === 0) return this.reset();
        const all = [...(await depths(queueSource))];
        this.reset();
        all.sort((a, b) => b.visible + b.inFlight + b.delayed - (a.visible + a.inFlight + a.delayed) || (a.queue < b.queue ? -1 : 1));
        for (const q of all.slice(0, queueLimit)) {
          this.set({ queue: q.queue, state: 'visible' }, q.visible);
          this.set({ queue: q.queue, state: 'in_flight' }, q.inFlight);
          this.set({ queue: q.queue, state: 'delayed' }, q.delayed);
        }
      },
    }),
    queues: new Gauge({
      name: 'pkp_queues', help: 'Queues that exist', registers,
      async collect() { if (queueSource) this.set((await depths(queueSource)).length); },
    }),
    prefetcherStreams: new Gauge({
      name: 'pkp_prefetcher_streams', help: 'Key streams (queue, principal) the prefetcher models', registers: [],
      collect() { if (prefetchSource) this.set(read((src) => src.stats.streams)); },
    }),
    /** Where the prefetcher metrics read from on each scrape; undefined when prefetching is off. */
    setPrefetchSource(source: PrefetchMetricsSource | undefined): void {
      prefetchSource = source;
      // Registered only once there is a prefetcher: without one they would read 0, which says nothing.
      for (const m of [metrics.prefetchesIssued, metrics.prefetchFanouts, metrics.prefetchBacklogKeys, metrics.prefetchOutcomes, metrics.prefetchThreshold, metrics.prefetcherStreams]) {
        if (source && registry.getSingleMetric((m as unknown as { name: string }).name) === undefined) registry.registerMetric(m);
      }
      for (const key of Object.keys(exported) as Exported[]) exported[key] = 0;
    },
    /** Where the per-queue depth gauges read from on each scrape. */
    setQueueSource(source: QueueDepthSource | undefined): void {
      queueSource = source;
    },
  };
  return Object.assign(metrics, {
    countRequest: (action: string, code: string) => requestCounts.of(action, code),
    countStoreOp: (op: string) => storeOpCounts.of(op),
    countKeyCacheEvent: (node: string, kind: string, use: string) => keyCacheCounts.of(node, kind, use),
  });
}

/**
 * A labelled counter's counts as plain numbers, one per label set (a small, bounded set), handed to
 * the prom-client counter when it is read (its collect hook). prom-client builds, hashes and checks
 * the label object on every inc(), through its label children too: the per-request paths skip that.
 */
function tally<L extends string>(labelNames: readonly L[]) {
  const counts = new Map<string, { labels: Record<L, string>; n: number; inc(): void }>();
  return {
    of(...values: string[]): { inc(): void } {
      const key = values.length === 1 ? values[0]! : values.join('\u0000');
      let count = counts.get(key);
      if (count === undefined) {
        const labels = Object.fromEntries(labelNames.map((name, i) => [name, values[i]!])) as Record<L, string>;
        count = { labels, n: 0, inc() { this.n++; } };
        counts.set(key, count);
      }
      return count;
    },
    flushInto(counter: Counter<L>): void {
      for (const count of counts.values()) {
        if (count.n === 0) continue;
        counter.inc(count.labels, count.n);
        count.n = 0;
      }
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
