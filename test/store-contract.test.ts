// The one MessageStore contract suite, against the SQLite store and the PostgreSQL store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresMessageStore } from '../src/store/postgres-store.ts';
import { SqliteMessageStore } from '../src/store/sqlite-store.ts';
import { createTestDatabase, type TestDatabase } from './helpers/pg-database.ts';
import { describeStoreContract } from './helpers/store-contract.ts';
import { POSTGRES_URL, skipUnless } from './services.ts';

let dir = '';
describeStoreContract('SQLite', {
  setUp: async () => void (dir = mkdtempSync(join(tmpdir(), 'pkp-contract-'))),
  open: async () => SqliteMessageStore.open({ path: join(dir, 'messages.db') }),
  sharesData: false,
  tearDown: async () => rmSync(dir, { recursive: true, force: true }),
});

let database: TestDatabase | undefined;
describeStoreContract('PostgreSQL', {
  setUp: async () => void (database = await createTestDatabase()),
  open: () => PostgresMessageStore.open({ url: database!.url }),
  sharesData: true,
  tearDown: async () => database?.drop(),
}, { skip: await skipUnless('postgres', POSTGRES_URL) });
