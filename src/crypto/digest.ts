import * as crypto from 'node:crypto';

/**
 * Hex digest of `data` in one call. Node's one-shot `crypto.hash` (20.12 and later) skips the Hash
 * object a createHash chain allocates: about 1 µs less per call on the request path, where each
 * send takes three (SigV4's body and canonical request, the body's MD5). Older Node 20 releases
 * lack it and take the chain.
 */
export const hexDigest: (algorithm: 'sha256' | 'md5', data: string | Buffer) => string =
  typeof crypto.hash === 'function'
    ? (algorithm, data) => crypto.hash(algorithm, data, 'hex')
    : (algorithm, data) => crypto.createHash(algorithm).update(data).digest('hex');
