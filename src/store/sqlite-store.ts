/**
 * The embedded message store: one SQLite file in WAL mode. It holds ciphertext and the metadata
 * needed to route and schedule it, never a key or a plaintext.
 *
 * Writes of new messages are group-committed: every putMessages call made in one event-loop turn is
 * written by a single transaction, each call in its own savepoint so a bad call fails alone. Receives
 * and deletes are group-committed the same way, in call order, in a transaction of their own (they
 * must work on a full disk, where a send fails). Each call resolves only once its transaction has
 * committed.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { PkpError } from '../core/errors.ts';
import { DiskReserve, isDiskFull } from './disk-reserve.ts';
import { FreshIndex } from './fresh-index.ts';
import { OwnerLock } from './owner-lock.ts';
import { decodeReceiptHandle, encodeReceiptHandle } from './receipt-handle.ts';
import { WalCheckpointer } from './wal-checkpointer.ts';
import { toStored, type MessageRow } from './message-row.ts';
import { isFresh, isTouched, migrate, prepareStatements, valuesOf, type QueueRow, type Statements } from './sqlite-schema.ts';
import { backlogBounds, closedError, requireAccount, requireFinite, requireIntIn } from './validate.ts';
import {
  type BacklogDek,
  type BacklogDekQuery,
  type CreateQueueResult,
  type MessageStore,
  type NewMessage,
  type QueueCounts,
  type QueueRecord,
  type ReceivedMessage,
  type MessageMove,
  type FifoDedup,
  type FifoPutResult,
  type ReceiveOptions,
  type MoveTaskRecord,
  LEGACY_ACCOUNT_ID,
} from './types.ts';

export { MIGRATIONS, SCHEMA_VERSION } from './sqlite-schema.ts';

export interface SqliteStoreOptions {
  /** Database file; missing directories are created. ':memory:' gives a private in-memory store. */
  path: string;
  /**
   * 'normal' (default): a commit survives a crash of the process (kill -9), not of the machine.
   * 'full': a commit also survives power loss, at the price of an fsync per commit.
   */
  synchronous?: 'normal' | 'full';
  /** Called with the operation's name on every store operation, with 'groupCommit' per batch of puts and 'opsCommit' per batch of receives and deletes. */
  onOp?: (op: string) => void;
  /** Bytes of the disk-full reserve beside the database (see DiskReserve); 0 turns it off. Default 8 MiB. */
  reserveBytes?: number;
}

interface PendingPut {
  messages: NewMessage[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** A receive or a delete waiting for the turn's commit: run in call order, each in its own savepoint. */
interface PendingOp {
  run: () => unknown;
  resolve: (value: never) => void;
  reject: (error: unknown) => void;
}

type OpOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** The name column's value for a queue: its path in the account namespace. */
function pathOf(accountId: string, name: string): string {
  return `${accountId}/${name}`;
}

function toQueue(row: QueueRow): QueueRecord {
  const slash = row.name.indexOf('/');
  return {
    queueId: row.queue_id,
    accountId: row.name.slice(0, slash),
    name: row.name.slice(slash + 1),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    attributes: JSON.parse(row.attributes) as Record<string, string>,
    tags: JSON.parse(row.tags) as Record<string, string>,
    lastPurgedAt: row.purged_at,
  };
}

function byReceiveOrder(a: MessageRow, b: MessageRow): number {
  return a.visible_at - b.visible_at || a.seq - b.seq;
}

/** Turns a failed insert into an error the caller can act on; the SQLite error stays as its cause. */
function putError(err: unknown): PkpError {
  const code = (err as { code?: unknown }).code;
  let error: PkpError;
  if (isDiskFull(err)) {
    error = storeFull();
  } else if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    error = new PkpError('DuplicateMessageId', 'a message with this id is already stored');
  } else if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
    error = new PkpError('QueueNotFound', 'the message names a queue that does not exist');
  } else if ((typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT')) || err instanceof TypeError || err instanceof RangeError) {
    error = new PkpError('InvalidMessage', `message rejected: ${(err as Error).message}`);
  } else {
    error = new PkpError('StoreWriteFailed', `message write failed: ${(err as Error).message}`);
  }
  error.cause = err;
  return error;
}

/** New messages cannot be stored: nothing was written. Reads and deletes still work. */
function storeFull(): PkpError {
  return new PkpError('StoreFull', 'the disk is full: no new message can be stored until space is freed');
}

export class SqliteMessageStore implements MessageStore {
  private readonly s: Statements;
  private readonly onOp: (op: string) => void;
  private closed = false;
  // Queue records are read on every request; this process owns the database, so it keeps them in
  // memory (frozen), filled on first read and kept current by create, set-attributes and delete.
  private readonly queuesById = new Map<string, QueueRecord>();
  private readonly queueIdsByName = new Map<string, string>();
  private pending: PendingPut[] = [];
  private pendingOps: PendingOp[] = [];
  /** Queues with uncommitted puts, receives or deletes, so a read of another queue does not force a flush. */
  private pendingQueues = new Set<string>();
  /** Those with uncommitted puts: a receive must see them, while it may join the receives and deletes pending. */
  private putQueues = new Set<string>();
  private flushScheduled: NodeJS.Immediate | undefined;
  /** The disk filled up: sends are refused until the reserve can be laid down again. */
  private full = false;
  /** Each queue's fresh messages (never received, not delayed), which messages_by_visibility leaves out. */
  private readonly fresh = new FreshIndex();
  /** Fresh rows the current write transaction inserted: they join `fresh` if it commits. */
  private inserted: { queueId: string; seq: number; visibleAt: number; dekId: string }[] = [];

  // Transactions are built once; nested calls (a put inside the batch) become savepoints.
  private readonly writeAll: Database.Transaction<(batch: PendingPut[]) => void>;
  private readonly writeBatch: Database.Transaction<(batch: PendingPut[], failures: Map<PendingPut, PkpError>) => void>;
  private readonly opsBatch: Database.Transaction<(ops: PendingOp[]) => OpOutcome[]>;
  private readonly inSavepoint: Database.Transaction<(run: () => unknown) => unknown>;
  private readonly insertCall: Database.Transaction<(messages: NewMessage[]) => void>;
  private readonly receiveTx: Database.Transaction<(queueId: string, max: number, visibleAt: number, now: number, options: ReceiveOptions) => ReceivedMessage[]>;
  private readonly fifoPutTx: Database.Transaction<(queueId: string, messages: NewMessage[], dedup: FifoDedup, now: number) => FifoPutResult[]>;
  private readonly moveTx: Database.Transaction<(sourceQueueId: string, moves: MessageMove[]) => number>;
  private readonly setAttributesTx: Database.Transaction<(queueId: string, attributes: Record<string, string>, now: number) => QueueRecord | undefined>;
  private readonly deleteQueueTx: Database.Transaction<(queueId: string) => boolean>;
  private readonly purgeTx: Database.Transaction<(queueId: string) => number>;
  private readonly dropExpiredTx: Database.Transaction<(queueId: string, cutoff: number) => number>;

  private constructor(
    private readonly db: Database.Database,
    onOp: ((op: string) => void) | undefined,
    private readonly reserve: DiskReserve,
    private readonly checkpointer: WalCheckpointer | undefined,
    private readonly owner: OwnerLock | undefined,
  ) {
    this.s = prepareStatements(db);
    this.onOp = onOp ?? (() => {});

    this.insertCall = db.transaction((messages: NewMessage[]) => {
      for (const m of messages) this.insertRow(m);
    });

    this.writeAll = db.transaction((batch: PendingPut[]) => {
      for (const call of batch) for (const m of call.messages) this.insertRow(m);
    });

    this.writeBatch = db.transaction((batch: PendingPut[], failures: Map<PendingPut, PkpError>) => {
      for (const call of batch) {
        const inserted = this.inserted.length;
        try {
          this.insertCall(call.messages);
        } catch (err) {
          this.inserted.length = inserted; // the call's savepoint was rolled back
          // Some errors (I/O, disk full) make SQLite abandon the whole transaction: then every call fails.
          if (!db.inTransaction) throw err;
          failures.set(call, putError(err));
        }
      }
    });

    this.inSavepoint = db.transaction((run: () => unknown) => run());
    this.opsBatch = db.transaction((ops: PendingOp[]) => ops.map((op): OpOutcome => {
      const removed = this.fresh.mark();
      try {
        return { ok: true, value: this.inSavepoint(op.run) };
      } catch (error) {
        this.fresh.rollback(removed); // the op's savepoint was rolled back
        // Some errors (I/O) make SQLite abandon the whole transaction: then every op fails. A full
        // disk fails the batch too, which evenIfFull then retries with the reserve given up.
        if (!db.inTransaction || isDiskFull(error)) throw error;
        return { ok: false, error };
      }
    }));

    this.receiveTx = db.transaction((queueId: string, max: number, visibleAt: number, now: number, options: ReceiveOptions) => {
      const attempt = options.attempt;
      if (attempt) {
        this.s.dropExpiredAttempts.run(queueId, now);
        const again = this.repeatAttempt(queueId, attempt.id, now);
        if (again) return again;
      }
      const received = this.receiveRows(queueId, max, visibleAt, now, options);
      if (attempt) {
        const record = received.filter((m) => !m.redrive).map((m) => ({ messageId: m.messageId, handle: m.receiptHandle, visibleAt: m.visibleAt }));
        this.s.putAttempt.run(queueId, attempt.id, JSON.stringify(record), now + attempt.windowMs);
      }
      return received;
    });

    this.purgeTx = db.transaction((queueId: string) => {
      let purged = this.s.purgeTouched.run(queueId).changes;
      this.fresh.each(queueId, Infinity, Infinity, (seq, visibleAt) => {
        purged += this.s.dropBySeq.run(seq).changes;
        this.fresh.remove(queueId, seq, visibleAt);
      });
      return purged;
    });

    this.dropExpiredTx = db.transaction((queueId: string, cutoff: number) => {
      let dropped = this.s.dropSentBefore.run({ queueId, cutoff }).changes;
      // A fresh message's visible_at is not after its sent_at: those sent before the cutoff are among these.
      this.fresh.each(queueId, Infinity, cutoff, (seq, visibleAt) => {
        if (this.s.dropBySeqIfSentBefore.run(seq, cutoff).changes === 0) return;
        dropped++;
        this.fresh.remove(queueId, seq, visibleAt);
      }, true);
      return dropped;
    });

    this.deleteQueueTx = db.transaction((queueId: string) => {
      this.purgeTx(queueId);
      this.s.dropQueueDedup.run(queueId);
      this.s.dropQueueAttempts.run(queueId);
      return this.s.deleteQueue.run(queueId).changes > 0;
    });

    this.setAttributesTx = db.transaction((queueId: string, attributes: Record<string, string>, now: number) => {
      const row = this.s.queueById.get(queueId);
      if (!row) return undefined;
      const queue = toQueue(row);
      queue.attributes = { ...queue.attributes, ...attributes };
      queue.updatedAt = now;
      this.s.updateQueueAttributes.run(JSON.stringify(queue.attributes), now, queueId);
      return queue;
    });

    this.fifoPutTx = db.transaction((queueId: string, messages: NewMessage[], dedup: FifoDedup, now: number) => {
      this.s.dropExpiredDedup.run(queueId, now);
      return messages.map((m): FifoPutResult => {
        const scope = dedup.scope === 'messageGroup' ? m.groupId ?? '' : '';
        const dedupId = m.dedupId ?? '';
        const seen = this.s.findDedup.get(queueId, scope, dedupId, now);
        if (seen) return { messageId: seen.message_id, sequenceNumber: seen.sequence_number, duplicate: true };
        const n = this.s.nextFifoSequence.get(queueId);
        if (!n) throw new PkpError('QueueNotFound', 'the message names a queue that does not exist');
        const sequenceNumber = String(n.fifo_sequence).padStart(20, '0');
        this.insertRow({ ...m, sequenceNumber });
        this.s.putDedup.run(queueId, scope, dedupId, m.messageId, sequenceNumber, now + dedup.windowMs);
        return { messageId: m.messageId, sequenceNumber, duplicate: false };
      });
    });

    this.moveTx = db.transaction((sourceQueueId: string, moves: MessageMove[]) => {
      let moved = 0;
      for (const move of moves) {
        const handle = decodeReceiptHandle(move.receiptHandle);
        if (!handle || handle.queueId !== sourceQueueId || handle.messageId !== move.message.messageId) {
          throw new PkpError('InvalidArgument', 'a move names a handle of another message or queue');
        }
        if (this.s.deleteLeased.run(sourceQueueId, handle.messageId, handle.nonce).changes === 0) continue;
        this.insertRow(move.message);
        moved++;
      }
      return moved;
    });

    // One string per DEK id and per queue id, not one per row: a backlog shares a few of each.
    const names = new Map<string, string>();
    const one = (name: string): string => names.get(name) ?? (names.set(name, name), name);
    for (const row of this.s.loadFresh.iterate()) this.fresh.add(one(row.queueId), row.seq, row.visibleAt, one(row.dekId));
  }

  /** Inserts one message (inside a write transaction); a fresh one joins the fresh index when the transaction commits. */
  private insertRow(m: NewMessage): void {
    const seq = Number(this.s.insertMessage.run(...valuesOf(m)).lastInsertRowid);
    if (isFresh(m)) this.inserted.push({ queueId: m.queueId, seq, visibleAt: m.visibleAt, dekId: m.dekId });
  }

  /**
   * Runs a write transaction, and the fresh index follows its outcome: the rows it inserted and
   * removed are added and taken out for good when it commits, and forgotten or put back when not.
   */
  private tracked<T>(transaction: () => T): T {
    try {
      const value = transaction();
      this.fresh.commit();
      for (const f of this.inserted) this.fresh.add(f.queueId, f.seq, f.visibleAt, f.dekId);
      return value;
    } finally {
      this.inserted = [];
      this.fresh.rollback(); // nothing left to put back after a commit
    }
  }

  /** The first `max` visible messages of a queue in receive order (visible_at, seq): touched ones from the index, fresh ones from memory. */
  private selectVisible(queueId: string, now: number, max: number): MessageRow[] {
    const touched = this.s.selectVisible.all(queueId, now, max);
    if (this.fresh.size(queueId) === 0) return touched;
    const fresh: MessageRow[] = [];
    this.fresh.each(queueId, max, now, (seq, visibleAt) => {
      const row = this.s.messageBySeq.get(seq);
      if (row && row.queue_id === queueId && !isTouched(row)) fresh.push(row);
      else this.fresh.remove(queueId, seq, visibleAt); // not fresh after all: cannot happen, but is never served twice
    });
    const rows: MessageRow[] = [];
    let i = 0;
    let j = 0;
    while (rows.length < max && (i < touched.length || j < fresh.length)) {
      rows.push(j >= fresh.length || (i < touched.length && byReceiveOrder(touched[i]!, fresh[j]!) < 0) ? touched[i++]! : fresh[j++]!);
    }
    return rows;
  }

  /** Takes visible messages (FIFO order when asked), or leases those at the redrive limit. Inside receiveTx. */
  private receiveRows(queueId: string, max: number, visibleAt: number, now: number, options: ReceiveOptions): ReceivedMessage[] {
    const redrive = options.redrive;
    const rows = this.selectUnexpired(queueId, max, now, options);
    const nonces = rows.length > 0 ? randomBytes(16 * rows.length).toString('hex') : '';
    return rows.map((row, i): ReceivedMessage => {
      if (!isTouched(row)) this.fresh.remove(queueId, row.seq, row.visible_at); // touched from now on: it gets a nonce
      const nonce = nonces.slice(32 * i, 32 * (i + 1));
      if (redrive && row.receive_count >= redrive.maxReceiveCount) {
        // Not received: leased for its move to the dead-letter queue, in this same transaction.
        this.s.markLeased.run(now + redrive.leaseMs, nonce, row.seq);
        const leased = toStored(row);
        leased.visibleAt = now + redrive.leaseMs;
        return { ...leased, receiptHandle: encodeReceiptHandle({ queueId, messageId: row.message_id, nonce }), redrive: true };
      }
      this.s.markReceived.run(visibleAt, now, nonce, row.seq);
      const message = toStored(row);
      message.visibleAt = visibleAt;
      message.receiveCount = row.receive_count + 1;
      message.firstReceivedAt = row.first_received_at ?? now;
      const receiptHandle = encodeReceiptHandle({ queueId, messageId: row.message_id, nonce });
      return { ...message, receiptHandle };
    });
  }

  /**
   * Visible rows to receive, without those past retention (sent before options.expiredBefore), which
   * are deleted here: the sweep reaches only rows whose visible_at is past retention too.
   */
  private selectUnexpired(queueId: string, max: number, now: number, options: ReceiveOptions): MessageRow[] {
    const select = () => (options.fifo ? this.s.selectVisibleFifo.all({ queueId, now, max }) : this.selectVisible(queueId, now, max));
    const cutoff = options.expiredBefore;
    let rows = select();
    // Bounded: each round deletes what it skips; what is left waits for the next receive.
    for (let round = 0; cutoff !== undefined && round < 8; round++) {
      const fresh = rows.filter((r) => r.sent_at >= cutoff);
      if (fresh.length === rows.length) break;
      for (const r of rows) {
        if (r.sent_at >= cutoff) continue;
        this.s.dropBySeq.run(r.seq);
        if (!isTouched(r)) this.fresh.remove(queueId, r.seq, r.visible_at);
      }
      rows = fresh.length < max ? select() : fresh;
    }
    return cutoff === undefined ? rows : rows.filter((r) => r.sent_at >= cutoff);
  }

  /**
   * A retried FIFO receive (same attempt id, within the window) gets the same messages and receipt
   * handles, if none of them was deleted or had its visibility changed since; else undefined.
   */
  private repeatAttempt(queueId: string, attemptId: string, now: number): ReceivedMessage[] | undefined {
    const found = this.s.findAttempt.get(queueId, attemptId, now);
    if (!found) return undefined;
    const record = JSON.parse(found.received) as { messageId: string; handle: string; visibleAt: number }[];
    const out: ReceivedMessage[] = [];
    for (const r of record) {
      const row = this.s.messageById.get(queueId, r.messageId);
      const nonce = decodeReceiptHandle(r.handle)?.nonce;
      if (!row || row.receipt_nonce !== nonce || row.visible_at !== r.visibleAt || row.visible_at <= now) return undefined;
      out.push({ ...toStored(row), receiptHandle: r.handle });
    }
    return out.length > 0 ? out : undefined;
  }

  static open(options: SqliteStoreOptions): SqliteMessageStore {
    const memory = options.path === ':memory:';
    if (!memory) {
      mkdirSync(dirname(options.path), { recursive: true });
      // Owner-only: messages are ciphertext, but ids, names and attributes are not. SQLite gives
      // the -wal and -shm files the database file's mode; they are set here too for older files.
      closeSync(openSync(options.path, 'a', 0o600));
      chmodSync(options.path, 0o600);
    }
    const owner = memory ? undefined : OwnerLock.acquire(options.path);
    let db: Database.Database;
    try {
      db = new Database(options.path);
    } catch (err) {
      owner?.release();
      throw err;
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      db.pragma('foreign_keys = ON');
      // A 64 MiB page cache keeps the indexes' hot pages in memory.
      db.pragma('cache_size = -65536');
      // The WAL is moved into the database every 1,000 pages (4 MiB) and then reused from its start,
      // never cut below that: on a full disk, receives and deletes (which rewrite existing pages) go
      // on inside space the WAL already holds, and the WAL never grows past ~4 MiB by itself. The
      // copying is done beforehand by a worker thread (WalCheckpointer), so this one is short.
      db.pragma('wal_autocheckpoint = 1000');
      db.pragma(`journal_size_limit = ${4 * 1024 * 1024}`);
      migrate(db);
      failInterruptedMoveTasks(db);
      if (!memory) for (const suffix of ['-wal', '-shm']) if (existsSync(options.path + suffix)) chmodSync(options.path + suffix, 0o600);
      const reserve = new DiskReserve(memory ? undefined : `${options.path}-reserve`, options.reserveBytes ?? 8 * 1024 * 1024);
      const store = new SqliteMessageStore(db, options.onOp, reserve, memory ? undefined : WalCheckpointer.start(options.path), owner);
      // Opened on a full disk: readable, but refusing sends until there is room.
      store.full = !reserve.ensure();
      return store;
    } catch (err) {
      db.close();
      owner?.release();
      throw err;
    }
  }

  // ---- queues ----

  async createQueue(name: string, attributes: Record<string, string>, now: number, accountId = LEGACY_ACCOUNT_ID, tags: Record<string, string> = {}): Promise<CreateQueueResult> {
    this.begin('createQueue');
    requireAccount(accountId);
    const queue: QueueRecord = {
      queueId: randomBytes(16).toString('hex'),
      accountId,
      name,
      createdAt: now,
      updatedAt: now,
      attributes: { ...attributes },
      tags: { ...tags },
      lastPurgedAt: null,
    };
    const path = pathOf(accountId, name);
    const inserted = this.s.insertQueue.run(queue.queueId, path, now, now, JSON.stringify(queue.attributes), JSON.stringify(queue.tags));
    if (inserted.changes > 0) return { outcome: 'created', queue: this.remember(queue) };
    return { outcome: 'exists', queue: this.remember(toQueue(this.s.queueByName.get(path)!)) };
  }

  async getQueueByName(name: string, accountId = LEGACY_ACCOUNT_ID): Promise<QueueRecord | undefined> {
    this.begin('getQueueByName');
    const path = pathOf(accountId, name);
    const known = this.queueIdsByName.get(path);
    if (known !== undefined) return this.queuesById.get(known);
    const row = this.s.queueByName.get(path);
    return row && this.remember(toQueue(row));
  }

  async getQueueById(queueId: string): Promise<QueueRecord | undefined> {
    this.begin('getQueueById');
    return this.queueById(queueId);
  }

  knownQueue(queueId: string): QueueRecord | undefined {
    return this.queuesById.get(queueId);
  }

  /** The queue's record, from memory when known. */
  private queueById(queueId: string): QueueRecord | undefined {
    const known = this.queuesById.get(queueId);
    if (known !== undefined) return known;
    const row = this.s.queueById.get(queueId);
    return row && this.remember(toQueue(row));
  }

  async listQueues(prefix = '', accountId = LEGACY_ACCOUNT_ID): Promise<QueueRecord[]> {
    this.begin('listQueues');
    return this.s.listQueues.all({ prefix: pathOf(accountId, prefix) }).map(toQueue);
  }

  async listAllQueues(): Promise<QueueRecord[]> {
    this.begin('listAllQueues');
    return this.s.listQueues.all({ prefix: '' }).map(toQueue);
  }

  async setQueueAttributes(queueId: string, attributes: Record<string, string>, now: number): Promise<QueueRecord | undefined> {
    this.begin('setQueueAttributes');
    const updated = this.setAttributesTx.immediate(queueId, attributes, now);
    return updated && this.remember(updated);
  }

  async deleteQueue(queueId: string, now?: number): Promise<boolean> {
    this.begin('deleteQueue', queueId);
    const known = this.queueById(queueId);
    if (known) this.queueIdsByName.delete(pathOf(known.accountId, known.name));
    this.queuesById.delete(queueId);
    // The foreign key's check of a deleted queue would scan every message (no index leads with
    // queue_id for all rows): it is off for this one transaction, which deletes the queue's messages first.
    this.db.pragma('foreign_keys = OFF');
    let deleted: boolean;
    try {
      deleted = this.tracked(() => this.deleteQueueTx.immediate(queueId));
    } finally {
      this.db.pragma('foreign_keys = ON');
    }
    this.fresh.dropQueue(queueId);
    if (deleted && known && now !== undefined) this.s.recordDeleted.run(pathOf(known.accountId, known.name), now);
    return deleted;
  }

  async queueDeletedAt(name: string, accountId = LEGACY_ACCOUNT_ID): Promise<number | undefined> {
    this.begin('queueDeletedAt');
    return this.s.deletedAt.get(pathOf(accountId, name))?.deleted_at;
  }

  async setQueueTags(queueId: string, tags: Record<string, string>): Promise<QueueRecord | undefined> {
    this.begin('setQueueTags');
    const current = this.queueById(queueId);
    if (!current || this.s.updateQueueTags.run(JSON.stringify(tags), queueId).changes === 0) return undefined;
    return this.remember({ ...current, attributes: { ...current.attributes }, tags: { ...tags } });
  }

  private remember(queue: QueueRecord): QueueRecord {
    Object.freeze(queue.attributes);
    Object.freeze(queue.tags);
    Object.freeze(queue);
    this.queuesById.set(queue.queueId, queue);
    this.queueIdsByName.set(pathOf(queue.accountId, queue.name), queue.queueId);
    return queue;
  }

  // ---- messages ----

  putMessages(messages: NewMessage[]): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    this.onOp('putMessages');
    if (messages.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      // A copy of the list, so a caller reusing its array cannot change what gets written.
      this.pending.push({ messages: [...messages], resolve, reject });
      for (const m of messages) {
        this.pendingQueues.add(m.queueId);
        this.putQueues.add(m.queueId);
      }
      this.flushScheduled ??= setImmediate(() => this.flush());
    });
  }

  async receiveMessages(queueId: string, max: number, visibilityTimeoutMs: number, now: number, options: ReceiveOptions = {}): Promise<ReceivedMessage[]> {
    this.begin('receiveMessages');
    if (this.putQueues.has(queueId)) this.flush();
    requireFinite('now', now);
    requireFinite('visibilityTimeoutMs', visibilityTimeoutMs);
    const redrive = options.redrive;
    if (redrive) {
      requireIntIn('maxReceiveCount', redrive.maxReceiveCount, 0, 1000); // 0: lease every message (a move task)
      requireFinite('leaseMs', redrive.leaseMs);
    }
    if (options.expiredBefore !== undefined) requireFinite('expiredBefore', options.expiredBefore);
    if (!(max >= 1)) return [];
    return this.deferred(queueId, () => this.receiveTx(queueId, Math.floor(max), now + visibilityTimeoutMs, now, options));
  }

  async saveMoveTask(task: MoveTaskRecord, ifStatus?: MoveTaskRecord['status']): Promise<boolean> {
    this.begin('saveMoveTask');
    // Read and write in one synchronous stretch: nothing else runs in between.
    if (ifStatus !== undefined) {
      const row = this.s.moveTask.get(task.taskHandle);
      if (!row || (JSON.parse(row.record) as MoveTaskRecord).status !== ifStatus) return false;
    }
    this.s.saveMoveTask.run(task.taskHandle, task.sourceArn, JSON.stringify(task), task.startedAt);
    return true;
  }

  async getMoveTask(taskHandle: string): Promise<MoveTaskRecord | undefined> {
    this.begin('getMoveTask');
    const row = this.s.moveTask.get(taskHandle);
    return row && (JSON.parse(row.record) as MoveTaskRecord);
  }

  async listMoveTasks(sourceArn: string, limit: number): Promise<MoveTaskRecord[]> {
    this.begin('listMoveTasks');
    return this.s.moveTasksOf.all(sourceArn, limit).map((r) => JSON.parse(r.record) as MoveTaskRecord);
  }

  async putFifoMessages(queueId: string, messages: NewMessage[], dedup: FifoDedup, now: number): Promise<FifoPutResult[]> {
    this.begin('putFifoMessages', queueId);
    requireFinite('now', now);
    for (const m of messages) {
      if (m.queueId !== queueId || typeof m.groupId !== 'string' || typeof m.dedupId !== 'string') {
        throw new PkpError('InvalidArgument', 'a FIFO message names its queue, a group id and a deduplication id');
      }
    }
    if (!this.hasRoomFor(messages)) throw storeFull();
    try {
      return this.tracked(() => this.fifoPutTx.immediate(queueId, messages, dedup, now));
    } catch (err) {
      this.noteIfFull(err);
      throw err instanceof PkpError ? err : putError(err);
    }
  }

  async moveMessages(sourceQueueId: string, moves: MessageMove[]): Promise<number> {
    this.begin('moveMessages', sourceQueueId);
    if (moves.length === 0) return 0;
    if (moves.some((m) => this.pendingQueues.has(m.message.queueId))) this.flush(); // puts to the destination commit first
    // A move writes a new row before its old one is freed: refused like a send on a full disk (the
    // messages stay leased and come back), so that receives and deletes keep the reserve's room.
    if (!this.hasRoomFor(moves.map((m) => m.message))) throw storeFull();
    try {
      return this.tracked(() => this.moveTx.immediate(sourceQueueId, moves));
    } catch (err) {
      this.noteIfFull(err);
      throw err instanceof PkpError ? err : putError(err);
    }
  }

  async deleteMessage(queueId: string, receiptHandle: string): Promise<'deleted' | 'gone' | 'invalid'> {
    this.begin('deleteMessage');
    const handle = decodeReceiptHandle(receiptHandle);
    if (!handle || handle.queueId !== queueId) return 'invalid';
    // Like SQS, any handle of the message deletes it, even one from an earlier receive.
    const deleted = await this.deferred(queueId, () => {
      const row = this.s.deleteMessage.get(queueId, handle.messageId);
      if (row) this.fresh.remove(queueId, row.seq, row.visibleAt); // a handle made up for a message never received
      return row !== undefined;
    });
    return deleted ? 'deleted' : 'gone';
  }

  async changeVisibility(queueId: string, receiptHandle: string, visibleAt: number, now: number): Promise<'changed' | 'expired' | 'not-in-flight' | 'invalid'> {
    this.begin('changeVisibility');
    const handle = decodeReceiptHandle(receiptHandle);
    if (!handle || handle.queueId !== queueId) return 'invalid';
    requireFinite('visibleAt', visibleAt);
    requireFinite('now', now);
    const changed = this.evenIfFull(() => this.s.changeVisibility.run(visibleAt, queueId, handle.messageId, handle.nonce, now).changes);
    if (changed > 0) return 'changed';
    // This receive's visibility ran out and nobody received the message since: the handle is still its latest.
    const row = this.s.messageById.get(queueId, handle.messageId);
    return row && row.receipt_nonce === handle.nonce && row.visible_at <= now ? 'expired' : 'not-in-flight';
  }

  async purgeQueue(queueId: string, now?: number): Promise<number> {
    this.begin('purgeQueue', queueId);
    const purged = this.evenIfFull(() => this.tracked(() => this.purgeTx.immediate(queueId)));
    if (now !== undefined) {
      this.s.markPurged.run(now, queueId);
      const current = this.queuesById.get(queueId);
      if (current) this.remember({ ...current, attributes: { ...current.attributes }, tags: { ...current.tags }, lastPurgedAt: now });
    }
    return purged;
  }

  async counts(queueId: string, now: number): Promise<QueueCounts> {
    this.begin('counts', queueId);
    const visible = this.s.countVisible.get(queueId, now)!.n;
    const invisible = this.s.countInvisible.get(queueId, now)!;
    // A fresh message not yet visible (a clock that stepped back) counts as delayed, as it would from the index.
    const freshVisible = this.fresh.countUntil(queueId, now);
    return { visible: visible + freshVisible, inFlight: invisible.inFlight ?? 0, delayed: (invisible.delayed ?? 0) + this.fresh.size(queueId) - freshVisible };
  }

  async backlog(queueId: string, atMost: number): Promise<number> {
    requireIntIn('atMost', atMost, 0, Number.MAX_SAFE_INTEGER);
    this.begin('backlog', queueId);
    return Math.min(atMost, this.s.backlog.get(queueId, atMost)!.n + this.fresh.size(queueId));
  }

  async countsByQueue(now: number): Promise<Map<string, QueueCounts>> {
    this.begin('countsByQueue');
    requireFinite('now', now);
    const counts = new Map(this.s.countsByQueue.all({ now }).map((r) => [r.queueId, { visible: r.visible, inFlight: r.inFlight, delayed: r.delayed }]));
    for (const queueId of this.fresh.queues()) {
      const c = counts.get(queueId) ?? { visible: 0, inFlight: 0, delayed: 0 };
      const freshVisible = this.fresh.countUntil(queueId, now);
      counts.set(queueId, { visible: c.visible + freshVisible, inFlight: c.inFlight, delayed: c.delayed + this.fresh.size(queueId) - freshVisible });
    }
    return counts;
  }

  async dropExpired(queueId: string, retentionMs: number, now: number): Promise<number> {
    this.begin('dropExpired', queueId);
    requireFinite('retentionMs', retentionMs);
    return this.evenIfFull(() => this.tracked(() => this.dropExpiredTx.immediate(queueId, now - retentionMs)));
  }

  async nextVisibleAt(queueId: string): Promise<number | undefined> {
    this.begin('nextVisibleAt', queueId);
    const touched = this.s.minVisibleAt.get(queueId)!.t ?? undefined;
    const fresh = this.fresh.firstVisibleAt(queueId);
    return touched === undefined || (fresh !== undefined && fresh < touched) ? fresh : touched;
  }

  async backlogDeks(queueId: string, query: BacklogDekQuery): Promise<BacklogDek[]> {
    // Checked before begin(): a bad call must not even flush pending puts.
    const { until, scan, maxDeks } = backlogBounds(queueId, query);
    this.begin('backlogDeks', queueId);
    // The first `scan` messages in receive order, from the index and from memory, grouped by DEK.
    const rows = this.s.backlogTouched.all(queueId, until, scan);
    this.fresh.each(queueId, scan, until, (seq, visibleAt, dekId) => void rows.push({ seq, dekId, visibleAt }));
    rows.sort((a, b) => a.visibleAt - b.visibleAt || a.seq - b.seq);
    const byDek = new Map<string, { seq: number; messages: number; firstVisibleAt: number }>();
    for (const r of rows.slice(0, scan)) {
      const d = byDek.get(r.dekId);
      if (d) d.messages++;
      else byDek.set(r.dekId, { seq: r.seq, messages: 1, firstVisibleAt: r.visibleAt });
    }
    // In order of first use (the map's order: rows were sorted), each with its wrapped key read from one row.
    return [...byDek].slice(0, maxDeks).map(([dekId, d]) => ({
      dekId, encryptedDek: this.s.encryptedDekOf.get(d.seq)!.encrypted_dek, messages: d.messages, firstVisibleAt: d.firstVisibleAt,
    }));
  }

  /** Readiness: a real write (one row of a health table), so a read-only or full disk shows. Throws when it cannot write. */
  async probeWritable(now: number): Promise<void> {
    if (this.closed) throw closedError();
    this.db.exec('CREATE TABLE IF NOT EXISTS health (id INTEGER PRIMARY KEY CHECK (id = 1), checked_at INTEGER NOT NULL)');
    this.db.prepare('INSERT INTO health (id, checked_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at').run(now);
  }

  /** Commits pending puts, then closes the database. Closing twice is harmless. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    // The worker's connection first: the last one to close moves the WAL in and removes it.
    await this.checkpointer?.close();
    this.db.close();
    this.owner?.release();
  }

  // ---- internals ----

  /**
   * Common start of every operation: refuses once closed, counts it and, when the operation reads
   * or changes a queue's messages, first commits puts to that queue that are still waiting, so an
   * operation always sees every put that was called before it.
   */
  private begin(op: string, queueId?: string): void {
    if (this.closed) throw closedError();
    this.onOp(op);
    if (queueId !== undefined && this.pendingQueues.has(queueId)) this.flush();
  }

  /**
   * Runs a small write that reading depends on (a receive's visibility, a delete). When the disk is
   * full, the reserve is given up to make room for it, and the store refuses sends from then on.
   */
  private evenIfFull<T>(write: () => T): T {
    try {
      return write();
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      this.full = true;
      this.reserve.release();
      // Tried even with no reserve left to free: once the WAL is in the database, the next write
      // starts the WAL again from its beginning, in space the file already holds.
      this.restartWal();
    }
    try {
      return write();
    } catch (err) {
      throw isDiskFull(err) ? storeFull() : err;
    }
  }

  /** Moves the whole WAL into the database (pages that exist: no growth), so that it is reused from its start. */
  private restartWal(): void {
    try {
      this.db.pragma('wal_checkpoint(RESTART)');
    } catch {
      // no room even for that: the write that follows tells
    }
  }

  /**
   * Whether new messages may be written now (sends, FIFO sends, moves). After a full disk the
   * reserve is laid down again as soon as there is room. Until then new messages are written only
   * into pages that deletes freed inside the database, never into the disk's last bytes.
   */
  private hasRoomFor(messages: readonly NewMessage[]): boolean {
    if (!this.full) return true;
    this.full = !this.reserve.ensure();
    return !this.full || this.fitsInFreePages(messages);
  }

  /** A write of new messages met a full disk: the reserve is given up so that reading goes on. */
  private noteIfFull(err: unknown): void {
    if (!isDiskFull(err)) return;
    this.full = true;
    this.reserve.release();
  }

  /** Whether the database's free pages hold these messages twice over (rows, index entries, WAL copies). */
  private fitsInFreePages(messages: readonly NewMessage[]): boolean {
    let bytes = 0;
    for (const m of messages) bytes += m.bodyCiphertext.length + (m.attributesCiphertext?.length ?? 0) + m.encryptedDek.length + 256;
    const free = (this.db.pragma('freelist_count', { simple: true }) as number) * (this.db.pragma('page_size', { simple: true }) as number);
    return free >= 2 * bytes + 64 * 1024;
  }

  /** Runs `run` (a receive's or a delete's writes) in the turn's shared transaction; settles after its commit. */
  private deferred<T>(queueId: string, run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pendingOps.push({ run, resolve: resolve as (value: never) => void, reject });
      this.pendingQueues.add(queueId);
      this.flushScheduled ??= setImmediate(() => this.flush());
    });
  }

  /** Writes every pending put in one transaction, then every pending receive and delete in another; each promise settles only after its commit. */
  private flush(): void {
    if (this.flushScheduled) clearImmediate(this.flushScheduled);
    this.flushScheduled = undefined;
    this.pendingQueues.clear();
    this.putQueues.clear();
    this.commitPuts();
    const ops = this.pendingOps;
    if (ops.length === 0) return;
    this.pendingOps = [];
    let outcomes: OpOutcome[];
    try {
      outcomes = this.evenIfFull(() => this.tracked(() => this.opsBatch.immediate(ops)));
    } catch (err) {
      for (const op of ops) op.reject(err);
      return;
    }
    // On a full disk the WAL must not grow: the file is not cut back, and after a restart (which
    // removes it) its 4 MiB working size may be more than the disk has left. Moved into the database
    // after every commit, the WAL is reused from its start and a receive needs no new space.
    if (this.full) this.restartWal();
    outcomes.forEach((o, i) => (o.ok ? ops[i]!.resolve(o.value as never) : ops[i]!.reject(o.error)));
    this.onOp('opsCommit');
  }

  private commitPuts(): void {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    if (this.full && !this.hasRoomFor(batch.flatMap((call) => call.messages))) {
      for (const call of batch) call.reject(storeFull());
      return;
    }
    const failures = new Map<PendingPut, PkpError>();
    try {
      this.tracked(() => this.writeAll.immediate(batch));
    } catch (fast) {
      // Almost always every call is good and the batch goes in without a savepoint per call. If
      // one was not, all was rolled back: written again call by call, so that only the bad call fails.
      if (isDiskFull(fast)) return this.putsFailed(batch, fast);
      try {
        this.tracked(() => this.writeBatch.immediate(batch, failures));
      } catch (err) {
        return this.putsFailed(batch, err);
      }
    }
    for (const call of batch) {
      const failure = failures.get(call);
      if (failure) call.reject(failure);
      else call.resolve();
    }
    this.onOp('groupCommit');
  }

  private putsFailed(batch: PendingPut[], err: unknown): void {
    this.noteIfFull(err);
    const error = putError(err);
    for (const call of batch) call.reject(error);
  }
}

/** A task that was running when the process stopped ran no further: it failed. */
function failInterruptedMoveTasks(db: Database.Database): void {
  const rows = db.prepare<[], { task_handle: string; record: string }>('SELECT task_handle, record FROM move_tasks').all();
  const update = db.prepare<[string, string]>('UPDATE move_tasks SET record = ? WHERE task_handle = ?');
  for (const row of rows) {
    const task = JSON.parse(row.record) as MoveTaskRecord;
    if (task.status !== 'RUNNING' && task.status !== 'CANCELLING') continue;
    update.run(JSON.stringify({ ...task, status: 'FAILED', failureReason: 'The service stopped while the task was running.' }), row.task_handle);
  }
}

