import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { KmsError } from '../core/errors.ts';
import { encodeContext } from './context.ts';
import { CallCounter } from './counts.ts';
import type {
  CountingKms, DecryptedDataKey, EncryptionContext, GeneratedDataKey, KeyMetadata, KeyReason, KmsCallCounts, KmsCallListener,
} from './types.ts';

export interface SimulatedKmsOptions {
  /** Same seed, same sequence of keys and blobs. Default 1. */
  seed?: number | string;
  onCall?: KmsCallListener;
}

export const SIM_KEY_ID = 'sim-key';

const VERSION = 0x01;
const ID = Buffer.from(SIM_KEY_ID, 'utf8');
const TAG_BYTES = 16;
// version | counter (u64 BE) | key-id length | key id | context tag
const BLOB_BYTES = 1 + 8 + 1 + ID.length + TAG_BYTES;

/**
 * A KMS for the trace simulator: no disk, no map, deterministic. DEK n is HMAC-SHA256(secret, n), so
 * the blob need only carry n (plus the key id and a tag binding the context) for Decrypt to re-derive
 * it. Its keys are derived from a seed and give no secrecy; they exist to exercise the key path.
 */
export class SimulatedKms implements CountingKms {
  private readonly dekSecret: Buffer;
  private readonly tagSecret: Buffer;
  private readonly counter: CallCounter;
  private issued = 0;

  constructor(options: SimulatedKmsOptions = {}) {
    const seed = String(options.seed ?? 1);
    // Separate secrets so a context tag never equals a prefix of some DEK.
    this.dekSecret = createHash('sha256').update(`pkp-simulated-kms/dek/${seed}`).digest();
    this.tagSecret = createHash('sha256').update(`pkp-simulated-kms/ctx/${seed}`).digest();
    this.counter = new CallCounter(options.onCall);
  }

  async generateDataKey(_keyIdOrAlias: string, context: EncryptionContext, reason: KeyReason): Promise<GeneratedDataKey> {
    this.counter.record('GenerateDataKey', reason);
    const n = this.issued++;
    const blob = Buffer.alloc(BLOB_BYTES);
    blob[0] = VERSION;
    blob.writeBigUInt64BE(BigInt(n), 1);
    blob[9] = ID.length;
    ID.copy(blob, 10);
    this.tag(blob, context).copy(blob, BLOB_BYTES - TAG_BYTES);
    return { keyId: SIM_KEY_ID, plaintext: this.dek(blob), ciphertextBlob: blob };
  }

  async decrypt(ciphertextBlob: Buffer, context: EncryptionContext, reason: KeyReason): Promise<DecryptedDataKey> {
    this.counter.record('Decrypt', reason);
    const blob = ciphertextBlob;
    if (!Buffer.isBuffer(blob) || blob.length !== BLOB_BYTES || blob[0] !== VERSION || blob[9] !== ID.length || !ID.equals(blob.subarray(10, 10 + ID.length))) {
      throw new KmsError('InvalidCiphertextException', 'the ciphertext blob is not one this KMS issued');
    }
    if (!timingSafeEqual(this.tag(blob, context), blob.subarray(BLOB_BYTES - TAG_BYTES))) {
      throw new KmsError('InvalidCiphertextException', 'the ciphertext blob does not match the encryption context');
    }
    return { keyId: SIM_KEY_ID, plaintext: this.dek(blob) };
  }

  async describeKey(_keyIdOrAlias: string): Promise<KeyMetadata> {
    return {
      keyId: SIM_KEY_ID, arn: `arn:aws:kms:us-east-1:000000000000:key/${SIM_KEY_ID}`,
      description: 'simulated master key', enabled: true, createdAt: 0, aliases: [],
    };
  }

  counts(): KmsCallCounts {
    return this.counter.snapshot();
  }

  /** The DEK of the counter in the blob. */
  private dek(blob: Buffer): Buffer {
    return createHmac('sha256', this.dekSecret).update(blob.subarray(1, 9)).digest();
  }

  /** Binds counter, key id and context, so a blob decrypts only under the context it was made for. */
  private tag(blob: Buffer, context: EncryptionContext): Buffer {
    return createHmac('sha256', this.tagSecret)
      .update(blob.subarray(0, BLOB_BYTES - TAG_BYTES))
      .update(encodeContext(context))
      .digest()
      .subarray(0, TAG_BYTES);
  }
}
