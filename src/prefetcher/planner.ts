/** Offsets (ms) from now at which a prefetch is considered: fine near now, coarser further out. */
const OFFSETS: readonly number[] = (() => {
  const out = [0, 1_000, 2_000, 3_000, 5_000, 7_500];
  for (let d = 10_000; d < 86_400_000; d *= 1.2) out.push(Math.round(d));
  return out;
})();

/** Past this offset the planner does not commit to a time: it looks again halfway there. */
const COMMIT_WITHIN_MS = 20_000;

export interface PlanInput {
  now: number;
  /** P(no request in (now, t]) for the stream: the ensemble's survival. */
  survival: (t: number) => number;
  /** Until when the stream's current key is valid (−Infinity: none). */
  coveredUntil: number;
  reuseMs: number;
  /** Time from an instruction to the key being in the nodes' caches (with a margin). */
  leadMs: number;
  /** Probability threshold (from the cost model, tuned). */
  threshold: number;
  /** Residency cost of holding the key in the target nodes for the whole reuse period, in miss units. */
  residencyCost: number;
  /**
   * How likely the stream is to stay busy past the key's life (0..1). A key that arrives before
   * the request that first uses it has lost that time off its life; when requests go on, that
   * loss brings the next key forward, so it is charged as a share of a KMS call.
   */
  continuation: number;
}

/** Points at which the time from a key's arrival to its first use is sampled. */
const EARLINESS_STEPS = 6;

export type Plan =
  /** Prefetch a new key now; `probability` is P(request within its life | none before it arrives). */
  | { kind: 'prefetch'; probability: number }
  /** Look again at `at` (committed: prefetch then, unless a request changes the picture). */
  | { kind: 'wait'; at: number };

/**
 * Chooses when to have a new key in the nodes. For each candidate moment τ a key prefetched then
 * saves a miss if the next request comes within its life, and wastes a KMS call if none does:
 * value(τ) = P(saved)·(1 − θ) − P(wasted)·θ − residency, with θ the threshold. The best τ wins if
 * its value is positive. Close moments are committed; far ones are looked at again when nearer,
 * when the models know more. A stream whose key is still valid is looked at just before expiry.
 */
export function plan(input: PlanInput): Plan {
  const { now, survival, reuseMs, leadMs, threshold, residencyCost, continuation } = input;
  const renewAt = input.coveredUntil - leadMs;
  if (renewAt > now) return { kind: 'wait', at: renewAt };
  let bestValue = 0;
  let bestOffset = -1;
  let bestProbability = 0;
  for (const offset of OFFSETS) {
    const at = now + offset;
    const arrives = survival(at + leadMs);
    if (!(arrives > 1e-6)) break; // a request is all but certain before this moment: later is no better
    const expires = survival(at + reuseMs);
    const saved = arrives - expires;
    let value = saved * (1 - threshold) - expires * threshold - residencyCost * expires;
    if (value <= bestValue) continue;
    if (continuation > 0) value -= continuation * threshold * earliness(survival, at + leadMs, at + reuseMs, expires) / reuseMs;
    if (value > bestValue) {
      bestValue = value;
      bestOffset = offset;
      bestProbability = saved / arrives;
    }
  }
  if (bestOffset === 0) return { kind: 'prefetch', probability: bestProbability };
  if (bestOffset < 0) return { kind: 'wait', at: now + Math.max(reuseMs, OFFSETS[OFFSETS.length - 1]! / 64) };
  return { kind: 'wait', at: bestOffset <= COMMIT_WITHIN_MS ? now + bestOffset : now + bestOffset / 2 };
}

/** Expected time (ms) from the key's arrival to its first use, over requests inside its life: ∫ (S(t) − S(end)) dt. */
function earliness(survival: (t: number) => number, from: number, to: number, atEnd: number): number {
  const step = (to - from) / EARLINESS_STEPS;
  let total = 0;
  let previous = survival(from) - atEnd;
  for (let i = 1; i <= EARLINESS_STEPS; i++) {
    const current = i === EARLINESS_STEPS ? 0 : survival(from + i * step) - atEnd;
    total += ((previous + current) / 2) * step;
    previous = current;
  }
  return total;
}
