import { VirtualClock } from '../core/clock.ts';
import { Random } from '../core/random.ts';
import type { KeyCache } from '../keycache/key-cache.ts';
import { joinMetadataService, type NodeKeyring } from '../keycache/node-keyring.ts';
import { createKeyTier, createNodeKeys } from '../compose.ts';
import { parseLatency } from '../kms/latency.ts';
import { ModeledKms } from '../kms/modeled-kms.ts';
import { SimulatedKms } from '../kms/simulated-kms.ts';
import type { DecryptedDataKey, EncryptionContext, GeneratedDataKey, KeyMetadata, KeyReason, Kms } from '../kms/types.ts';
import type { CachedKey } from '../keycache/types.ts';
import type { MetadataClient, MetadataService } from '../metadata/metadata-service.ts';
import type { KeyRequestOptions, PrefetchInstruction, QueueKeySettings } from '../metadata/types.ts';
import { createBalancer, type BalancerKind } from './balancer.ts';
import { copyChannels, joinWithCopyChannel } from './copy-channel.ts';
import type { Policy, PolicyContext, RequestObservation } from './policy.ts';
import { percentileWithZeros } from './stats.ts';
import { RequestTally } from './tally.ts';
import type { TraceEvent } from './traces/types.ts';
import type { BacklogDek } from '../store/types.ts';
import type { QueueStatsObservation } from '../prefetcher/types.ts';

export interface SimulationOptions {
  frontends?: number;
  balancer?: BalancerKind;
  /** Data-key reuse period of every queue (s). Default 300. */
  reuseSeconds?: number;
  /** Reuse periods of named queues (s), overriding reuseSeconds for them. */
  queueReuseSeconds?: Readonly<Record<string, number>>;
  /** Trace time at the start that is replayed but not measured (ms). Default 1 h. */
  warmupMs?: number;
  /** Key-cache entries per node. Default unlimited. */
  capacity?: number;
  /** KMS latency spec (see parseLatency). Default '10'. */
  kmsLatency?: string;
  /** KMS request quota (calls/s); default none. */
  kmsRatePerSecond?: number;
  /** Front-end ↔ metadata service latency, each way (ms). Default 1. */
  hopMs?: number;
  /** KMS calls/s allowed for prefetches. Default unlimited. */
  prefetchBudgetPerSecond?: number;
  seed?: number;
  /** Width of the miss-ratio-over-time buckets (ms). Default 10 min. */
  timelineBucketMs?: number;
  /**
   * How keys travel to the nodes: 'copy' (default; see CopyChannel: the figures do not depend on
   * sealing, the run time does) or 'x25519', the service's sealed channel.
   */
  sealing?: 'copy' | 'x25519';
}

export interface TimelinePoint {
  t: number;
  requests: number;
  misses: number;
}

export interface QueueOutcome {
  queue: string;
  requests: number;
  misses: number;
}

/** What one policy did over one trace, measured after the warm-up. */
export interface PolicyResult {
  policy: string;
  requests: number;
  demandMisses: number;
  demandMissRatio: number;
  perQueueMissRatio: { p50: number; p90: number };
  kmsCalls: number;
  kmsCallsByReason: Record<KeyReason, number>;
  /** KMS Decrypt calls (a receive's DEK the key tier no longer held). Not in kmsCalls, which counts keys generated. */
  kmsDecryptCalls?: number;
  /** Demand misses of receives (waiting for a message's decrypt key); the rest are sends'. */
  decryptMisses?: number;
  /** Receives that got a message (and so needed its decrypt key). */
  keyedReceives?: number;
  /** Decrypt keys the backlog prefetch delivered (DEKs × nodes' instructions), in the measured window. */
  backlogKeysDelivered?: number;
  kmsThrottled: number;
  /** Filled in by the replay when the oracle ran too. */
  kmsCallsVsOracle: number | null;
  /** Keys delivered to node caches ahead of need. */
  prefetches: number;
  prefetchesUsed: number;
  wastedPrefetches: number;
  /** Used prefetches / prefetches that were used or wasted. */
  precision: number | null;
  /** Reactive misses this policy avoided, as a share of reactive's misses. Filled in by the replay. */
  recall: number | null;
  addedLatencyMs: { p50: number; p99: number; p999: number; max: number };
  keyResidentSeconds: number;
  /** Sum over nodes of each node's peak entry count; null where not modelled. */
  peakCacheEntries: number | null;
  /** Requests served with a key at or past its expiry. Must be 0: checked on every hit. */
  expiredKeysServed: number;
  events: number;
  /** Time from the trace's first event to its last (ms). */
  spanMs?: number;
  wallMs: number;
  eventsPerSecond: number;
  timeline: TimelinePoint[];
  perQueue: QueueOutcome[];
}

export type BatchSource = AsyncIterable<TraceEvent[]> | Iterable<TraceEvent[]>;

const DEFAULT_PRINCIPAL = 'p0';
/** A receive's miss needs the key in the node's cache, nothing more. */
const ignoreKey = (): undefined => undefined;

interface SimNode {
  id: string;
  cache: KeyCache;
  keyring: NodeKeyring;
}

/** Front-end ↔ metadata transport with a fixed latency each way (the simulator's swap for HTTP/NATS). */
class HopTransport implements MetadataClient {
  constructor(private readonly inner: MetadataService, private readonly clock: VirtualClock, private readonly hopMs: number) {}

  delay(): Promise<void> {
    return this.hopMs > 0 ? new Promise((resolve) => this.clock.setTimer(this.hopMs, resolve)) : Promise.resolve();
  }

  fetchEncryptKey(nodeId: string, queueId: string, principal: string, options?: KeyRequestOptions) {
    return this.roundTrip(() => this.inner.fetchEncryptKey(nodeId, queueId, principal, options));
  }

  fetchDecryptKey(nodeId: string, queueId: string, encryptedDek: Buffer, options?: KeyRequestOptions) {
    return this.roundTrip(() => this.inner.fetchDecryptKey(nodeId, queueId, encryptedDek, options));
  }

  /** One hop there, the call, one hop back. */
  private async roundTrip<T>(call: () => Promise<T>): Promise<T> {
    await this.delay();
    const answer = await call();
    await this.delay();
    return answer;
  }
}

/**
 * Replays a trace through the real key caches, metadata service and key tier in virtual time,
 * with a modelled KMS, under one policy. A request that finds no valid key in its node's cache
 * waits for the fetch: a demand miss.
 */
export async function simulate(source: BatchSource, policy: Policy, options: SimulationOptions = {}): Promise<PolicyResult> {
  const nodeCount = options.frontends ?? 4;
  if (!Number.isInteger(nodeCount) || nodeCount < 1) throw new RangeError('frontends must be a positive integer');
  const warmupMs = options.warmupMs ?? 3_600_000;
  const hopMs = options.hopMs ?? 1;
  const seed = options.seed ?? 1;
  const bucketMs = options.timelineBucketMs ?? 600_000;
  const latencySpec = options.kmsLatency ?? '10';
  const sealed = (options.sealing ?? 'copy') === 'x25519';
  const rng = new Random(seed);
  const clock = new VirtualClock(0, { settle: 'microtasks' });
  let measuring = false;

  let kmsThrottled = 0;
  // By the encrypted DEK itself, not its id: the blob the KMS model returns is the very Buffer
  // every node's cached key holds (nothing serializes it in the simulator), and a lookup by
  // identity hashes nothing. A use whose DEK is not found is counted, and fails the run.
  const issued = new Map<Buffer, IssuedDek>();
  let unissuedUses = 0;
  const noteUse = (key: CachedKey, t: number): void => {
    const dek = issued.get(key.encryptedDek);
    if (dek === undefined) unissuedUses++;
    else if (t < dek.firstUse) dek.firstUse = t;
  };
  const kms = new IssueRecordingKms(new ModeledKms(new SimulatedKms({ seed }), clock, {
    latency: parseLatency(latencySpec, rng.fork('kms-latency')),
    ratePerSecond: options.kmsRatePerSecond,
    onThrottle: () => {
      if (measuring) kmsThrottled++;
    },
  }), clock, issued);
  const reuseMsOf = reuseLookup(options);
  // Everything the simulator keeps per queue, found with one lookup per request.
  const queues = new Map<string, SimQueue>();
  const queueOf = (queueId: string): SimQueue => {
    let q = queues.get(queueId);
    if (!q) queues.set(queueId, (q = new SimQueue({ queueId, kmsMasterKeyId: 'sim-key', reuseMs: reuseMsOf(queueId) })));
    return q;
  };
  const settingsOf = (queueId: string): QueueKeySettings => queueOf(queueId).settings;
  // The service's key path (compose.ts), with the simulator's clock, KMS model and transport.
  const { metadata } = createKeyTier({
    kms, clock, settingsOf, expiryTimer: false, maxEntries: 50_000_000, maxBytes: Infinity,
    scheduler: { maxInFlight: Infinity, backgroundPerSecond: options.prefetchBudgetPerSecond ?? Infinity, backgroundQueueLimit: 1_000_000 },
    backlog: { store: { backlogDeks: async (queueId, q) => queues.get(queueId)?.backlog.deks(q.maxDeks ?? 16) ?? [] }, clock },
    ...(sealed ? {} : { channels: copyChannels }),
  });
  const transport = new HopTransport(metadata, clock, hopMs);

  const nodes: SimNode[] = [];
  for (let i = 0; i < nodeCount; i++) {
    const id = `fe-${i + 1}`;
    const { cache, keyring } = createNodeKeys({
      nodeId: id, clock, metadata: transport, channel: sealed ? joinMetadataService(metadata, id) : joinWithCopyChannel(metadata, id),
      cache: { maxEntries: options.capacity ?? 1_000_000_000, maxBytes: Infinity, expiryTimer: false },
      // A request waits for its key however long the modelled KMS takes: a finite timeout only
      // added two timers per miss (the fetch and its shared flight), which never fired.
      keyring: { fetchTimeoutMs: Infinity },
    });
    nodes.push({ id, cache, keyring });
  }
  const nodeIds = nodes.map((n) => n.id);
  let backlogKeysDelivered = 0;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  metadata.setDelivery({ deliver: (d) => clock.setTimer(hopMs, () => byId.get(d.nodeId)?.keyring.deliver(d)) });

  const balancer = createBalancer(options.balancer ?? 'random', nodeCount, seed);
  const expectedFetchMs = 3 * hopMs + medianOf(latencySpec, rng.fork('median'));
  // Async work started at this instant (a miss's fetch, a prefetch) must reach its first timer
  // before virtual time moves on; it does once the microtask queue has drained.
  let unsettled = false;
  const context: PolicyContext = {
    clock,
    nodeIds,
    nodesFor: (queueId) => balancer.nodesFor(queueId).map((i) => nodeIds[i]!),
    reuseMsOf: (queueId) => settingsOf(queueId).reuseMs,
    expectedFetchMs,
    prefetch: (instruction: PrefetchInstruction) => {
      unsettled = true;
      return transport.delay().then(() => metadata.prefetch(instruction)).then((outcome) => outcome.expiresAt, () => undefined);
    },
    prefetchDecrypt: (instruction) => {
      unsettled = true;
      const counted = measuring;
      return transport.delay().then(() => metadata.prefetchDecrypt({ ...instruction, deadline: clock.now() + reuseMsOf(instruction.queueId) })).then((outcome) => {
        if (counted) backlogKeysDelivered += outcome.delivered;
        return outcome.keys;
      }, () => 0);
    },
  };
  policy.start(context);

  // Measurements.
  let events = 0;
  const latencies: number[] = [];
  const tally = new RequestTally(bucketMs);
  let pendingMisses = 0;
  let decryptMisses = 0;
  let keyedReceives = 0;
  let expiredKeysServed = 0;
  let warmupEnd = Infinity;
  let lastT = 0;
  const baseline = { residentMs: 0 };
  let firstT = Infinity;
  const startMeasuring = (): void => {
    measuring = true;
    kms.measuring = true;
    for (const n of nodes) {
      // Prefetches count when issued in the measured window: one made in the warm-up is neither used nor wasted here.
      n.cache.startWindow(clock.now());
      baseline.residentMs += n.cache.residentMsUntil();
    }
  };
  const queueStats: QueueStatsObservation = { at: 0, queueId: '', backlog: 0 };
  /** A request waits for its key: counted until the fetch settles, its wait measured. */
  const startMiss = (fetch: Promise<unknown>, t: number): void => {
    pendingMisses++;
    unsettled = true;
    const counted = measuring;
    const done = (): void => {
      pendingMisses--;
      if (counted) latencies.push(clock.now() - t);
    };
    void fetch.then(done, done);
  };
  const observation: RequestObservation = { at: 0, queueId: '', principal: '', nodeId: '', op: 'send', hit: false, keyExpiresAt: undefined, prefetchedFirstUse: false };

  /**
   * Brings virtual time to t: the work started at the last instant first reaches its timers,
   * then every timer due by t fires (starting the measured window on the way).
   */
  const reach = async (t: number): Promise<void> => {
    if (unsettled) {
      unsettled = false;
      await clock.advanceTo(clock.now());
    }
    if (!measuring && t >= warmupEnd) {
      if (clock.nextTimerAt() <= warmupEnd) await clock.advanceTo(warmupEnd, true);
      else clock.jumpTo(warmupEnd);
      startMeasuring();
    }
    if (clock.nextTimerAt() <= t) await clock.advanceTo(t, true);
    else clock.jumpTo(t);
  };
  /** Serves one request at its time: its node, its key (a demand miss when absent), the measurements, the policy told. */
  const serve = (event: TraceEvent): void => {
    const t = event.t;
    events++;
    const node = nodes[balancer.pick(event)]!;
    const queueId = event.queue;
    const queue = queueOf(queueId);
    const principal = event.principal ?? DEFAULT_PRINCIPAL;
    const op = event.op;
    // A send needs the stream's encrypt key; a receive the decrypt key of the message it gets
    // (none when the queue is empty); a delete no key.
    let key: CachedKey | undefined;
    let needsKey = false;
    if (op === 'send') {
      needsKey = true;
      key = node.cache.getEncrypt(queueId, principal);
      const backlog = queue.backlog;
      if (key !== undefined) {
        backlog.push(key);
        // Requests come in time order, so a DEK's first use is the first hit of some node's
        // entry for it (or a miss's use below): later hits of an entry cannot be earlier.
        if (node.cache.lastHitWasFirstUse) noteUse(key, t);
      } else {
        const useAt = (k: CachedKey): void => {
          backlog.push(k);
          noteUse(k, t);
        };
        startMiss(node.keyring.fetchEncryptKey(queueId, principal, useAt), t);
      }
    } else if (op === 'receive') {
      const message = queue.backlog.shift();
      if (message !== undefined) {
        needsKey = true;
        if (measuring) keyedReceives++;
        key = node.cache.getDecrypt(message.dekId, queueId);
        if (key === undefined) {
          if (measuring) decryptMisses++;
          startMiss(node.keyring.withDecryptKey(queueId, message.dekId, message.encryptedDek, ignoreKey), t);
        }
      }
    }
    if (key !== undefined && key.expiresAt <= t) expiredKeysServed++;
    const missed = needsKey && key === undefined;
    if (measuring) tally.addTo(t, (queue.outcome ??= tally.outcomeOf(queueId)), missed);
    observation.at = t;
    observation.queueId = queueId;
    observation.principal = principal;
    observation.nodeId = node.id;
    observation.op = op;
    // As the live service reports them: a receive or delete is a hit with no known expiry.
    observation.hit = !missed;
    observation.keyExpiresAt = op === 'send' ? key?.expiresAt : undefined;
    observation.prefetchedFirstUse = key !== undefined && node.cache.lastHitWasPrefetchedFirstUse;
    policy.onRequest(observation);
    if (op !== 'delete' && policy.onQueueStats) {
      queueStats.at = t;
      queueStats.queueId = queueId;
      queueStats.backlog = queue.backlog.length;
      policy.onQueueStats(queueStats);
    }
  };

  const wallStart = performance.now();
  for await (const batch of source) {
    // Indexed, and the request served by a plain function: inside this loop, which awaits, V8
    // kept an iterator result per event and boxed every fractional time it held.
    for (let i = 0; i < batch.length; i++) {
      const event = batch[i]!;
      const t = event.t;
      if (warmupEnd === Infinity) {
        warmupEnd = t + warmupMs;
        firstT = t;
      }
      // Most requests find nothing due: time moves without an await.
      if (unsettled || (!measuring && t >= warmupEnd) || clock.nextTimerAt() <= t) await reach(t);
      else clock.jumpTo(t);
      lastT = t;
      serve(event);
    }
  }
  if (!measuring) startMeasuring();
  const end = lastT;
  let residentMs = -baseline.residentMs;
  for (const n of nodes) residentMs += n.cache.residentMsUntil(end);
  policy.finish?.();
  // Let the fetches still in flight at the end finish, so their waits are counted.
  for (let guard = 0; pendingMisses > 0 && guard < 3600; guard++) await clock.advance(1000);
  const wallMs = performance.now() - wallStart;

  let used = 0;
  let wasted = 0;
  let inserted = 0;
  let peak = 0;
  for (const n of nodes) {
    used += n.cache.stats.windowPrefetchedUsed;
    wasted += n.cache.stats.windowPrefetchedWasted;
    inserted += n.cache.stats.windowPrefetchedInserted;
    peak += n.cache.stats.peakEntries;
  }
  metadata.close();
  for (const n of nodes) n.cache.clear();
  if (unissuedUses > 0) throw new Error(`simulator: ${unissuedUses} encrypt-key uses of DEKs it did not see issued (a copied blob?): KMS calls cannot be attributed`);

  // A DEK's KMS call counts when the key first served a request after the warm-up, or, never
  // used, when it was issued after the warm-up: the same rule the oracle's chains follow.
  const kmsByReason: Record<KeyReason, number> = { demand: 0, prefetch: 0, refresh: 0 };
  for (const dek of issued.values()) {
    if (dek.firstUse === Infinity ? dek.issuedAt >= warmupEnd && dek.issuedAt <= end : dek.firstUse >= warmupEnd) kmsByReason[dek.reason]++;
  }
  latencies.sort((a, b) => a - b);
  const { requests, misses } = tally;
  const kmsCalls = kmsByReason.demand + kmsByReason.prefetch + kmsByReason.refresh;
  return {
    policy: policy.name,
    requests,
    demandMisses: misses,
    demandMissRatio: requests > 0 ? misses / requests : 0,
    perQueueMissRatio: tally.perQueueMissRatio(),
    kmsCalls,
    kmsCallsByReason: kmsByReason,
    kmsDecryptCalls: kms.decryptCalls,
    decryptMisses,
    keyedReceives,
    backlogKeysDelivered,
    kmsThrottled,
    kmsCallsVsOracle: null,
    prefetches: inserted,
    prefetchesUsed: used,
    wastedPrefetches: wasted,
    precision: used + wasted > 0 ? used / (used + wasted) : null,
    recall: null,
    addedLatencyMs: {
      p50: percentileWithZeros(latencies, requests, 50),
      p99: percentileWithZeros(latencies, requests, 99),
      p999: percentileWithZeros(latencies, requests, 99.9),
      max: latencies.length > 0 ? latencies[latencies.length - 1]! : 0,
    },
    keyResidentSeconds: residentMs / 1000,
    peakCacheEntries: peak,
    expiredKeysServed,
    events,
    spanMs: events > 0 ? end - firstT : 0,
    wallMs,
    eventsPerSecond: wallMs > 0 ? events / (wallMs / 1000) : 0,
    timeline: tally.timeline(),
    perQueue: tally.perQueue(),
  };
}

interface IssuedDek {
  reason: KeyReason;
  issuedAt: number;
  firstUse: number;
}

/** Notes every DEK the KMS issues, so each KMS call can be attributed to the key's first use. */
class IssueRecordingKms implements Kms {
  /** Decrypt calls while measuring (see measuring). */
  decryptCalls = 0;
  measuring = false;

  constructor(private readonly inner: Kms, private readonly clock: VirtualClock, private readonly issued: Map<Buffer, IssuedDek>) {}

  async generateDataKey(keyIdOrAlias: string, context: EncryptionContext, reason: KeyReason): Promise<GeneratedDataKey> {
    const calledAt = this.clock.now();
    const generated = await this.inner.generateDataKey(keyIdOrAlias, context, reason);
    this.issued.set(generated.ciphertextBlob, { reason, issuedAt: calledAt, firstUse: Infinity });
    return generated;
  }

  decrypt(ciphertextBlob: Buffer, context: EncryptionContext, reason: KeyReason): Promise<DecryptedDataKey> {
    if (this.measuring) this.decryptCalls++;
    return this.inner.decrypt(ciphertextBlob, context, reason);
  }

  describeKey(keyIdOrAlias: string): Promise<KeyMetadata> {
    return this.inner.describeKey(keyIdOrAlias);
  }
}

/** One queue as the simulator sees it: its key settings, its waiting messages, its measured counters. */
class SimQueue {
  /**
   * The waiting messages, oldest first, under the DEK each send sealed it with: a receive takes
   * the oldest and needs its decrypt key; the backlog decrypt prefetch reads them.
   */
  readonly backlog = new Backlog();
  /** Set at the queue's first measured request. */
  outcome: QueueOutcome | undefined;

  constructor(readonly settings: QueueKeySettings) {}
}

/**
 * A queue's waiting messages (oldest first) as runs of consecutive messages under one DEK: a send
 * under the current key extends the last run (no allocation per message, which the all-sends
 * Azure traces would otherwise pay on every event).
 */
class Backlog {
  private runs: { dekId: string; encryptedDek: Buffer; count: number }[] = [];
  private head = 0;
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(key: CachedKey): void {
    this.size++;
    const last = this.runs.length > this.head ? this.runs[this.runs.length - 1]! : undefined;
    if (last !== undefined && last.dekId === key.dekId) last.count++;
    else this.runs.push({ dekId: key.dekId, encryptedDek: key.encryptedDek, count: 1 });
  }

  /** Takes the oldest message: its DEK. */
  shift(): { dekId: string; encryptedDek: Buffer } | undefined {
    if (this.head >= this.runs.length) return undefined;
    const run = this.runs[this.head]!;
    this.size--;
    if (--run.count === 0) {
      this.head++;
      // Compact now and then, so a long-lived queue does not keep every run it ever had.
      if (this.head > 64 && this.head * 2 > this.runs.length) {
        this.runs = this.runs.slice(this.head);
        this.head = 0;
      }
    }
    return run;
  }

  /** The distinct DEKs of the oldest waiting messages, oldest first (what MessageStore.backlogDeks answers). */
  deks(max: number): BacklogDek[] {
    const out = new Map<string, BacklogDek>();
    for (let i = this.head; i < this.runs.length && out.size < max; i++) {
      const r = this.runs[i]!;
      const d = out.get(r.dekId);
      if (d) d.messages += r.count;
      else out.set(r.dekId, { dekId: r.dekId, encryptedDek: r.encryptedDek, messages: r.count, firstVisibleAt: 0 });
    }
    return [...out.values()];
  }
}

/** Each queue's reuse period (ms): its own where named, else every queue's. */
export function reuseLookup(options: { reuseSeconds?: number; queueReuseSeconds?: Readonly<Record<string, number>> }): (queueId: string) => number {
  const all = (options.reuseSeconds ?? 300) * 1000;
  const named = options.queueReuseSeconds;
  if (!named) return () => all;
  return (queueId) => {
    const own = Object.hasOwn(named, queueId) ? named[queueId] : undefined;
    return own !== undefined ? own * 1000 : all;
  };
}

/** Median of a latency distribution, sampled (the policies' lead time). */
function medianOf(spec: string, rng: Random): number {
  const sample = parseLatency(spec, rng);
  const values = Array.from({ length: 1001 }, sample).sort((a, b) => a - b);
  return values[500]!;
}
