import { KmsError } from '../core/errors.ts';
import type { EncryptionContext } from './types.ts';

/**
 * The encryption context as AAD: entries sorted by the UTF-8 bytes of their keys, each key and value
 * length-prefixed (u32 BE), after an entry count. Length prefixes make the encoding unambiguous, so
 * no two different contexts ever give the same bytes (e.g. {a:'b=c'} versus {'a=b':'c'}).
 */
export function encodeContext(context: EncryptionContext): Buffer {
  if (context === null || typeof context !== 'object' || Array.isArray(context)) {
    throw new KmsError('ValidationException', 'the encryption context must be an object of strings');
  }
  const entries: [Buffer, Buffer][] = [];
  for (const [key, value] of Object.entries(context)) {
    if (typeof value !== 'string') throw new KmsError('ValidationException', 'encryption context values must be strings');
    entries.push([Buffer.from(key, 'utf8'), Buffer.from(value, 'utf8')]);
  }
  // Byte order, not JS string order, so that any implementation can reproduce it.
  entries.sort((x, y) => Buffer.compare(x[0], y[0]));
  let size = 4;
  for (const [k, v] of entries) size += 8 + k.length + v.length;
  const out = Buffer.alloc(size);
  let at = out.writeUInt32BE(entries.length, 0);
  for (const [k, v] of entries) {
    at = out.writeUInt32BE(k.length, at);
    at += k.copy(out, at);
    at = out.writeUInt32BE(v.length, at);
    at += v.copy(out, at);
  }
  return out;
}
