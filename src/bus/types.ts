/** The event bus seam: front-ends publish what they see; the prefetcher subscribes. */

export type QueueOp = 'send' | 'receive' | 'delete' | 'other';

/** One request served by a front-end node. Never carries a body or a key. */
export interface AccessEvent {
  type: 'access';
  at: number;
  queueId: string;
  nodeId: string;
  principal: string;
  op: QueueOp;
  bytes: number;
  /**
   * Whether the node's key cache held the key the request used (SendMessage/SendMessageBatch: the
   * principal's encrypt key). Absent when the request used no key or the node could not tell
   * (receives, whose decrypt keys belong to the senders' streams).
   */
  keyHit?: boolean;
  /** Expiry (clock ms) of the key that served the request; hits only. */
  keyExpiresAt?: number;
  /** The hit was the first use of a key a prefetch had delivered (a miss avoided). */
  prefetchedFirstUse?: boolean;
  /**
   * Aggregated events (see AccessAggregator): this many requests of the same (queue, node,
   * principal, op) from `firstAt` to `at`, none of them a miss. Absent: one request.
   */
  count?: number;
  firstAt?: number;
}

export type KeyUsageKind = 'hit' | 'miss' | 'expired' | 'evicted' | 'inserted';

/** What a node's key cache did. Carries the DEK id (a hash), never the key. */
export interface KeyUsageEvent {
  type: 'key';
  at: number;
  nodeId: string;
  kind: KeyUsageKind;
  /** 'encrypt' keys are per (queue, principal); 'decrypt' keys are per encrypted DEK. */
  use: 'encrypt' | 'decrypt';
  queueId: string;
  principal?: string;
  dekId?: string;
  prefetched: boolean;
}

/** A queue's size as a front-end saw it, now and then (at most once per queue per few seconds). */
export interface QueueStatsEvent {
  type: 'queue-stats';
  at: number;
  queueId: string;
  nodeId: string;
  /** Messages stored and not yet deleted (visible, in flight and delayed), counted up to 10,000. */
  backlog: number;
}

export type PkpEvent = AccessEvent | KeyUsageEvent | QueueStatsEvent;

export type Unsubscribe = () => void;

export interface SubscribeOptions {
  /** Only events of queues in these partitions (see partitionOf); default every partition. */
  partitions?: readonly number[];
  /**
   * Where a subscription starts: 'new' (default) sees events published from now on; 'retained' also
   * gets what the bus still holds (a durable bus's history; the in-process bus holds none).
   */
  from?: 'new' | 'retained';
  /** With 'retained': only what the bus stored at or after this time (ms since the epoch). */
  since?: number;
}

/** What a bus did, for metrics: every event published is delivered, dropped or still buffered. */
export interface BusStats {
  published: number;
  /** Events a full buffer, a closed bus or a failed transport could not carry. */
  dropped: number;
  /** Events handed to subscribers (once per subscriber). */
  delivered: number;
  /** Messages from the transport that were not valid events (skipped). */
  rejected: number;
  /** Subscriber calls that threw (reported, skipped). */
  handlerErrors: number;
}

/**
 * The event bus seam. Publishing is fire-and-forget: it never throws and never waits, so a slow or
 * absent bus can never slow a request (prefetching fails open); what it cannot carry is counted.
 */
export interface EventBus {
  readonly partitions: number;
  publish(event: PkpEvent): void;
  subscribe(handler: (event: PkpEvent) => void, options?: SubscribeOptions): Unsubscribe;
  /** Resolves once everything published so far has been handed to the transport (or dropped). */
  flush(): Promise<void>;
  stats(): BusStats;
  close(): Promise<void>;
}
