import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { PkpError } from '../core/errors.ts';

/** AES-256-GCM with a random 96-bit IV. Wire layout: iv (12) | tag (16) | ciphertext. */
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;
export const AEAD_OVERHEAD = IV_BYTES + TAG_BYTES;

// IVs are drawn from a pool of CSPRNG bytes refilled 16 KiB at a time: one system call per ~1,300
// encryptions instead of one each. Every IV is still fresh random bytes, never reused.
const IV_POOL = Buffer.alloc(16 * 1024);
let ivPoolOffset = IV_POOL.length;

function nextIv(): Buffer {
  if (ivPoolOffset + IV_BYTES > IV_POOL.length) {
    randomFillSync(IV_POOL);
    ivPoolOffset = 0;
  }
  const iv = Buffer.from(IV_POOL.subarray(ivPoolOffset, ivPoolOffset + IV_BYTES));
  ivPoolOffset += IV_BYTES;
  return iv;
}

export function aeadEncrypt(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  if (key.length !== KEY_BYTES) throw new PkpError('InvalidKey', 'AES-256-GCM needs a 32-byte key');
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  return Buffer.concat([iv, cipher.getAuthTag(), head, tail]);
}

/**
 * Throws PkpError('DecryptFailed') when the key, the AAD or the bytes do not match. The plaintext is
 * the one buffer returned (GCM's final() adds no bytes), so a caller that zeroizes it leaves no copy;
 * on a failed tag check the unauthenticated output is zeroed before the error.
 */
export function aeadDecrypt(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  if (key.length !== KEY_BYTES) throw new PkpError('InvalidKey', 'AES-256-GCM needs a 32-byte key');
  if (sealed.length < AEAD_OVERHEAD) throw new PkpError('DecryptFailed', 'ciphertext too short');
  let out: Buffer | undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(IV_BYTES, AEAD_OVERHEAD));
    out = decipher.update(sealed.subarray(AEAD_OVERHEAD));
    const tail = decipher.final();
    if (tail.length === 0) return out;
    const whole = Buffer.concat([out, tail]);
    out.fill(0);
    tail.fill(0);
    return whole;
  } catch {
    out?.fill(0);
    throw new PkpError('DecryptFailed', 'authentication failed');
  }
}
