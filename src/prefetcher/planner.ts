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
 * Per-offset working arrays, shared by every call: plan runs synchronously and is never re-entered,
 * and it runs for every stream at every decision, so they are not allocated each time.
 * expires: survival at the key's end; own: the key's own value at each offset
 * (unconditional: all probabilities are from now); lost: its life lost early, computed on demand;
 * bestOwn: the most a single key at that offset or later is worth.
 */
const SCRATCH = {
  expires: new Float64Array(OFFSETS.length),
  own: new Float64Array(OFFSETS.length),
  lost: new Float64Array(OFFSETS.length),
  bestOwn: new Float64Array(OFFSETS.length + 1),
};

/**
 * Chooses when to have a new key in the nodes. For each candidate moment τ a key prefetched then
 * saves a miss if the next request comes within its life, and wastes a KMS call if none does:
 * value(τ) = P(saved)·(1 − θ) − P(wasted)·θ − residency, with θ the threshold. A key that is
 * wasted is not the last chance: when it expires the planner looks again and may buy the next
 * one, so value(τ) also counts the best single key started after this one's life (one step of
 * look-ahead, the option a wasted key leaves). Without it a low θ waited for the window of most
 * mass and lost the requests before it (queue sample @0.6: 94 misses at 1.399×, now 77 at 1.426×).
 * One step, not the whole chain: the chain priced keys back to back into a stream's far tail,
 * and at a low price bought them for streams that had stopped (held-out regime-s5 @0.4: 472
 * misses at 1.368× against 287 at 1.309×). The best τ wins if its value is positive. Close
 * moments are committed; far ones are looked at again when nearer, when the models know more.
 * A stream whose key is still valid is looked at just before expiry.
 */
export function plan(input: PlanInput): Plan {
  const { now, survival, reuseMs, leadMs, threshold, residencyCost } = input;
  const renewAt = input.coveredUntil - leadMs;
  if (renewAt > now) return { kind: 'wait', at: renewAt };
  const n = OFFSETS.length;
  const { expires, own, lost, bestOwn } = SCRATCH;
  let arrivesNow = 0; // survival at the arrival of a key prefetched now (offset 0)
  let count = 0;
  for (; count < n; count++) {
    const at = now + OFFSETS[count]!;
    const a = survival(at + leadMs);
    if (!(a > 1e-6)) break; // a request is all but certain before this moment: later is no better
    const e = survival(at + reuseMs);
    if (count === 0) arrivesNow = a;
    expires[count] = e;
    own[count] = (a - e) * (1 - threshold) - e * threshold - residencyCost * e;
  }
  // bestOwn[i]: the most a single key started at offset i or later is worth (0: none). The key's
  // life lost before first use is charged only where it could change the answer (it is costly).
  lost.fill(Number.NaN, 0, count);
  const lostAt = (i: number): number => {
    if (Number.isNaN(lost[i]!)) lost[i] = lostLife(input, i, expires[i]!);
    return lost[i]!;
  };
  bestOwn[count] = 0;
  for (let i = count - 1; i >= 0; i--) {
    let v = own[i]!;
    if (v > bestOwn[i + 1]!) v -= lostAt(i);
    bestOwn[i] = Math.max(bestOwn[i + 1]!, v);
  }
  // A key at offset i is worth its own value plus the best single key after its life, when it was wasted.
  let bestValue = 0;
  let bestIndex = -1;
  let after = count; // first offset at or past offset i + reuse (moves down with i)
  for (let i = count - 1; i >= 0; i--) {
    while (after > i + 1 && OFFSETS[after - 1]! >= OFFSETS[i]! + reuseMs) after--;
    let v = own[i]! + bestOwn[after]!;
    if (v > bestValue) v -= lostAt(i);
    // Ties go to the earliest offset (visited last).
    if (v > 0 && v >= bestValue) {
      bestValue = v;
      bestIndex = i;
    }
  }
  if (bestIndex === 0) return { kind: 'prefetch', probability: (arrivesNow - expires[0]!) / arrivesNow };
  if (bestIndex < 0) return { kind: 'wait', at: now + Math.max(reuseMs, OFFSETS[OFFSETS.length - 1]! / 64) };
  const offset = OFFSETS[bestIndex]!;
  return { kind: 'wait', at: offset <= COMMIT_WITHIN_MS ? now + offset : now + offset / 2 };
}

/** The life a key started at offset i loses before its first use, charged as a share of a KMS call (see PlanInput.continuation). */
function lostLife(input: PlanInput, i: number, expires: number): number {
  const { now, survival, reuseMs, leadMs, threshold, continuation } = input;
  if (!(continuation > 0)) return 0;
  const at = now + OFFSETS[i]!;
  return (continuation * threshold * earliness(survival, at + leadMs, at + reuseMs, expires)) / reuseMs;
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
