/** Nearest-rank percentile of sorted values (p in 0..100). */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/**
 * Percentile over `total` observations of which only the non-zero ones are given (sorted
 * ascending); the rest are zeros. Used for added latency, which is zero on every hit.
 */
export function percentileWithZeros(sortedNonZero: ArrayLike<number>, total: number, p: number): number {
  if (total === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  const zeros = total - sortedNonZero.length;
  return rank <= zeros ? 0 : sortedNonZero[rank - zeros - 1]!;
}
