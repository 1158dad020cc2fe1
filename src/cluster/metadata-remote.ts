import type { Subscription } from '@nats-io/transport-node';
import { PkpError } from '../core/errors.ts';
import { NodeKeyPair, SealedChannel, type SealedHeader } from '../crypto/seal.ts';
import type { MetadataClient, MetadataService } from '../metadata/metadata-service.ts';
import type {
  DecryptPrefetchInstruction, DecryptPrefetchOutcome, KeyRequestOptions, PrefetchInstruction, SealedKeyDelivery,
} from '../metadata/types.ts';
import type { PrefetchApi } from '../prefetcher/live.ts';
import type { ClusterIdentity } from './identity.ts';
import type { NatsLink } from './nats-link.ts';
import { callRpc, RpcServer } from './rpc.ts';
import {
  checkBytes, checkDecryptPrefetch, checkId, checkKeyOptions, checkNodeId, checkPrefetch, decodeDelivery, encodeDelivery, type WireDelivery,
} from './wire.ts';

/**
 * The metadata service across the network. Calls are signed HTTP requests (see rpc.ts): a
 * front-end's key fetches need no broker. Prefetched keys are pushed on NATS, to
 * `<prefix>.node.<nodeId>.keys`. Every message is signed (identity.ts); a front-end may ask only for
 * its own node id, and only prefetchers may instruct prefetches. Keys travel sealed to the receiving
 * node; the prefetcher's calls carry ids only and their answers carry no key, not even sealed.
 */

const CALLS = {
  register: 'register', fetchEncrypt: 'fetch-encrypt', fetchDecrypt: 'fetch-decrypt',
  prefetch: 'prefetch', prefetchDecrypt: 'prefetch-decrypt', settings: 'settings',
} as const;

export const keysSubject = (prefix: string, nodeId: string): string => `${prefix}.node.${nodeId}.keys`;

export interface MetadataServerOptions {
  /** Where prefetched keys are pushed. Without NATS (down, or not yet up) only demand fetches work. */
  nats: NatsLink;
  identity: ClusterIdentity;
  prefix: string;
  metadata: MetadataService;
  /** A queue's DEK reuse period, for the prefetchers (undefined: unknown queue). */
  reuseMsOf: (queueId: string) => Promise<number | undefined> | number | undefined;
  onError: (error: unknown) => void;
}

interface RegisterArgs {
  nodeId: string;
  publicKey: string;
}

/** The metadata service's calls, ready to be served over HTTP (RpcServer.httpServer). */
export function metadataRpc(options: MetadataServerOptions): RpcServer {
  const { nats, identity, metadata, onError } = options;
  const rpc = new RpcServer(identity);
  const registered = new Map<string, string>();
  /** A node acts for itself only: the certificate's id must be the node id it names. */
  const ownNode = (nodeId: unknown, sender: { id: string }): string => {
    const id = checkNodeId(nodeId);
    if (id !== sender.id) throw new PkpError('Unauthenticated', `${sender.id} may not act for node ${id}`);
    return id;
  };
  metadata.setDelivery({
    deliver: (delivery) => {
      const subject = keysSubject(options.prefix, delivery.nodeId);
      try {
        nats.current()?.publish(subject, identity.sign(subject, encodeDelivery(delivery)));
      } catch (error) {
        onError(error);
      }
    },
  });
  rpc.handle<RegisterArgs, { publicKey: string }>(CALLS.register, ['frontend'], async (args, { sender }) => {
    const nodeId = ownNode(args?.nodeId, sender);
    const publicKey = checkBytes(args.publicKey, 'public key', 64).toString('base64');
    // The same key again (a periodic re-register) keeps the channel, so deliveries in flight still open.
    if (registered.get(nodeId) !== publicKey) {
      metadata.registerNode(nodeId, Buffer.from(publicKey, 'base64'));
      registered.set(nodeId, publicKey);
    }
    return { publicKey: metadata.publicKeyDer.toString('base64') };
  });
  rpc.handle<{ nodeId: string; queueId: string; principal: string; options?: KeyRequestOptions }, WireDelivery>(
    CALLS.fetchEncrypt, ['frontend'], async (args, { sender }) => encodeDelivery(await metadata.fetchEncryptKey(
      ownNode(args?.nodeId, sender), checkId(args.queueId, 'queue id'), checkId(args.principal, 'principal'), checkKeyOptions(args.options))));
  rpc.handle<{ nodeId: string; queueId: string; encryptedDek: string; options?: KeyRequestOptions }, WireDelivery>(
    CALLS.fetchDecrypt, ['frontend'], async (args, { sender }) => encodeDelivery(await metadata.fetchDecryptKey(
      ownNode(args?.nodeId, sender), checkId(args.queueId, 'queue id'), checkBytes(args.encryptedDek, 'encrypted DEK'), checkKeyOptions(args.options))));
  rpc.handle<PrefetchInstruction, { delivered: number; expiresAt?: number }>(CALLS.prefetch, ['prefetcher'], async (args) => {
    const outcome = await metadata.prefetch(checkPrefetch(args));
    return { delivered: outcome.delivered, expiresAt: outcome.expiresAt };
  });
  rpc.handle<DecryptPrefetchInstruction, DecryptPrefetchOutcome>(CALLS.prefetchDecrypt, ['prefetcher'],
    async (args) => metadata.prefetchDecrypt(checkDecryptPrefetch(args)));
  rpc.handle<{ queueId: string }, { reuseMs: number | null }>(CALLS.settings, ['prefetcher'],
    async (args) => ({ reuseMs: (await options.reuseMsOf(checkId(args?.queueId, 'queue id'))) ?? null }));
  return rpc;
}

/** The node's end of its sealed channel, replaced when the metadata service's key changes (a restart). */
export class RenewableChannel {
  private channel: SealedChannel | undefined;
  private metadataKey = '';

  constructor(private readonly pair: NodeKeyPair, private readonly nodeId: string) {}

  /** Derives the channel for this metadata key, unless it is the one in use. */
  use(metadataPublicKey: Buffer): void {
    const text = metadataPublicKey.toString('base64');
    if (text === this.metadataKey) return;
    this.channel?.close();
    this.channel = new SealedChannel(this.pair.channelKey(metadataPublicKey, this.nodeId, 'node'), this.nodeId);
    this.metadataKey = text;
  }

  open(sealed: Buffer, header: SealedHeader): Buffer {
    if (!this.channel) throw new PkpError('DeliveryRejected', 'not registered with the metadata service yet');
    return this.channel.open(sealed, header);
  }

  close(): void {
    this.channel?.close();
  }
}

export interface RemoteMetadataOptions {
  /** The metadata service's URL (http://host:port). */
  url: string;
  /** Where prefetched keys arrive; until NATS answers the node fetches on demand only. */
  nats: NatsLink;
  identity: ClusterIdentity;
  prefix: string;
  /** How long one call waits for the metadata service. Default 5 s. */
  timeoutMs?: number;
  /** How often the node registers again (finds a restarted metadata service). Default 10 s. */
  reregisterMs?: number;
  onError?: (error: unknown) => void;
}

/**
 * A front-end node's view of the remote metadata service: its key requests (answers sealed to this
 * node), its registration (the X25519 public key, signed with the node's credential: the proof of
 * identity), and the subject where prefetched keys arrive. The private key never leaves this object.
 */
export class RemoteMetadata implements MetadataClient {
  readonly channel: RenewableChannel;
  private readonly pair = NodeKeyPair.generate();
  private readonly timeoutMs: number;
  private deliveries: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(private readonly options: RemoteMetadataOptions, readonly nodeId: string) {
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.channel = new RenewableChannel(this.pair, nodeId);
  }

  /** Joins as the node named by the credential. Retries in the background if the metadata service is not up yet. */
  static async join(options: RemoteMetadataOptions, onDelivery: (delivery: SealedKeyDelivery) => void): Promise<RemoteMetadata> {
    const remote = new RemoteMetadata(options, options.identity.id);
    const { nats, identity } = options;
    const subject = keysSubject(options.prefix, remote.nodeId);
    nats.whenConnected((nc) => {
      if (remote.closed) return;
      remote.deliveries = nc.subscribe(subject, {
        callback: (error, msg) => {
          if (error) return options.onError?.(error);
          try {
            onDelivery(decodeDelivery(identity.open(subject, msg.data, ['metadata']).body));
          } catch (failure) {
            options.onError?.(failure);
          }
        },
      });
    });
    await remote.register().catch((error: unknown) => options.onError?.(error));
    remote.timer = setInterval(() => void remote.register().catch((error: unknown) => options.onError?.(error)), options.reregisterMs ?? 10_000);
    remote.timer.unref();
    return remote;
  }

  async register(): Promise<void> {
    const reply = await callRpc<RegisterArgs, { publicKey: string }>(this.options.url, this.options.identity, CALLS.register,
      { nodeId: this.nodeId, publicKey: this.pair.publicKeyDer.toString('base64') }, ['metadata'], this.timeoutMs);
    this.channel.use(checkBytes(reply.publicKey, 'metadata public key', 64));
  }

  fetchEncryptKey(nodeId: string, queueId: string, principal: string, options: KeyRequestOptions = {}): Promise<SealedKeyDelivery> {
    return this.fetch(CALLS.fetchEncrypt, { nodeId, queueId, principal, options });
  }

  fetchDecryptKey(nodeId: string, queueId: string, encryptedDek: Buffer, options: KeyRequestOptions = {}): Promise<SealedKeyDelivery> {
    return this.fetch(CALLS.fetchDecrypt, { nodeId, queueId, encryptedDek: encryptedDek.toString('base64'), options });
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.deliveries?.unsubscribe();
    this.channel.close();
  }

  /** One call; a metadata service that does not know this node (it restarted) gets it registered, then the call again. */
  private async fetch(name: string, args: object): Promise<SealedKeyDelivery> {
    const call = async () => decodeDelivery(await callRpc(this.options.url, this.options.identity, name, args, ['metadata'], this.timeoutMs));
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof PkpError) || error.code !== 'UnknownNode') throw error;
      await this.register();
      return call();
    }
  }
}

/** The prefetcher's view of the remote metadata service: instructions out, counts and expiries back. */
export class RemotePrefetchApi implements PrefetchApi {
  constructor(private readonly url: string, private readonly identity: ClusterIdentity, private readonly timeoutMs = 10_000) {}

  prefetch(instruction: PrefetchInstruction): Promise<{ delivered: number; expiresAt?: number }> {
    return callRpc(this.url, this.identity, CALLS.prefetch, instruction, ['metadata'], this.timeoutMs);
  }

  prefetchDecrypt(instruction: DecryptPrefetchInstruction): Promise<DecryptPrefetchOutcome> {
    return callRpc(this.url, this.identity, CALLS.prefetchDecrypt, instruction, ['metadata'], this.timeoutMs);
  }

  async reuseMsOf(queueId: string): Promise<number | undefined> {
    const reply = await callRpc<{ queueId: string }, { reuseMs: number | null }>(this.url, this.identity, CALLS.settings, { queueId }, ['metadata'], this.timeoutMs);
    return typeof reply.reuseMs === 'number' && reply.reuseMs > 0 ? reply.reuseMs : undefined;
  }
}
