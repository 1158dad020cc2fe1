import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PkpError } from '../core/errors.ts';
import { aeadDecrypt, aeadEncrypt, AEAD_OVERHEAD, KEY_BYTES } from '../crypto/aead.ts';

/**
 * The local KMS's files: `kms-keys.json` holds every master key wrapped (AES-256-GCM, AAD = key id)
 * under a root key; the root key comes from the caller, PKP_KMS_ROOT_KEY, or `kms-root.key`.
 */

export const KEYS_FILE = 'kms-keys.json';
export const ROOT_KEY_FILE = 'kms-root.key';
export const ROOT_KEY_ENV = 'PKP_KMS_ROOT_KEY';
const FORMAT = 'pkp-kms-keys/1';
const WRAPPED_BYTES = AEAD_OVERHEAD + KEY_BYTES;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ALIAS = /^alias\/[A-Za-z0-9/_-]+$/;

export interface StoredKey {
  keyId: string;
  description: string;
  enabled: boolean;
  createdAt: number;
  /** The master key wrapped under the root key; never the key itself. */
  wrappedKey: Buffer;
}

export interface StoredState {
  keys: StoredKey[];
  /** Alias name → key id. */
  aliases: Record<string, string>;
}

export function wrapMasterKey(rootKey: Buffer, keyId: string, material: Buffer): Buffer {
  return aeadEncrypt(rootKey, material, Buffer.from(keyId, 'utf8'));
}

/** Throws a clear error, naming only the key id, when the root key is not the one that wrapped it. */
export function unwrapMasterKey(rootKey: Buffer, keyId: string, wrapped: Buffer): Buffer {
  try {
    return aeadDecrypt(rootKey, wrapped, Buffer.from(keyId, 'utf8'));
  } catch {
    throw new PkpError(
      'KmsRootKeyMismatch',
      `master key ${keyId} in ${KEYS_FILE} cannot be unwrapped: the KMS root key is not the one these keys were stored under (or the file was altered)`,
    );
  }
}

/** The root key: the option, else PKP_KMS_ROOT_KEY, else kms-root.key (created on first start). */
export async function loadRootKey(dataDir: string, option: Buffer | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Buffer> {
  if (option !== undefined) {
    if (!Buffer.isBuffer(option) || option.length !== KEY_BYTES) throw new PkpError('InvalidRootKey', `the KMS root key must be exactly ${KEY_BYTES} bytes`);
    return Buffer.from(option);
  }
  const fromEnv = env[ROOT_KEY_ENV];
  if (fromEnv !== undefined) return parseRootKey(fromEnv);
  return readOrCreateRootKeyFile(dataDir);
}

/** Strict standard base64 of exactly 32 bytes; the message never echoes the value. */
export function parseRootKey(text: string): Buffer {
  const trimmed = text.trim();
  const bad = (why: string): PkpError =>
    new PkpError('InvalidRootKey', `${ROOT_KEY_ENV} must be the base64 encoding of exactly ${KEY_BYTES} random bytes (${why}); e.g. generate one with: openssl rand -base64 32`);
  if (trimmed === '') throw bad('it is empty');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)) throw bad('it contains characters that are not base64');
  const bytes = Buffer.from(trimmed, 'base64');
  if (bytes.length !== KEY_BYTES) {
    bytes.fill(0);
    throw bad(`it decodes to ${bytes.length} bytes`);
  }
  // Non-canonical forms (stray padding or trailing bits) are typos, not keys.
  if (bytes.toString('base64').replace(/=+$/, '') !== trimmed.replace(/=+$/, '')) {
    bytes.fill(0);
    throw bad('it is not canonical base64');
  }
  return bytes;
}

async function readOrCreateRootKeyFile(dataDir: string): Promise<Buffer> {
  const path = join(dataDir, ROOT_KEY_FILE);
  try {
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0) {
      throw new PkpError('InvalidRootKey', `${path} is readable by other users; run chmod 600 on it`);
    }
    const key = await readFile(path);
    if (key.length !== KEY_BYTES) {
      key.fill(0);
      throw new PkpError('InvalidRootKey', `${path} must hold exactly ${KEY_BYTES} bytes`);
    }
    return key;
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  // A fresh root key could never unwrap keys that already exist: the old one is lost, say so.
  if (await exists(join(dataDir, KEYS_FILE))) {
    throw new PkpError('KmsRootKeyMissing', `${KEYS_FILE} exists in ${dataDir} but its root key does not: restore ${ROOT_KEY_FILE} or set ${ROOT_KEY_ENV}`);
  }
  const key = randomBytes(KEY_BYTES);
  // O_EXCL fails if another process created it meanwhile, rather than overwriting its key.
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(key);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return key;
}

export async function readKeyFile(dataDir: string): Promise<StoredState | undefined> {
  const path = join(dataDir, KEYS_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  const corrupt = (why: string): PkpError => new PkpError('KmsKeyStoreCorrupt', `${path}: ${why}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw corrupt('not valid JSON');
  }
  if (!isObject(doc) || doc.format !== FORMAT) throw corrupt(`not a ${FORMAT} document`);
  if (!Array.isArray(doc.keys) || !isObject(doc.aliases)) throw corrupt('keys must be an array and aliases an object');
  const keys: StoredKey[] = doc.keys.map((k: unknown, i: number) => {
    if (!isObject(k) || typeof k.keyId !== 'string' || !UUID.test(k.keyId)) throw corrupt(`key #${i + 1} has no valid keyId`);
    if (typeof k.description !== 'string' || typeof k.enabled !== 'boolean' || typeof k.createdAt !== 'number') {
      throw corrupt(`key ${k.keyId} has a bad description, enabled or createdAt`);
    }
    const wrappedKey = typeof k.wrappedKey === 'string' ? Buffer.from(k.wrappedKey, 'base64') : Buffer.alloc(0);
    if (wrappedKey.length !== WRAPPED_BYTES) throw corrupt(`key ${k.keyId} has a bad wrappedKey`);
    return { keyId: k.keyId, description: k.description, enabled: k.enabled, createdAt: k.createdAt, wrappedKey };
  });
  const ids = new Set(keys.map((k) => k.keyId));
  if (ids.size !== keys.length) throw corrupt('a key id appears twice');
  const aliases: Record<string, string> = {};
  for (const [name, target] of Object.entries(doc.aliases)) {
    if (!ALIAS.test(name) || typeof target !== 'string' || !ids.has(target)) throw corrupt(`alias ${JSON.stringify(name).slice(0, 300)} is malformed or names no key`);
    aliases[name] = target;
  }
  return { keys, aliases };
}

/** Atomic: a reader sees the old file or the new one, never a torn one. Mode 0600. */
export async function writeKeyFile(dataDir: string, state: StoredState): Promise<void> {
  const path = join(dataDir, KEYS_FILE);
  const doc = {
    format: FORMAT,
    keys: state.keys.map((k) => ({
      keyId: k.keyId, description: k.description, enabled: k.enabled, createdAt: k.createdAt, wrappedKey: k.wrappedKey.toString('base64'),
    })),
    aliases: state.aliases,
  };
  const tmp = join(dataDir, `.${KEYS_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    try {
      // The umask may only narrow the mode; chmod makes it exactly 0600 either way.
      await handle.chmod(0o600);
      await handle.writeFile(`${JSON.stringify(doc, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(dataDir);
}

export async function ensureDataDir(dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
}

/** Makes the rename durable; some platforms cannot fsync a directory, which is not fatal. */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
