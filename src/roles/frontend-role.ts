import type { FastifyInstance } from 'fastify';
import { AccessAggregator } from '../bus/access-aggregator.ts';
import { LateBus } from '../bus/late-bus.ts';
import { NatsEventBus } from '../bus/nats-bus.ts';
import type { EventBus } from '../bus/types.ts';
import { RemoteMetadata } from '../cluster/metadata-remote.ts';
import { createServiceNodeKeys, type NodeKeys } from '../compose.ts';
import { SystemClock, type Clock } from '../core/clock.ts';
import { describeError, type Logger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import { FrontendNode } from '../frontend/node.ts';
import { createSqsServer } from '../frontend/server.ts';
import { ReceiveWaiters } from '../frontend/waiters.ts';
import { QueueStatsSchedule } from '../frontend/queue-stats-schedule.ts';
import type { MessageStore } from '../store/types.ts';
import { dialNats, type ClusterMemberOptions } from './member.ts';

export interface FrontendRoleOptions extends ClusterMemberOptions {
  store: MessageStore;
  credentials: Map<string, { secretAccessKey: string; accountId: string }>;
  host: string;
  port: number;
  cacheEntries?: number;
  /** Access events are counted per (queue, node, principal, op) over this long. Default 1 s. */
  aggregateMs?: number;
  maxLongPolls?: number;
}

export interface FrontendRole {
  nodeId: string;
  server: FastifyInstance;
  close(): Promise<void>;
}

/**
 * One front-end process: a node with its own identity and key cache, serving SQS on a port (shared
 * with the other front-end processes through node:cluster, or behind a load balancer). Keys come from
 * the metadata service over signed HTTP; prefetched keys and events go over NATS. With NATS away, or
 * not up yet, the node serves everything on demand and reaches NATS by itself when it answers.
 */
export async function startFrontendRole(options: FrontendRoleOptions): Promise<FrontendRole> {
  const { identity, logger } = options;
  const nodeId = identity.id;
  const clock = new SystemClock();
  const metrics = createMetrics({ defaultMetrics: true, queueMetrics: 0 });
  const onError = (error: unknown): void => logger.warn({ error: describeError(error) }, 'cluster transport');
  const nats = await dialNats(options.nats, `pkp frontend ${nodeId}`, clock, logger);
  const bus = new AccessAggregator(await openBus(options, clock, onError, logger), clock, options.aggregateMs);

  let keyring: NodeKeys['keyring'] | undefined;
  const remote = await RemoteMetadata.join({ url: options.metadataUrl, nats, identity, prefix: options.cluster, onError },
    (delivery) => keyring?.deliver(delivery));
  const parts = createServiceNodeKeys({ nodeId, clock, metadata: remote, channel: remote.channel, bus, metrics, cacheEntries: options.cacheEntries });
  keyring = parts.keyring;
  const waiters = new ReceiveWaiters(clock, { maxWaiters: options.maxLongPolls, onRefused: () => metrics.longPollsRefused.inc() });
  // Sends through the other front-ends wake this one's long polls.
  const stopWakeups = options.store.subscribeWakeups?.((queueId) => waiters.notify(queueId));
  const node = new FrontendNode({
    nodeId, store: options.store, keyring: parts.keyring, bus, clock, waiters, logger: logger.child({ node: nodeId }),
    keyCache: parts.cache, queueStats: new QueueStatsSchedule(),
  });
  const server = createSqsServer({ nodes: [node], credentials: options.credentials, clock, logger, metrics });
  server.get('/healthz', async () => ({ ok: true, node: nodeId }));
  await server.listen({ host: options.host, port: options.port });

  let closing: Promise<void> | undefined;
  return {
    nodeId,
    server,
    close: () => (closing ??= (async () => {
      stopWakeups?.();
      waiters.closeAll();
      await server.close();
      remote.close();
      parts.cache.clear();
      await bus.close();
      await nats.close();
      await options.store.close();
    })()),
  };
}

/** The events' bus on NATS; opened in the background (events held meanwhile) if NATS is not up yet. */
function openBus(options: FrontendRoleOptions, clock: Clock, onError: (error: unknown) => void, logger: Logger): Promise<EventBus> {
  const open = (): Promise<EventBus> => NatsEventBus.open({
    servers: options.nats, stream: options.stream, partitions: options.partitions, identity: options.identity,
    name: `pkp frontend ${options.identity.id} events`, onError,
  });
  return LateBus.start(open, {
    clock, partitions: options.partitions,
    onUnreachable: (error) => logger.error({ error: describeError(error) }, 'NATS not reachable: events are held until it answers'),
    onOpened: () => logger.info('event bus open'),
  });
}
