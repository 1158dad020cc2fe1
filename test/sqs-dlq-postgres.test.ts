// The suite of sqs-dlq.test.ts, on the PostgreSQL store.
import { onPostgres } from './helpers/on-postgres.ts';

await onPostgres('sqs-dlq', () => import('./sqs-dlq.test.ts'));
