/**
 * The message store on PostgreSQL, for several PKP processes sharing one database. Like the SQLite
 * store it holds ciphertext, encrypted DEKs and the metadata to route and schedule them, never a
 * key or a plaintext.
 *
 * Every write is one transaction (one statement, or BEGIN…COMMIT on one connection), so a lost
 * database leaves nothing half-written, and every call made while the database cannot be reached
 * fails with PkpError('StoreUnavailable'). Receives take their rows FOR UPDATE SKIP LOCKED, so
 * receivers in any process never get the same message; FIFO receives of a queue take turns (an
 * advisory lock) so a group stays in order. A commit that makes messages receivable NOTIFYs the
 * queue, which wakes long polls parked in the other processes (subscribeWakeups).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PkpError } from '../core/errors.ts';
import { toStored, type MessageRow } from './message-row.ts';
import { PgListener } from './pg-listener.ts';
import { decodeReceiptHandle, encodeReceiptHandle } from './receipt-handle.ts';
import {
  LEGACY_ACCOUNT_ID,
  type BacklogDek,
  type BacklogDekQuery,
  type CreateQueueResult,
  type FifoDedup,
  type FifoPutResult,
  type MessageMove,
  type MessageStore,
  type MoveTaskRecord,
  type NewMessage,
  type QueueCounts,
  type QueueRecord,
  type ReceivedMessage,
  type ReceiveOptions,
} from './types.ts';
import { backlogBounds, closedError, requireAccount, requireFinite, requireIntIn } from './validate.ts';

export interface PostgresStoreOptions {
  /** postgres://user[:password]@host[:port]/database. Never logged. */
  url: string;
  /** Connections in the pool (the listener has one more of its own). Default 10. */
  maxConnections?: number;
  /** How long a call waits for a connection before it fails with StoreUnavailable. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Called with the operation's name on every store operation. */
  onOp?: (op: string) => void;
}

/** Schema version i + 1 is reached by running MIGRATIONS[i]; the schema_version table records it. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE queues (
    queue_id      text PRIMARY KEY,
    account_id    text NOT NULL,
    -- Byte order, as the SQLite store lists queues.
    name          text COLLATE "C" NOT NULL,
    created_at    bigint NOT NULL,
    updated_at    bigint NOT NULL,
    attributes    jsonb NOT NULL,
    tags          jsonb NOT NULL,
    purged_at     bigint,
    fifo_sequence bigint NOT NULL DEFAULT 0,
    UNIQUE (account_id, name)
  );
  CREATE TABLE messages (
    seq                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue_id           text NOT NULL REFERENCES queues (queue_id),
    message_id         text NOT NULL UNIQUE,
    body               bytea NOT NULL,
    attributes         bytea,
    encrypted_dek      bytea NOT NULL,
    dek_id             text NOT NULL,
    kms_key_id         text NOT NULL,
    sender             text NOT NULL,
    sent_at            bigint NOT NULL,
    visible_at         bigint NOT NULL,
    body_bytes         integer NOT NULL,
    receive_count      integer NOT NULL DEFAULT 0,
    first_received_at  bigint,
    receipt_nonce      text,
    group_id           text,
    dedup_id           text,
    sequence_number    text,
    dead_letter_source text
  );
  -- Serves receive (visible now, in order), counts, nextVisibleAt and backlogDeks.
  CREATE INDEX messages_by_visibility ON messages (queue_id, visible_at, seq);
  -- Serves dropExpired.
  CREATE INDEX messages_by_sent ON messages (queue_id, sent_at);
  -- Serves the group check of a FIFO receive.
  CREATE INDEX messages_by_group ON messages (queue_id, group_id, seq) WHERE group_id IS NOT NULL;
  CREATE TABLE fifo_dedup (
    queue_id        text NOT NULL,
    scope           text NOT NULL,
    dedup_id        text NOT NULL,
    message_id      text NOT NULL,
    sequence_number text NOT NULL,
    expires_at      bigint NOT NULL,
    PRIMARY KEY (queue_id, scope, dedup_id)
  );
  CREATE TABLE receive_attempts (
    queue_id   text NOT NULL,
    attempt_id text NOT NULL,
    received   jsonb NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (queue_id, attempt_id)
  );
  CREATE TABLE move_tasks (
    task_handle text PRIMARY KEY,
    -- Insertion order, for tasks started in the same millisecond.
    created     bigint GENERATED ALWAYS AS IDENTITY,
    source_arn  text NOT NULL,
    record      jsonb NOT NULL,
    started_at  bigint NOT NULL,
    -- Wall-clock ms of the last save: a running task nobody saved for a while lost its process.
    saved_at    bigint NOT NULL
  );
  CREATE INDEX move_tasks_by_source ON move_tasks (source_arn, started_at);
  CREATE TABLE deleted_queues (
    account_id text NOT NULL,
    name       text NOT NULL,
    deleted_at bigint NOT NULL,
    PRIMARY KEY (account_id, name)
  );
  CREATE TABLE health (
    id         integer PRIMARY KEY CHECK (id = 1),
    checked_at bigint NOT NULL
  );
  `,
];
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Notification channels: messages became receivable in a queue; a queue's record changed. */
const MESSAGES_CHANNEL = 'pkp_messages';
const QUEUES_CHANNEL = 'pkp_queues';
/** Key of the advisory lock that serializes schema migrations of processes starting together. */
const MIGRATION_LOCK = 0x706b7001;
/** A running move task not saved for this long is taken as stopped with its process (steps save it every few seconds). */
const MOVE_TASK_STALE_MS = 120_000;
/** Queue records are kept this long at most, even when a change notification was missed. */
const QUEUE_CACHE_MS = 5_000;
/** receive_count at or above this is never reached: no redrive limit. */
const NO_LIMIT = 2 ** 31 - 1;

interface QueueRow {
  queue_id: string;
  account_id: string;
  name: string;
  created_at: number;
  updated_at: number;
  attributes: Record<string, string>;
  tags: Record<string, string>;
  purged_at: number | null;
}

interface PendingPut {
  messages: NewMessage[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** A received row: the message as updated, its place in the receive order, and whether it was leased. */
interface ReceivedRow extends MessageRow {
  was_visible_at: number;
  leased: boolean;
}

const INSERT_COLUMNS = `queue_id, message_id, body, attributes, encrypted_dek, dek_id, kms_key_id, sender, sent_at, visible_at,
  body_bytes, group_id, dedup_id, sequence_number, dead_letter_source`;

/** Inserts the rows of parallel arrays ($1..$15) in order; notifies each queue ($16: this store's instance). */
const INSERT_MESSAGES = `
  WITH inserted AS (
    INSERT INTO messages (${INSERT_COLUMNS})
    SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[], $6::text[], $7::text[], $8::text[],
      $9::bigint[], $10::bigint[], $11::integer[], $12::text[], $13::text[], $14::text[], $15::text[])
    RETURNING queue_id)
  SELECT pg_notify('${MESSAGES_CHANNEL}', $16 || ':' || queue_id) FROM (SELECT DISTINCT queue_id FROM inserted) q`;

/** Takes rows picked by `pick` (seq, was_visible_at, was_count): leases those at the limit ($4), receives the rest. */
const receiveStatement = (pick: string): string => `
  WITH picked AS (${pick})
  UPDATE messages m SET
    visible_at = CASE WHEN p.was_count >= $4::integer THEN $5::bigint ELSE $6::bigint END,
    receive_count = CASE WHEN p.was_count >= $4::integer THEN m.receive_count ELSE m.receive_count + 1 END,
    first_received_at = CASE WHEN p.was_count >= $4::integer THEN m.first_received_at ELSE coalesce(m.first_received_at, $2::bigint) END,
    receipt_nonce = replace(gen_random_uuid()::text, '-', '')
  FROM picked p WHERE m.seq = p.seq
  RETURNING m.*, p.was_visible_at, p.was_count >= $4::integer AS leased`;

const RECEIVE = receiveStatement(`
  SELECT seq, visible_at AS was_visible_at, receive_count AS was_count FROM messages
  WHERE queue_id = $1 AND visible_at <= $2 ORDER BY visible_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED`);

// FIFO order: by send order, skipping every message of a group with an earlier one invisible.
// Not SKIP LOCKED: skipping a locked message could hand out a later one of its group first.
const RECEIVE_FIFO = receiveStatement(`
  SELECT seq, visible_at AS was_visible_at, receive_count AS was_count FROM messages m
  WHERE m.queue_id = $1 AND m.visible_at <= $2
    AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.queue_id = m.queue_id AND o.group_id = m.group_id
                    AND o.seq < m.seq AND o.visible_at > $2)
  ORDER BY m.seq LIMIT $3 FOR UPDATE`);

// Walks messages_by_visibility in receive order and stops after $3 rows. All rows of a dek_id carry
// the same encrypted_dek (the id is its hash), so any one of them is the blob.
const BACKLOG_DEKS = `
  SELECT dek_id, (array_agg(encrypted_dek))[1] AS encrypted_dek, count(*) AS messages, min(visible_at) AS first_visible_at
  FROM (SELECT seq, dek_id, encrypted_dek, visible_at FROM messages
        WHERE queue_id = $1 AND visible_at <= $2 ORDER BY visible_at, seq LIMIT $3) s
  GROUP BY dek_id ORDER BY min(visible_at), min(seq) LIMIT $4`;

/** int8 (counts, times, sequence numbers) as JavaScript numbers: every value here is below 2^53. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => (oid === pg.types.builtins.INT8 ? Number : pg.types.getTypeParser(oid, format as 'text'))) as pg.CustomTypesConfig['getTypeParser'],
};

export class PostgresMessageStore implements MessageStore {
  private readonly onOp: (op: string) => void;
  /** Tags this process's notifications, so it ignores its own (its nodes woke their waiters already). */
  private readonly instance = randomBytes(8).toString('hex');
  private readonly wakeListeners = new Set<(queueId: string) => void>();
  // Queue records are read on every request: kept here, dropped when any process notifies a change
  // (and after QUEUE_CACHE_MS in any case, in case a notification was missed).
  private readonly queuesById = new Map<string, { queue: QueueRecord; until: number }>();
  private readonly queueIdsByPath = new Map<string, string>();
  private listener: PgListener | undefined;
  private closed = false;
  /** Puts of this event-loop turn, written together by flush(). */
  private pending: PendingPut[] = [];
  private flushScheduled: NodeJS.Immediate | undefined;
  private readonly flushing = new Set<Promise<void>>();

  private constructor(private readonly pool: pg.Pool, onOp: ((op: string) => void) | undefined) {
    this.onOp = onOp ?? (() => {});
  }

  /** Connects, creates or migrates the schema, fails move tasks whose process stopped, and starts listening. */
  static async open(options: PostgresStoreOptions): Promise<PostgresMessageStore> {
    const config: pg.PoolConfig = {
      connectionString: options.url,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
      idleTimeoutMillis: 30_000,
      // A database that stops answering without closing the connection fails the call, not hangs it.
      query_timeout: 30_000,
      keepAlive: true,
      types: TYPES,
      application_name: 'pkp',
    };
    const pool = new pg.Pool(config);
    // An idle connection that breaks is dropped by the pool; the next call opens a new one.
    pool.on('error', () => undefined);
    const store = new PostgresMessageStore(pool, options.onOp);
    try {
      await migrate(pool);
      await pool.query(
        `UPDATE move_tasks SET record = record || jsonb_build_object('status', 'FAILED', 'failureReason', 'The service stopped while the task was running.')
         WHERE record->>'status' IN ('RUNNING', 'CANCELLING') AND saved_at < $1`,
        [Date.now() - MOVE_TASK_STALE_MS],
      );
      store.listener = await PgListener.open(
        { connectionString: options.url, connectionTimeoutMillis: config.connectionTimeoutMillis, application_name: 'pkp-listen' },
        [MESSAGES_CHANNEL, QUEUES_CHANNEL],
        (channel, payload) => store.notified(channel, payload),
        () => store.reconnected(),
      );
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw storeError(error);
    }
    return store;
  }

  /**
   * Calls `listener` with a queue's id when another process made messages receivable there (a
   * send, a move, a message made visible) or deleted it, and with every known queue after the
   * notifications were interrupted. Returns the unsubscribe function.
   */
  subscribeWakeups(listener: (queueId: string) => void): () => void {
    this.wakeListeners.add(listener);
    return () => this.wakeListeners.delete(listener);
  }

  // ---- queues ----

  async createQueue(name: string, attributes: Record<string, string>, now: number, accountId = LEGACY_ACCOUNT_ID, tags: Record<string, string> = {}): Promise<CreateQueueResult> {
    this.begin('createQueue');
    requireAccount(accountId);
    // A concurrent delete can remove the existing queue between the insert and the read: then try again.
    for (;;) {
      const inserted = await this.rows<QueueRow>(
        `INSERT INTO queues (queue_id, account_id, name, created_at, updated_at, attributes, tags) VALUES ($1, $2, $3, $4, $4, $5, $6)
         ON CONFLICT (account_id, name) DO NOTHING RETURNING *`,
        [randomBytes(16).toString('hex'), accountId, name, now, JSON.stringify(attributes), JSON.stringify(tags)],
      );
      if (inserted[0]) return { outcome: 'created', queue: this.remember(toQueue(inserted[0])) };
      const existing = await this.rows<QueueRow>('SELECT * FROM queues WHERE account_id = $1 AND name = $2', [accountId, name]);
      if (existing[0]) return { outcome: 'exists', queue: this.remember(toQueue(existing[0])) };
    }
  }

  async getQueueByName(name: string, accountId = LEGACY_ACCOUNT_ID): Promise<QueueRecord | undefined> {
    this.begin('getQueueByName');
    const id = this.queueIdsByPath.get(pathOf(accountId, name));
    const known = id !== undefined ? this.cached(id) : undefined;
    if (known) return known;
    const [row] = await this.rows<QueueRow>('SELECT * FROM queues WHERE account_id = $1 AND name = $2', [accountId, name]);
    return row && this.remember(toQueue(row));
  }

  async getQueueById(queueId: string): Promise<QueueRecord | undefined> {
    this.begin('getQueueById');
    const known = this.cached(queueId);
    if (known) return known;
    const [row] = await this.rows<QueueRow>('SELECT * FROM queues WHERE queue_id = $1', [queueId]);
    return row && this.remember(toQueue(row));
  }

  knownQueue(queueId: string): QueueRecord | undefined {
    return this.queuesById.get(queueId)?.queue;
  }

  async listQueues(prefix = '', accountId = LEGACY_ACCOUNT_ID): Promise<QueueRecord[]> {
    this.begin('listQueues');
    // left() rather than LIKE: queue names may contain '_', which LIKE takes as a wildcard.
    const rows = await this.rows<QueueRow>('SELECT * FROM queues WHERE account_id = $1 AND left(name, length($2)) = $2 ORDER BY name', [accountId, prefix]);
    return rows.map(toQueue);
  }

  async listAllQueues(): Promise<QueueRecord[]> {
    this.begin('listAllQueues');
    return (await this.rows<QueueRow>('SELECT * FROM queues ORDER BY account_id, name')).map(toQueue);
  }

  async setQueueAttributes(queueId: string, attributes: Record<string, string>, now: number): Promise<QueueRecord | undefined> {
    this.begin('setQueueAttributes');
    const [row] = await this.rows<QueueRow>(
      `WITH updated AS (UPDATE queues SET attributes = attributes || $2::jsonb, updated_at = $3 WHERE queue_id = $1 RETURNING *)
       SELECT updated.*, pg_notify('${QUEUES_CHANNEL}', $4 || ':' || queue_id) FROM updated`,
      [queueId, JSON.stringify(attributes), now, this.instance],
    );
    return row && this.remember(toQueue(row));
  }

  async deleteQueue(queueId: string, now?: number): Promise<boolean> {
    this.begin('deleteQueue');
    this.forget(queueId);
    return this.transaction(async (c) => {
      await c.query('DELETE FROM messages WHERE queue_id = $1', [queueId]);
      await c.query('DELETE FROM fifo_dedup WHERE queue_id = $1', [queueId]);
      await c.query('DELETE FROM receive_attempts WHERE queue_id = $1', [queueId]);
      const deleted = await c.query<{ account_id: string; name: string }>('DELETE FROM queues WHERE queue_id = $1 RETURNING account_id, name', [queueId]);
      const queue = deleted.rows[0];
      if (!queue) return false;
      if (now !== undefined) {
        await c.query(
          `INSERT INTO deleted_queues (account_id, name, deleted_at) VALUES ($1, $2, $3)
           ON CONFLICT (account_id, name) DO UPDATE SET deleted_at = excluded.deleted_at`,
          [queue.account_id, queue.name, now],
        );
      }
      // Other processes drop the record and wake the queue's long polls (they answer: gone).
      await c.query(`SELECT pg_notify('${QUEUES_CHANNEL}', $1), pg_notify('${MESSAGES_CHANNEL}', $1)`, [`${this.instance}:${queueId}`]);
      return true;
    });
  }

  async queueDeletedAt(name: string, accountId = LEGACY_ACCOUNT_ID): Promise<number | undefined> {
    this.begin('queueDeletedAt');
    const [row] = await this.rows<{ deleted_at: number }>('SELECT deleted_at FROM deleted_queues WHERE account_id = $1 AND name = $2', [accountId, name]);
    return row?.deleted_at;
  }

  async setQueueTags(queueId: string, tags: Record<string, string>): Promise<QueueRecord | undefined> {
    this.begin('setQueueTags');
    const [row] = await this.rows<QueueRow>(
      `WITH updated AS (UPDATE queues SET tags = $2::jsonb WHERE queue_id = $1 RETURNING *)
       SELECT updated.*, pg_notify('${QUEUES_CHANNEL}', $3 || ':' || queue_id) FROM updated`,
      [queueId, JSON.stringify(tags), this.instance],
    );
    return row && this.remember(toQueue(row));
  }

  // ---- messages ----

  putMessages(messages: NewMessage[]): Promise<void> {
    try {
      this.begin('putMessages');
      messages.forEach(checkMessage);
    } catch (error) {
      return Promise.reject(error);
    }
    if (messages.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      // A copy of the list, so a caller reusing its array cannot change what gets written.
      this.pending.push({ messages: [...messages], resolve, reject });
      this.flushScheduled ??= setImmediate(() => void this.flush());
    });
  }

  async receiveMessages(queueId: string, max: number, visibilityTimeoutMs: number, now: number, options: ReceiveOptions = {}): Promise<ReceivedMessage[]> {
    this.begin('receiveMessages');
    requireFinite('now', now);
    requireFinite('visibilityTimeoutMs', visibilityTimeoutMs);
    const redrive = options.redrive;
    if (redrive) {
      requireIntIn('maxReceiveCount', redrive.maxReceiveCount, 0, 1000); // 0: lease every message (a move task)
      requireFinite('leaseMs', redrive.leaseMs);
    }
    // expiredBefore is not needed here: dropExpired takes every message sent before its cutoff.
    if (options.expiredBefore !== undefined) requireFinite('expiredBefore', options.expiredBefore);
    if (!(max >= 1)) return [];
    const params = [queueId, now, Math.floor(max), redrive?.maxReceiveCount ?? NO_LIMIT, now + (redrive?.leaseMs ?? 0), now + visibilityTimeoutMs];
    if (!options.fifo) return toReceived(await this.rows<ReceivedRow>(RECEIVE, params, 'receive'), false);
    const attempt = options.attempt;
    return this.transaction(async (c) => {
      // FIFO receives of one queue take turns: each sees the groups the one before left in flight.
      await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`fifo-receive:${queueId}`]);
      if (attempt) {
        await c.query('DELETE FROM receive_attempts WHERE queue_id = $1 AND expires_at <= $2', [queueId, now]);
        const again = await repeatAttempt(c, queueId, attempt.id, now);
        if (again) return again;
      }
      const received = toReceived((await c.query<ReceivedRow>(RECEIVE_FIFO, params)).rows, true);
      if (attempt) {
        const record = received.filter((m) => !m.redrive).map((m) => ({ messageId: m.messageId, handle: m.receiptHandle, visibleAt: m.visibleAt }));
        await c.query(
          `INSERT INTO receive_attempts (queue_id, attempt_id, received, expires_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (queue_id, attempt_id) DO UPDATE SET received = excluded.received, expires_at = excluded.expires_at`,
          [queueId, attempt.id, JSON.stringify(record), now + attempt.windowMs],
        );
      }
      return received;
    });
  }

  async putFifoMessages(queueId: string, messages: NewMessage[], dedup: FifoDedup, now: number): Promise<FifoPutResult[]> {
    this.begin('putFifoMessages');
    requireFinite('now', now);
    for (const m of messages) {
      if (m.queueId !== queueId || typeof m.groupId !== 'string' || typeof m.dedupId !== 'string') {
        throw new PkpError('InvalidArgument', 'a FIFO message names its queue, a group id and a deduplication id');
      }
      checkMessage(m);
    }
    return this.transaction(async (c) => {
      // FIFO sends to a queue take turns (the queue row's lock), so a deduplication id sent twice at
      // once is seen by the second, and sequence numbers follow commit order.
      const queue = await c.query('SELECT 1 FROM queues WHERE queue_id = $1 FOR UPDATE', [queueId]);
      if (queue.rowCount === 0) throw new PkpError('QueueNotFound', 'the message names a queue that does not exist');
      await c.query('DELETE FROM fifo_dedup WHERE queue_id = $1 AND expires_at <= $2', [queueId, now]);
      const out: FifoPutResult[] = [];
      for (const m of messages) {
        const scope = dedup.scope === 'messageGroup' ? m.groupId ?? '' : '';
        const dedupId = m.dedupId ?? '';
        const seen = await c.query<{ message_id: string; sequence_number: string }>(
          'SELECT message_id, sequence_number FROM fifo_dedup WHERE queue_id = $1 AND scope = $2 AND dedup_id = $3 AND expires_at > $4',
          [queueId, scope, dedupId, now],
        );
        if (seen.rows[0]) {
          out.push({ messageId: seen.rows[0].message_id, sequenceNumber: seen.rows[0].sequence_number, duplicate: true });
          continue;
        }
        const n = await c.query<{ fifo_sequence: number }>('UPDATE queues SET fifo_sequence = fifo_sequence + 1 WHERE queue_id = $1 RETURNING fifo_sequence', [queueId]);
        const sequenceNumber = String(n.rows[0]!.fifo_sequence).padStart(20, '0');
        await c.query(INSERT_MESSAGES, [...columnsOf([{ ...m, sequenceNumber }]), this.instance]);
        await c.query(
          `INSERT INTO fifo_dedup (queue_id, scope, dedup_id, message_id, sequence_number, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (queue_id, scope, dedup_id) DO UPDATE SET message_id = excluded.message_id,
             sequence_number = excluded.sequence_number, expires_at = excluded.expires_at`,
          [queueId, scope, dedupId, m.messageId, sequenceNumber, now + dedup.windowMs],
        );
        out.push({ messageId: m.messageId, sequenceNumber, duplicate: false });
      }
      return out;
    });
  }

  async saveMoveTask(task: MoveTaskRecord, ifStatus?: MoveTaskRecord['status']): Promise<boolean> {
    this.begin('saveMoveTask');
    const record = JSON.stringify(task);
    if (ifStatus === undefined) {
      await this.run(
        `INSERT INTO move_tasks (task_handle, source_arn, record, started_at, saved_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (task_handle) DO UPDATE SET record = excluded.record, saved_at = excluded.saved_at`,
        [task.taskHandle, task.sourceArn, record, task.startedAt, Date.now()],
      );
      return true;
    }
    // Compare and set in one statement: a concurrent save of another status makes this one miss.
    const updated = await this.run(
      "UPDATE move_tasks SET record = $2, saved_at = $3 WHERE task_handle = $1 AND record->>'status' = $4",
      [task.taskHandle, record, Date.now(), ifStatus],
    );
    return updated.rowCount! > 0;
  }

  async getMoveTask(taskHandle: string): Promise<MoveTaskRecord | undefined> {
    this.begin('getMoveTask');
    const [row] = await this.rows<{ record: MoveTaskRecord }>('SELECT record FROM move_tasks WHERE task_handle = $1', [taskHandle]);
    return row?.record;
  }

  async listMoveTasks(sourceArn: string, limit: number): Promise<MoveTaskRecord[]> {
    this.begin('listMoveTasks');
    const rows = await this.rows<{ record: MoveTaskRecord }>(
      'SELECT record FROM move_tasks WHERE source_arn = $1 ORDER BY started_at DESC, created DESC LIMIT $2', [sourceArn, limit],
    );
    return rows.map((r) => r.record);
  }

  async moveMessages(sourceQueueId: string, moves: MessageMove[]): Promise<number> {
    this.begin('moveMessages');
    if (moves.length === 0) return 0;
    const handles = moves.map((move) => {
      const handle = decodeReceiptHandle(move.receiptHandle);
      if (!handle || handle.queueId !== sourceQueueId || handle.messageId !== move.message.messageId) {
        throw new PkpError('InvalidArgument', 'a move names a handle of another message or queue');
      }
      checkMessage(move.message);
      return handle;
    });
    return this.transaction(async (c) => {
      const done: NewMessage[] = [];
      for (const [i, move] of moves.entries()) {
        const handle = handles[i]!;
        const deleted = await c.query('DELETE FROM messages WHERE queue_id = $1 AND message_id = $2 AND receipt_nonce = $3', [sourceQueueId, handle.messageId, handle.nonce]);
        if (deleted.rowCount === 0) continue;
        done.push(move.message);
      }
      if (done.length > 0) await c.query(INSERT_MESSAGES, [...columnsOf(done), this.instance]);
      return done.length;
    });
  }

  async deleteMessage(queueId: string, receiptHandle: string): Promise<'deleted' | 'gone' | 'invalid'> {
    this.begin('deleteMessage');
    const handle = decodeReceiptHandle(receiptHandle);
    if (!handle || handle.queueId !== queueId) return 'invalid';
    // Like SQS, any handle of the message deletes it, even one from an earlier receive.
    const result = await this.run('DELETE FROM messages WHERE queue_id = $1 AND message_id = $2', [queueId, handle.messageId], 'deleteMessage');
    return result.rowCount! > 0 ? 'deleted' : 'gone';
  }

  async changeVisibility(queueId: string, receiptHandle: string, visibleAt: number, now: number): Promise<'changed' | 'expired' | 'not-in-flight' | 'invalid'> {
    this.begin('changeVisibility');
    const handle = decodeReceiptHandle(receiptHandle);
    if (!handle || handle.queueId !== queueId) return 'invalid';
    requireFinite('visibleAt', visibleAt);
    requireFinite('now', now);
    const changed = await this.run(
      'UPDATE messages SET visible_at = $1 WHERE queue_id = $2 AND message_id = $3 AND receipt_nonce = $4 AND visible_at > $5',
      [visibleAt, queueId, handle.messageId, handle.nonce, now], 'changeVisibility',
    );
    if (changed.rowCount! > 0) {
      // Visible now: long polls of other processes look again.
      if (visibleAt <= now) await this.run('SELECT pg_notify($1, $2)', [MESSAGES_CHANNEL, `${this.instance}:${queueId}`]);
      return 'changed';
    }
    // This receive's visibility ran out and nobody received the message since: the handle is still its latest.
    const [row] = await this.rows<{ receipt_nonce: string | null; visible_at: number }>(
      'SELECT receipt_nonce, visible_at FROM messages WHERE queue_id = $1 AND message_id = $2', [queueId, handle.messageId],
    );
    return row && row.receipt_nonce === handle.nonce && row.visible_at <= now ? 'expired' : 'not-in-flight';
  }

  async purgeQueue(queueId: string, now?: number): Promise<number> {
    this.begin('purgeQueue');
    const purged = await this.transaction(async (c) => {
      const deleted = await c.query('DELETE FROM messages WHERE queue_id = $1', [queueId]);
      if (now !== undefined) {
        await c.query('UPDATE queues SET purged_at = $1 WHERE queue_id = $2', [now, queueId]);
        await c.query(`SELECT pg_notify('${QUEUES_CHANNEL}', $1)`, [`${this.instance}:${queueId}`]);
      }
      return deleted.rowCount ?? 0;
    });
    if (now !== undefined) this.forget(queueId);
    return purged;
  }

  async counts(queueId: string, now: number): Promise<QueueCounts> {
    this.begin('counts');
    const [row] = await this.rows<QueueCounts>(
      `SELECT count(*) FILTER (WHERE visible_at <= $2) AS visible,
              count(*) FILTER (WHERE visible_at > $2 AND receive_count > 0) AS "inFlight",
              count(*) FILTER (WHERE visible_at > $2 AND receive_count = 0) AS delayed
       FROM messages WHERE queue_id = $1`,
      [queueId, now],
      'counts',
    );
    return { visible: row!.visible, inFlight: row!.inFlight, delayed: row!.delayed };
  }

  async backlog(queueId: string, atMost: number): Promise<number> {
    requireIntIn('atMost', atMost, 0, Number.MAX_SAFE_INTEGER);
    this.begin('backlog');
    const [row] = await this.rows<{ n: number }>('SELECT count(*) AS n FROM (SELECT 1 FROM messages WHERE queue_id = $1 LIMIT $2) m', [queueId, atMost], 'backlog');
    return Number(row!.n);
  }

  async countsByQueue(now: number): Promise<Map<string, QueueCounts>> {
    this.begin('countsByQueue');
    const rows = await this.rows<QueueCounts & { queue_id: string }>(
      `SELECT queue_id,
              count(*) FILTER (WHERE visible_at <= $1) AS visible,
              count(*) FILTER (WHERE visible_at > $1 AND receive_count > 0) AS "inFlight",
              count(*) FILTER (WHERE visible_at > $1 AND receive_count = 0) AS delayed
       FROM messages GROUP BY queue_id`,
      [now],
      'countsByQueue',
    );
    return new Map(rows.map((r) => [r.queue_id, { visible: r.visible, inFlight: r.inFlight, delayed: r.delayed }]));
  }

  async dropExpired(queueId: string, retentionMs: number, now: number): Promise<number> {
    this.begin('dropExpired');
    requireFinite('retentionMs', retentionMs);
    return (await this.run('DELETE FROM messages WHERE queue_id = $1 AND sent_at < $2', [queueId, now - retentionMs], 'dropExpired')).rowCount ?? 0;
  }

  async nextVisibleAt(queueId: string): Promise<number | undefined> {
    this.begin('nextVisibleAt');
    const [row] = await this.rows<{ t: number | null }>('SELECT min(visible_at) AS t FROM messages WHERE queue_id = $1', [queueId], 'nextVisibleAt');
    return row!.t ?? undefined;
  }

  async backlogDeks(queueId: string, query: BacklogDekQuery): Promise<BacklogDek[]> {
    const { until, scan, maxDeks } = backlogBounds(queueId, query);
    this.begin('backlogDeks');
    const rows = await this.rows<{ dek_id: string; encrypted_dek: Buffer; messages: number; first_visible_at: number }>(
      BACKLOG_DEKS, [queueId, until, scan, maxDeks], 'backlogDeks',
    );
    return rows.map((r) => ({ dekId: r.dek_id, encryptedDek: r.encrypted_dek, messages: r.messages, firstVisibleAt: r.first_visible_at }));
  }

  async probeWritable(now: number): Promise<void> {
    if (this.closed) throw closedError();
    await this.rows('INSERT INTO health (id, checked_at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at', [now]);
  }

  /** Stops listening and closes the pool once the calls in progress are done. Closing twice is harmless. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    void this.flush();
    await Promise.all(this.flushing);
    await this.listener?.close();
    await this.pool.end();
  }

  // ---- internals ----

  /**
   * Group commit: every put called in one event-loop turn goes into one INSERT (one round trip, one
   * commit). When that fails for a reason other than the database being away, each call is tried
   * on its own, so a bad call (a duplicate id, an unknown queue) fails alone and whole.
   */
  private flush(): Promise<void> {
    if (this.flushScheduled) clearImmediate(this.flushScheduled);
    this.flushScheduled = undefined;
    const batch = this.pending;
    if (batch.length === 0) return Promise.resolve();
    this.pending = [];
    const insert = (messages: NewMessage[]) => this.rows(INSERT_MESSAGES, [...columnsOf(messages), this.instance], 'putMessages');
    const done = insert(batch.flatMap((call) => call.messages)).then(
      () => {
        for (const call of batch) call.resolve();
        this.onOp('groupCommit');
      },
      async (error: unknown) => {
        if (batch.length === 1 || isCode(error, 'StoreUnavailable')) {
          for (const call of batch) call.reject(error);
          return;
        }
        await Promise.all(batch.map((call) => insert(call.messages).then(() => call.resolve(), (e: unknown) => call.reject(e))));
      },
    );
    this.flushing.add(done);
    void done.finally(() => this.flushing.delete(done));
    return done;
  }

  private begin(op: string): void {
    if (this.closed) throw closedError();
    this.onOp(op);
  }

  /** One statement; `name` makes it a prepared statement (parsed once per connection). */
  private async run(text: string, values: unknown[] = [], name?: string): Promise<pg.QueryResult> {
    try {
      return await this.pool.query(name !== undefined ? { name, text, values } : { text, values });
    } catch (error) {
      throw storeError(error);
    }
  }

  private async rows<R extends pg.QueryResultRow>(text: string, values: unknown[] = [], name?: string): Promise<R[]> {
    return (await this.run(text, values, name)).rows as R[];
  }

  /** Runs `body` in one transaction on one connection: all of it commits, or none. */
  private async transaction<T>(body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw storeError(error);
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await body(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw storeError(error);
    } finally {
      client.release(broken);
    }
  }

  private cached(queueId: string): QueueRecord | undefined {
    const entry = this.queuesById.get(queueId);
    if (!entry) return undefined;
    if (entry.until > performance.now()) return entry.queue;
    this.forget(queueId);
    return undefined;
  }

  private remember(queue: QueueRecord): QueueRecord {
    Object.freeze(queue.attributes);
    Object.freeze(queue.tags);
    Object.freeze(queue);
    this.queuesById.set(queue.queueId, { queue, until: performance.now() + QUEUE_CACHE_MS });
    this.queueIdsByPath.set(pathOf(queue.accountId, queue.name), queue.queueId);
    return queue;
  }

  private forget(queueId: string): void {
    const entry = this.queuesById.get(queueId);
    if (!entry) return;
    this.queuesById.delete(queueId);
    const path = pathOf(entry.queue.accountId, entry.queue.name);
    if (this.queueIdsByPath.get(path) === queueId) this.queueIdsByPath.delete(path);
  }

  private notified(channel: string, payload: string): void {
    const colon = payload.indexOf(':');
    if (colon < 0 || payload.slice(0, colon) === this.instance) return;
    const queueId = payload.slice(colon + 1);
    if (channel === QUEUES_CHANNEL) this.forget(queueId);
    else for (const listener of this.wakeListeners) listener(queueId);
  }

  /** Notifications may have been missed while the listener was away: records are re-read, every known queue's long polls look again. */
  private reconnected(): void {
    const known = [...this.queuesById.keys()];
    for (const queueId of known) this.forget(queueId);
    for (const queueId of known) for (const listener of this.wakeListeners) listener(queueId);
  }
}

async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // Processes starting together on a new database: one creates the schema, the others wait, then see it.
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)');
    const found = await client.query<{ version: number }>('SELECT version FROM schema_version');
    const version = found.rows[0]?.version ?? 0;
    if (version > SCHEMA_VERSION) {
      throw new PkpError('StoreSchemaTooNew', `database schema version ${version} is newer than this build (${SCHEMA_VERSION})`);
    }
    for (let v = version; v < SCHEMA_VERSION; v++) await client.query(MIGRATIONS[v]!);
    if (found.rows.length === 0) await client.query('INSERT INTO schema_version (version) VALUES ($1)', [SCHEMA_VERSION]);
    else if (version !== SCHEMA_VERSION) await client.query('UPDATE schema_version SET version = $1', [SCHEMA_VERSION]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/**
 * A retried FIFO receive (same attempt id, within the window) gets the same messages and receipt
 * handles, if none of them was deleted or had its visibility changed since; else undefined.
 */
async function repeatAttempt(c: pg.PoolClient, queueId: string, attemptId: string, now: number): Promise<ReceivedMessage[] | undefined> {
  const found = await c.query<{ received: { messageId: string; handle: string; visibleAt: number }[] }>(
    'SELECT received FROM receive_attempts WHERE queue_id = $1 AND attempt_id = $2 AND expires_at > $3', [queueId, attemptId, now],
  );
  const record = found.rows[0]?.received;
  if (!record || record.length === 0) return undefined;
  const rows = await c.query<MessageRow>('SELECT * FROM messages WHERE queue_id = $1 AND message_id = ANY($2::text[])', [queueId, record.map((r) => r.messageId)]);
  const byId = new Map(rows.rows.map((r) => [r.message_id, r]));
  const out: ReceivedMessage[] = [];
  for (const r of record) {
    const row = byId.get(r.messageId);
    const nonce = decodeReceiptHandle(r.handle)?.nonce;
    if (!row || row.receipt_nonce !== nonce || row.visible_at !== r.visibleAt || row.visible_at <= now) return undefined;
    out.push({ ...toStored(row), receiptHandle: r.handle });
  }
  return out;
}

/** The path of a queue in the account namespace (cache key). */
function pathOf(accountId: string, name: string): string {
  return `${accountId}/${name}`;
}

function toQueue(row: QueueRow): QueueRecord {
  return {
    queueId: row.queue_id,
    accountId: row.account_id,
    name: row.name,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    attributes: { ...row.attributes },
    tags: { ...row.tags },
    lastPurgedAt: row.purged_at,
  };
}

/** Received rows in receive order (RETURNING keeps none): FIFO by send order, else by when each became visible. */
function toReceived(rows: ReceivedRow[], fifo: boolean): ReceivedMessage[] {
  rows.sort((a, b) => (fifo ? 0 : a.was_visible_at - b.was_visible_at) || a.seq - b.seq);
  return rows.map((row) => {
    const receiptHandle = encodeReceiptHandle({ queueId: row.queue_id, messageId: row.message_id, nonce: row.receipt_nonce! });
    return row.leased ? { ...toStored(row), receiptHandle, redrive: true } : { ...toStored(row), receiptHandle };
  });
}

/** The messages as the 15 parallel arrays INSERT_MESSAGES takes. */
function columnsOf(messages: NewMessage[]): unknown[][] {
  const columns: unknown[][] = Array.from({ length: 15 }, () => []);
  for (const m of messages) {
    const values = [m.queueId, m.messageId, m.bodyCiphertext, m.attributesCiphertext ?? null, m.encryptedDek, m.dekId, m.kmsKeyId,
      m.senderPrincipal, m.sentAt, m.visibleAt, m.bodyBytes, m.groupId ?? null, m.dedupId ?? null, m.sequenceNumber ?? null, m.deadLetterSourceArn ?? null];
    values.forEach((v, i) => columns[i]!.push(v));
  }
  return columns;
}

/** Refuses what the database would store wrongly or reject late: byte fields are bytes, times and sizes numbers. */
function checkMessage(m: NewMessage): void {
  const ok = typeof m.queueId === 'string' && typeof m.messageId === 'string' && Buffer.isBuffer(m.bodyCiphertext)
    && (m.attributesCiphertext === null || m.attributesCiphertext === undefined || Buffer.isBuffer(m.attributesCiphertext))
    && Buffer.isBuffer(m.encryptedDek) && typeof m.dekId === 'string' && typeof m.kmsKeyId === 'string' && typeof m.senderPrincipal === 'string'
    && Number.isSafeInteger(m.sentAt) && Number.isSafeInteger(m.visibleAt) && Number.isSafeInteger(m.bodyBytes);
  if (!ok) throw new PkpError('InvalidMessage', 'message rejected: a field has the wrong type');
}

/** PostgreSQL and connection failures as errors the callers act on; the original stays as the cause. */
function storeError(error: unknown): unknown {
  if (error instanceof PkpError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  let mapped: PkpError | undefined;
  if (isUnreachable(error)) mapped = new PkpError('StoreUnavailable', 'the message database cannot be reached');
  else if (code === '23505') mapped = new PkpError('DuplicateMessageId', 'a message with this id is already stored');
  else if (code === '23503') mapped = new PkpError('QueueNotFound', 'the message names a queue that does not exist');
  else if (code === '53100') mapped = new PkpError('StoreFull', 'the database has no room: no new message can be stored until space is freed');
  if (!mapped) return error;
  mapped.cause = error;
  return mapped;
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof PkpError && error.code === code;
}

/** Connection refused, lost or timed out, the server shutting down or refusing connections. */
function isUnreachable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    // Node's socket errors, and SQLSTATE classes 08 (connection), 57P (shutdown) and 53300 (too many connections).
    return /^E[A-Z]+$/.test(code) || code.startsWith('08') || code.startsWith('57P') || code === '53300';
  }
  const message = error instanceof Error ? error.message : '';
  return /timeout exceeded when trying to connect|Query read timeout|Connection terminated|connection.*(closed|ended)|Client has encountered a connection error/i.test(message);
}
