import { NatsEventBus } from '../bus/nats-bus.ts';
import type { EventBus, PkpEvent } from '../bus/types.ts';
import { RemotePrefetchApi } from '../cluster/metadata-remote.ts';
import { PartitionOwner } from '../cluster/partition-owner.ts';
import { RecentHistory, SnapshotStore } from '../cluster/prefetch-snapshots.ts';
import { SystemClock } from '../core/clock.ts';
import { describeError } from '../core/log.ts';
import { startLivePrefetcher, type LivePrefetcher } from '../prefetcher/live.ts';
import type { PrefetcherOptions } from '../prefetcher/prefetcher.ts';
import type { HistoryEvent } from '../prefetcher/types.ts';
import type { ClusterMemberOptions } from './member.ts';

export interface PrefetcherRoleOptions extends ClusterMemberOptions {
  /** PostgreSQL: partition ownership (advisory locks) and snapshots. */
  postgres: string;
  /** The front-end nodes a queue's requests may reach (the SQS port spreads connections over all). */
  nodeIds: string[];
  prefetcherOptions?: PrefetcherOptions;
  /** How often each owned partition's state is saved. Default 5 s. */
  snapshotEveryMs?: number;
  /** How often ownership is reconsidered. Default 1 s. */
  roundMs?: number;
}

export interface PrefetcherRole {
  owner: PartitionOwner;
  /** The partitions this process runs a prefetcher for now. */
  running(): number[];
  close(): Promise<void>;
}

interface PartitionWork {
  live: LivePrefetcher;
  history: RecentHistory;
  stopSnapshots: () => void;
}

/**
 * A prefetcher process. It owns a fair share of the event partitions (see PartitionOwner) and runs
 * one prefetcher per owned partition: learned from the partition's last snapshot and what the
 * stream retained since, then following the stream. Its instructions go to the metadata service
 * (ids only); it never receives a key, not even sealed. Its death costs the service nothing but
 * prefetching for a few seconds, until the survivors own its partitions.
 */
export async function startPrefetcherRole(options: PrefetcherRoleOptions): Promise<PrefetcherRole> {
  const { logger, identity } = options;
  const clock = new SystemClock();
  const onError = (error: unknown): void => logger.warn({ error: describeError(error) }, 'prefetcher transport');
  const bus = await NatsEventBus.open({
    servers: options.nats, stream: options.stream, partitions: options.partitions, identity, name: `pkp prefetcher ${identity.id}`, onError,
  });
  const api = new RemotePrefetchApi(options.metadataUrl, identity);
  const snapshots = new SnapshotStore(options.postgres, options.cluster);
  const reuse = new Map<string, number>();
  const asking = new Set<string>();
  /** Without I/O (the prefetcher plans synchronously): the period last heard, asked for in the background. */
  const reuseMsOf = (queueId: string): number | undefined => {
    if (!reuse.has(queueId) && !asking.has(queueId) && asking.size < 100) {
      asking.add(queueId);
      void api.reuseMsOf(queueId).then((ms) => void (ms !== undefined && reuse.set(queueId, ms)), () => undefined).finally(() => asking.delete(queueId));
    }
    return reuse.get(queueId);
  };
  const work = new Map<number, PartitionWork>();

  const acquire = async (partition: number): Promise<void> => {
    const snapshot = await snapshots.load(partition);
    const startedAt = clock.now();
    const history = new RecentHistory(snapshot?.events);
    // Learned: the snapshot, then the stream from the snapshot's time (or all it retains) to now.
    let learnedUntil = -Infinity;
    for await (const batch of bus.history(partition, snapshot?.takenAt)) {
      for (const e of batch) {
        record(history, e);
        if (e.at > learnedUntil) learnedUntil = e.at;
      }
    }
    const toFollow: EventBus = {
      partitions: bus.partitions,
      publish: () => undefined,
      // From where the history read began, so nothing published meanwhile is missed; what the
      // history already held is not learned twice.
      subscribe: (handler) => bus.subscribe((event) => {
        if (event.type === 'access' && event.at <= learnedUntil) return;
        record(history, event);
        handler(event);
      }, { partitions: [partition], from: 'retained', since: startedAt }),
      flush: () => bus.flush(),
      stats: () => bus.stats(),
      close: async () => undefined,
    };
    const live = await startLivePrefetcher({
      // A key's way from the prefetcher to a node (signed HTTP, the KMS, a NATS push): ~10 ms on one host.
      bus: toFollow, metadata: api, clock, nodeIds: options.nodeIds, reuseMsOf, expectedFetchMs: 10,
      options: options.prefetcherOptions, logger: logger.child({ partition }),
      bootstrap: { source: { batches: () => [history.events()] } },
    });
    const timer = setInterval(() => {
      if (!history.changed) return;
      history.changed = false;
      void snapshots.save(partition, { takenAt: clock.now(), events: history.events() }).catch(onError);
    }, options.snapshotEveryMs ?? 5_000);
    timer.unref();
    work.set(partition, { live, history, stopSnapshots: () => clearInterval(timer) });
    logger.info({ partition, learned: live.bootstrapped }, 'partition taken');
  };

  const release = async (partition: number): Promise<void> => {
    const w = work.get(partition);
    if (!w) return;
    work.delete(partition);
    w.stopSnapshots();
    w.live.stop();
    await snapshots.save(partition, { takenAt: clock.now(), events: w.history.events() }).catch(onError);
    logger.info({ partition }, 'partition let go');
  };

  const owner = new PartitionOwner({
    url: options.postgres, cluster: options.cluster, partitions: options.partitions, onAcquire: acquire, onRelease: release,
    roundMs: options.roundMs, onError,
  });
  owner.start();
  let closing: Promise<void> | undefined;
  return {
    owner,
    running: () => [...work.keys()].sort((a, b) => a - b),
    close: () => (closing ??= (async () => {
      await owner.stop();
      await snapshots.close();
      await bus.close();
    })()),
  };
}

/** Requests only: what the models learn from. */
function record(history: RecentHistory, event: PkpEvent): void {
  if (event.type !== 'access' || event.op === 'other') return;
  const e: HistoryEvent = { t: event.at, queue: event.queueId, principal: event.principal, node: event.nodeId, op: event.op };
  history.add(e);
}
