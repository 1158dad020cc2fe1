import type { StoredMessage } from '../store/types.ts';

/** A message body and its attributes, encrypted under one DEK. */
export interface SealedMessage {
  bodyCiphertext: Buffer;
  attributesCiphertext: Buffer | null;
  encryptedDek: Buffer;
  dekId: string;
  kmsKeyId: string;
}

export interface PlainMessageParts {
  messageId: string;
  body: Buffer;
  /** JSON of the message attributes as received, or null. */
  attributes: Buffer | null;
}

/**
 * What a front-end node uses to encrypt and decrypt messages. Keys never leave it: it looks the
 * DEK up in the node's key cache (fetching it from the metadata service on a miss) and encrypts in
 * the same synchronous step, so a key cannot be evicted and zeroed in between.
 * AAD of every ciphertext = queueId + '\0' + messageId (+ '\0attrs' for attributes).
 */
export interface MessageKeyring {
  /** One DEK for the whole batch: the queue's current DEK for this principal. */
  sealMessages(queueId: string, principal: string, items: PlainMessageParts[]): Promise<SealedMessage[]>;
  /** Throws PkpError('DecryptFailed') when the stored bytes do not authenticate. */
  openMessage(message: StoredMessage): Promise<{ body: Buffer; attributes: Buffer | null }>;
}
