import { join } from 'node:path';
import { PostgresMessageStore } from './postgres-store.ts';
import { SqliteMessageStore } from './sqlite-store.ts';
import type { MessageStore } from './types.ts';

export interface OpenStoreOptions {
  dataDir: string;
  /** PostgreSQL URL: the store is there, shared by every process that names it. Default: SQLite in dataDir. */
  postgres?: string;
  durability?: 'normal' | 'full';
  onOp?: (op: string) => void;
}

export interface OpenedStore {
  store: MessageStore;
  /**
   * Sends made by other processes on the same store, to wake this process's long polls (PostgreSQL:
   * LISTEN/NOTIFY). Undefined for a store only this process writes.
   */
  subscribeWakeups?: (listener: (queueId: string) => void) => () => void;
}

/** The message store: SQLite in the data directory (the embedded default), or PostgreSQL. */
export async function openStore(options: OpenStoreOptions): Promise<OpenedStore> {
  if (options.postgres !== undefined) {
    const store = await PostgresMessageStore.open({ url: options.postgres, onOp: options.onOp });
    return { store, subscribeWakeups: (listener) => store.subscribeWakeups(listener) };
  }
  return { store: SqliteMessageStore.open({ path: join(options.dataDir, 'messages.db'), synchronous: options.durability, onOp: options.onOp }) };
}
