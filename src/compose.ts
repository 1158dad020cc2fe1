import type { Clock } from './core/clock.ts';
import { NodeKeyring, keyEventsToBus, type NodeKeyringOptions } from './keycache/node-keyring.ts';
import type { EventBus } from './bus/types.ts';
import type { Metrics } from './core/metrics.ts';
import { KeyCache, type KeyCacheOptions } from './keycache/key-cache.ts';
import { KeyService, type KeyServiceOptions } from './metadata/key-service.ts';
import { MetadataService, type MetadataClient, type MetadataServiceOptions } from './metadata/metadata-service.ts';
import type { DeliveryChannel } from './crypto/seal.ts';

/**
 * The composition root of the key path: the key tier (KMS client, single-flight tier cache,
 * metadata service) and each node's keys (key cache and keyring). `pkp up`, the role processes and
 * the simulator all build it here; they differ only in the clock, the KMS (embedded, across the
 * network, or modelled), the transport between a node and the metadata service (a call, signed
 * HTTP, or a modelled hop) and, in the simulator alone, how deliveries are sealed (`channels`).
 */

export interface KeyTier {
  keys: KeyService;
  metadata: MetadataService;
}

export function createKeyTier(options: KeyServiceOptions & Pick<MetadataServiceOptions, 'backlog' | 'channels'>): KeyTier {
  const { backlog, channels, ...keyOptions } = options;
  const keys = new KeyService(keyOptions);
  return { keys, metadata: new MetadataService(keys, { backlog, channels }) };
}

export interface NodeKeys {
  nodeId: string;
  cache: KeyCache;
  keyring: NodeKeyring;
}

export interface NodeKeysOptions {
  nodeId: string;
  clock: Clock;
  /** The node's way to the metadata service, and its end of the sealed channel. */
  metadata: MetadataClient;
  channel: Pick<DeliveryChannel, 'open'>;
  cache?: Omit<KeyCacheOptions, 'clock'>;
  keyring?: Pick<NodeKeyringOptions, 'fetchTimeoutMs' | 'onKeyWait' | 'maxEncryptionsPerDek'>;
}

export function createNodeKeys(options: NodeKeysOptions): NodeKeys {
  const { nodeId, clock } = options;
  const cache = new KeyCache({ clock, ...options.cache });
  const keyring = new NodeKeyring({ nodeId, clock, cache, metadata: options.metadata, channel: options.channel, ...options.keyring });
  return { nodeId, cache, keyring };
}

/**
 * A service node's keys: counted in the metrics (cache events, key waits) and reported on the bus
 * (ids and kinds only), as `pkp up` and `pkp frontend` run them.
 */
export function createServiceNodeKeys(options: Omit<NodeKeysOptions, 'cache' | 'keyring'> & { bus: EventBus; metrics: Metrics; cacheEntries?: number }): NodeKeys {
  const { nodeId, bus, metrics } = options;
  const publishKeyEvent = keyEventsToBus(bus, nodeId, options.clock);
  return createNodeKeys({
    nodeId, clock: options.clock, metadata: options.metadata, channel: options.channel,
    cache: {
      maxEntries: options.cacheEntries ?? 10_000,
      onEvent: (kind, use, queueId, entry) => {
        metrics.countKeyCacheEvent(nodeId, kind, use).inc();
        publishKeyEvent(kind, use, queueId, entry);
      },
    },
    keyring: { onKeyWait: (use, waitedMs) => metrics.keyFetchSeconds.observe({ use }, waitedMs / 1000) },
  });
}
