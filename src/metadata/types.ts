import type { KeyReason } from '../kms/types.ts';

/** What the metadata service needs to know about a queue to hand out its keys. */
export interface QueueKeySettings {
  queueId: string;
  /** Master key id, ARN or alias. */
  kmsMasterKeyId: string;
  /** KmsDataKeyReusePeriodSeconds, in milliseconds. */
  reuseMs: number;
}

/** A data key as the metadata service holds it. `material` is the plaintext DEK. */
export interface DataKey {
  /** Short public id of the DEK: hex of a hash of the encrypted DEK. Safe to log and publish. */
  dekId: string;
  queueId: string;
  /** Principal the DEK was issued for ('' for decrypt keys, which any reader may use). */
  principal: string;
  kmsKeyId: string;
  material: Buffer;
  encryptedDek: Buffer;
  issuedAt: number;
  /** issuedAt + reuse period. The key never encrypts at or after this instant. */
  expiresAt: number;
}

/** A key on its way to one node: the material sealed to that node, everything else in clear. */
export interface SealedKeyDelivery extends Omit<DataKey, 'material'> {
  nodeId: string;
  sealedMaterial: Buffer;
  prefetched: boolean;
  /** Prefetch score from the prefetcher (0..1), used by the node's cache to protect the entry. */
  score: number;
  use: 'encrypt' | 'decrypt';
}

export interface KeyRequestOptions {
  reason?: KeyReason;
  /** Absolute time (clock ms) after which the caller no longer waits. */
  deadline?: number;
  /** When the client request that needs the key arrived; a new DEK's life counts from then. */
  requestedAt?: number;
  /** Encrypt keys: the caller's current DEK reached its encryption cap; hand out a successor, never it. */
  retireDekId?: string;
}

/** A prefetch instruction: ids only. The prefetcher never sees a key. */
export interface PrefetchInstruction {
  queueId: string;
  principal: string;
  nodeIds: string[];
  reason: 'prefetch' | 'refresh';
  score?: number;
  /** Absolute clock time after which the key is no use to the prefetcher: it stops waiting for it. */
  deadline?: number;
  /**
   * For refreshes: the key must stay valid at least this long after delivery, else a successor
   * DEK is generated. Omitted: any still-valid key will do.
   */
  minRemainingMs?: number;
}

/** Delivery of sealed keys to nodes (in-process call embedded; a per-node subject on NATS). */
export interface KeyDelivery {
  deliver(delivery: SealedKeyDelivery): void;
}

/**
 * Prefetch of the decrypt keys a queue's waiting messages need: ids only. The metadata service
 * reads the backlog's DEKs from the store itself, so the prefetcher never handles a DEK, not even
 * an encrypted one. Always at background priority ('prefetch' reason, within the budget).
 */
export interface DecryptPrefetchInstruction {
  queueId: string;
  nodeIds: string[];
  /** 0..1, default 1: protects the delivered entries in the nodes' caches (see KeyCache). */
  score?: number;
  /** Absolute clock time after which a key is no use: the service stops waiting for it. */
  deadline?: number;
  /** Only these DEK ids (e.g. from key events), and only while waiting messages still use them. */
  dekIds?: string[];
  /** Also count messages that become visible within this many ms (delayed or in flight). Default 60 s. */
  withinMs?: number;
  /**
   * Messages, in the order receives reach them, whose DEKs this prefetch may buy from the KMS: those
   * the consumers are expected to reach within a key's life. DEKs further back are delivered only
   * if the tier holds them. Default: every one.
   */
  buyMessages?: number;
}

export interface DecryptPrefetchOutcome {
  /** Sealed keys delivered (one per key per node). */
  delivered: number;
  /** DEKs obtained and delivered to at least one node. */
  keys: number;
  /** DEKs of the backlog that could not be obtained (KMS failure, deadline, budget queue full). */
  failed: number;
  /** DEKs beyond `buyMessages` the tier did not hold: not bought. */
  skipped: number;
}
