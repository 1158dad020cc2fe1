import type { Policy, PolicyContext, RequestObservation } from '../policy.ts';

export interface RefreshAheadOptions {
  /** Refresh when a used key has less than this left (ms). AWS CMPL default 10 s. */
  gracePeriodMs?: number;
  /** At most one refresh attempt per key and node per interval (ms). Default 1 s. */
  graceIntervalMs?: number;
  /** Most refreshes in flight at once. Default 20. */
  fanOut?: number;
  /** A refresh not done within this long no longer counts as in flight (ms). Default 10 s. */
  inFlightTtlMs?: number;
}

/**
 * The storm-tracking cache of the AWS Cryptographic Material Providers Library: inside a grace
 * period before expiry one caller refreshes the key while the others keep using the cached one.
 * Refreshes happen only when the key is being used, so idle queues still miss after expiry.
 */
export class RefreshAheadPolicy implements Policy {
  readonly name = 'refresh-ahead';
  private context!: PolicyContext;
  private readonly grace: number;
  private readonly interval: number;
  private readonly fanOut: number;
  private readonly ttl: number;
  /** Last refresh attempt per node and (queue, principal). */
  private readonly lastAttempt = new Map<string, number>();
  /** Refreshes in flight, by start time. */
  private readonly inFlight = new Set<{ startedAt: number }>();

  constructor(options: RefreshAheadOptions = {}) {
    this.grace = options.gracePeriodMs ?? 10_000;
    this.interval = options.graceIntervalMs ?? 1_000;
    this.fanOut = options.fanOut ?? 20;
    this.ttl = options.inFlightTtlMs ?? 10_000;
  }

  start(context: PolicyContext): void {
    this.context = context;
  }

  onRequest(o: RequestObservation): void {
    if (!o.hit || o.keyExpiresAt === undefined || o.keyExpiresAt - o.at > this.grace) return;
    const slot = `${o.nodeId}\u0000${o.queueId}\u0000${o.principal}`;
    const last = this.lastAttempt.get(slot);
    if (last !== undefined && o.at - last < this.interval) return;
    for (const flight of this.inFlight) if (o.at - flight.startedAt >= this.ttl) this.inFlight.delete(flight);
    if (this.inFlight.size >= this.fanOut) return;
    this.lastAttempt.set(slot, o.at);
    const flight = { startedAt: o.at };
    this.inFlight.add(flight);
    void this.context
      .prefetch({
        queueId: o.queueId, principal: o.principal, nodeIds: [o.nodeId], reason: 'refresh',
        // A key that would expire inside the grace period is replaced by its successor.
        minRemainingMs: this.grace,
      })
      .then(() => this.inFlight.delete(flight));
  }
}
