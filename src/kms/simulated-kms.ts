import { createHash } from 'node:crypto';
import { KmsError } from '../core/errors.ts';
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

const VERSION = 0x02;
const ID = Buffer.from(SIM_KEY_ID, 'utf8');
const TAG_BYTES = 16;
const TAG_AT = 1 + 8 + 1 + ID.length;
// version | counter (u64 BE) | key-id length | key id | context tag
const BLOB_BYTES = TAG_AT + TAG_BYTES;
const DEK_BYTES = 32;

/**
 * A KMS for the trace simulator: no disk, no map, deterministic. DEK n is a seeded mix of n, so
 * the blob need only carry n (plus the key id and a tag binding the context) for Decrypt to
 * re-derive it. Its keys come from a seed and give no secrecy; they exist to exercise the key
 * path, so they are derived with integer mixing, not HMAC: the simulator makes a call on every
 * miss that reaches the KMS, and two HMACs were most of its time per key.
 */
export class SimulatedKms implements CountingKms {
  /** Eight 32-bit words for the DEK, four for the tag, from the seed. */
  private readonly dekSeed: Uint32Array;
  private readonly tagSeed: Uint32Array;
  private readonly counter: CallCounter;
  private readonly tagWords = new Uint32Array(TAG_BYTES / 4);
  private issued = 0;

  constructor(options: SimulatedKmsOptions = {}) {
    const seed = String(options.seed ?? 1);
    const words = (purpose: string): Uint32Array => {
      const digest = createHash('sha256').update(`pkp-simulated-kms/${purpose}/${seed}`).digest();
      return Uint32Array.from({ length: 8 }, (_, i) => digest.readUInt32BE(4 * i));
    };
    this.dekSeed = words('dek');
    this.tagSeed = words('ctx').subarray(0, TAG_BYTES / 4);
    this.counter = new CallCounter(options.onCall);
  }

  async generateDataKey(_keyIdOrAlias: string, context: EncryptionContext, reason: KeyReason): Promise<GeneratedDataKey> {
    this.counter.record('GenerateDataKey', reason);
    const n = this.issued++;
    const blob = Buffer.alloc(BLOB_BYTES);
    blob[0] = VERSION;
    blob.writeUInt32BE(Math.floor(n / 2 ** 32), 1);
    blob.writeUInt32BE(n >>> 0, 5);
    blob[9] = ID.length;
    ID.copy(blob, 10);
    const tag = this.tag(n, context);
    for (let i = 0; i < tag.length; i++) blob.writeUInt32BE(tag[i]!, TAG_AT + 4 * i);
    return { keyId: SIM_KEY_ID, plaintext: this.dek(n), ciphertextBlob: blob };
  }

  async decrypt(ciphertextBlob: Buffer, context: EncryptionContext, reason: KeyReason): Promise<DecryptedDataKey> {
    this.counter.record('Decrypt', reason);
    const blob = ciphertextBlob;
    if (!Buffer.isBuffer(blob) || blob.length !== BLOB_BYTES || blob[0] !== VERSION || blob[9] !== ID.length || !ID.equals(blob.subarray(10, 10 + ID.length))) {
      throw new KmsError('InvalidCiphertextException', 'the ciphertext blob is not one this KMS issued');
    }
    const n = blob.readUInt32BE(1) * 2 ** 32 + blob.readUInt32BE(5);
    const tag = this.tag(n, context);
    for (let i = 0; i < tag.length; i++) {
      if (blob.readUInt32BE(TAG_AT + 4 * i) !== tag[i]) {
        throw new KmsError('InvalidCiphertextException', 'the ciphertext blob does not match the encryption context');
      }
    }
    return { keyId: SIM_KEY_ID, plaintext: this.dek(n) };
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

  /** DEK n. */
  private dek(n: number): Buffer {
    const out = Buffer.allocUnsafe(DEK_BYTES);
    const lo = n >>> 0;
    const hi = Math.floor(n / 2 ** 32);
    for (let i = 0; i < DEK_BYTES / 4; i++) out.writeUInt32BE(mix32(mix32(this.dekSeed[i]! ^ lo) ^ hi), 4 * i);
    return out;
  }

  /**
   * Binds counter and context, so a blob decrypts only under the context it was made for. The
   * context goes in as its entries sorted by key, each length-prefixed: unambiguous, like
   * encodeContext. Returns a scratch array, valid until the next call.
   */
  private tag(n: number, context: EncryptionContext): Uint32Array {
    if (context === null || typeof context !== 'object' || Array.isArray(context)) {
      throw new KmsError('ValidationException', 'the encryption context must be an object of strings');
    }
    const lanes = this.tagWords;
    lanes.set(this.tagSeed);
    absorb(lanes, n >>> 0);
    absorb(lanes, Math.floor(n / 2 ** 32));
    const keys = Object.keys(context);
    if (keys.length > 1) keys.sort();
    absorb(lanes, keys.length);
    for (const key of keys) {
      const value = context[key];
      if (typeof value !== 'string') throw new KmsError('ValidationException', 'encryption context values must be strings');
      absorbString(lanes, key);
      absorbString(lanes, value);
    }
    for (let i = 0; i < lanes.length; i++) lanes[i] = mix32(lanes[i]! ^ Math.imul(i + 1, 0x9e3779b9));
    return lanes;
  }
}

/** murmur3's finaliser: every input bit reaches every output bit. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function absorb(lanes: Uint32Array, word: number): void {
  for (let i = 0; i < lanes.length; i++) lanes[i] = mix32(lanes[i]! ^ word) + i;
}

/** Length first, then each UTF-16 code unit. */
function absorbString(lanes: Uint32Array, text: string): void {
  absorb(lanes, text.length);
  for (let c = 0; c < text.length; c++) {
    const unit = text.charCodeAt(c);
    for (let i = 0; i < lanes.length; i++) lanes[i] = Math.imul(lanes[i]! ^ unit, 0x01000193) + i;
  }
}
