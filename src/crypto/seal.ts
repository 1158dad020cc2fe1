import { createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { PkpError } from '../core/errors.ts';
import { aeadDecrypt, aeadEncrypt } from './aead.ts';
import { zeroize } from './zero.ts';

/**
 * Sealing key material to one front-end node. Each node owns an X25519 key pair; the metadata
 * service agrees a channel key with it once (ECDH + HKDF over the node id and both public keys, so a
 * key agreed with one peer's key is useless with any other) and seals every delivery under that key
 * with AES-256-GCM. The AAD is every field of the delivery that the node acts on, so a delivery
 * altered in transit (another queue, a later expiry, another use) does not open.
 */
export class NodeKeyPair {
  private constructor(private readonly privateKey: KeyObject, readonly publicKeyDer: Buffer) {}

  static generate(): NodeKeyPair {
    const { privateKey, publicKey } = generateKeyPairSync('x25519');
    return new NodeKeyPair(privateKey, publicKey.export({ type: 'spki', format: 'der' }) as Buffer);
  }

  /**
   * The channel key this pair shares with the peer whose public key is given. `role` says which end
   * this pair is, so both ends order the two public keys the same way.
   */
  channelKey(peerPublicKeyDer: Buffer, nodeId: string, role: 'node' | 'metadata'): Buffer {
    const nodeKey = role === 'node' ? this.publicKeyDer : peerPublicKeyDer;
    const metadataKey = role === 'node' ? peerPublicKeyDer : this.publicKeyDer;
    const peer = createPublicKey({ key: peerPublicKeyDer, format: 'der', type: 'spki' });
    const shared = diffieHellman({ privateKey: this.privateKey, publicKey: peer });
    const info = Buffer.concat([lengthPrefixed(Buffer.from(nodeId)), lengthPrefixed(metadataKey), lengthPrefixed(nodeKey)]);
    const key = Buffer.from(hkdfSync('sha256', shared, Buffer.from('pkp-key-delivery-v2'), info, 32));
    zeroize(shared);
    return key;
  }
}

/** Everything about a delivered key that its receiver acts on; all of it is authenticated. */
export interface SealedHeader {
  nodeId: string;
  dekId: string;
  queueId: string;
  principal: string;
  kmsKeyId: string;
  use: 'encrypt' | 'decrypt';
  encryptedDek: Buffer;
  issuedAt: number;
  expiresAt: number;
  prefetched: boolean;
  score: number;
}

/** One end of the channel that carries keys between the metadata service and one node. */
export interface DeliveryChannel {
  seal(material: Buffer, header: SealedHeader): Buffer;
  /** Throws when the delivery is not for this channel's node (or, sealed, was altered). */
  open(sealed: Buffer, header: SealedHeader): Buffer;
  close(): void;
}

/** The metadata service's side of its channels: the public key nodes join with, and its end of each node's channel. */
export interface ChannelIdentity {
  readonly publicKeyDer: Buffer;
  channelWith(nodeId: string, nodePublicKeyDer: Buffer): DeliveryChannel;
}

/** The service's channels: an X25519 identity, a channel key agreed with each node, AES-256-GCM. */
export class X25519ChannelIdentity implements ChannelIdentity {
  private readonly identity = NodeKeyPair.generate();

  get publicKeyDer(): Buffer {
    return this.identity.publicKeyDer;
  }

  channelWith(nodeId: string, nodePublicKeyDer: Buffer): SealedChannel {
    return new SealedChannel(this.identity.channelKey(nodePublicKeyDer, nodeId, 'metadata'), nodeId);
  }
}

/** One end of a sealed channel between the metadata service and one node. */
export class SealedChannel implements DeliveryChannel {
  constructor(private readonly key: Buffer, private readonly nodeId: string) {}

  seal(material: Buffer, header: SealedHeader): Buffer {
    if (header.nodeId !== this.nodeId) throw new PkpError('DeliveryRejected', 'a delivery is sealed to the node of its channel only');
    return aeadEncrypt(this.key, material, headerAad(header));
  }

  /** Throws when the delivery was sealed to another node or any field was altered. */
  open(sealed: Buffer, header: SealedHeader): Buffer {
    if (header.nodeId !== this.nodeId) throw new PkpError('DeliveryRejected', 'the delivery is addressed to another node');
    return aeadDecrypt(this.key, sealed, headerAad(header));
  }

  close(): void {
    zeroize(this.key);
  }
}

/** An unambiguous encoding of the header: version, then each field in a fixed order. */
function headerAad(h: SealedHeader): Buffer {
  return Buffer.from(JSON.stringify([
    2, h.nodeId, h.dekId, h.queueId, h.principal, h.kmsKeyId, h.use, h.encryptedDek.toString('base64'), h.issuedAt, h.expiresAt, h.prefetched, h.score,
  ]));
}

function lengthPrefixed(bytes: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}
