import { percentileSorted } from './stats.ts';
import type { QueueOutcome, TimelinePoint } from './simulator.ts';

/** Counts measured requests and demand misses, overall, per queue and per time bucket. */
export class RequestTally {
  requests = 0;
  misses = 0;
  private readonly queues = new Map<string, QueueOutcome>();
  private readonly buckets = new Map<number, TimelinePoint>();
  /** The bucket of the last request: requests come in time order, so it is nearly always the next one's. */
  private point: TimelinePoint = { t: NaN, requests: 0, misses: 0 };

  constructor(private readonly bucketMs: number) {}

  add(t: number, queue: string, missed: boolean): void {
    this.addTo(t, this.outcomeOf(queue), missed);
  }

  /** A queue's counters (created at its first measured request): a caller may keep them with its own state of the queue. */
  outcomeOf(queue: string): QueueOutcome {
    let q = this.queues.get(queue);
    if (!q) this.queues.set(queue, (q = { queue, requests: 0, misses: 0 }));
    return q;
  }

  /** add, with the queue's counters already in hand (see outcomeOf). */
  addTo(t: number, q: QueueOutcome, missed: boolean): void {
    this.requests++;
    q.requests++;
    const start = t - (t % this.bucketMs);
    let point = this.point;
    if (point.t !== start) {
      let found = this.buckets.get(start);
      if (!found) this.buckets.set(start, (found = { t: start, requests: 0, misses: 0 }));
      this.point = point = found;
    }
    point.requests++;
    if (missed) {
      this.misses++;
      q.misses++;
      point.misses++;
    }
  }

  perQueue(): QueueOutcome[] {
    return [...this.queues.values()];
  }

  timeline(): TimelinePoint[] {
    return [...this.buckets.values()].sort((a, b) => a.t - b.t);
  }

  /** Median and 90th percentile over queues of each queue's own miss ratio. */
  perQueueMissRatio(): { p50: number; p90: number } {
    const ratios = Float64Array.from(this.queues.values(), (q) => q.misses / q.requests).sort();
    return { p50: percentileSorted(ratios, 50), p90: percentileSorted(ratios, 90) };
  }
}
