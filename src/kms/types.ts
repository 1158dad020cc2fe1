/** The KMS seam: what the metadata service needs from a key management service. */

export type EncryptionContext = Readonly<Record<string, string>>;

/** Why a key was asked for; every KMS call is counted by it. */
export type KeyReason = 'demand' | 'prefetch' | 'refresh';

export type KmsOperation = 'GenerateDataKey' | 'Decrypt';

export interface GeneratedDataKey {
  /** Id of the customer master key that encrypted the DEK. */
  keyId: string;
  /** The 256-bit DEK. The caller owns it and must zeroize it when done. */
  plaintext: Buffer;
  /** The DEK encrypted under the master key, with the context bound as AAD. Names the master key. */
  ciphertextBlob: Buffer;
}

export interface DecryptedDataKey {
  keyId: string;
  plaintext: Buffer;
}

export interface KeyMetadata {
  keyId: string;
  arn: string;
  description: string;
  enabled: boolean;
  createdAt: number;
  aliases: string[];
}

/** The alias a queue uses when it names no master key (SQS's AWS-managed key). */
export const DEFAULT_KEY_ALIAS = 'alias/aws/sqs';

export interface Kms {
  /** keyIdOrAlias: a key id, its ARN, or `alias/...`. */
  generateDataKey(keyIdOrAlias: string, context: EncryptionContext, reason: KeyReason): Promise<GeneratedDataKey>;
  /** Fails with InvalidCiphertextException when the blob or the context does not match. */
  decrypt(ciphertextBlob: Buffer, context: EncryptionContext, reason: KeyReason): Promise<DecryptedDataKey>;
  describeKey(keyIdOrAlias: string): Promise<KeyMetadata>;
}

export interface KmsAdmin extends Kms {
  createKey(description?: string): Promise<KeyMetadata>;
  listKeys(): Promise<KeyMetadata[]>;
  enableKey(keyIdOrAlias: string): Promise<void>;
  disableKey(keyIdOrAlias: string): Promise<void>;
  createAlias(alias: string, keyIdOrAlias: string): Promise<void>;
}

/** Calls counted by operation and by reason. */
export interface KmsCallCounts {
  total: number;
  byOperation: Record<KmsOperation, number>;
  byReason: Record<KeyReason, number>;
  throttled: number;
}

/** Told of every counted KMS call, e.g. to feed a Prometheus counter. */
export type KmsCallListener = (op: KmsOperation, reason: KeyReason) => void;

/** A KMS that counts its calls. */
export interface CountingKms extends Kms {
  counts(): KmsCallCounts;
}

/** A KMS the service owns for its lifetime: administration, call counts, and close. */
export interface ManagedKms extends KmsAdmin, CountingKms {
  close(): Promise<void>;
}
