import type { Clock } from '../core/clock.ts';
import { PkpError } from '../core/errors.ts';
import { X25519ChannelIdentity, type ChannelIdentity, type DeliveryChannel } from '../crypto/seal.ts';
import type { CachedKey } from '../keycache/types.ts';
import type { MessageStore } from '../store/types.ts';
import { dekIdOf, type KeyService } from './key-service.ts';
import type {
  DecryptPrefetchInstruction, DecryptPrefetchOutcome, KeyDelivery, KeyRequestOptions, PrefetchInstruction, SealedKeyDelivery,
} from './types.ts';

/** What a front-end node asks of the metadata service. Keys come back sealed to the node. */
export interface MetadataClient {
  fetchEncryptKey(nodeId: string, queueId: string, principal: string, options?: KeyRequestOptions): Promise<SealedKeyDelivery>;
  fetchDecryptKey(nodeId: string, queueId: string, encryptedDek: Buffer, options?: KeyRequestOptions): Promise<SealedKeyDelivery>;
}

export interface MetadataServiceOptions {
  /**
   * Where prefetchDecrypt reads a queue's backlog DEKs (the message store: this read only), and the
   * clock the store's times are on. Without it prefetchDecrypt refuses.
   */
  backlog?: { store: Pick<MessageStore, 'backlogDeks'>; clock: Clock };
  /** How keys are sealed to nodes. Default X25519 + AES-256-GCM: the only choice of the service. */
  channels?: ChannelIdentity;
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
  private readonly identity: ChannelIdentity;
  private readonly channels = new Map<string, DeliveryChannel>();
  private delivery: KeyDelivery | undefined;
  private readonly backlog: MetadataServiceOptions['backlog'];

  constructor(private readonly keys: KeyService, options: MetadataServiceOptions = {}) {
    this.backlog = options.backlog;
    this.identity = options.channels ?? new X25519ChannelIdentity();
  }

  /** Public key nodes use to derive their end of the channel. */
  get publicKeyDer(): Buffer {
    return this.identity.publicKeyDer;
  }

  /** Registers (or re-registers) a node by its X25519 public key. */
  registerNode(nodeId: string, nodePublicKeyDer: Buffer): void {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) throw new PkpError('InvalidNodeId', 'node id must be 1-64 of [A-Za-z0-9._-]');
    this.channels.get(nodeId)?.close();
    this.channels.set(nodeId, this.identity.channelWith(nodeId, nodePublicKeyDer));
  }

  /** Where prefetched keys go (in-process call embedded; a per-node subject when distributed). */
  setDelivery(delivery: KeyDelivery): void {
    this.delivery = delivery;
  }

  fetchEncryptKey(nodeId: string, queueId: string, principal: string, options: KeyRequestOptions = {}): Promise<SealedKeyDelivery> {
    const channel = this.channelOf(nodeId);
    return this.keys.withEncryptKey(queueId, principal, { reason: options.reason ?? 'demand', deadline: options.deadline, requestedAt: options.requestedAt, retireDekId: options.retireDekId },
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

  /**
   * Delivers the decrypt keys of the DEKs a queue's waiting messages are encrypted under (at most
   * 16, soonest needed first; see MessageStore.backlogDeks) to each named, registered node, so the
   * receives that follow hit the nodes' caches. Each key is obtained at background priority: a DEK
   * the tier still holds (it generated it) costs no KMS call, any other one Decrypt within the
   * prefetch budget. One DEK failing does not stop the others. Keys keep the tier's expiry.
   */
  async prefetchDecrypt(instruction: DecryptPrefetchInstruction): Promise<DecryptPrefetchOutcome> {
    checkDecryptPrefetch(instruction);
    const delivery = this.delivery;
    if (!delivery) throw new PkpError('NoDelivery', 'no key delivery configured');
    const backlog = this.backlog;
    if (!backlog) throw new PkpError('NoBacklogSource', 'prefetchDecrypt needs the message store (MetadataServiceOptions.backlog)');
    const nodes = [...new Set(instruction.nodeIds)].filter((id) => this.channels.has(id));
    if (nodes.length === 0) return { delivered: 0, keys: 0, failed: 0, skipped: 0 };
    const { queueId, deadline } = instruction;
    const wanted = instruction.dekIds && new Set(instruction.dekIds);
    const deks = (await backlog.store.backlogDeks(queueId, { now: backlog.clock.now(), withinMs: instruction.withinMs }))
      .filter((dek) => !wanted || wanted.has(dek.dekId));
    const score = instruction.score ?? 1;
    const outcome: DecryptPrefetchOutcome = { delivered: 0, keys: 0, failed: 0, skipped: 0 };
    const buyMessages = instruction.buyMessages ?? Infinity;
    let before = 0;
    // Concurrently, each DEK delivered as soon as it is ready: a slow KMS call holds back no other.
    await Promise.all(deks.map(async (dek) => {
      const reached = before < buyMessages;
      before += dek.messages;
      try {
        // A row whose id is not its blob's hash would land in a cache slot no receive looks up.
        if (dekIdOf(dek.encryptedDek) !== dek.dekId) throw new PkpError('DekIdMismatch', 'stored DEK id does not match its blob');
        // A DEK beyond what the consumers will reach within a key's life is not bought: held only.
        const heldOnly = !reached;
        // Sealed inside the tier's callback (the key is valid there); a node closed meanwhile is skipped.
        const sealed = await this.keys.withDecryptKey(queueId, dek.encryptedDek, { reason: 'prefetch', deadline, heldOnly },
          (key) => nodes.filter((id) => this.channels.has(id)).map((id) => this.seal(this.channelOf(id), id, key, 'decrypt', true, score)));
        for (const item of sealed) {
          delivery.deliver(item);
          outcome.delivered++;
        }
        if (sealed.length > 0) outcome.keys++;
      } catch (error) {
        if (error instanceof PkpError && error.code === 'KeyNotHeld') {
          outcome.skipped++;
          return;
        }
        // Counted for the caller and swallowed: one DEK's failure must not fail the others. Not
        // logged here: this service has no logger, and the outcome already tells the caller.
        outcome.failed++;
      }
    }));
    return outcome;
  }

  close(): void {
    for (const channel of this.channels.values()) channel.close();
    this.channels.clear();
    this.keys.close();
  }

  private channelOf(nodeId: string): DeliveryChannel {
    const channel = this.channels.get(nodeId);
    if (!channel) throw new PkpError('UnknownNode', `node ${nodeId} is not registered`);
    return channel;
  }

  private seal(channel: DeliveryChannel, nodeId: string, key: CachedKey, use: 'encrypt' | 'decrypt', prefetched: boolean, score: number): SealedKeyDelivery {
    // The delivery is its own header (every field but the sealed material), filled in once: no copy.
    const delivery: SealedKeyDelivery = {
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
      sealedMaterial: NOT_SEALED_YET,
    };
    delivery.sealedMaterial = channel.seal(key.material, delivery);
    return delivery;
  }
}

const NOT_SEALED_YET = Buffer.alloc(0);

/** Most node ids one instruction may name (front-ends are at most 64 per service). */
const MAX_NODE_IDS = 1_000;

/** Checks a decrypt prefetch instruction before anything is read, fetched or delivered. */
function checkDecryptPrefetch(instruction: DecryptPrefetchInstruction): void {
  const bad = (message: string): never => {
    throw new PkpError('InvalidArgument', `prefetchDecrypt: ${message}`);
  };
  if (typeof instruction !== 'object' || instruction === null) bad('instruction must be an object');
  const { queueId, nodeIds, score, deadline, dekIds, withinMs, buyMessages } = instruction;
  if (typeof queueId !== 'string' || queueId === '') bad('queueId must be a non-empty string');
  if (!Array.isArray(nodeIds)) bad('nodeIds must be an array of node ids');
  if (nodeIds.length > MAX_NODE_IDS) bad(`nodeIds may name at most ${MAX_NODE_IDS} nodes`);
  if (!nodeIds.every((id) => typeof id === 'string')) bad('nodeIds must be strings');
  if (score !== undefined && !(typeof score === 'number' && score >= 0 && score <= 1)) bad('score must be a number in 0..1');
  if (deadline !== undefined && !(typeof deadline === 'number' && Number.isFinite(deadline))) bad('deadline must be a finite clock time');
  if (withinMs !== undefined && !(typeof withinMs === 'number' && Number.isFinite(withinMs) && withinMs >= 0)) bad('withinMs must be a finite number >= 0');
  if (buyMessages !== undefined && !(typeof buyMessages === 'number' && buyMessages >= 0)) bad('buyMessages must be a number >= 0');
  if (dekIds !== undefined) {
    if (!Array.isArray(dekIds)) bad('dekIds must be an array of DEK ids');
    if (!dekIds.every((id) => typeof id === 'string' && /^[0-9a-f]{32}$/.test(id))) bad('dekIds must be 32 lower-case hex characters each');
  }
}
