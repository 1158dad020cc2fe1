import { createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { aeadDecrypt, aeadEncrypt } from './aead.ts';
import { zeroize } from './zero.ts';

/**
 * Sealing key material to one front-end node. Each node owns an X25519 key pair; the metadata
 * service agrees a channel key with it once (ECDH + HKDF, bound to the node id) and seals every
 * delivery under that key with AES-256-GCM, the DEK id as AAD. Only that node can open it.
 */
export class NodeKeyPair {
  private constructor(private readonly privateKey: KeyObject, readonly publicKeyDer: Buffer) {}

  static generate(): NodeKeyPair {
    const { privateKey, publicKey } = generateKeyPairSync('x25519');
    return new NodeKeyPair(privateKey, publicKey.export({ type: 'spki', format: 'der' }) as Buffer);
  }

  /** The channel key this node shares with the peer whose public key is given. */
  channelKey(peerPublicKeyDer: Buffer, nodeId: string): Buffer {
    return deriveChannelKey(this.privateKey, peerPublicKeyDer, nodeId);
  }
}

function deriveChannelKey(privateKey: KeyObject, peerPublicKeyDer: Buffer, nodeId: string): Buffer {
  const peer = createPublicKey({ key: peerPublicKeyDer, format: 'der', type: 'spki' });
  const shared = diffieHellman({ privateKey, publicKey: peer });
  const key = Buffer.from(hkdfSync('sha256', shared, Buffer.from('pkp-key-delivery-v1'), Buffer.from(nodeId), 32));
  zeroize(shared);
  return key;
}

/** One end of a sealed channel between the metadata service and one node. */
export class SealedChannel {
  constructor(private readonly key: Buffer, private readonly nodeId: string) {}

  seal(material: Buffer, dekId: string): Buffer {
    return aeadEncrypt(this.key, material, this.aad(dekId));
  }

  open(sealed: Buffer, dekId: string): Buffer {
    return aeadDecrypt(this.key, sealed, this.aad(dekId));
  }

  close(): void {
    zeroize(this.key);
  }

  private aad(dekId: string): Buffer {
    return Buffer.from(`${this.nodeId}\u0000${dekId}`);
  }
}

