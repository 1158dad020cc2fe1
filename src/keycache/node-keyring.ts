import type { Clock } from '../core/clock.ts';
import { waitUntil } from '../core/deadline.ts';
import { PkpError } from '../core/errors.ts';
import { aeadDecrypt, aeadEncrypt } from '../crypto/aead.ts';
import { NodeKeyPair, SealedChannel, type DeliveryChannel } from '../crypto/seal.ts';
import type { EventBus } from '../bus/types.ts';
import type { MetadataClient } from '../metadata/metadata-service.ts';
import type { KeyDelivery, SealedKeyDelivery } from '../metadata/types.ts';
import type { StoredMessage } from '../store/types.ts';
import { decryptSlot, encryptSlot, type KeyCache, type KeyCacheListener, type KeyUse } from './key-cache.ts';
import type { MessageKeyring, PlainMessageParts, SealedMessage } from './keyring-types.ts';
import type { CachedKey } from './types.ts';

export interface NodeKeyringOptions {
  nodeId: string;
  clock: Clock;
  cache: KeyCache;
  metadata: MetadataClient;
  /** This node's end of the sealed channel with the metadata service. */
  channel: Pick<DeliveryChannel, 'open'>;
  /** How long one request waits for a key before it fails (ms). Default 5,000; Infinity: as long as it takes. */
  fetchTimeoutMs?: number;
  /** Called with the time a request waited for a key (a demand miss). */
  onKeyWait?: (use: KeyUse, waitedMs: number) => void;
  /** Encryptions this node makes with one DEK before it asks for a new one. Default MAX_ENCRYPTIONS_PER_DEK. */
  maxEncryptionsPerDek?: number;
}

/**
 * AES-GCM with random 96-bit nonces stays within NIST's bound (2^32 encryptions per key) only if a
 * key's use is counted. Each node stops at 2^24 and asks for a successor DEK, so even 64 nodes that
 * all hold the same DEK until they each reach the cap stay at 2^30, a quarter of the bound.
 */
export const MAX_ENCRYPTIONS_PER_DEK = 2 ** 24;
/** The most encryptions one sealMessages call makes (a 10-message batch, body and attributes). */
const MAX_ENCRYPTIONS_PER_CALL = 20;

export function bodyAad(queueId: string, messageId: string): Buffer {
  return Buffer.from(`${queueId}\u0000${messageId}`);
}

export function attributesAad(queueId: string, messageId: string): Buffer {
  return Buffer.from(`${queueId}\u0000${messageId}\u0000attrs`);
}

/** Where a node registers its public key (the metadata service). */
export interface NodeRegistry {
  readonly publicKeyDer: Buffer;
  registerNode(nodeId: string, nodePublicKeyDer: Buffer): void;
}

/**
 * The node's side of joining the metadata service: a fresh X25519 key pair whose public half is
 * registered, and the node's end of the sealed channel. The private key never leaves this call.
 */
export function joinMetadataService(registry: NodeRegistry, nodeId: string): SealedChannel {
  const pair = NodeKeyPair.generate();
  registry.registerNode(nodeId, pair.publicKeyDer);
  return new SealedChannel(pair.channelKey(registry.publicKeyDer, nodeId, 'node'), nodeId);
}

/** Publishes a node's key-cache events to the bus: ids and kinds only, never a key. */
export function keyEventsToBus(bus: EventBus, nodeId: string, clock: Clock): KeyCacheListener {
  return (kind, use, queueId, entry) => {
    bus.publish({
      type: 'key', at: clock.now(), nodeId, kind, use, queueId,
      principal: entry?.key.principal, dekId: entry?.key.dekId, prefetched: entry?.prefetched ?? false,
    });
  };
}

/**
 * A front-end node's keys: the node's cache, filled on demand from the metadata service (one
 * fetch per key however many requests wait) or ahead of time by prefetch deliveries. A key is
 * looked up and used in one synchronous step, so it cannot be dropped and zeroed in between.
 */
export class NodeKeyring implements MessageKeyring, KeyDelivery {
  private readonly nodeId: string;
  private readonly clock: Clock;
  private readonly cache: KeyCache;
  private readonly metadata: MetadataClient;
  private readonly channel: Pick<DeliveryChannel, 'open'>;
  private readonly fetchTimeoutMs: number;
  private readonly onKeyWait: NodeKeyringOptions['onKeyWait'];
  private readonly maxEncryptionsPerDek: number;
  deliveriesRejected = 0;
  /** DEKs this node stopped using because they reached the encryption cap. */
  deksRetired = 0;

  constructor(options: NodeKeyringOptions) {
    this.nodeId = options.nodeId;
    this.clock = options.clock;
    this.cache = options.cache;
    this.metadata = options.metadata;
    this.channel = options.channel;
    this.fetchTimeoutMs = options.fetchTimeoutMs ?? 5_000;
    this.onKeyWait = options.onKeyWait;
    const cap = options.maxEncryptionsPerDek ?? MAX_ENCRYPTIONS_PER_DEK;
    if (!Number.isInteger(cap) || cap < MAX_ENCRYPTIONS_PER_CALL || cap > 2 ** 30) {
      throw new RangeError(`maxEncryptionsPerDek must be an integer in ${MAX_ENCRYPTIONS_PER_CALL}..2^30`);
    }
    this.maxEncryptionsPerDek = cap;
  }

  /** Runs `use` with the current encrypt key of (queue, principal), fetching it on a miss. */
  async withEncryptKey<T>(queueId: string, principal: string, use: (key: CachedKey) => T): Promise<T> {
    const hit = this.cache.getEncrypt(queueId, principal);
    if (hit) return use(hit);
    return this.fetchEncryptKey(queueId, principal, use);
  }

  /** The miss path alone: fetch (shared with concurrent misses), then use. The simulator calls it directly. */
  fetchEncryptKey<T>(queueId: string, principal: string, use: (key: CachedKey) => T, retireDekId?: string): Promise<T> {
    const slot = encryptSlot(queueId, principal);
    const requestedAt = this.clock.now();
    return this.afterLoad('encrypt', () => this.cache.peekEncrypt(queueId, principal)?.key, () =>
      this.cache.load('encrypt', slot, async () =>
        this.accept(await this.metadata.fetchEncryptKey(this.nodeId, queueId, principal, { reason: 'demand', deadline: this.flightDeadline(), requestedAt, retireDekId }))),
    use);
  }

  /** Runs `use` with the key that opens this encrypted DEK, fetching it on a miss. */
  async withDecryptKey<T>(queueId: string, dekId: string, encryptedDek: Buffer, use: (key: CachedKey) => T): Promise<T> {
    const hit = this.cache.getDecrypt(dekId, queueId);
    if (hit) return use(hit);
    const slot = decryptSlot(queueId, dekId);
    const requestedAt = this.clock.now();
    return this.afterLoad('decrypt', () => this.cache.peekDecrypt(dekId, queueId), () =>
      this.cache.load('decrypt', slot, async () =>
        this.accept(await this.metadata.fetchDecryptKey(this.nodeId, queueId, encryptedDek, { reason: 'demand', deadline: this.flightDeadline(), requestedAt }))),
    use);
  }

  async sealMessages(queueId: string, principal: string, items: PlainMessageParts[]): Promise<SealedMessage[]> {
    const encryptions = items.reduce((n, item) => n + (item.attributes ? 2 : 1), 0);
    if (encryptions > MAX_ENCRYPTIONS_PER_CALL) throw new RangeError(`at most ${MAX_ENCRYPTIONS_PER_CALL} encryptions per call`);
    const seal = (key: CachedKey): SealedMessage[] | string => {
      const used = key.encryptions ?? 0;
      if (used + encryptions > this.maxEncryptionsPerDek) return key.dekId;
      key.encryptions = used + encryptions;
      return items.map((item) => ({
        bodyCiphertext: aeadEncrypt(key.material, item.body, bodyAad(queueId, item.messageId)),
        attributesCiphertext: item.attributes ? aeadEncrypt(key.material, item.attributes, attributesAad(queueId, item.messageId)) : null,
        encryptedDek: key.encryptedDek,
        dekId: key.dekId,
        kmsKeyId: key.kmsKeyId,
      }));
    };
    let outcome = await this.withEncryptKey(queueId, principal, seal);
    // A DEK at its cap is dropped here and at the tier, and a successor fetched (a few tries: other
    // requests may retire keys at the same time).
    for (let attempt = 0; typeof outcome === 'string'; attempt++) {
      if (attempt >= 3) throw new PkpError('KeyUnavailable', 'no encrypt key under its encryption cap');
      if (this.cache.retireEncrypt(queueId, principal, outcome)) this.deksRetired++;
      outcome = await this.fetchEncryptKey(queueId, principal, seal, outcome);
    }
    return outcome;
  }

  async openMessage(message: StoredMessage): Promise<{ body: Buffer; attributes: Buffer | null }> {
    return this.withDecryptKey(message.queueId, message.dekId, message.encryptedDek, (key) => ({
      body: aeadDecrypt(key.material, message.bodyCiphertext, bodyAad(message.queueId, message.messageId)),
      attributes: message.attributesCiphertext
        ? aeadDecrypt(key.material, message.attributesCiphertext, attributesAad(message.queueId, message.messageId))
        : null,
    }));
  }

  /** KeyDelivery: a prefetched key arrives sealed to this node. Bad deliveries are counted and dropped. */
  deliver(delivery: SealedKeyDelivery): void {
    if (delivery.nodeId !== this.nodeId) {
      this.deliveriesRejected++;
      return;
    }
    try {
      this.accept(delivery);
    } catch {
      this.deliveriesRejected++;
    }
  }

  private accept(delivery: SealedKeyDelivery): CachedKey {
    const material = this.channel.open(delivery.sealedMaterial, delivery);
    const key: CachedKey = {
      dekId: delivery.dekId, queueId: delivery.queueId, principal: delivery.principal, kmsKeyId: delivery.kmsKeyId,
      material, encryptedDek: delivery.encryptedDek, issuedAt: delivery.issuedAt, expiresAt: delivery.expiresAt,
    };
    this.cache.put(delivery.use, key, { prefetched: delivery.prefetched, score: delivery.score });
    return key;
  }

  /** Waits for a load with this request's own deadline, then uses the key still in the cache. */
  private async afterLoad<T>(use: KeyUse, current: () => CachedKey | undefined, load: () => Promise<CachedKey>, consume: (key: CachedKey) => T): Promise<T> {
    const started = this.clock.now();
    const deadline = started + this.fetchTimeoutMs;
    for (let attempt = 0; attempt < 3; attempt++) {
      await waitUntil(load(), this.clock, deadline, 'key fetch');
      const key = current();
      if (key) {
        this.onKeyWait?.(use, this.clock.now() - started);
        return consume(key);
      }
    }
    throw new PkpError('KeyUnavailable', 'key left the cache before it could be used');
  }

  /** A shared fetch is not bound to any one waiter's deadline, only to a generous cap. */
  private flightDeadline(): number {
    return this.clock.now() + 6 * this.fetchTimeoutMs;
  }
}
