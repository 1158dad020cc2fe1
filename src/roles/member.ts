import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { ClusterIdentity } from '../cluster/identity.ts';
import { describeError, type Logger } from '../core/log.ts';

/** What every front-end and prefetcher process of a cluster is given: who it is and where the others are. */
export interface ClusterMemberOptions {
  identity: ClusterIdentity;
  /** The cluster's name: prefixes NATS subjects and names the partition locks. */
  cluster: string;
  /** The metadata service (http://host:port). */
  metadataUrl: string;
  /** NATS for events and prefetched keys; a front-end serves reactively while it is away. */
  nats: string;
  /** The JetStream stream of the events, and its partitions. */
  stream: string;
  partitions: number;
  logger: Logger;
}

/**
 * NATS for prefetched keys, reconnecting for ever once connected. Down at start: the process starts
 * without it and serves on demand only (prefetched keys need NATS up when the process starts).
 */
export async function connectNats(servers: string, name: string, logger: Logger): Promise<NatsConnection | undefined> {
  try {
    return await connect({ servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 3_000 });
  } catch (error) {
    logger.error({ error: describeError(error) }, 'NATS not reachable: serving reactively');
    return undefined;
  }
}
