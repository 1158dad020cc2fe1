import { PkpError } from '../core/errors.ts';
import type { ChannelIdentity, DeliveryChannel, SealedHeader } from '../crypto/seal.ts';
import { zeroize } from '../crypto/zero.ts';
import type { NodeRegistry } from '../keycache/node-keyring.ts';

const NO_PUBLIC_KEY = Buffer.alloc(0);

/**
 * The virtual-time simulator's key-delivery channel: the interface of SealedChannel, with its
 * addressing check, but the key material copied instead of sealed. The simulator measures misses,
 * KMS calls and key exposure, which sealing does not change, and real sealing (an AES-GCM seal and
 * open, each with its AAD, per delivery) was most of its time per miss. The service never uses it:
 * only the simulator's composition picks it (SimulationOptions.sealing), and a test checks that a
 * replay gives the same figures with either channel.
 */
export class CopyChannel implements DeliveryChannel {
  constructor(private readonly nodeId: string) {}

  seal(material: Buffer, header: SealedHeader): Buffer {
    if (header.nodeId !== this.nodeId) throw new PkpError('DeliveryRejected', 'a delivery is sealed to the node of its channel only');
    return Buffer.from(material);
  }

  /** The copy in transit is zeroed once opened (a delivery opens once): no plaintext outlives it. */
  open(sealed: Buffer, header: SealedHeader): Buffer {
    if (header.nodeId !== this.nodeId) throw new PkpError('DeliveryRejected', 'the delivery is addressed to another node');
    const material = Buffer.from(sealed);
    zeroize(sealed);
    return material;
  }

  close(): void {}
}

/** The metadata service's side: no key agreement, a copy channel per node. */
export const copyChannels: ChannelIdentity = {
  publicKeyDer: NO_PUBLIC_KEY,
  channelWith: (nodeId) => new CopyChannel(nodeId),
};

/** The node's side of joining a metadata service built with copyChannels. */
export function joinWithCopyChannel(registry: NodeRegistry, nodeId: string): CopyChannel {
  registry.registerNode(nodeId, NO_PUBLIC_KEY);
  return new CopyChannel(nodeId);
}
