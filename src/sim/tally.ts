import { percentileSorted } from './stats.ts';
import type { QueueOutcome, TimelinePoint } from './simulator.ts';

/** Counts measured requests and demand misses, overall, per queue and per time bucket. */
export class RequestTally {
  requests = 0;
  misses = 0;
  private readonly queues = new Map<string, QueueOutcome>();
  private readonly buckets = new Map<number, TimelinePoint>();

  constructor(private readonly bucketMs: number) {}

  add(t: number, queue: string, missed: boolean): void {
    this.requests++;
    let q = this.queues.get(queue);
    if (!q) this.queues.set(queue, (q = { queue, requests: 0, misses: 0 }));
    q.requests++;
    const start = t - (t % this.bucketMs);
    let point = this.buckets.get(start);
    if (!point) this.buckets.set(start, (point = { t: start, requests: 0, misses: 0 }));
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
