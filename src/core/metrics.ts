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

/** The `outcome` label of pkp_prefetches_total, and the prefetcher count each one exports. */
const PREFETCH_OUTCOMES = {
  issued: 'issued', used: 'used', wasted: 'wasted', failed: 'failed', fanout: 'fanOuts', backlog_keys: 'backlogKeys',
} as const satisfies Record<string, keyof PrefetchMetricsSource['stats']>;
type PrefetchOutcomeLabel = keyof typeof PREFETCH_OUTCOMES;
const OUTCOME_LABELS = Object.keys(PREFETCH_OUTCOMES) as PrefetchOutcomeLabel[];

/** All Prometheus metrics of one service instance, on their own registry. */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  let prefetchSource: PrefetchMetricsSource | undefined;
  /** What the counter has been given so far of the source's own (cumulative) counts. */
  const exported: Record<PrefetchOutcomeLabel, number> = { issued: 0, used: 0, wasted: 0, failed: 0, fanout: 0, backlog_keys: 0 };
  const read = (f: (source: PrefetchMetricsSource) => number | null): number => {
    if (!prefetchSource) return 0;
    try {
      const v = f(prefetchSource);
      return v !== null && Number.isFinite(v) ? v : 0;
    } catch {
      return 0;
    }
  };
  return {
    registry,
    buildInfo: new Gauge({ name: 'pkp_build_info', help: 'Always 1; labels name the running version', labelNames: ['version', 'node_version'] as const, registers }),
    requests: new Counter({ name: 'pkp_sqs_requests_total', help: 'SQS requests by action and HTTP status', labelNames: ['action', 'status'] as const, registers }),
    requestSeconds: new Histogram({
      name: 'pkp_sqs_request_duration_seconds', help: 'SQS request latency by action', labelNames: ['action'] as const, registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25],
    }),
    keyCache: new Counter({ name: 'pkp_keycache_events_total', help: 'Key-cache events per node', labelNames: ['node', 'kind', 'use'] as const, registers }),
    keyCacheEntries: new Gauge({ name: 'pkp_keycache_entries', help: 'Key-cache entries per node', labelNames: ['node'] as const, registers }),
    keyFetchSeconds: new Histogram({
      name: 'pkp_key_fetch_duration_seconds', help: 'Time a request waited for a key (demand misses)', labelNames: ['use'] as const, registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    }),
    kmsCalls: new Counter({ name: 'pkp_kms_calls_total', help: 'KMS calls by operation and reason', labelNames: ['operation', 'reason'] as const, registers }),
    kmsThrottled: new Counter({ name: 'pkp_kms_throttled_total', help: 'KMS calls refused by the quota', registers }),
    storeOps: new Counter({ name: 'pkp_store_operations_total', help: 'Message-store operations', labelNames: ['op'] as const, registers }),
    prefetchDropped: new Counter({ name: 'pkp_prefetch_dropped_total', help: 'Prefetch requests dropped (budget or queue full)', registers }),
    prefetches: new Counter({
      name: 'pkp_prefetches_total',
      help: 'Predictive prefetches: issued (new key), fanout (key delivered to more nodes), used, wasted, failed, backlog_keys (decrypt keys of waiting messages delivered)',
      labelNames: ['outcome'] as const,
      registers,
      collect() {
        if (!prefetchSource) return;
        for (const outcome of OUTCOME_LABELS) {
          const total = read((s) => s.stats[PREFETCH_OUTCOMES[outcome]]);
          this.inc({ outcome }, Math.max(0, total - exported[outcome]));
          exported[outcome] = Math.max(exported[outcome], total);
        }
      },
    }),
    prefetchPrecision: new Gauge({
      name: 'pkp_prefetch_precision', help: 'Prefetched keys used over prefetched keys settled (0 before any)', registers,
      collect() { this.set(read((s) => s.precision)); },
    }),
    prefetchRecall: new Gauge({
      name: 'pkp_prefetch_recall', help: 'Misses avoided over misses avoided plus demand misses (0 before any)', registers,
      collect() { this.set(read((s) => s.recall)); },
    }),
    prefetchThreshold: new Gauge({
      name: 'pkp_prefetch_threshold', help: 'Probability threshold the prefetcher acts on', registers,
      collect() { this.set(read((s) => s.threshold)); },
    }),
    prefetcherStreams: new Gauge({
      name: 'pkp_prefetcher_streams', help: 'Key streams (queue, principal) the prefetcher models', registers,
      collect() { this.set(read((s) => s.stats.streams)); },
    }),
    /** Where the prefetcher metrics read from on each scrape; undefined when prefetching is off. */
    setPrefetchSource(source: PrefetchMetricsSource | undefined): void {
      prefetchSource = source;
      for (const outcome of OUTCOME_LABELS) exported[outcome] = 0;
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
