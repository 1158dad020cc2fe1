/**
 * The message store seam. It holds ciphertext only: bodies and attributes encrypted by a
 * front-end node, each with the encrypted DEK that names the key needed to read it.
 */

/** The account of queues made before accounts existed, and of callers that name none. */
export const LEGACY_ACCOUNT_ID = '000000000000';

/** A queue as the registry keeps it. `attributes` are SQS attribute names → string values. */
export interface QueueRecord {
  /** Stable internal id (never reused after a delete). Used as encryption-context and AAD input. */
  queueId: string;
  /** The 12-digit account whose namespace holds the queue. */
  accountId: string;
  /** The name within that account. */
  name: string;
  createdAt: number;
  updatedAt: number;
  attributes: Record<string, string>;
  /** Cost-allocation tags: key → value. */
  tags: Record<string, string>;
  /** When the queue was last purged (purgeQueue with a time), or null. */
  lastPurgedAt: number | null;
}

/** A message ready to store. All byte fields are ciphertext or encrypted keys. */
export interface NewMessage {
  messageId: string;
  queueId: string;
  /** AES-256-GCM of the body under the DEK; AAD = queueId + messageId. */
  bodyCiphertext: Buffer;
  /** AES-256-GCM of the JSON-encoded message attributes, or null when there are none. */
  attributesCiphertext: Buffer | null;
  /** The DEK encrypted under the master key (the KMS blob). */
  encryptedDek: Buffer;
  /** Short id of the DEK (hex of a hash of encryptedDek). */
  dekId: string;
  /** Master key id that encrypted the DEK. */
  kmsKeyId: string;
  senderPrincipal: string;
  sentAt: number;
  /** First time the message may be received (sentAt + DelaySeconds). */
  visibleAt: number;
  /** Bytes of the plaintext body, for ApproximateSize-style figures. */
  bodyBytes: number;
  /** FIFO queues: the message group, the deduplication id, and (given by the store) the sequence number. */
  groupId?: string;
  dedupId?: string;
  sequenceNumber?: string;
  /** Set on a message moved to a dead-letter queue: the ARN of the queue it came from. */
  deadLetterSourceArn?: string;
}

export interface StoredMessage extends NewMessage {
  receiveCount: number;
  firstReceivedAt: number | null;
}

export interface ReceivedMessage extends StoredMessage {
  /** Opaque; names this message and this particular receive. */
  receiptHandle: string;
  /**
   * Set only when the receive was given a redrive limit: the message had reached it, so it was not
   * received but leased (invisible for the lease) to be moved to the dead-letter queue with
   * moveMessages under this receipt handle. If the move never happens it reappears after the lease.
   */
  redrive?: true;
}

export interface RedriveLimit {
  /** Messages received this many times already are leased for a move instead of received. */
  maxReceiveCount: number;
  leaseMs: number;
}

export interface ReceiveOptions {
  redrive?: RedriveLimit;
  /**
   * FIFO order: by send order, and no message of a group while an earlier one of that group is
   * invisible (in flight): a group is delivered strictly in order.
   */
  fifo?: boolean;
  /**
   * FIFO ReceiveRequestAttemptId: a retry with the same id within the window returns the same
   * messages and receipt handles while none was deleted or changed; otherwise a new receive.
   */
  attempt?: { id: string; windowMs: number };
  /**
   * Messages sent before this instant (clock ms) are past the queue's retention: not delivered,
   * and deleted. dropExpired may leave some that were received (and so are visible later); a store
   * whose sweep leaves none may ignore this.
   */
  expiredBefore?: number;
}

export interface FifoDedup {
  /** 'queue': ids are unique in the queue; 'messageGroup': within each group. */
  scope: 'queue' | 'messageGroup';
  windowMs: number;
}

export interface FifoPutResult {
  messageId: string;
  sequenceNumber: string;
  /** A message with this deduplication id was sent within the window: nothing was stored. */
  duplicate: boolean;
}

/** A message move task (StartMessageMoveTask), as SQS reports it. */
export interface MoveTaskRecord {
  taskHandle: string;
  status: 'RUNNING' | 'COMPLETED' | 'CANCELLING' | 'CANCELLED' | 'FAILED';
  sourceArn: string;
  destinationArn?: string;
  maxNumberOfMessagesPerSecond?: number;
  approximateNumberOfMessagesMoved: number;
  approximateNumberOfMessagesToMove: number;
  failureReason?: string;
  startedAt: number;
}

export interface MessageMove {
  /** The handle the message was leased under (ReceivedMessage.receiptHandle). */
  receiptHandle: string;
  /** The message as the destination queue stores it (same message id, resealed for that queue). */
  message: NewMessage;
}

export interface QueueCounts {
  visible: number;
  inFlight: number;
  delayed: number;
}

/**
 * A DEK that messages waiting in a queue are encrypted under: its id and its KMS blob (the DEK
 * encrypted under the master key, useless without the KMS), never a body or a key.
 */
export interface BacklogDek {
  dekId: string;
  encryptedDek: Buffer;
  /** Messages under this DEK among those looked at. */
  messages: number;
  /** Earliest visibleAt among them: when a consumer will first need the key. */
  firstVisibleAt: number;
}

export interface BacklogDekQuery {
  now: number;
  /**
   * Also count messages that become visible within this many ms of now (delayed, or in flight and
   * due back). Default BACKLOG_DEFAULTS.withinMs.
   */
  withinMs?: number;
  /** Most DEKs returned, 1..BACKLOG_LIMITS.maxDeks. Default BACKLOG_LIMITS.maxDeks. */
  maxDeks?: number;
  /** Most messages looked at, from the head of the queue, 1..BACKLOG_LIMITS.scanMessages. */
  scanMessages?: number;
}

/** Bounds of backlogDeks: the work of one call never grows with the backlog. */
export const BACKLOG_LIMITS = { maxDeks: 16, scanMessages: 10_000 } as const;
export const BACKLOG_DEFAULTS = { withinMs: 60_000, scanMessages: 1_000 } as const;

export type CreateQueueResult =
  | { outcome: 'created'; queue: QueueRecord }
  | { outcome: 'exists'; queue: QueueRecord };

export interface QueueStore {
  /**
   * Creates the queue in the account (default LEGACY_ACCOUNT_ID), or returns the account's existing
   * one with that name (the caller compares attributes).
   */
  createQueue(name: string, attributes: Record<string, string>, now: number, accountId?: string, tags?: Record<string, string>): Promise<CreateQueueResult>;
  getQueueByName(name: string, accountId?: string): Promise<QueueRecord | undefined>;
  getQueueById(queueId: string): Promise<QueueRecord | undefined>;
  /** The account's queues whose names start with the prefix, by name. */
  listQueues(prefix?: string, accountId?: string): Promise<QueueRecord[]>;
  /** Every account's queues (operators' views: dashboard, metrics, recording), by account and name. */
  listAllQueues(): Promise<QueueRecord[]>;
  /** Replaces the given attributes (others kept). Returns the updated record, or undefined if gone. */
  setQueueAttributes(queueId: string, attributes: Record<string, string>, now: number): Promise<QueueRecord | undefined>;
  /** Deletes the queue and all its messages; with `now`, remembers when. Returns false when it did not exist. */
  deleteQueue(queueId: string, now?: number): Promise<boolean>;
  /** When a queue of this name in the account was last deleted (with a time), if ever. */
  queueDeletedAt(name: string, accountId?: string): Promise<number | undefined>;
  /** Replaces the queue's tags. Returns the updated record, or undefined if gone. */
  setQueueTags(queueId: string, tags: Record<string, string>): Promise<QueueRecord | undefined>;
  /**
   * Without I/O: the queue's record as this store last read or wrote it (undefined when it has not,
   * or saw it deleted). For readers that cannot wait and can live with a slightly old record: every
   * request reads its queue first, so a queue that is in use is known.
   */
  knownQueue(queueId: string): QueueRecord | undefined;
}

export interface MessageStore extends QueueStore {
  /**
   * Stores messages atomically (all or none). Resolves only once the write is durable: a process
   * killed after the promise resolved still has the messages when it restarts.
   */
  putMessages(messages: NewMessage[]): Promise<void>;
  /**
   * Takes up to `max` visible messages (visibleAt <= now, in the order they became visible, ties in
   * send order), makes each invisible until now + visibilityTimeoutMs, increments its receive count
   * and gives it a new receipt handle. Puts to the queue called before it are committed first.
   */
  receiveMessages(queueId: string, max: number, visibilityTimeoutMs: number, now: number, options?: ReceiveOptions): Promise<ReceivedMessage[]>;
  /**
   * Stores FIFO messages in order, in one transaction (durable when it resolves): each gets the
   * queue's next sequence number, unless its deduplication id (in its scope) was stored within the
   * window, in which case the earlier message's id and sequence number are returned and nothing is stored.
   */
  putFifoMessages(queueId: string, messages: NewMessage[], dedup: FifoDedup, now: number): Promise<FifoPutResult[]>;
  /**
   * Message move tasks: saved (replaced) by handle; listed newest first. Running ones whose process
   * stopped fail when a store opens. With `ifStatus`, saved only when the stored task has that
   * status (a step must not undo a cancel that came in meanwhile). Resolves whether it saved.
   */
  saveMoveTask(task: MoveTaskRecord, ifStatus?: MoveTaskRecord['status']): Promise<boolean>;
  getMoveTask(taskHandle: string): Promise<MoveTaskRecord | undefined>;
  listMoveTasks(sourceArn: string, limit: number): Promise<MoveTaskRecord[]>;
  /**
   * Moves leased messages out of `sourceQueueId`: each is deleted there and stored as given in one
   * transaction, so exactly one copy exists whatever happens. A message whose lease was lost (it was
   * deleted, or leased again under another handle) is skipped. Resolves with the number moved.
   */
  moveMessages(sourceQueueId: string, moves: MessageMove[]): Promise<number>;
  /**
   * 'deleted' or 'gone' (already deleted: SQS answers success) or 'invalid' (not a handle of this queue).
   */
  deleteMessage(queueId: string, receiptHandle: string): Promise<'deleted' | 'gone' | 'invalid'>;
  /**
   * Sets the message's visibleAt. 'invalid' when the handle is malformed or of another queue;
   * 'expired' (nothing changed) when this handle's visibility ran out and the message was not
   * received since; 'not-in-flight' when it was deleted or received again under another handle.
   */
  changeVisibility(queueId: string, receiptHandle: string, visibleAt: number, now: number): Promise<'changed' | 'expired' | 'not-in-flight' | 'invalid'>;
  /** Deletes the queue's messages; with `now`, records it as the queue's lastPurgedAt. */
  purgeQueue(queueId: string, now?: number): Promise<number>;
  counts(queueId: string, now: number): Promise<QueueCounts>;
  /** Messages stored in the queue (visible, in flight and delayed), counted up to `atMost`: the cost stays bounded however long the backlog. */
  backlog(queueId: string, atMost: number): Promise<number>;
  /** The counts of every queue that holds messages, in one query (a queue missing from the map holds none). */
  countsByQueue(now: number): Promise<Map<string, QueueCounts>>;
  /** Deletes messages with sentAt older than the queue's retention; returns how many. */
  dropExpired(queueId: string, retentionMs: number, now: number): Promise<number>;
  /**
   * Earliest visibleAt of any message of the queue, or undefined when it has none. A time at or
   * before now means a message is visible already; otherwise it is when the next one becomes visible.
   */
  nextVisibleAt(queueId: string): Promise<number | undefined>;
  /**
   * The distinct DEKs of the queue's waiting messages (visible by now + withinMs, not deleted), soonest
   * needed first: the first `scanMessages` messages in receive order are looked at, and their DEKs
   * are ordered by when receive will first reach each one. At most `maxDeks`. Ids and KMS blobs only.
   * An unknown queue has none. Rejects with PkpError('InvalidArgument') on bad input.
   */
  backlogDeks(queueId: string, query: BacklogDekQuery): Promise<BacklogDek[]>;
  /**
   * Stores shared by several processes only: calls `listener` with a queue's id when another process
   * made messages receivable there (a send, a move, a message made visible) or deleted it, so that
   * long polls parked here look again. Returns the unsubscribe function.
   */
  subscribeWakeups?(listener: (queueId: string) => void): () => void;
  /** Readiness: a real write the store can take now (so a read-only or full disk, or a lost database, shows). Rejects when it cannot. */
  probeWritable(now: number): Promise<void>;
  close(): Promise<void>;
}
