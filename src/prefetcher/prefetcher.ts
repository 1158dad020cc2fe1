import type { Timer } from '../core/clock.ts';
import { IndexedMinHeap } from '../core/indexed-heap.ts';
import type { PrefetchInstruction } from '../metadata/types.ts';
import { DEFAULT_COSTS, KmsBudget, ThresholdTuner, thresholdOf, validateCosts, type CostModel } from './cost.ts';
import { decayTo, rateOf } from './models/decay.ts';
import { poissonSurvival, type Model } from './models/model.ts';
import { Ensemble } from './models/ensemble.ts';
import { defaultModels, type ModelOptions } from './models/index.ts';
import { plan } from './planner.ts';
import { QueueState, type StreamState } from './state.ts';
import type { AccessObservation, HistoryBatches, PrefetchHost, QueueStatsObservation } from './types.ts';

export interface PrefetcherOptions {
  /** What a miss, a wasted KMS call and key exposure cost (see CostModel). */
  costs?: Partial<CostModel>;
  /** The models to mix. Default: hot, seasonal, idle-time, queue-load, principal, arima. */
  models?: Model[];
  modelOptions?: ModelOptions;
  /** Window of the decayed request rates (ms). Default 15 min. */
  rateWindowMs?: number;
  /** Requests closer together than this are not scored (busy streams teach the ensemble nothing). Default 30 s. */
  scoreMinGapMs?: number;
  /** Streams idle this long are dropped (ms). Default 8 days, so a weekly pattern survives. */
  forgetAfterMs?: number;
  /** Most streams kept; new streams beyond it are not modelled (counted). Default 1,000,000. */
  maxStreams?: number;
  /** Extra time allowed beyond the host's expected fetch time when a key must be in place (ms). Default 50. */
  leadMarginMs?: number;
  /** Deliver a key fetched on demand by one node to the queue's other likely nodes. Default true. */
  fanOut?: boolean;
  /**
   * Keys generated may exceed the fewest the requests needed by this share before the KMS
   * call's price is raised (see KmsBudget). Default 0.18. Infinity: no budget, costs as given.
   */
  maxKmsOverhead?: number;
  /**
   * The model whose survival decides when it speaks; the ensemble of all models decides when it
   * abstains. Default null: the ensemble always.
   */
  primaryModel?: string | null;
  /** Calibrate the threshold from prefetch outcomes (ThresholdTuner). Default true. */
  calibrate?: boolean;
}

/** See PrefetcherOptions.maxKmsOverhead. */
export const DEFAULT_MAX_KMS_OVERHEAD = 0.18;

/** Counters the service exports and the replay reports. */
export interface PrefetcherStats {
  observed: number;
  streams: number;
  queues: number;
  overflow: number;
  /** Prefetches that generated a new key (a KMS call at background priority). */
  issued: number;
  /** Deliveries of a current key to more nodes (no KMS call). */
  fanOuts: number;
  used: number;
  wasted: number;
  missesAvoided: number;
  demandMisses: number;
  failed: number;
  /** Prefetches the planner wanted that the budget's hard cap refused. */
  overBudget: number;
  /** Decrypt-key prefetches for backlogs asked for, and the keys they delivered (no KMS call for a key the tier holds). */
  backlogPrefetches: number;
  backlogKeys: number;
  /** Key·seconds of exposure the prefetcher's deliveries asked for (nodes × remaining key life). */
  exposureKeySeconds: number;
}

/**
 * The Predictive Key Prefetcher. It learns, for every key stream (one queue and principal), when
 * the next request will come, and has a new key generated and delivered to the nodes that will
 * serve it just before; it delivers a key fetched by one node to the queue's other nodes; it
 * scores every prefetch and re-weights its models and its threshold from the outcomes.
 *
 * It sees ids, counts and times, never a key: the host's `prefetch` answers with an expiry. It
 * runs on the host's clock, so the same code runs live and in the simulator. Stopping it leaves
 * the service reactive (fail-open).
 */
export class Prefetcher {
  readonly costs: CostModel;
  readonly ensemble: Ensemble;
  readonly tuner: ThresholdTuner;
  readonly budget: KmsBudget;
  readonly stats: PrefetcherStats = {
    observed: 0, streams: 0, queues: 0, overflow: 0, issued: 0, fanOuts: 0, used: 0, wasted: 0,
    missesAvoided: 0, demandMisses: 0, failed: 0, overBudget: 0, backlogPrefetches: 0, backlogKeys: 0, exposureKeySeconds: 0,
  };
  private readonly queues = new Map<string, QueueState>();
  /** Streams by when the planner should look at them next; a stream moves in place when its time changes. */
  private readonly due = new IndexedMinHeap<StreamState>((a, b) => a.dueAt < b.dueAt);
  private timer: Timer | null = null;
  private timerAt = Infinity;
  private readonly rateWindowMs: number;
  private readonly scoreMinGapMs: number;
  private readonly forgetAfterMs: number;
  private readonly maxStreams: number;
  private readonly leadMarginMs: number;
  private readonly fanOut: boolean;
  private readonly nodeIndex = new Map<string, number>();
  private readonly primary: Model | undefined;
  private readonly calibrate: boolean;
  private openIds = 0;
  /** Streams with a prefetched key not yet scored: generated ahead of the request the optimum counts it at. */
  private openPrefetches = 0;
  private stopped = false;
  private lastSweep = -Infinity;
  /** Slowest recent prefetch round trip (decays), so the lead time follows the real system. */
  private slowFetchMs = 0;

  constructor(private readonly host: PrefetchHost, options: PrefetcherOptions = {}) {
    this.costs = validateCosts({ ...DEFAULT_COSTS, ...options.costs });
    this.rateWindowMs = options.rateWindowMs ?? 15 * 60_000;
    this.scoreMinGapMs = options.scoreMinGapMs ?? 30_000;
    this.forgetAfterMs = options.forgetAfterMs ?? 8 * 86_400_000;
    this.maxStreams = options.maxStreams ?? 1_000_000;
    this.leadMarginMs = options.leadMarginMs ?? 50;
    this.fanOut = options.fanOut ?? true;
    const models = options.models ?? defaultModels(this.rateWindowMs, options.modelOptions);
    this.ensemble = new Ensemble(models);
    const primaryName = options.primaryModel ?? null;
    this.primary = primaryName === null ? undefined : models.find((m) => m.name === primaryName);
    this.calibrate = options.calibrate ?? true;
    this.budget = new KmsBudget(options.maxKmsOverhead ?? DEFAULT_MAX_KMS_OVERHEAD);
    this.tuner = new ThresholdTuner(() => thresholdOf(this.costs, this.kmsPrice));
    host.nodeIds.forEach((id, i) => this.nodeIndex.set(id, i));
  }

  /** P(no request of the stream in (now, t]): the primary model's when it speaks, else the ensemble's; NaN when none speaks. */
  survival(s: StreamState, now: number, t: number): number {
    if (this.primary !== undefined) {
      const v = this.primary.survival(s, now, t);
      if (!Number.isNaN(v)) return v;
    }
    return this.ensemble.survival(s, now, t);
  }

  /** The probability threshold in force (cost model, tuned by outcomes). */
  get threshold(): number {
    return this.calibrate ? this.tuner.threshold : this.tuner.base();
  }

  get precision(): number | null {
    const n = this.stats.used + this.stats.wasted;
    return n > 0 ? this.stats.used / n : null;
  }

  /** Misses avoided over misses avoided plus misses suffered. */
  get recall(): number | null {
    const n = this.stats.missesAvoided + this.stats.demandMisses;
    return n > 0 ? this.stats.missesAvoided / n : null;
  }

  /** Learns from one request and reacts to it (fan-out after a miss, a plan for the key's renewal). */
  observe(o: AccessObservation): void {
    if (this.stopped) return;
    const reuseMs = this.host.reuseMsOf(o.queueId);
    const s = this.learn(o.queueId, o.principal, o.nodeId, o.op, o.at, reuseMs);
    if (!s) return;
    const q = s.queue;
    if (o.prefetchedFirstUse) {
      q.missesAvoided++;
      this.stats.missesAvoided++;
    }
    if (o.hit) {
      if (o.keyExpiresAt !== undefined && o.keyExpiresAt > s.coveredUntil) {
        s.coveredUntil = o.keyExpiresAt;
        this.setDue(s, s.coveredUntil - this.leadMs());
        this.backlogKeysDueFrom(q, o.at);
      }
    } else {
      q.demandMisses++;
      this.stats.demandMisses++;
      // The demand fetch gets the tier's key, or a new one whose life starts at this request.
      if (s.coveredUntil <= o.at) {
        s.coveredUntil = o.at + reuseMs;
        this.budget.generatedKey(o.at);
        // Its message is queued once the key arrives.
        this.backlogKeysDueFrom(q, o.at + this.leadMs());
      }
      this.fanOutAfterMiss(s, o.nodeId, o.at);
      this.setDue(s, s.coveredUntil - this.leadMs());
    }
    if (s.dueAt === Infinity) this.setDue(s, Math.max(o.at, s.coveredUntil - this.leadMs()));
    this.sweep(o.at);
  }

  /** Queue statistics (the backlog) from a front-end. */
  observeQueueStats(o: QueueStatsObservation): void {
    if (this.stopped) return;
    const q = this.queues.get(o.queueId);
    if (!q) return;
    q.backlog = Math.max(0, Math.floor(o.backlog));
    q.consumersSeen = true;
    this.prefetchBacklogKeys(q, o.at);
  }

  /**
   * Queue load: messages waiting under a DEK mean consumers will need its decrypt key. Once the
   * queue has consumers (a receive seen), has it delivered to every node likely to serve the next
   * receive: the full fan-out of encrypt keys (targetNodes), since a node that has not served one
   * yet would miss on it, a miss no KMS call can prevent. At most ten times per key life: a new
   * DEK waits at most a tenth of it, and a DEK the tier holds costs a store read and a seal per
   * node, no KMS call.
   */
  private prefetchBacklogKeys(q: QueueState, at: number): void {
    const host = this.host;
    if (!host.prefetchDecrypt || q.backlog <= 0 || q.receiveCount === 0) return;
    const reuseMs = host.reuseMsOf(q.id);
    if (at - q.backlogPrefetchAt < reuseMs / 10) return;
    const nodeIds = [...this.targetNodes(q.id)];
    if (nodeIds.length === 0) return;
    q.backlogPrefetchAt = at;
    this.stats.backlogPrefetches++;
    const seen = rateOf(q.receiveCount, q.receiveAt, at, this.rateWindowMs);
    const rate = Math.max(seen, 1 / reuseMs);
    // Only the DEKs of the messages consumers are expected to reach within a key's life are bought
    // from the KMS (at least the next one: a queue with a backlog costs at most one Decrypt per key
    // life); the rest are delivered while the tier holds them. Without this a message that waits n
    // key lives cost n Decrypts: 3.7x as many on a generated day, for 8 % fewer misses.
    const buyMessages = Math.ceil(seen * reuseMs);
    void host.prefetchDecrypt({ queueId: q.id, nodeIds, score: 1 - Math.exp(-rate * reuseMs), buyMessages }).then((keys) => {
      if (typeof keys !== 'number' || keys <= 0) return;
      this.stats.backlogKeys += keys;
      // Each key on each node for at most a key life (what is left of it is not known here).
      this.noteExposure(keys * nodeIds.length, reuseMs);
    });
  }

  /**
   * A send sealed (or will seal, once its fetch is done) a message under a new DEK: the backlog's
   * decrypt keys may be delivered again from `at` on, not a tenth of a key life after the last
   * delivery. Otherwise a receive of that message would miss on every node it is sent to until
   * then, misses that grow with the nodes. One more delivery per DEK, no KMS call (the tier holds it).
   */
  private backlogKeysDueFrom(q: QueueState, at: number): void {
    if (q.receiveCount === 0) return;
    q.backlogPrefetchAt = Math.min(q.backlogPrefetchAt, at - q.reuseMs / 10);
  }

  /**
   * Learns from retained history before following the live stream: the models and stream state
   * are updated, nothing is prefetched, no coverage is assumed.
   */
  async bootstrap(history: HistoryBatches): Promise<number> {
    let n = 0;
    for await (const batch of history) {
      for (const e of batch) {
        this.learn(e.queue, e.principal ?? 'p0', e.node ?? '', e.op, e.t, this.host.reuseMsOf(e.queue));
        n++;
      }
    }
    return n;
  }

  /** Stops planning and prefetching; the service goes on reactively. */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    this.timerAt = Infinity;
  }

  /**
   * One prediction pass: for every stream, the probability of a request within `horizonMs` from
   * now. Used by the benchmark and the operator's view; decisions use the planner.
   */
  predictAll(horizonMs: number, visit?: (queueId: string, principal: string, probability: number) => void): number {
    const now = this.host.clock.now();
    let n = 0;
    for (const q of this.queues.values()) {
      for (const s of q.streams()) {
        const surv = this.survival(s, now, now + horizonMs);
        const p = Number.isNaN(surv) ? 0 : 1 - surv;
        visit?.(q.id, s.principal, p);
        n++;
      }
    }
    return n;
  }

  /** Per-queue outcome counts (precision and recall per queue). */
  queueOutcomes(): { queueId: string; used: number; wasted: number; missesAvoided: number; demandMisses: number }[] {
    return [...this.queues.values()].map((q) => ({
      queueId: q.id, used: q.prefetchesUsed, wasted: q.prefetchesWasted, missesAvoided: q.missesAvoided, demandMisses: q.demandMisses,
    }));
  }

  /**
   * Estimated bytes of state per active queue: the slab pool (all chunks, used or not) plus the
   * queue and stream objects (~260 and ~330 bytes with V8's headers, Map entries and the due-heap's
   * slot) and the per-node counts. `npm run bench -- prefetcher` measures the heap beside it.
   */
  bytesPerQueue(): number {
    if (this.queues.size === 0) return 0;
    let bytes = this.ensemble.pool.allocatedBytes + 330 * this.stats.streams;
    for (const q of this.queues.values()) bytes += 260 + (q.nodeCounts ? 100 + q.nodeCounts.byteLength : 0);
    return bytes / this.queues.size;
  }

  /** Model weights averaged over streams (what the ensemble has learned). */
  meanWeights(): Record<string, number> {
    const sums = new Float64Array(this.ensemble.size);
    let n = 0;
    for (const q of this.queues.values()) {
      for (const s of q.streams()) {
        for (let m = 0; m < sums.length; m++) sums[m]! += this.ensemble.weight(s, m);
        n++;
      }
    }
    return Object.fromEntries(this.ensemble.models.map((m, i) => [m.name, n > 0 ? sums[i]! / n : 0]));
  }

  /** Stream state for tests and the operator's view; undefined when the stream is unknown. */
  stream(queueId: string, principal: string): StreamState | undefined {
    return this.queues.get(queueId)?.streamOf(principal);
  }

  // ---- learning ------------------------------------------------------------------------------

  private learn(queueId: string, principal: string, nodeId: string, op: AccessObservation['op'], at: number, reuseMs: number): StreamState | undefined {
    this.stats.observed++;
    // Only a send uses the stream's encrypt key: receives and deletes teach the queue (its
    // consumers, their rate, its backlog), not the stream.
    if (op !== 'send') {
      this.learnConsumer(queueId, op, at, reuseMs);
      return undefined;
    }
    let q = this.queues.get(queueId);
    let s = q?.streamOf(principal);
    if (!s) {
      if (this.stats.streams >= this.maxStreams) {
        this.stats.overflow++;
        return undefined;
      }
      if (!q) {
        q = new QueueState(queueId);
        this.queues.set(queueId, q);
        this.stats.queues++;
      }
      s = this.ensemble.newStream(q, principal, at);
      q.addStream(s);
      this.stats.streams++;
    }
    q = s.queue;
    q.reuseMs = reuseMs;
    // Events may arrive slightly out of order (several front-ends): time never runs backwards here.
    if (at < s.lastAt) at = s.lastAt;
    if (s.openId !== 0 && at >= s.openAt - this.leadMs() && at < s.openExpiresAt) this.resolve(s, true);
    if (at >= s.optimalAnchor + reuseMs) {
      s.optimalAnchor = at;
      this.budget.optimalKey(at);
    }
    const gap = at - s.lastAt;
    if (s.requests > 0 && gap >= this.scoreMinGapMs) {
      this.ensemble.scoreArrival(s, at, Math.max(10_000, Math.min(reuseMs / 2, gap / 10)));
    }
    const models = this.ensemble.models;
    for (let m = 0; m < models.length; m++) models[m]!.observe(s, at);
    const w = this.rateWindowMs;
    s.decayedCount = decayTo(s.decayedCount, s.decayedAt, at, w) + 1;
    s.decayedAt = at;
    s.lastAt = at;
    if (s.requests === 0) s.firstAt = at;
    s.requests++;
    q.decayedCount = decayTo(q.decayedCount, q.decayedAt, at, w) + 1;
    q.decayedAt = at;
    q.requests++;
    q.backlog++;
    this.countNode(q, nodeId);
    return s;
  }

  /** A receive or delete: the queue's consumer state (known queues only: a queue is known by its sends). */
  private learnConsumer(queueId: string, op: AccessObservation['op'], at: number, reuseMs: number): void {
    const q = this.queues.get(queueId);
    if (!q) return;
    q.reuseMs = reuseMs;
    q.consumersSeen = true;
    if (op === 'receive') {
      q.receiveCount = decayTo(q.receiveCount, q.receiveAt, at, this.rateWindowMs) + 1;
      q.receiveAt = at;
    } else if (op === 'delete' && q.backlog > 0) q.backlog--;
  }

  /** Counts the request for its node; the node's index, −1 when the node is unknown. */
  private countNode(q: QueueState, nodeId: string): number {
    const index = this.nodeIndex.get(nodeId);
    if (index === undefined) return -1;
    if (q.firstNode === -1) q.firstNode = index;
    if (q.nodeCounts === null) {
      if (index === q.firstNode) return index;
      q.nodeCounts = new Float32Array(this.host.nodeIds.length);
      q.nodeCounts[q.firstNode] = q.requests - 1;
    }
    q.nodeCounts[index]!++;
    return index;
  }

  // ---- planning and triggering ---------------------------------------------------------------

  /** The budget's price of a KMS call now (1 with no budget), the cap's pressure included: see KmsBudget.priceWith. */
  get kmsPrice(): number {
    return Number.isFinite(this.budget.maxOverhead) ? this.budget.priceWith(this.openPrefetches) : 1;
  }

  private leadMs(): number {
    return Math.max(this.host.expectedFetchMs, this.slowFetchMs) * 2 + this.leadMarginMs;
  }

  /** Sets when the planner looks at the stream next (Infinity: never, until something happens). */
  private setDue(s: StreamState, at: number): void {
    if (at === s.dueAt) return;
    s.dueAt = at;
    if (at === Infinity) this.due.remove(s);
    else if (s.heapIndex < 0) this.due.push(s);
    else this.due.update(s);
    this.arm();
  }

  private arm(): void {
    if (this.stopped) return;
    const next = this.due.peek()?.dueAt ?? Infinity;
    if (next >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = next;
    if (next === Infinity) return;
    const clock = this.host.clock;
    this.timer = clock.setTimer(Math.max(0, next - clock.now()), () => {
      this.timer = null;
      this.timerAt = Infinity;
      this.runDue();
    });
  }

  private runDue(): void {
    const now = this.host.clock.now();
    // Take every due stream out first: a plan made now can only be due later (consider() sees to
    // it), so this pass always ends.
    const ready: StreamState[] = [];
    for (let top = this.due.peek(); top && top.dueAt <= now; top = this.due.peek()) {
      this.due.pop();
      top.dueAt = Infinity;
      ready.push(top);
    }
    for (const s of ready) this.consider(s, now);
    this.arm();
  }

  /** Looks at one stream: settles its last prefetch, then plans (and maybe prefetches). */
  private consider(s: StreamState, now: number): void {
    if (this.stopped || s.inFlight) return;
    const lead = this.leadMs();
    if (s.openId !== 0 && now >= s.openExpiresAt - lead) this.resolve(s, false);
    if (now - s.lastAt > this.forgetAfterMs) {
      this.drop(s);
      return;
    }
    const reuseMs = this.host.reuseMsOf(s.queue.id);
    const nodes = this.targetNodes(s.queue.id);
    // The budget's price weighs a wasted key's exposure as it weighs its KMS call: with the price
    // on the call alone, the exposure set a floor under what a budget could buy, and a larger X
    // bought less (queue sample, X = 0.4: the curve stopped at 1.19×). The exposure is priced per
    // key, not per node holding it (see CostModel.residentKeySecondCost).
    const exposurePrice = this.kmsPrice;
    const residencyCost = ((this.costs.residentKeySecondCost * reuseMs) / 1000 / this.costs.missCost) * exposurePrice;
    const decision = plan({
      now,
      // With no model able to speak yet (a stream seen once or twice), nothing is predicted.
      survival: (t) => {
        const v = this.survival(s, now, t);
        return Number.isNaN(v) ? 1 : v;
      },
      coveredUntil: s.coveredUntil,
      reuseMs,
      leadMs: lead,
      threshold: this.threshold,
      residencyCost,
      continuation: 1 - poissonSurvival(rateOf(s.decayedCount, s.decayedAt, now, this.rateWindowMs), reuseMs),
    });
    if (decision.kind === 'wait') {
      this.setDue(s, Math.max(decision.at, now + 1));
      return;
    }
    if (!this.budget.allows(this.openPrefetches)) {
      // Over budget: this stream goes reactive until requests bring the optimum's count up.
      this.stats.overBudget++;
      this.setDue(s, now + Math.min(reuseMs / 10, 30_000));
      return;
    }
    this.prefetchNewKey(s, now, reuseMs, decision.probability, nodes);
  }

  private prefetchNewKey(s: StreamState, now: number, reuseMs: number, probability: number, candidates: readonly string[]): void {
    const lead = this.leadMs();
    const nodeIds = [...candidates];
    if (nodeIds.length === 0) {
      this.setDue(s, now + reuseMs);
      return;
    }
    this.ensemble.openWindow(s, now, now + lead, now + reuseMs);
    const id = ++this.openIds;
    if (s.openId === 0) this.openPrefetches++;
    s.openId = id;
    s.openAt = now + lead;
    s.openExpiresAt = Infinity;
    s.openProbability = probability;
    s.inFlight = true;
    this.stats.issued++;
    this.noteExposure(nodeIds.length, reuseMs);
    const renewing = s.coveredUntil > now;
    const instruction: PrefetchInstruction = {
      queueId: s.queue.id,
      principal: s.principal,
      nodeIds,
      reason: renewing ? 'refresh' : 'prefetch',
      score: probability,
      deadline: now + reuseMs / 2,
      // A key that would not outlive the one already known is no use: ask for its successor.
      minRemainingMs: renewing ? s.coveredUntil - now + 1 : lead,
    };
    const started = now;
    void this.host.prefetch(instruction).then((expiresAt) => {
      s.inFlight = false;
      if (this.stopped || s.slot < 0) return; // stopped, or the stream was dropped meanwhile
      const at = this.host.clock.now();
      this.noteFetchTime(at - started);
      // Only a finite time is an answer: the host contract allows nothing else through.
      if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
        this.stats.failed++;
        if (s.openId === id) this.closeOpen(s);
        this.setDue(s, at + Math.min(reuseMs / 4, 60_000));
        return;
      }
      if (s.openId === id) s.openExpiresAt = expiresAt;
      if (expiresAt > s.coveredUntil) {
        s.coveredUntil = expiresAt;
        this.budget.generatedKey(at);
      }
      this.setDue(s, Math.max(at, s.coveredUntil - this.leadMs()));
    });
  }

  /**
   * After a demand miss the key tier holds the key; the queue's other nodes would each miss on it
   * in turn (a spread miss, which no KMS call can prevent). Deliver it to every node likely to
   * serve the stream before it expires (no KMS call).
   */
  private fanOutAfterMiss(s: StreamState, missNode: string, now: number): void {
    if (!this.fanOut || s.coveredUntil <= now) return;
    const nodeIds = this.targetNodes(s.queue.id).filter((n) => n !== missNode);
    if (nodeIds.length === 0) return;
    this.stats.fanOuts++;
    this.noteExposure(nodeIds.length, s.coveredUntil - now);
    void this.host.prefetch({ queueId: s.queue.id, principal: s.principal, nodeIds, reason: 'prefetch', score: 1, deadline: s.coveredUntil });
  }

  /**
   * Full fan-out, bounded by the balancer: every node it may send the queue's next request to
   * (all nodes for a spread queue, the nodes that served it for a sticky or traced one). A key
   * held by some nodes only turns the others' requests into misses that cost no KMS call to avoid.
   */
  private targetNodes(queueId: string): readonly string[] {
    return this.host.nodesFor(queueId);
  }

  /** Key·seconds of exposure a delivery adds (its nodes × the key's remaining life). */
  private noteExposure(nodes: number, lifeMs: number): void {
    this.stats.exposureKeySeconds += (nodes * Math.max(0, lifeMs)) / 1000;
  }

  // ---- feedback ------------------------------------------------------------------------------

  /** Scores the stream's open prefetch: its key was used, or expired unused. */
  private resolve(s: StreamState, used: boolean): void {
    this.closeOpen(s);
    if (s.openExpiresAt === Infinity && !used) return; // never delivered: nothing to learn
    this.ensemble.scoreWindow(s, used);
    this.tuner.record(s.openProbability, used);
    if (used) {
      s.queue.prefetchesUsed++;
      this.stats.used++;
    } else {
      s.queue.prefetchesWasted++;
      this.stats.wasted++;
    }
  }

  private closeOpen(s: StreamState): void {
    if (s.openId !== 0) this.openPrefetches--;
    s.openId = 0;
  }

  private noteFetchTime(ms: number): void {
    this.slowFetchMs = Math.max(ms, this.slowFetchMs * 0.98);
  }

  private drop(s: StreamState): void {
    const q = s.queue;
    if (!q.removeStream(s)) return; // already dropped
    this.due.remove(s);
    s.dueAt = Infinity;
    this.closeOpen(s);
    this.ensemble.release(s);
    this.stats.streams--;
    if (q.streamCount === 0) {
      this.queues.delete(q.id);
      this.stats.queues--;
    }
  }

  /** Drops idle streams that have no plan (planned ones are dropped when their plan comes due). */
  private sweep(now: number): void {
    if (now - this.lastSweep < 3_600_000) return;
    this.lastSweep = now;
    for (const q of this.queues.values()) {
      for (const s of [...q.streams()]) if (s.dueAt === Infinity && !s.inFlight && now - s.lastAt > this.forgetAfterMs) this.drop(s);
    }
  }
}
