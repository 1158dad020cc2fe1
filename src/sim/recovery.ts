/**
 * How a policy's miss ratio behaves around a known change in a trace: the steady level before,
 * the windows after, and how long it takes to come back. Works on the simulator's timeline
 * (`PolicyResult.timeline`, buckets of `timelineBucketMs`), so it needs no hook in the simulator.
 */
import type { TimelinePoint } from './simulator.ts';

export interface WindowMisses {
  /** Window start, ms relative to the change. */
  from: number;
  requests: number;
  misses: number;
  /** misses / requests; 0 for an empty window. */
  ratio: number;
}

/** Requests and misses of the timeline buckets starting in [changeAtMs + from, changeAtMs + to). */
export function missesBetween(timeline: readonly TimelinePoint[], changeAtMs: number, from: number, to: number): WindowMisses {
  let requests = 0;
  let misses = 0;
  for (const p of timeline) {
    if (p.t >= changeAtMs + from && p.t < changeAtMs + to) {
      requests += p.requests;
      misses += p.misses;
    }
  }
  return { from, requests, misses, ratio: requests > 0 ? misses / requests : 0 };
}

/** Consecutive windows of `widthMs` from `fromMs` to `toMs` (relative to the change). */
export function windows(timeline: readonly TimelinePoint[], changeAtMs: number, fromMs: number, toMs: number, widthMs: number): WindowMisses[] {
  const out: WindowMisses[] = [];
  for (let from = fromMs; from < toMs; from += widthMs) out.push(missesBetween(timeline, changeAtMs, from, from + widthMs));
  return out;
}

export interface RecoveryOptions {
  /** The reuse period: the step of the answer (ms). */
  periodMs: number;
  /** Width of the windows judged (ms); several periods, so one unlucky firing is not a relapse. */
  windowMs: number;
  /** The steady level before the change is measured over this long before it (ms). */
  baselineMs: number;
  /** After the change, windows are judged up to this long after it (ms). */
  horizonMs: number;
  /** Recovered means a window's miss ratio ≤ factor × the steady level + slack. */
  factor: number;
  slack: number;
}

export interface Recovery {
  /** Miss ratio over the baseline span before the change. */
  before: number;
  bound: number;
  /** Reuse periods after the change until the first window within the bound; null if none. */
  firstWithin: number | null;
  /**
   * Reuse periods after the change until every window starting from then on (up to the horizon)
   * stays within the bound; null if it never does.
   */
  periods: number | null;
}

/**
 * Counts the reuse periods until the policy is back. Windows of `windowMs` start 0, 1, 2, …
 * periods after the change (the last one ends at the horizon). `firstWithin` is the first window
 * within the bound; `periods` the first from which every later window stays within it, so a
 * relapse (a second wave of misses) does not pass as a recovery. Both are reported: the gap
 * between them is the relapse.
 */
export function recovery(timeline: readonly TimelinePoint[], changeAtMs: number, o: RecoveryOptions): Recovery {
  const before = missesBetween(timeline, changeAtMs, -o.baselineMs, 0).ratio;
  const bound = o.factor * before + o.slack;
  const last = Math.floor((o.horizonMs - o.windowMs) / o.periodMs);
  const within = Array.from({ length: last + 1 }, (_, k) => missesBetween(timeline, changeAtMs, k * o.periodMs, k * o.periodMs + o.windowMs).ratio <= bound);
  const first = within.indexOf(true);
  const lastOut = within.lastIndexOf(false);
  return { before, bound, firstWithin: first < 0 ? null : first, periods: lastOut === last ? null : lastOut + 1 };
}
