import type { KeyReason, KmsCallCounts, KmsCallListener, KmsOperation } from './types.ts';

/** Tallies KMS calls by operation and reason, and tells an optional listener of each one. */
export class CallCounter {
  private total = 0;
  private throttled = 0;
  private readonly byOperation: Record<KmsOperation, number> = { GenerateDataKey: 0, Decrypt: 0 };
  private readonly byReason: Record<KeyReason, number> = { demand: 0, prefetch: 0, refresh: 0 };

  constructor(private readonly listener?: KmsCallListener) {}

  record(op: KmsOperation, reason: KeyReason): void {
    this.total++;
    this.byOperation[op]++;
    this.byReason[reason]++;
    this.listener?.(op, reason);
  }

  recordThrottle(): void {
    this.throttled++;
  }

  /** A copy, so callers can keep it as a snapshot. */
  snapshot(): KmsCallCounts {
    return { total: this.total, byOperation: { ...this.byOperation }, byReason: { ...this.byReason }, throttled: this.throttled };
  }
}
