/**
 * When each queue's backlog is due to be published (a `queue-stats` event): at most once per
 * period per queue. The front-end nodes of one process read one store, so they share one schedule:
 * the backlog is the store's, not the node's, and counting it once per node multiplied the count
 * queries (with 10,000 active queues and three nodes, about one for every send).
 */
export class QueueStatsSchedule {
  private readonly last = new Map<string, number>();

  /** Default: at most every 5 s per queue. */
  constructor(private readonly everyMs = 5_000) {}

  /** Whether the queue's stats are due at `at` (clock ms); if so, they count as published then. */
  due(queueId: string, at: number): boolean {
    const last = this.last.get(queueId);
    if (last !== undefined && at - last < this.everyMs) return false;
    this.last.set(queueId, at);
    return true;
  }

  /** The queue was deleted. */
  forget(queueId: string): void {
    this.last.delete(queueId);
  }
}
