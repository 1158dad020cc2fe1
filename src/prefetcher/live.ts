import type { AccessEvent, EventBus, PkpEvent, QueueOp, Unsubscribe } from '../bus/types.ts';
import { observationsOf } from './aggregated.ts';
import type { Clock, Timer } from '../core/clock.ts';
import { describeError, silentLogger, type Logger } from '../core/log.ts';
import type { PrefetchMetricsSource } from '../core/metrics.ts';
import type { DecryptPrefetchInstruction, DecryptPrefetchOutcome, PrefetchInstruction } from '../metadata/types.ts';
import { WorkerFitter } from './models/arima-fit.ts';
import { Prefetcher, type PrefetcherOptions } from './prefetcher.ts';
import type { HistoryBatches, HistoryEvent, PrefetchHost } from './types.ts';

/** What the live prefetcher needs of the metadata service: the prefetch API, nothing that returns a key. */
export interface PrefetchApi {
  prefetch(instruction: PrefetchInstruction): Promise<{ delivered: number; expiresAt?: number }>;
  /** Decrypt keys of a queue's backlog to the nodes named (optional: without it, none are asked for). */
  prefetchDecrypt?(instruction: DecryptPrefetchInstruction): Promise<DecryptPrefetchOutcome>;
}

/** Retained history to learn from before following the bus (a TraceReader satisfies it). */
export interface HistorySource {
  /** The history in time order, in batches; called twice (the first pass finds where it ends). */
  batches(): HistoryBatches;
}

export interface LiveBootstrap {
  source: HistorySource;
  /** Maps a history queue (a name or an id) to the live queue id; undefined keeps it as it is. */
  resolveQueue?: (queue: string) => Promise<string | undefined> | string | undefined;
  /** Principal for history events that name none (e.g. the service's only credential). */
  defaultPrincipal?: string;
}

export interface LivePrefetcherOptions {
  bus: EventBus;
  metadata: PrefetchApi;
  clock: Clock;
  nodeIds: readonly string[];
  /** Nodes a queue's requests may reach; default: every node (the endpoint spreads requests round-robin). */
  nodesFor?: (queueId: string) => readonly string[];
  /** The queue's DEK reuse period (ms); undefined (unknown queue) falls back to `defaultReuseMs`. */
  reuseMsOf: (queueId: string) => number | undefined;
  /** Default 300,000 (SQS's default KmsDataKeyReusePeriodSeconds). */
  defaultReuseMs?: number;
  expectedFetchMs: number;
  options?: PrefetcherOptions;
  logger?: Logger;
  /** Prometheus metrics that read the prefetcher on each scrape. */
  metrics?: { setPrefetchSource(source: PrefetchMetricsSource | undefined): void };
  /** History to learn from before the first live event. */
  bootstrap?: LiveBootstrap;
}

export interface LivePrefetcher {
  readonly prefetcher: Prefetcher;
  /** The host the prefetcher was given: ids, times and `prefetch`, which answers with an expiry. */
  readonly host: PrefetchHost;
  /** Events learned from the bootstrap history. */
  readonly bootstrapped: number;
  /** Whether it has stopped (by `stop()` or after a failure of its own: the service goes on reactively). */
  readonly stopped: boolean;
  stop(): void;
}

const OPS: ReadonlySet<string> = new Set<QueueOp>(['send', 'receive', 'delete']);
const WEEK_MS = 7 * 86_400_000;

/**
 * Runs the Predictive Key Prefetcher against the live service: front-end events from the bus become
 * observations, and its prefetches go to the metadata service, which delivers keys sealed to the
 * nodes. It fails open: any error of its own stops it, and requests go on being served reactively.
 * Nothing it handles is a key: the host answers a prefetch with an expiry time.
 */
export async function startLivePrefetcher(options: LivePrefetcherOptions): Promise<LivePrefetcher> {
  const logger = options.logger ?? silentLogger;
  const { bus, metadata, clock } = options;
  const nodeIds = [...options.nodeIds];
  const defaultReuseMs = options.defaultReuseMs ?? 300_000;
  let prefetcher: Prefetcher | undefined;
  let unsubscribe: Unsubscribe | undefined;
  let stopped = false;
  // ARIMA fits run in a worker thread, so a fit never blocks requests; it ends with the prefetcher.
  const fitter = new WorkerFitter();

  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    unsubscribe?.();
    unsubscribe = undefined;
    prefetcher?.stop();
    void fitter.close();
  };
  /** A fault in the prefetcher itself: stop it, keep serving. */
  const failOpen = (error: unknown, where: string): void => {
    if (stopped) return;
    logger.warn({ where, error: describeError(error) }, 'prefetcher failed; serving reactively from now on');
    stop();
  };

  // The prefetcher's timers run its planning: an exception there must stop it, not the process.
  const guardedClock: Clock = {
    now: () => clock.now(),
    setTimer: (ms: number, fn: () => void): Timer =>
      clock.setTimer(ms, () => {
        try {
          fn();
        } catch (error) {
          failOpen(error, 'timer');
        }
      }),
  };

  const host: PrefetchHost = {
    clock: guardedClock,
    nodeIds: Object.freeze(nodeIds),
    nodesFor: (queueId) => {
      try {
        return options.nodesFor?.(queueId) ?? nodeIds;
      } catch {
        return nodeIds;
      }
    },
    reuseMsOf: (queueId) => {
      try {
        const ms = options.reuseMsOf(queueId);
        return ms !== undefined && Number.isFinite(ms) && ms > 0 ? ms : defaultReuseMs;
      } catch {
        return defaultReuseMs;
      }
    },
    expectedFetchMs: options.expectedFetchMs,
    prefetch: async (instruction) => {
      try {
        const outcome = await metadata.prefetch(instruction);
        if (outcome.delivered > 0 && typeof outcome.expiresAt === 'number' && Number.isFinite(outcome.expiresAt)) return outcome.expiresAt;
        logger.debug({ queueId: instruction.queueId, reason: instruction.reason, delivered: outcome.delivered }, 'prefetch delivered nothing');
      } catch (error) {
        // Ids and the error's name only: never anything the key path handled.
        logger.debug({ queueId: instruction.queueId, reason: instruction.reason, error: describeError(error) }, 'prefetch failed');
      }
      return undefined;
    },
    prefetchDecrypt: async (instruction) => {
      if (!metadata.prefetchDecrypt) return 0;
      try {
        const outcome = await metadata.prefetchDecrypt(instruction);
        if (outcome.failed > 0) logger.debug({ queueId: instruction.queueId, failed: outcome.failed }, 'backlog decrypt prefetch: some keys failed');
        return outcome.keys;
      } catch (error) {
        logger.debug({ queueId: instruction.queueId, error: describeError(error) }, 'backlog decrypt prefetch failed');
        return 0;
      }
    },
  };
  Object.freeze(host);

  const p = new Prefetcher(host, { ...options.options, modelOptions: { arimaFitter: fitter, ...options.options?.modelOptions } });
  prefetcher = p;

  let bootstrapped = 0;
  if (options.bootstrap) {
    try {
      bootstrapped = await p.bootstrap(alignedHistory(options.bootstrap, await lastTime(options.bootstrap.source), clock.now()));
      logger.info({ events: bootstrapped, streams: p.stats.streams }, 'prefetcher learned from history');
    } catch (error) {
      // What was learned stays; a bad history does not keep the service from prefetching.
      logger.warn({ error: describeError(error), events: p.stats.observed }, 'prefetcher bootstrap stopped early');
    }
  }

  const handle = (event: PkpEvent): void => {
    if (stopped) return;
    const e = event as unknown as Record<string, unknown> | null;
    if (e === null || typeof e !== 'object') return;
    if (e.type === 'access') {
      const { at, queueId, principal, nodeId, op } = e;
      if (!isTime(at) || !isId(queueId) || !isId(principal) || typeof nodeId !== 'string' || typeof op !== 'string' || !OPS.has(op)) return;
      try {
        for (const o of observationsOf(event as AccessEvent)) p.observe(o);
      } catch (error) {
        failOpen(error, 'observe');
      }
    } else if (e.type === 'queue-stats') {
      const { at, queueId, backlog } = e;
      if (!isTime(at) || !isId(queueId) || typeof backlog !== 'number' || !(backlog >= 0) || !Number.isFinite(backlog)) return;
      try {
        p.observeQueueStats({ at, queueId, backlog });
      } catch (error) {
        failOpen(error, 'queue stats');
      }
    }
    // Key-cache events and anything unknown: nothing to learn here.
  };

  if (!stopped) unsubscribe = bus.subscribe(handle);
  options.metrics?.setPrefetchSource(p);

  return {
    prefetcher: p,
    host,
    bootstrapped,
    get stopped() {
      return stopped;
    },
    stop,
  };
}

/** The time of the last history event (a first pass over it). */
async function lastTime(source: HistorySource): Promise<number> {
  let last = -Infinity;
  for await (const batch of source.batches()) {
    for (const e of batch) if (typeof e.t === 'number' && e.t > last) last = e.t;
  }
  return last;
}

/**
 * The history with its times moved by whole weeks so that it ends just before now (time of day
 * and day of week kept, for the seasonal model), its queues mapped to live ids and a principal
 * for events that name none. A history that already ends within the last week is left in place.
 */
async function* alignedHistory(bootstrap: LiveBootstrap, lastT: number, now: number): AsyncGenerator<readonly HistoryEvent[]> {
  if (lastT === -Infinity) return;
  const shift = lastT <= now && now - lastT < WEEK_MS ? 0 : Math.floor((now - lastT) / WEEK_MS) * WEEK_MS;
  const queues = new Map<string, string>();
  const mapQueue = async (queue: string): Promise<string> => {
    let id = queues.get(queue);
    if (id === undefined) {
      id = (await bootstrap.resolveQueue?.(queue)) ?? queue;
      queues.set(queue, id);
    }
    return id;
  };
  for await (const batch of bootstrap.source.batches()) {
    const out: HistoryEvent[] = [];
    for (const e of batch) {
      if (typeof e.t !== 'number' || !Number.isFinite(e.t) || typeof e.queue !== 'string' || !OPS.has(e.op)) continue;
      out.push({ t: e.t + shift, queue: await mapQueue(e.queue), principal: e.principal ?? bootstrap.defaultPrincipal, node: e.node, op: e.op });
    }
    yield out;
  }
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function isId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 256;
}
