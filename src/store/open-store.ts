import { join } from 'node:path';
import { SqliteMessageStore } from './sqlite-store.ts';
import type { MessageStore } from './types.ts';

export interface OpenStoreOptions {
  dataDir: string;
  durability?: 'normal' | 'full';
  onOp?: (op: string) => void;
}

/** The message store: SQLite in the data directory (the embedded default). */
export async function openStore(options: OpenStoreOptions & { postgres?: string }): Promise<MessageStore> {
  if (options.postgres !== undefined) throw new Error('the PostgreSQL message store is not in this build');
  return SqliteMessageStore.open({ path: join(options.dataDir, 'messages.db'), synchronous: options.durability, onOp: options.onOp });
}
