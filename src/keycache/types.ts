/** A key held in a node's cache. `material` is zeroed when the entry is dropped. */
export interface CachedKey {
  dekId: string;
  queueId: string;
  principal: string;
  kmsKeyId: string;
  material: Buffer;
  encryptedDek: Buffer;
  issuedAt: number;
  expiresAt: number;
  /** AES-GCM encryptions this holder made with the key (encrypt keys), against the per-DEK cap. */
  encryptions?: number;
}
