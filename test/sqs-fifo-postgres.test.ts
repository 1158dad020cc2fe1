// The suite of sqs-fifo.test.ts, on the PostgreSQL store.
import { onPostgres } from './helpers/on-postgres.ts';

await onPostgres('sqs-fifo', () => import('./sqs-fifo.test.ts'));
