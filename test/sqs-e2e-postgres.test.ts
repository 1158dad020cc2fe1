// The suite of sqs-e2e.test.ts, on the PostgreSQL store.
import { onPostgres } from './helpers/on-postgres.ts';

await onPostgres('sqs-e2e', () => import('./sqs-e2e.test.ts'));
