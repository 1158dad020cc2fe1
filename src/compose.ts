import type { Clock } from './core/clock.ts';
import { NodeKeyring, type NodeKeyringOptions } from './keycache/node-keyring.ts';
import { KeyCache, type KeyCacheOptions } from './keycache/key-cache.ts';
import { KeyService, type KeyServiceOptions } from './metadata/key-service.ts';
import { MetadataService, type MetadataClient, type MetadataServiceOptions } from './metadata/metadata-service.ts';
import type { SealedChannel } from './crypto/seal.ts';

/**
 * The composition root of the key path: the key tier (KMS client, single-flight tier cache,
 * metadata service) and each node's keys (key cache and keyring). `pkp up`, the role processes and
 * the simulator all build it here; they differ only in the clock, the KMS (embedded, across the
 * network, or modelled) and the transport between a node and the metadata service (a call, signed
 * HTTP, or a modelled hop).
 */

export interface KeyTier {
  keys: KeyService;
  metadata: MetadataService;
}

export function createKeyTier(options: KeyServiceOptions & { backlog?: MetadataServiceOptions['backlog'] }): KeyTier {
  const { backlog, ...keyOptions } = options;
  const keys = new KeyService(keyOptions);
  return { keys, metadata: new MetadataService(keys, { backlog }) };
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
  channel: Pick<SealedChannel, 'open'>;
  cache?: Omit<KeyCacheOptions, 'clock'>;
  keyring?: Pick<NodeKeyringOptions, 'fetchTimeoutMs' | 'onKeyWait' | 'maxEncryptionsPerDek'>;
}

export function createNodeKeys(options: NodeKeysOptions): NodeKeys {
  const { nodeId, clock } = options;
  const cache = new KeyCache({ clock, ...options.cache });
  const keyring = new NodeKeyring({ nodeId, clock, cache, metadata: options.metadata, channel: options.channel, ...options.keyring });
  return { nodeId, cache, keyring };
}
