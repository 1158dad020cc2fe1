/**
 * The message store a service runs on: PostgreSQL when a URL is given (several processes may share
 * it), else the embedded SQLite file in the data directory (needs no server).
 */
import { join } from 'node:path';
import { PostgresMessageStore } from './postgres-store.ts';
import { SqliteMessageStore } from './sqlite-store.ts';
import type { MessageStore } from './types.ts';

export interface StoreOptions {
  dataDir: string;
  /** postgres://… : the PostgreSQL store. */
  postgres?: string;
  /** SQLite only: 'normal' (survives kill -9) or 'full' (survives power loss). PostgreSQL commits are durable. */
  durability?: 'normal' | 'full';
  onOp?: (op: string) => void;
}

export async function openMessageStore(options: StoreOptions): Promise<MessageStore> {
  if (options.postgres !== undefined) return PostgresMessageStore.open({ url: options.postgres, onOp: options.onOp });
  return SqliteMessageStore.open({ path: join(options.dataDir, 'messages.db'), synchronous: options.durability, onOp: options.onOp });
}
