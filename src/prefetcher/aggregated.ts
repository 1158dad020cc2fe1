import type { AccessEvent } from '../bus/types.ts';
import type { AccessObservation } from './types.ts';

/** Observations one aggregated access event becomes at most: beyond a few, more add nothing to its gaps. */
export const MAX_EXPANDED = 16;

/**
 * What the prefetcher learns from one access event: one observation, or, for an aggregated count
 * (see AccessAggregator), up to MAX_EXPANDED spread evenly from its first to its last request. Only
 * the first can be a prefetched key's first use.
 */
export function observationsOf(e: AccessEvent): AccessObservation[] {
  // Undefined (a receive, or a node that cannot tell): a hit with no known expiry.
  const hit = e.keyHit !== false;
  const keyExpiresAt = hit && Number.isFinite(e.keyExpiresAt) ? e.keyExpiresAt : undefined;
  const count = Number.isInteger(e.count) && e.count! > 1 && Number.isFinite(e.firstAt) && e.firstAt! <= e.at ? Math.min(e.count!, MAX_EXPANDED) : 1;
  const first = count > 1 ? e.firstAt! : e.at;
  const out: AccessObservation[] = [];
  for (let i = 0; i < count; i++) {
    out.push({
      at: count > 1 ? first + ((e.at - first) * i) / (count - 1) : e.at, queueId: e.queueId, principal: e.principal, nodeId: e.nodeId, op: e.op,
      hit, keyExpiresAt, prefetchedFirstUse: i === 0 && hit && e.prefetchedFirstUse === true,
    });
  }
  return out;
}
