import { Random } from '../core/random.ts';
import { parseLatency } from '../kms/latency.ts';
import type { BatchSource, PolicyResult } from './simulator.ts';
import { percentileSorted } from './stats.ts';
import { RequestTally } from './tally.ts';

export interface NoCacheOptions {
  warmupMs?: number;
  kmsLatency?: string;
  hopMs?: number;
  seed?: number;
  timelineBucketMs?: number;
}

/** The reference point with no key cache at all: every request goes to the KMS and waits. */
export async function noCache(source: BatchSource, options: NoCacheOptions = {}): Promise<PolicyResult> {
  const warmupMs = options.warmupMs ?? 3_600_000;
  const hop = options.hopMs ?? 1;
  const bucketMs = options.timelineBucketMs ?? 600_000;
  const sample = parseLatency(options.kmsLatency ?? '10', new Random(options.seed ?? 1).fork('kms-latency'));
  const tally = new RequestTally(bucketMs);
  const latencies: number[] = [];
  let warmupEnd = Infinity;
  let events = 0;
  const wallStart = performance.now();
  for await (const batch of source) {
    for (const event of batch) {
      events++;
      if (warmupEnd === Infinity) warmupEnd = event.t + warmupMs;
      if (event.t < warmupEnd) continue;
      latencies.push(2 * hop + sample());
      tally.add(event.t, event.queue, true);
    }
  }
  const wallMs = performance.now() - wallStart;
  const sorted = Float64Array.from(latencies).sort();
  const n = sorted.length;
  return {
    policy: 'none', requests: n, demandMisses: n, demandMissRatio: n > 0 ? 1 : 0,
    perQueueMissRatio: tally.perQueueMissRatio(),
    kmsCalls: n, kmsCallsByReason: { demand: n, prefetch: 0, refresh: 0 }, kmsThrottled: 0, kmsCallsVsOracle: null,
    prefetches: 0, prefetchesUsed: 0, wastedPrefetches: 0, precision: null, recall: null,
    addedLatencyMs: {
      p50: percentileSorted(sorted, 50), p99: percentileSorted(sorted, 99), p999: percentileSorted(sorted, 99.9),
      max: n > 0 ? sorted[n - 1]! : 0,
    },
    keyResidentSeconds: 0, peakCacheEntries: 0, expiredKeysServed: 0, events, wallMs, eventsPerSecond: wallMs > 0 ? events / (wallMs / 1000) : 0,
    timeline: tally.timeline(),
    perQueue: tally.perQueue(),
  };
}
