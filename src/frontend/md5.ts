import { createHash } from 'node:crypto';
import { hexDigest } from '../crypto/digest.ts';

/** One message attribute after validation: a string value for String/Number types, bytes for Binary. */
export interface MessageAttribute {
  DataType: string;
  StringValue?: string;
  BinaryValue?: Uint8Array;
}

/** MD5OfMessageBody: hex MD5 of the body's UTF-8 bytes. */
export function md5OfBody(body: string): string {
  return hexDigest('md5', body);
}

/**
 * MD5OfMessageAttributes as SQS computes it: for each attribute in name order, the name, the data
 * type (each as a 4-byte big-endian length then the UTF-8 bytes), one transport byte (1 for String
 * and Number types, 2 for Binary, custom suffixes such as "Number.float" included), then the value
 * length-prefixed the same way (UTF-8 bytes, or the raw bytes of a binary value).
 */
export function md5OfMessageAttributes(attrs: Readonly<Record<string, MessageAttribute>>): string {
  const hash = createHash('md5');
  for (const name of Object.keys(attrs).sort()) {
    const attr = attrs[name]!;
    hash.update(lengthPrefixed(Buffer.from(name, 'utf8')));
    hash.update(lengthPrefixed(Buffer.from(attr.DataType, 'utf8')));
    if (isBinaryType(attr.DataType)) {
      hash.update(Uint8Array.of(2));
      hash.update(lengthPrefixed(attr.BinaryValue ?? new Uint8Array(0)));
    } else {
      hash.update(Uint8Array.of(1));
      hash.update(lengthPrefixed(Buffer.from(attr.StringValue ?? '', 'utf8')));
    }
  }
  return hash.digest('hex');
}

/** The base type is what comes before the first '.'; "Binary.png" is binary. */
export function isBinaryType(dataType: string): boolean {
  return dataType.split('.', 1)[0] === 'Binary';
}

function lengthPrefixed(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + bytes.length);
  out.writeUInt32BE(bytes.length, 0);
  out.set(bytes, 4);
  return out;
}
