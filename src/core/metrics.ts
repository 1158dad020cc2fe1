import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** All Prometheus metrics of one service instance, on their own registry. */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
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
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
