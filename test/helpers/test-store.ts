// The store the SDK suites run on: the embedded SQLite (default), or, when a `*-postgres` test
// file set PKP_TEST_STORE=postgres before loading the suite, a fresh PostgreSQL database of its own.
import { createTestDatabase } from './pg-database.ts';

export interface TestStore {
  /** For startService's `postgres` option; undefined: SQLite in the data directory. */
  postgres: string | undefined;
  /** Drops the database, if there is one. */
  drop(): Promise<void>;
}

export async function openTestStore(): Promise<TestStore> {
  if (process.env.PKP_TEST_STORE !== 'postgres') return { postgres: undefined, drop: async () => {} };
  const database = await createTestDatabase();
  return { postgres: database.url, drop: () => database.drop() };
}
