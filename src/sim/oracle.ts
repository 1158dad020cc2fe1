import { createBalancer, type BalancerKind } from './balancer.ts';
import { reuseLookup, type BatchSource, type PolicyResult } from './simulator.ts';
import { RequestTally } from './tally.ts';

export interface OracleOptions {
  frontends?: number;
  balancer?: BalancerKind;
  reuseSeconds?: number;
  queueReuseSeconds?: Readonly<Record<string, number>>;
  warmupMs?: number;
  seed?: number;
  timelineBucketMs?: number;
}

interface Chain {
  anchor: number;
  /** First and last use per node within this chain. */
  firstUse: Float64Array;
  lastUse: Float64Array;
}

/**
 * The offline optimum: knowing every future request, it generates a DEK for (queue, principal)
 * exactly when the first request not covered by the previous one arrives, and places it in each
 * node's cache just in time for that node's first use, dropping it after the node's last use.
 * Zero demand misses; the fewest KMS calls any policy can make (greedy interval covering: each
 * key covers [anchor, anchor + reuse) and no key can be issued later than the request it serves).
 * Node assignment uses the same seeded balancer as the simulator.
 */
export async function oracle(source: BatchSource, options: OracleOptions = {}): Promise<PolicyResult> {
  const nodeCount = options.frontends ?? 4;
  const reuseMsOf = reuseLookup(options);
  const warmupMs = options.warmupMs ?? 3_600_000;
  const bucketMs = options.timelineBucketMs ?? 600_000;
  const balancer = createBalancer(options.balancer ?? 'random', nodeCount, options.seed ?? 1);
  const chains = new Map<string, Chain>();
  const tally = new RequestTally(bucketMs);
  let warmupEnd = Infinity;
  let kmsCalls = 0;
  let deliveries = 0;
  let residentMs = 0;
  let events = 0;
  const closeChain = (chain: Chain): void => {
    for (let n = 0; n < nodeCount; n++) {
      const first = chain.firstUse[n]!;
      if (Number.isNaN(first)) continue;
      const from = Math.max(first, warmupEnd);
      if (chain.lastUse[n]! >= from) residentMs += chain.lastUse[n]! - from;
    }
  };
  const wallStart = performance.now();
  for await (const batch of source) {
    for (const event of batch) {
      const t = event.t;
      events++;
      if (warmupEnd === Infinity) warmupEnd = t + warmupMs;
      const node = balancer.pick(event);
      if (t >= warmupEnd) tally.add(t, event.queue, false);
      // Only a send needs the stream's encrypt key; a receive's decrypt key is the tier's (no KMS call).
      if (event.op !== 'send') continue;
      const slot = `${event.queue}\u0000${event.principal ?? 'p0'}`;
      let chain = chains.get(slot);
      if (!chain || t >= chain.anchor + reuseMsOf(event.queue)) {
        if (chain) closeChain(chain);
        chain = { anchor: t, firstUse: new Float64Array(nodeCount).fill(NaN), lastUse: new Float64Array(nodeCount) };
        chains.set(slot, chain);
        if (t >= warmupEnd) kmsCalls++;
      }
      if (Number.isNaN(chain.firstUse[node]!)) {
        chain.firstUse[node] = t;
        if (t >= warmupEnd) deliveries++;
      }
      chain.lastUse[node] = t;
    }
  }
  for (const chain of chains.values()) closeChain(chain);
  const wallMs = performance.now() - wallStart;
  return {
    policy: 'oracle',
    requests: tally.requests,
    demandMisses: 0,
    demandMissRatio: 0,
    perQueueMissRatio: tally.perQueueMissRatio(),
    kmsCalls,
    kmsCallsByReason: { demand: 0, prefetch: kmsCalls, refresh: 0 },
    kmsThrottled: 0,
    kmsCallsVsOracle: 1,
    prefetches: deliveries,
    prefetchesUsed: deliveries,
    wastedPrefetches: 0,
    precision: deliveries > 0 ? 1 : null,
    recall: 1,
    addedLatencyMs: { p50: 0, p99: 0, p999: 0, max: 0 },
    keyResidentSeconds: residentMs / 1000,
    peakCacheEntries: null,
    expiredKeysServed: 0,
    events,
    wallMs,
    eventsPerSecond: wallMs > 0 ? events / (wallMs / 1000) : 0,
    timeline: tally.timeline(),
    perQueue: tally.perQueue(),
  };
}
