import type { FastifyInstance } from 'fastify';
import type { ClusterIdentity } from '../cluster/identity.ts';
import { metadataRpc } from '../cluster/metadata-remote.ts';
import { createKeyTier, type KeyTier } from '../compose.ts';
import { SystemClock } from '../core/clock.ts';
import { describeError, type Logger } from '../core/log.ts';
import { QueueKeySettingsSource } from '../frontend/queue-key-settings.ts';
import type { ManagedKms } from '../kms/types.ts';
import type { MessageStore } from '../store/types.ts';
import { dialNats } from './member.ts';

export interface MetadataRoleOptions {
  identity: ClusterIdentity;
  cluster: string;
  /** NATS, where prefetched keys are pushed to the nodes. */
  nats: string;
  /** The queue registry (key settings) and the backlog's DEK ids; nothing else is read. */
  store: MessageStore;
  kms: ManagedKms;
  host: string;
  port: number;
  logger: Logger;
  defaultReuseSeconds?: number;
  prefetchBudgetPerSecond?: number;
}

export interface MetadataRole {
  url: string;
  tier: KeyTier;
  close(): Promise<void>;
}

/**
 * The metadata process: the key tier (the only process that talks to the KMS and holds keys in
 * clear), serving the front-ends' key requests and the prefetchers' instructions over signed HTTP,
 * and pushing prefetched keys, sealed to each node, on NATS.
 */
export async function startMetadataRole(options: MetadataRoleOptions): Promise<MetadataRole> {
  const { logger, store } = options;
  const clock = new SystemClock();
  const settings = new QueueKeySettingsSource(store, options.defaultReuseSeconds);
  const tier = createKeyTier({
    kms: options.kms,
    clock,
    settingsOf: (queueId) => settings.settingsOf(queueId),
    scheduler: { backgroundPerSecond: options.prefetchBudgetPerSecond ?? 50 },
    backlog: { store, clock },
  });
  const nats = await dialNats(options.nats, `pkp metadata ${options.identity.id}`, clock, logger);
  const rpc = metadataRpc({
    nats, identity: options.identity, prefix: options.cluster, metadata: tier.metadata,
    reuseMsOf: async (queueId) => (await settings.settingsOf(queueId))?.reuseMs,
    onError: (error) => logger.warn({ error: describeError(error) }, 'key delivery'),
  });
  const server: FastifyInstance = rpc.httpServer();
  server.get('/healthz', async () => ({ ok: true, role: 'metadata' }));
  await server.listen({ host: options.host, port: options.port });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${options.host}:${port}`,
    tier,
    close: () => (closing ??= (async () => {
      await server.close();
      tier.metadata.close();
      await nats.close();
      await options.kms.close();
      await store.close();
    })()),
  };
}
