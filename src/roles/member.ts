import type { ClusterIdentity } from '../cluster/identity.ts';
import { DialingNatsLink } from '../cluster/nats-link.ts';
import type { Clock } from '../core/clock.ts';
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

/** NATS for prefetched keys: dialled until it answers (a process may start before NATS), then reconnecting for ever. */
export function dialNats(servers: string, name: string, clock: Clock, logger: Logger): Promise<DialingNatsLink> {
  return DialingNatsLink.open({
    servers, name, clock,
    onUnreachable: (error) => logger.error({ error: describeError(error) }, 'NATS not reachable: serving on demand, dialling it again every second'),
    onConnected: () => logger.info('NATS connected'),
  });
}
