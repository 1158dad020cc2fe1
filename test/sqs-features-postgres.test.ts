// The suite of sqs-features.test.ts, on the PostgreSQL store.
import { onPostgres } from './helpers/on-postgres.ts';

await onPostgres('sqs-features', () => import('./sqs-features.test.ts'));
