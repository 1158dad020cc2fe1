/**
 * `pkp backup`: a consistent copy of a data directory, safe while the service runs. The message
 * database goes through SQLite's online backup API (a snapshot, whatever is being written); the
 * small JSON files are written by rename, so a plain copy of each is consistent. The root key is
 * left out unless asked: a backup that holds it opens every message it holds.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { KEYS_FILE, ROOT_KEY_FILE } from './kms/key-store.ts';

export const DATABASE_FILE = 'messages.db';
/** Files copied as they are, when present. */
const SMALL_FILES = [KEYS_FILE, 'credentials.json', 'record-key'];

export interface BackupResult {
  files: string[];
  rootKeyIncluded: boolean;
}

export async function backupDataDir(dataDir: string, out: string, options: { includeRootKey?: boolean } = {}): Promise<BackupResult> {
  const source = join(dataDir, DATABASE_FILE);
  if (!existsSync(source)) throw new Error(`${dataDir} holds no ${DATABASE_FILE}: not a PKP data directory`);
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`${out} exists and is not empty: back up into a new directory`);
  mkdirSync(out, { recursive: true, mode: 0o700 });
  chmodSync(out, 0o700);
  const files: string[] = [];
  const db = new Database(source, { fileMustExist: true });
  try {
    await db.backup(join(out, DATABASE_FILE));
  } finally {
    db.close();
  }
  files.push(DATABASE_FILE);
  const copies = options.includeRootKey ? [...SMALL_FILES, ROOT_KEY_FILE] : SMALL_FILES;
  for (const name of copies) {
    if (!existsSync(join(dataDir, name))) continue;
    copyFileSync(join(dataDir, name), join(out, name));
    files.push(name);
  }
  for (const name of files) chmodSync(join(out, name), 0o600);
  return { files, rootKeyIncluded: files.includes(ROOT_KEY_FILE) };
}
