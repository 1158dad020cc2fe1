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

export type PkpEvent = AccessEvent | KeyUsageEvent;

export type Unsubscribe = () => void;

export interface EventBus {
  publish(event: PkpEvent): void;
  subscribe(handler: (event: PkpEvent) => void): Unsubscribe;
  close(): Promise<void>;
}
