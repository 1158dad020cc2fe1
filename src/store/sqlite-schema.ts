/**
 * The SQLite store's schema: its migrations, the rows it reads, and every statement it prepares.
 * The store (sqlite-store.ts) holds the behaviour; this file holds what is on disk and how it is read.
 */
import type Database from 'better-sqlite3';
import { PkpError } from '../core/errors.ts';
import type { MessageRow } from './message-row.ts';
import { LEGACY_ACCOUNT_ID, type NewMessage, type QueueCounts } from './types.ts';

/**
 * The rows messages_by_visibility holds: received or leased at least once (they have a nonce),
 * delayed, or in a FIFO queue. The others, fresh messages, are found in memory (FreshIndex). A query
 * states this term exactly as written, or SQLite cannot use the partial index (INDEXED BY makes that
 * an error when the statement is prepared, not a silent scan).
 */
const TOUCHED = '(receipt_nonce IS NOT NULL OR visible_at > sent_at OR group_id IS NOT NULL)';

/** Schema version i + 1 is reached by running MIGRATIONS[i]; PRAGMA user_version records it. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE queues (
    queue_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    attributes TEXT NOT NULL
  );
  CREATE TABLE messages (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id          TEXT NOT NULL REFERENCES queues (queue_id),
    message_id        TEXT NOT NULL UNIQUE,
    body              BLOB NOT NULL CHECK (typeof(body) = 'blob'),
    attributes        BLOB CHECK (attributes IS NULL OR typeof(attributes) = 'blob'),
    encrypted_dek     BLOB NOT NULL CHECK (typeof(encrypted_dek) = 'blob'),
    dek_id            TEXT NOT NULL,
    kms_key_id        TEXT NOT NULL,
    md5_body          TEXT NOT NULL,
    md5_attrs         TEXT,
    sender            TEXT NOT NULL,
    sent_at           INTEGER NOT NULL,
    visible_at        INTEGER NOT NULL,
    body_bytes        INTEGER NOT NULL,
    receive_count     INTEGER NOT NULL DEFAULT 0,
    first_received_at INTEGER,
    receipt_nonce     TEXT
  );
  -- Serves receive (visible now, in order), counts, nextVisibleAt and the foreign-key check on delete.
  CREATE INDEX messages_by_visibility ON messages (queue_id, visible_at, seq);
  -- Served dropExpired (dropped by a later migration).
  CREATE INDEX messages_by_sent ON messages (queue_id, sent_at);
  `,
  // Accounts: a queue's name column holds its path in the account namespace, '<account>/<name>'
  // (still unique). Queues made before accounts existed belong to the legacy account.
  `
  UPDATE queues SET name = '${LEGACY_ACCOUNT_ID}/' || name WHERE instr(name, '/') = 0;
  `,
  // Tags; the last purge (one purge per 60 s); recently deleted names (no reuse within 60 s).
  `
  ALTER TABLE queues ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
  ALTER TABLE queues ADD COLUMN purged_at INTEGER;
  CREATE TABLE deleted_queues (
    name       TEXT PRIMARY KEY,
    deleted_at INTEGER NOT NULL
  );
  `,
  // FIFO queues: a message's group, deduplication id and sequence number; the per-queue sequence;
  // the deduplication window.
  `
  ALTER TABLE messages ADD COLUMN group_id TEXT;
  ALTER TABLE messages ADD COLUMN dedup_id TEXT;
  ALTER TABLE messages ADD COLUMN sequence_number TEXT;
  ALTER TABLE queues ADD COLUMN fifo_sequence INTEGER NOT NULL DEFAULT 0;
  -- Serves the group check of a FIFO receive: is an earlier message of the group invisible?
  CREATE INDEX messages_by_group ON messages (queue_id, group_id, seq) WHERE group_id IS NOT NULL;
  CREATE TABLE fifo_dedup (
    queue_id        TEXT NOT NULL,
    scope           TEXT NOT NULL,
    dedup_id        TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    sequence_number TEXT NOT NULL,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (queue_id, scope, dedup_id)
  );
  `,
  // Where a dead-lettered message came from (for redrive back to it), and message move tasks.
  `
  ALTER TABLE messages ADD COLUMN dead_letter_source TEXT;
  CREATE TABLE move_tasks (
    task_handle     TEXT PRIMARY KEY,
    source_arn      TEXT NOT NULL,
    record          TEXT NOT NULL,
    started_at      INTEGER NOT NULL
  );
  CREATE INDEX move_tasks_by_source ON move_tasks (source_arn, started_at);
  `,
  // FIFO ReceiveRequestAttemptId: what an attempt received, so a retry gets the same answer.
  `
  CREATE TABLE receive_attempts (
    queue_id   TEXT NOT NULL,
    attempt_id TEXT NOT NULL,
    received   TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue_id, attempt_id)
  );
  `,
  // The MD5s of plaintext bodies and attributes said something about the plaintext at rest (equal
  // bodies, guessable short ones). They are recomputed after decryption instead: overwrite, then drop.
  `
  UPDATE messages SET md5_body = '', md5_attrs = NULL;
  ALTER TABLE messages DROP COLUMN md5_body;
  ALTER TABLE messages DROP COLUMN md5_attrs;
  `,
  // Retention without an index by send time: every send wrote a page of it, one page per queue, and
  // with 10,000 active queues those pages made a send 10-15 µs dearer. A message's visible_at is
  // never before its sent_at, so the sweep walks messages_by_visibility; the few expired messages it
  // cannot reach (received, so visible later) are dropped by the receive that meets them.
  `
  DROP INDEX IF EXISTS messages_by_sent;
  `,
  // Fresh messages leave the per-queue visibility index: each send wrote its own queue's page of it,
  // a WAL frame per send with many active queues. They are kept per queue in memory, rebuilt at
  // start from messages_fresh, whose order (by seq) makes a send write only its last page.
  `
  DROP INDEX messages_by_visibility;
  CREATE INDEX messages_by_visibility ON messages (queue_id, visible_at, seq) WHERE ${TOUCHED};
  CREATE INDEX messages_fresh ON messages (seq, queue_id, visible_at, dek_id) WHERE NOT ${TOUCHED};
  `,
];
export const SCHEMA_VERSION = MIGRATIONS.length;

export interface QueueRow {
  queue_id: string;
  name: string;
  created_at: number;
  updated_at: number;
  attributes: string;
  tags: string;
  purged_at: number | null;
}

/** An insert's values in column order (positional binding: cheaper than binding an object by name). */
export type MessageValues = [string, string, Buffer, Buffer | null, Buffer, string, string, string, number, number, number, string | null, string | null, string | null, string | null];

export type Statements = ReturnType<typeof prepareStatements>;

export function prepareStatements(db: Database.Database) {
  return {
    insertQueue: db.prepare<[string, string, number, number, string, string]>(
      `INSERT INTO queues (queue_id, name, created_at, updated_at, attributes, tags) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (name) DO NOTHING`,
    ),
    updateQueueTags: db.prepare<[string, string]>('UPDATE queues SET tags = ? WHERE queue_id = ?'),
    markPurged: db.prepare<[number, string]>('UPDATE queues SET purged_at = ? WHERE queue_id = ?'),
    recordDeleted: db.prepare<[string, number]>(
      'INSERT INTO deleted_queues (name, deleted_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET deleted_at = excluded.deleted_at',
    ),
    deletedAt: db.prepare<[string], { deleted_at: number }>('SELECT deleted_at FROM deleted_queues WHERE name = ?'),
    queueByName: db.prepare<[string], QueueRow>('SELECT * FROM queues WHERE name = ?'),
    queueById: db.prepare<[string], QueueRow>('SELECT * FROM queues WHERE queue_id = ?'),
    // substr rather than LIKE: queue names may contain '_', which LIKE treats as a wildcard.
    listQueues: db.prepare<{ prefix: string }, QueueRow>(
      'SELECT * FROM queues WHERE substr(name, 1, length(@prefix)) = @prefix ORDER BY name',
    ),
    updateQueueAttributes: db.prepare<[string, number, string]>(
      'UPDATE queues SET attributes = ?, updated_at = ? WHERE queue_id = ?',
    ),
    deleteQueue: db.prepare<[string]>('DELETE FROM queues WHERE queue_id = ?'),
    insertMessage: db.prepare<MessageValues>(
      `INSERT INTO messages (queue_id, message_id, body, attributes, encrypted_dek, dek_id, kms_key_id,
         sender, sent_at, visible_at, body_bytes, group_id, dedup_id, sequence_number, dead_letter_source)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    saveMoveTask: db.prepare<[string, string, string, number]>(
      `INSERT INTO move_tasks (task_handle, source_arn, record, started_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (task_handle) DO UPDATE SET record = excluded.record`,
    ),
    moveTask: db.prepare<[string], { record: string }>('SELECT record FROM move_tasks WHERE task_handle = ?'),
    moveTasksOf: db.prepare<[string, number], { record: string }>(
      'SELECT record FROM move_tasks WHERE source_arn = ? ORDER BY started_at DESC, rowid DESC LIMIT ?',
    ),

    // FIFO order: by send order, skipping every message of a group with an earlier one invisible
    // (in flight, or delayed), so a group is delivered strictly in order, one batch at a time.
    // (A FIFO queue's messages all have a group, so all are in messages_by_visibility.)
    selectVisibleFifo: db.prepare<{ queueId: string; now: number; max: number }, MessageRow>(
      `SELECT * FROM messages INDEXED BY messages_by_visibility WHERE queue_id = @queueId AND visible_at <= @now AND ${TOUCHED}
         AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.queue_id = messages.queue_id AND o.group_id = messages.group_id
                         AND o.seq < messages.seq AND o.visible_at > @now)
       ORDER BY seq LIMIT @max`,
    ),
    nextFifoSequence: db.prepare<[string], { fifo_sequence: number }>(
      'UPDATE queues SET fifo_sequence = fifo_sequence + 1 WHERE queue_id = ? RETURNING fifo_sequence',
    ),
    findDedup: db.prepare<[string, string, string, number], { message_id: string; sequence_number: string }>(
      'SELECT message_id, sequence_number FROM fifo_dedup WHERE queue_id = ? AND scope = ? AND dedup_id = ? AND expires_at > ?',
    ),
    putDedup: db.prepare<[string, string, string, string, string, number]>(
      `INSERT INTO fifo_dedup (queue_id, scope, dedup_id, message_id, sequence_number, expires_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (queue_id, scope, dedup_id) DO UPDATE SET message_id = excluded.message_id,
         sequence_number = excluded.sequence_number, expires_at = excluded.expires_at`,
    ),
    dropExpiredDedup: db.prepare<[string, number]>('DELETE FROM fifo_dedup WHERE queue_id = ? AND expires_at <= ?'),
    dropQueueDedup: db.prepare<[string]>('DELETE FROM fifo_dedup WHERE queue_id = ?'),
    findAttempt: db.prepare<[string, string, number], { received: string }>(
      'SELECT received FROM receive_attempts WHERE queue_id = ? AND attempt_id = ? AND expires_at > ?',
    ),
    putAttempt: db.prepare<[string, string, string, number]>(
      `INSERT INTO receive_attempts (queue_id, attempt_id, received, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (queue_id, attempt_id) DO UPDATE SET received = excluded.received, expires_at = excluded.expires_at`,
    ),
    dropExpiredAttempts: db.prepare<[string, number]>('DELETE FROM receive_attempts WHERE queue_id = ? AND expires_at <= ?'),
    dropQueueAttempts: db.prepare<[string]>('DELETE FROM receive_attempts WHERE queue_id = ?'),
    messageById: db.prepare<[string, string], MessageRow>('SELECT * FROM messages WHERE queue_id = ? AND message_id = ?'),
    // Walks the index in its own order, so the cost is `max` rows however long the backlog is.
    selectVisible: db.prepare<[string, number, number], MessageRow>(
      `SELECT * FROM messages INDEXED BY messages_by_visibility WHERE queue_id = ? AND visible_at <= ? AND ${TOUCHED}
       ORDER BY visible_at, seq LIMIT ?`,
    ),
    messageBySeq: db.prepare<[number], MessageRow>('SELECT * FROM messages WHERE seq = ?'),
    loadFresh: db.prepare<[], { seq: number; queueId: string; visibleAt: number; dekId: string }>(
      `SELECT seq, queue_id AS queueId, visible_at AS visibleAt, dek_id AS dekId FROM messages INDEXED BY messages_fresh
       WHERE NOT ${TOUCHED} ORDER BY seq`,
    ),
    markReceived: db.prepare<[number, number, string, number]>(
      `UPDATE messages SET visible_at = ?, receive_count = receive_count + 1,
         first_received_at = coalesce(first_received_at, ?), receipt_nonce = ?
       WHERE seq = ?`,
    ),
    deleteMessage: db.prepare<[string, string], { seq: number; visibleAt: number }>(
      'DELETE FROM messages WHERE queue_id = ? AND message_id = ? RETURNING seq, visible_at AS visibleAt',
    ),
    deleteLeased: db.prepare<[string, string, string]>('DELETE FROM messages WHERE queue_id = ? AND message_id = ? AND receipt_nonce = ?'),
    markLeased: db.prepare<[number, string, number]>('UPDATE messages SET visible_at = ?, receipt_nonce = ? WHERE seq = ?'),
    changeVisibility: db.prepare<[number, string, string, string, number]>(
      `UPDATE messages SET visible_at = ?
       WHERE queue_id = ? AND message_id = ? AND receipt_nonce = ? AND visible_at > ?`,
    ),
    purgeTouched: db.prepare<[string]>(`DELETE FROM messages INDEXED BY messages_by_visibility WHERE queue_id = ? AND ${TOUCHED}`),
    // Walks messages_by_visibility: visible_at >= sent_at, so every row it takes is expired (the
    // sent_at test only guards against a clock that stepped back).
    dropSentBefore: db.prepare<{ queueId: string; cutoff: number }>(
      `DELETE FROM messages INDEXED BY messages_by_visibility WHERE queue_id = @queueId AND visible_at < @cutoff AND sent_at < @cutoff AND ${TOUCHED}`,
    ),
    dropBySeq: db.prepare<[number]>('DELETE FROM messages WHERE seq = ?'),
    dropBySeqIfSentBefore: db.prepare<[number, number]>('DELETE FROM messages WHERE seq = ? AND sent_at < ?'),
    countVisible: db.prepare<[string, number], { n: number }>(
      `SELECT count(*) AS n FROM messages INDEXED BY messages_by_visibility WHERE queue_id = ? AND visible_at <= ? AND ${TOUCHED}`,
    ),
    // Invisible messages are few (in flight or delayed), so reading receive_count from the rows is cheap.
    countInvisible: db.prepare<[string, number], { inFlight: number | null; delayed: number | null }>(
      `SELECT sum(receive_count > 0) AS inFlight, sum(receive_count = 0) AS delayed
       FROM messages INDEXED BY messages_by_visibility WHERE queue_id = ? AND visible_at > ? AND ${TOUCHED}`,
    ),
    // Every queue's counts in one walk of messages_by_visibility; only the invisible rows (few: in
    // flight or delayed) are read from the table, for their receive_count.
    countsByQueue: db.prepare<{ now: number }, QueueCounts & { queueId: string }>(
      `SELECT queue_id AS queueId, sum(visible_at <= @now) AS visible,
         sum(CASE WHEN visible_at > @now THEN receive_count > 0 ELSE 0 END) AS inFlight,
         sum(CASE WHEN visible_at > @now THEN receive_count = 0 ELSE 0 END) AS delayed
       FROM messages INDEXED BY messages_by_visibility WHERE ${TOUCHED} GROUP BY queue_id`,
    ),
    backlog: db.prepare<[string, number], { n: number }>(
      `SELECT count(*) AS n FROM (SELECT 1 FROM messages INDEXED BY messages_by_visibility WHERE queue_id = ? AND ${TOUCHED} LIMIT ?)`,
    ),
    minVisibleAt: db.prepare<[string], { t: number | null }>(
      `SELECT min(visible_at) AS t FROM messages INDEXED BY messages_by_visibility WHERE queue_id = ? AND ${TOUCHED}`,
    ),
    // Walks messages_by_visibility in receive order and stops after `scan` rows, so the cost is
    // bounded however long the backlog is. Bodies are never read out.
    backlogTouched: db.prepare<[string, number, number], { seq: number; dekId: string; visibleAt: number }>(
      `SELECT seq, dek_id AS dekId, visible_at AS visibleAt FROM messages INDEXED BY messages_by_visibility
       WHERE queue_id = ? AND visible_at <= ? AND ${TOUCHED} ORDER BY visible_at, seq LIMIT ?`,
    ),
    // All rows of one dek_id carry the same encrypted_dek (the id is its hash): any one of them will do.
    encryptedDekOf: db.prepare<[number], { encrypted_dek: Buffer }>('SELECT encrypted_dek FROM messages WHERE seq = ?'),
  };
}

/** Whether a row is in messages_by_visibility (the TOUCHED term), rather than in the fresh index. */
export function isTouched(row: MessageRow): boolean {
  return row.receipt_nonce !== null || row.visible_at > row.sent_at || row.group_id !== null;
}

/** Whether a new message goes to the fresh index rather than messages_by_visibility (it has no nonce yet). */
export function isFresh(m: NewMessage): boolean {
  return !(m.visibleAt > m.sentAt) && (m.groupId ?? null) === null;
}

export function valuesOf(m: NewMessage): MessageValues {
  return [
    m.queueId, m.messageId, m.bodyCiphertext, m.attributesCiphertext ?? null, m.encryptedDek, m.dekId, m.kmsKeyId, m.senderPrincipal,
    m.sentAt, m.visibleAt, m.bodyBytes, m.groupId ?? null, m.dedupId ?? null, m.sequenceNumber ?? null, m.deadLetterSourceArn ?? null,
  ];
}

/** Brings the file to SCHEMA_VERSION (refusing a newer one). */
export function migrate(db: Database.Database): void {
  // Read the version inside an IMMEDIATE transaction, so two processes opening a new file at once
  // do not both try to create the schema.
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new PkpError('StoreSchemaTooNew', `database schema version ${version} is newer than this build (${SCHEMA_VERSION})`);
    }
    for (let v = version; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    if (version !== SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
