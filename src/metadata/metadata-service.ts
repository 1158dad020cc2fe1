import { PkpError } from '../core/errors.ts';
import { NodeKeyPair, SealedChannel } from '../crypto/seal.ts';
import type { CachedKey } from '../keycache/types.ts';
import type { KeyService } from './key-service.ts';
import type { KeyDelivery, KeyRequestOptions, PrefetchInstruction, SealedKeyDelivery } from './types.ts';

/** What a front-end node asks of the metadata service. Keys come back sealed to the node. */
export interface MetadataClient {
  fetchEncryptKey(nodeId: string, queueId: string, principal: string, options?: KeyRequestOptions): Promise<SealedKeyDelivery>;
  fetchDecryptKey(nodeId: string, queueId: string, encryptedDek: Buffer, options?: KeyRequestOptions): Promise<SealedKeyDelivery>;
}

export interface PrefetchOutcome {
  delivered: number;
  /** The DEK id delivered (for the prefetcher's feedback loop); undefined when nothing was. */
  dekId?: string;
  expiresAt?: number;
}

/**
 * The node-facing side of the metadata service: answers key requests from registered nodes and
 * carries out prefetch instructions, sealing every key to the node that receives it.
 */
export class MetadataService implements MetadataClient {
  private readonly identity = NodeKeyPair.generate();
  private readonly channels = new Map<string, SealedChannel>();
  private delivery: KeyDelivery | undefined;

  constructor(private readonly keys: KeyService) {}

  /** Public key nodes use to derive their end of the channel. */
  get publicKeyDer(): Buffer {
    return this.identity.publicKeyDer;
  }

  /** Registers (or re-registers) a node by its X25519 public key. */
  registerNode(nodeId: string, nodePublicKeyDer: Buffer): void {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) throw new PkpError('InvalidNodeId', 'node id must be 1-64 of [A-Za-z0-9._-]');
    this.channels.get(nodeId)?.close();
    this.channels.set(nodeId, new SealedChannel(this.identity.channelKey(nodePublicKeyDer, nodeId), nodeId));
  }

  /** Where prefetched keys go (in-process call embedded; a per-node subject when distributed). */
  setDelivery(delivery: KeyDelivery): void {
    this.delivery = delivery;
  }

  fetchEncryptKey(nodeId: string, queueId: string, principal: string, options: KeyRequestOptions = {}): Promise<SealedKeyDelivery> {
    const channel = this.channelOf(nodeId);
    return this.keys.withEncryptKey(queueId, principal, { reason: options.reason ?? 'demand', deadline: options.deadline, requestedAt: options.requestedAt },
      (key) => this.seal(channel, nodeId, key, 'encrypt', false, 0));
  }

  fetchDecryptKey(nodeId: string, queueId: string, encryptedDek: Buffer, options: KeyRequestOptions = {}): Promise<SealedKeyDelivery> {
    const channel = this.channelOf(nodeId);
    return this.keys.withDecryptKey(queueId, encryptedDek, { reason: options.reason ?? 'demand', deadline: options.deadline, requestedAt: options.requestedAt },
      (key) => this.seal(channel, nodeId, key, 'decrypt', false, 0));
  }

  /**
   * Obtains the key at background priority (one KMS call at most, within the prefetch budget) and
   * delivers it to each named node. Unknown nodes are skipped; the instruction carries no secrets.
   */
  async prefetch(instruction: PrefetchInstruction): Promise<PrefetchOutcome> {
    const delivery = this.delivery;
    if (!delivery) throw new PkpError('NoDelivery', 'no key delivery configured');
    const nodes = instruction.nodeIds.filter((id) => this.channels.has(id));
    if (nodes.length === 0) return { delivered: 0 };
    const score = instruction.score ?? 1;
    const sealed = await this.keys.withEncryptKey(
      instruction.queueId,
      instruction.principal,
      { reason: instruction.reason, minRemainingMs: instruction.minRemainingMs, deadline: instruction.deadline },
      (key) => nodes.map((nodeId) => this.seal(this.channelOf(nodeId), nodeId, key, 'encrypt', true, score)),
    );
    for (const item of sealed) delivery.deliver(item);
    return { delivered: sealed.length, dekId: sealed[0]?.dekId, expiresAt: sealed[0]?.expiresAt };
  }

  close(): void {
    for (const channel of this.channels.values()) channel.close();
    this.channels.clear();
    this.keys.close();
  }

  private channelOf(nodeId: string): SealedChannel {
    const channel = this.channels.get(nodeId);
    if (!channel) throw new PkpError('UnknownNode', `node ${nodeId} is not registered`);
    return channel;
  }

  private seal(channel: SealedChannel, nodeId: string, key: CachedKey, use: 'encrypt' | 'decrypt', prefetched: boolean, score: number): SealedKeyDelivery {
    return {
      nodeId,
      use,
      prefetched,
      score,
      dekId: key.dekId,
      queueId: key.queueId,
      principal: key.principal,
      kmsKeyId: key.kmsKeyId,
      encryptedDek: key.encryptedDek,
      issuedAt: key.issuedAt,
      expiresAt: key.expiresAt,
      sealedMaterial: channel.seal(key.material, key.dekId),
    };
  }
}
