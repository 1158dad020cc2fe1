import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PkpError } from '../core/errors.ts';

/**
 * Who a process of a distributed cluster is, and how the others can tell. `pkp init` makes the
 * cluster's authority: an Ed25519 key pair whose private half stays in the data directory. The
 * authority issues each process a credential: its own Ed25519 key pair and a certificate (id,
 * role, public key, expiry) signed by the authority. Every message a process sends on NATS is
 * signed with its key and carries its certificate, so a receiver needs only the authority's public
 * key to know who sent it and in which role; a process without a credential is refused.
 *
 * Why signatures on messages rather than mutual TLS: the NATS server and PostgreSQL are the
 * operator's, often shared and configured elsewhere, and TLS to them would authenticate a process
 * to the broker, not to the other PKP processes. A signed message is checked by the PKP process that
 * acts on it, whatever carried it. (NATS and PostgreSQL credentials can still be used on top.)
 */

export type ClusterRole = 'metadata' | 'frontend' | 'prefetcher';
export const CLUSTER_ROLES: readonly ClusterRole[] = ['metadata', 'frontend', 'prefetcher'];

export interface Certificate {
  id: string;
  role: ClusterRole;
  /** The holder's Ed25519 public key (SPKI DER, base64). */
  publicKey: string;
  /** ms since the epoch. */
  notAfter: number;
  /** The authority's signature over the fields above (base64). */
  sig: string;
}

/** What a process holds: its certificate and its private key. Kept in a 0600 file. */
export interface ClusterCredential {
  certificate: Certificate;
  /** PKCS#8 DER, base64. */
  privateKey: string;
  /** The authority's public key, to check everyone else (SPKI DER, base64). */
  authority: string;
}

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const DEFAULT_LIFE_MS = 365 * 86_400_000;

function certificateBytes(c: Omit<Certificate, 'sig'>): Buffer {
  return Buffer.from(JSON.stringify(['pkp-cert-v1', c.id, c.role, c.publicKey, c.notAfter]));
}

/** The cluster authority: issues credentials. Only `pkp init` and `pkp up --distributed` hold it. */
export class ClusterAuthority {
  private constructor(private readonly privateKey: KeyObject, readonly publicKey: string) {}

  static generate(): ClusterAuthority {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    return new ClusterAuthority(privateKey, (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64'));
  }

  /** The authority kept in `<dataDir>/cluster/authority.json`, made on first use (0600). */
  static openOrCreate(dataDir: string): ClusterAuthority {
    const dir = join(dataDir, 'cluster');
    const file = join(dir, 'authority.json');
    if (existsSync(file)) {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { privateKey?: unknown };
      if (typeof saved.privateKey !== 'string') throw new Error(`${file} is not a cluster authority`);
      const privateKey = createPrivateKey({ key: Buffer.from(saved.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
      const publicKey = (createPublicKey(privateKey).export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
      return new ClusterAuthority(privateKey, publicKey);
    }
    const authority = ClusterAuthority.generate();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const privateDer = authority.privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer;
    writeFileSync(file, JSON.stringify({ privateKey: privateDer.toString('base64'), publicKey: authority.publicKey }), { mode: 0o600 });
    privateDer.fill(0);
    chmodSync(file, 0o600);
    return authority;
  }

  /** A fresh key pair and certificate for one process. */
  issue(id: string, role: ClusterRole, lifeMs = DEFAULT_LIFE_MS, now = Date.now()): ClusterCredential {
    if (!ID.test(id)) throw new RangeError('a cluster id is 1-64 of [A-Za-z0-9._-]');
    if (!CLUSTER_ROLES.includes(role)) throw new RangeError(`role must be one of ${CLUSTER_ROLES.join(', ')}`);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const unsigned = { id, role, publicKey: (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64'), notAfter: now + lifeMs };
    const sig = sign(null, certificateBytes(unsigned), this.privateKey).toString('base64');
    const privateDer = privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer;
    const credential = { certificate: { ...unsigned, sig }, privateKey: privateDer.toString('base64'), authority: this.publicKey };
    privateDer.fill(0);
    return credential;
  }
}

/** Writes a credential for a process to start with (`--credential FILE`), readable by its owner only. */
export function writeCredential(file: string, credential: ClusterCredential): void {
  writeFileSync(file, JSON.stringify(credential), { mode: 0o600 });
  chmodSync(file, 0o600);
}

export function readCredential(file: string): ClusterCredential {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read the cluster credential ${file}: ${(error as Error).message}`);
  }
  const c = parsed as Partial<ClusterCredential>;
  if (typeof c?.privateKey !== 'string' || typeof c.authority !== 'string' || !isCertificate(c.certificate)) {
    throw new Error(`${file} is not a cluster credential (make one with pkp init)`);
  }
  return c as ClusterCredential;
}

function isCertificate(v: unknown): v is Certificate {
  const c = v as Partial<Certificate> | undefined;
  return typeof c === 'object' && c !== null && typeof c.id === 'string' && ID.test(c.id) && CLUSTER_ROLES.includes(c.role as ClusterRole)
    && typeof c.publicKey === 'string' && typeof c.notAfter === 'number' && typeof c.sig === 'string';
}

/** A signed message: the sender's certificate, when it was signed, the body, and the signature. */
interface SignedMessage {
  v: 1;
  cert: Certificate;
  at: number;
  body: string;
  sig: string;
}

export interface Verified<T> {
  sender: Certificate;
  body: T;
}

/** How far a message's signing time may be from the receiver's clock. Bounds replays. */
const MAX_SKEW_MS = 60_000;

function signedBytes(topic: string, at: number, body: string): Buffer {
  return Buffer.from(JSON.stringify(['pkp-msg-v1', topic, at, body]));
}

/**
 * One process's signing and checking. `topic` binds a signature to what it is for (a NATS
 * subject, or a request's reply id), so a signed message cannot be replayed to another purpose.
 */
export class ClusterIdentity {
  private readonly key: KeyObject;
  private readonly authority: KeyObject;
  /** Certificates already checked against the authority. */
  private readonly trusted = new Map<string, KeyObject>();
  readonly certificate: Certificate;

  constructor(credential: ClusterCredential, private readonly now: () => number = Date.now) {
    this.key = createPrivateKey({ key: Buffer.from(credential.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
    this.authority = createPublicKey({ key: Buffer.from(credential.authority, 'base64'), format: 'der', type: 'spki' });
    this.certificate = credential.certificate;
    if (this.publicKeyOf(this.certificate) === undefined) throw new Error('the credential is not signed by its authority, or has expired');
  }

  get id(): string {
    return this.certificate.id;
  }

  get role(): ClusterRole {
    return this.certificate.role;
  }

  sign(topic: string, body: unknown): Uint8Array {
    const at = this.now();
    const text = JSON.stringify(body);
    const message: SignedMessage = { v: 1, cert: this.certificate, at, body: text, sig: sign(null, signedBytes(topic, at, text), this.key).toString('base64') };
    return Buffer.from(JSON.stringify(message));
  }

  /**
   * The body and sender of a message signed for `topic` by a holder of one of `roles`, or a
   * PkpError('Unauthenticated') saying why not. Never acts on anything before the signature checks.
   */
  open<T = unknown>(topic: string, data: Uint8Array, roles: readonly ClusterRole[], maxSkewMs = MAX_SKEW_MS): Verified<T> {
    let message: Partial<SignedMessage>;
    try {
      message = JSON.parse(Buffer.from(data).toString('utf8')) as Partial<SignedMessage>;
    } catch {
      throw new PkpError('Unauthenticated', 'not a signed cluster message');
    }
    if (message?.v !== 1 || !isCertificate(message.cert) || typeof message.at !== 'number' || typeof message.body !== 'string' || typeof message.sig !== 'string') {
      throw new PkpError('Unauthenticated', 'not a signed cluster message');
    }
    const publicKey = this.publicKeyOf(message.cert);
    if (publicKey === undefined) throw new PkpError('Unauthenticated', 'the sender\'s certificate is not the cluster\'s, or has expired');
    if (!roles.includes(message.cert.role)) throw new PkpError('Unauthenticated', `a ${message.cert.role} may not send this`);
    if (Math.abs(this.now() - message.at) > maxSkewMs) throw new PkpError('Unauthenticated', 'the message is too old (or the clocks disagree)');
    if (!verify(null, signedBytes(topic, message.at, message.body), publicKey, Buffer.from(message.sig, 'base64'))) {
      throw new PkpError('Unauthenticated', 'bad signature');
    }
    return { sender: message.cert, body: JSON.parse(message.body) as T };
  }

  private publicKeyOf(cert: Certificate): KeyObject | undefined {
    if (cert.notAfter <= this.now()) return undefined;
    // Keyed by every field, not the signature alone: a valid signature under altered fields is not trusted.
    const { sig, ...unsigned } = cert;
    const bytes = certificateBytes(unsigned);
    const cacheKey = `${bytes.toString('base64')}.${sig}`;
    const known = this.trusted.get(cacheKey);
    if (known) return known;
    try {
      if (!verify(null, bytes, this.authority, Buffer.from(sig, 'base64'))) return undefined;
      const key = createPublicKey({ key: Buffer.from(cert.publicKey, 'base64'), format: 'der', type: 'spki' });
      if (this.trusted.size >= 10_000) this.trusted.clear();
      this.trusted.set(cacheKey, key);
      return key;
    } catch {
      return undefined;
    }
  }
}
