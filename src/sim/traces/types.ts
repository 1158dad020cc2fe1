/** What the simulator replays: one request a record, in time order. */
import type { QueueOp } from '../../bus/types.ts';

/** The ops a trace may name ('other' is bus-internal and never appears in a trace). */
export type TraceOp = Extract<QueueOp, 'send' | 'receive' | 'delete'>;

export interface TraceEvent {
  /** Milliseconds, integer, never decreasing along a source. */
  t: number;
  queue: string;
  op: TraceOp;
  /** Front-end node that served it; absent when the simulator's load balancer chooses. */
  node?: string;
  principal?: string;
  bytes?: number;
}

/** Events in non-decreasing `t`. */
export type TraceSource = AsyncIterable<TraceEvent>;

/** Counts a loader keeps while it reads; final once iteration ends. */
export interface LoadStats {
  /** Data rows read (header and blank lines excluded). */
  rows: number;
  /** Events emitted. */
  events: number;
  /** Bad rows dropped in lenient mode. */
  skipped: number;
}

export type TraceFormat = 'events' | 'azure';

/**
 * A trace file opened for replay. Each iteration re-reads the file from the start and resets
 * `stats`, so one reader can feed several simulator runs.
 */
export interface TraceReader extends TraceSource {
  readonly format: TraceFormat;
  readonly stats: LoadStats;
  /**
   * The same events in arrays (one per file chunk or trace minute): one await per batch
   * instead of one per event, for consumers that replay millions of events.
   */
  batches(): AsyncIterable<TraceEvent[]>;
}
