/** Exponentially decayed counts: `count` events seen, each weighing exp(-age / windowMs). */
export function decayTo(count: number, since: number, now: number, windowMs: number): number {
  return now > since ? count * Math.exp((since - now) / windowMs) : count;
}

/** The rate (per ms) a decayed count stands for. */
export function rateOf(count: number, since: number, now: number, windowMs: number): number {
  return decayTo(count, since, now, windowMs) / windowMs;
}
