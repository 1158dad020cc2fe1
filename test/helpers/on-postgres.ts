// Runs an SDK suite file again on the PostgreSQL store (see test-store.ts); skips, saying why, when
// PostgreSQL does not answer (and fails where PKP_REQUIRE_SERVICES=1 requires it).
import { test } from 'node:test';
import { POSTGRES_URL, skipUnless } from '../services.ts';

export async function onPostgres(name: string, load: () => Promise<unknown>): Promise<void> {
  const skip = await skipUnless('postgres', POSTGRES_URL);
  if (skip) {
    test(`${name} on PostgreSQL`, { skip }, () => {});
    return;
  }
  process.env.PKP_TEST_STORE = 'postgres';
  await load();
}
