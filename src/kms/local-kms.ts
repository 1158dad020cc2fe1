import { randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '../core/clock.ts';
import { KmsError, PkpError } from '../core/errors.ts';
import { aeadDecrypt, aeadEncrypt, AEAD_OVERHEAD, KEY_BYTES } from '../crypto/aead.ts';
import { zeroize } from '../crypto/zero.ts';
import { encodeContext } from './context.ts';
import { CallCounter } from './counts.ts';
import { ensureDataDir, loadRootKey, readKeyFile, unwrapMasterKey, wrapMasterKey, writeKeyFile, type StoredState } from './key-store.ts';
import {
  DEFAULT_KEY_ALIAS,
  type CountingKms, type DecryptedDataKey, type EncryptionContext, type GeneratedDataKey, type KeyMetadata, type KeyReason,
  type KmsAdmin, type KmsCallCounts, type KmsCallListener,
} from './types.ts';

export interface LocalKmsOptions {
  /** Where master keys persist (wrapped). Without it, keys live in memory only. */
  dataDir?: string;
  /** 32-byte key that wraps the master keys on disk; see loadRootKey for the fallbacks. */
  rootKey?: Buffer;
  region?: string;
  clock: Clock;
  onCall?: KmsCallListener;
}

export const ACCOUNT_ID = '000000000000';

/** Blob: version | key id (16 bytes of the UUID) | AES-256-GCM(master key, DEK, AAD = context). */
const BLOB_VERSION = 0x01;
const BLOB_BYTES = 1 + 16 + AEAD_OVERHEAD + KEY_BYTES;
const ALIAS_NAME = /^alias\/[A-Za-z0-9/_-]+$/;
const MAX_ALIAS_LENGTH = 256;
const MAX_DESCRIPTION_LENGTH = 8192;
const ARN = /^arn:aws:kms:([^:]*):([^:]*):((?:key|alias)\/.*)$/;

interface MasterKey {
  keyId: string;
  description: string;
  enabled: boolean;
  createdAt: number;
  material: Buffer;
  /** The on-disk form; present only with a data directory. */
  wrappedKey?: Buffer;
}

/**
 * The embedded KMS: AES-256-GCM master keys, data keys bound to their encryption context, aliases,
 * and (with a data directory) master keys kept at rest wrapped under a root key.
 */
export class LocalKms implements KmsAdmin, CountingKms {
  private readonly keys = new Map<string, MasterKey>();
  private readonly aliases = new Map<string, string>();
  private readonly counter: CallCounter;
  private readonly region: string;
  private readonly clock: Clock;
  private readonly dataDir: string | undefined;
  private rootKey: Buffer | undefined;
  private closed = false;
  // Changes run one at a time so each file write carries every earlier change.
  private changes: Promise<unknown> = Promise.resolve();

  private constructor(options: LocalKmsOptions, rootKey: Buffer | undefined) {
    const region = options.region ?? 'us-east-1';
    if (!/^[a-z0-9-]+$/.test(region)) throw new PkpError('InvalidConfig', 'KMS region must be lower-case letters, digits and dashes');
    this.region = region;
    this.clock = options.clock;
    this.dataDir = options.dataDir;
    this.rootKey = rootKey;
    this.counter = new CallCounter(options.onCall);
  }

  /** Loads (or creates) the key store, and makes sure the default alias names a key. */
  static async open(options: LocalKmsOptions): Promise<LocalKms> {
    if (options.dataDir === undefined) {
      if (options.rootKey !== undefined && (!Buffer.isBuffer(options.rootKey) || options.rootKey.length !== KEY_BYTES)) {
        throw new PkpError('InvalidRootKey', `the KMS root key must be exactly ${KEY_BYTES} bytes`);
      }
      const kms = new LocalKms(options, undefined);
      await kms.createKeyWithAlias('Default key for SQS messages when no other key is named', DEFAULT_KEY_ALIAS);
      return kms;
    }
    await ensureDataDir(options.dataDir);
    const rootKey = await loadRootKey(options.dataDir, options.rootKey);
    const kms = new LocalKms(options, rootKey);
    try {
      const stored = await readKeyFile(options.dataDir);
      if (stored) kms.load(stored, rootKey);
      if (!kms.aliases.has(DEFAULT_KEY_ALIAS)) {
        await kms.createKeyWithAlias('Default key for SQS messages when no other key is named', DEFAULT_KEY_ALIAS);
      }
    } catch (err) {
      await kms.close();
      throw err;
    }
    return kms;
  }

  async generateDataKey(keyIdOrAlias: string, context: EncryptionContext, reason: KeyReason): Promise<GeneratedDataKey> {
    this.counter.record('GenerateDataKey', reason);
    const key = this.usable(this.resolve(keyIdOrAlias));
    const aad = encodeContext(context);
    const dek = randomBytes(KEY_BYTES);
    const header = Buffer.alloc(17);
    header[0] = BLOB_VERSION;
    uuidToBytes(key.keyId).copy(header, 1);
    return { keyId: key.keyId, plaintext: dek, ciphertextBlob: Buffer.concat([header, aeadEncrypt(key.material, dek, aad)]) };
  }

  async decrypt(ciphertextBlob: Buffer, context: EncryptionContext, reason: KeyReason): Promise<DecryptedDataKey> {
    this.counter.record('Decrypt', reason);
    this.ensureOpen();
    if (!Buffer.isBuffer(ciphertextBlob) || ciphertextBlob.length !== BLOB_BYTES || ciphertextBlob[0] !== BLOB_VERSION) {
      throw new KmsError('InvalidCiphertextException', 'the ciphertext blob is malformed or of an unknown version');
    }
    const keyId = uuidFromBytes(ciphertextBlob.subarray(1, 17));
    const found = this.keys.get(keyId);
    if (!found) throw new KmsError('NotFoundException', `key ${keyId} does not exist`);
    const key = this.usable(found);
    const aad = encodeContext(context);
    try {
      return { keyId, plaintext: aeadDecrypt(key.material, ciphertextBlob.subarray(17), aad) };
    } catch {
      throw new KmsError('InvalidCiphertextException', 'the ciphertext blob does not decrypt under this encryption context');
    }
  }

  async describeKey(keyIdOrAlias: string): Promise<KeyMetadata> {
    return this.metadata(this.resolve(keyIdOrAlias));
  }

  async createKey(description = ''): Promise<KeyMetadata> {
    return this.metadata(await this.createKeyWithAlias(description, undefined));
  }

  async listKeys(): Promise<KeyMetadata[]> {
    this.ensureOpen();
    return [...this.keys.values()]
      .sort((a, b) => a.createdAt - b.createdAt || (a.keyId < b.keyId ? -1 : 1))
      .map((k) => this.metadata(k));
  }

  enableKey(keyIdOrAlias: string): Promise<void> {
    return this.setEnabled(keyIdOrAlias, true);
  }

  disableKey(keyIdOrAlias: string): Promise<void> {
    return this.setEnabled(keyIdOrAlias, false);
  }

  async createAlias(alias: string, keyIdOrAlias: string): Promise<void> {
    checkAliasName(alias);
    if (alias.startsWith('alias/aws/')) throw new KmsError('ValidationException', 'alias names starting with alias/aws/ are reserved for AWS managed keys');
    return this.change(async () => {
      if (this.aliases.has(alias)) throw new KmsError('AlreadyExistsException', `alias ${alias} already exists`);
      const key = this.resolve(keyIdOrAlias);
      const state = this.stored();
      state.aliases[alias] = key.keyId;
      await this.persist(state);
      this.aliases.set(alias, key.keyId);
    });
  }

  counts(): KmsCallCounts {
    return this.counter.snapshot();
  }

  /** Waits for pending changes, then zeroizes every master key and the root key. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.changes;
    for (const key of this.keys.values()) zeroize(key.material);
    this.keys.clear();
    this.aliases.clear();
    zeroize(this.rootKey);
    this.rootKey = undefined;
  }

  private load(stored: StoredState, rootKey: Buffer): void {
    for (const k of stored.keys) {
      const material = unwrapMasterKey(rootKey, k.keyId, k.wrappedKey);
      this.keys.set(k.keyId, { ...k, material });
    }
    for (const [alias, keyId] of Object.entries(stored.aliases)) this.aliases.set(alias, keyId);
  }

  /** Writes the new key to disk first; it becomes usable only once stored. */
  private createKeyWithAlias(description: string, alias: string | undefined): Promise<MasterKey> {
    if (typeof description !== 'string' || description.length > MAX_DESCRIPTION_LENGTH) {
      throw new KmsError('ValidationException', `a key description must be a string of at most ${MAX_DESCRIPTION_LENGTH} characters`);
    }
    return this.change(async () => {
      const keyId = randomUUID();
      const material = randomBytes(KEY_BYTES);
      const key: MasterKey = { keyId, description, enabled: true, createdAt: this.clock.now(), material };
      try {
        if (this.rootKey) key.wrappedKey = wrapMasterKey(this.rootKey, keyId, material);
        const state = this.stored();
        state.keys.push(storedForm(key));
        if (alias !== undefined) state.aliases[alias] = keyId;
        await this.persist(state);
      } catch (err) {
        zeroize(material);
        throw err;
      }
      this.keys.set(keyId, key);
      if (alias !== undefined) this.aliases.set(alias, keyId);
      return key;
    });
  }

  private setEnabled(keyIdOrAlias: string, enabled: boolean): Promise<void> {
    return this.change(async () => {
      const key = this.resolve(keyIdOrAlias);
      if (key.enabled === enabled) return;
      const state = this.stored();
      state.keys.find((k) => k.keyId === key.keyId)!.enabled = enabled;
      await this.persist(state);
      key.enabled = enabled;
    });
  }

  /** Runs one change after every earlier one; a failed change does not block later ones. */
  private change<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.changes.then(() => {
      this.ensureOpen();
      return fn();
    });
    this.changes = run.catch(() => undefined);
    return run;
  }

  private stored(): StoredState {
    return { keys: [...this.keys.values()].map(storedForm), aliases: Object.fromEntries(this.aliases) };
  }

  private async persist(state: StoredState): Promise<void> {
    if (this.dataDir !== undefined) await writeKeyFile(this.dataDir, state);
  }

  /** Key id, key ARN, alias name or alias ARN → the key. */
  private resolve(keyIdOrAlias: string): MasterKey {
    this.ensureOpen();
    if (typeof keyIdOrAlias !== 'string' || keyIdOrAlias === '') throw new KmsError('ValidationException', 'a key id, key ARN, alias or alias ARN is required');
    let ref = keyIdOrAlias;
    const arn = ARN.exec(ref);
    if (arn) {
      if (arn[1] !== this.region || arn[2] !== ACCOUNT_ID) throw notFound(keyIdOrAlias);
      ref = arn[3]!;
      if (ref.startsWith('key/')) ref = ref.slice(4);
    }
    const keyId = ref.startsWith('alias/') ? this.aliases.get(ref) : ref;
    const key = keyId === undefined ? undefined : this.keys.get(keyId);
    if (!key) throw notFound(keyIdOrAlias);
    return key;
  }

  private usable(key: MasterKey): MasterKey {
    if (!key.enabled) throw new KmsError('DisabledException', `key ${key.keyId} is disabled`);
    return key;
  }

  private metadata(key: MasterKey): KeyMetadata {
    const aliases = [...this.aliases].filter(([, id]) => id === key.keyId).map(([name]) => name).sort();
    return {
      keyId: key.keyId, arn: this.arnOf(key.keyId), description: key.description, enabled: key.enabled, createdAt: key.createdAt, aliases,
    };
  }

  private arnOf(keyId: string): string {
    return `arn:aws:kms:${this.region}:${ACCOUNT_ID}:key/${keyId}`;
  }

  private ensureOpen(): void {
    if (this.closed) throw new KmsError('KMSInternalException', 'the KMS is closed');
  }
}

function storedForm(key: MasterKey): StoredState['keys'][number] {
  return {
    keyId: key.keyId, description: key.description, enabled: key.enabled, createdAt: key.createdAt,
    // In-memory mode never writes, so an empty placeholder is never seen.
    wrappedKey: key.wrappedKey ?? Buffer.alloc(0),
  };
}

function checkAliasName(alias: string): void {
  if (typeof alias !== 'string' || alias.length > MAX_ALIAS_LENGTH || !ALIAS_NAME.test(alias)) {
    throw new KmsError('ValidationException', `an alias must be alias/ followed by letters, digits, '/', '_' or '-' (at most ${MAX_ALIAS_LENGTH} characters)`);
  }
}

function notFound(ref: string): KmsError {
  const shown = ref.length > 300 ? `${ref.slice(0, 300)}…` : ref;
  return new KmsError('NotFoundException', `key '${shown}' does not exist`);
}

function uuidToBytes(id: string): Buffer {
  return Buffer.from(id.replace(/-/g, ''), 'hex');
}

function uuidFromBytes(bytes: Buffer): string {
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
