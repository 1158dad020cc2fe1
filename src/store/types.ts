/**
 * The message store seam. It holds ciphertext only: bodies and attributes encrypted by a
 * front-end node, each with the encrypted DEK that names the key needed to read it.
 */

/** A queue as the registry keeps it. `attributes` are SQS attribute names → string values. */
export interface QueueRecord {
  /** Stable internal id (never reused after a delete). Used as encryption-context and AAD input. */
  queueId: string;
  name: string;
  createdAt: number;
  updatedAt: number;
  attributes: Record<string, string>;
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
  md5OfBody: string;
  md5OfMessageAttributes: string | null;
  senderPrincipal: string;
  sentAt: number;
  /** First time the message may be received (sentAt + DelaySeconds). */
  visibleAt: number;
  /** Bytes of the plaintext body, for ApproximateSize-style figures. */
  bodyBytes: number;
}

export interface StoredMessage extends NewMessage {
  receiveCount: number;
  firstReceivedAt: number | null;
}

export interface ReceivedMessage extends StoredMessage {
  /** Opaque; names this message and this particular receive. */
  receiptHandle: string;
}

export interface QueueCounts {
  visible: number;
  inFlight: number;
  delayed: number;
}

export type CreateQueueResult =
  | { outcome: 'created'; queue: QueueRecord }
  | { outcome: 'exists'; queue: QueueRecord };

export interface QueueStore {
  /** Creates the queue, or returns the existing one with that name (the caller compares attributes). */
  createQueue(name: string, attributes: Record<string, string>, now: number): CreateQueueResult;
  getQueueByName(name: string): QueueRecord | undefined;
  getQueueById(queueId: string): QueueRecord | undefined;
  listQueues(prefix?: string): QueueRecord[];
  /** Replaces the given attributes (others kept). Returns the updated record, or undefined if gone. */
  setQueueAttributes(queueId: string, attributes: Record<string, string>, now: number): QueueRecord | undefined;
  /** Deletes the queue and all its messages. Returns false when it did not exist. */
  deleteQueue(queueId: string): boolean;
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
  receiveMessages(queueId: string, max: number, visibilityTimeoutMs: number, now: number): Promise<ReceivedMessage[]>;
  /**
   * 'deleted' or 'gone' (already deleted: SQS answers success) or 'invalid' (not a handle of this queue).
   */
  deleteMessage(queueId: string, receiptHandle: string): Promise<'deleted' | 'gone' | 'invalid'>;
  /**
   * Sets the message's visibleAt. 'invalid' when the handle is malformed or of another queue;
   * 'not-in-flight' when the message is not currently invisible under this handle.
   */
  changeVisibility(queueId: string, receiptHandle: string, visibleAt: number, now: number): Promise<'changed' | 'not-in-flight' | 'invalid'>;
  purgeQueue(queueId: string): Promise<number>;
  counts(queueId: string, now: number): QueueCounts;
  /** Deletes messages with sentAt older than the queue's retention; returns how many. */
  dropExpired(queueId: string, retentionMs: number, now: number): Promise<number>;
  /**
   * Earliest visibleAt of any message of the queue, or undefined when it has none. A time at or
   * before now means a message is visible already; otherwise it is when the next one becomes visible.
   */
  nextVisibleAt(queueId: string): number | undefined;
  close(): Promise<void>;
}
