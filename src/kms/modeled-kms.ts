import type { Clock } from '../core/clock.ts';
import { KmsError } from '../core/errors.ts';
import { CallCounter } from './counts.ts';
import type { LatencySampler } from './latency.ts';
import type {
  CountingKms, DecryptedDataKey, EncryptionContext, GeneratedDataKey, KeyMetadata, KeyReason, Kms,
  KmsCallCounts, KmsCallListener, KmsOperation,
} from './types.ts';

export interface ModeledKmsOptions {
  /** Round-trip time added to every data-key call; none when omitted. */
  latency?: LatencySampler;
  /** Sustained request quota (calls/s) for data-key calls; unlimited when omitted or Infinity. */
  ratePerSecond?: number;
  /** Calls that may be made at once after a quiet spell. Default: the rate (at least 1). */
  burst?: number;
  /** Told of every accepted call. */
  onCall?: KmsCallListener;
  /** Told of every call refused by the quota. */
  onThrottle?: KmsCallListener;
}

/**
 * Wraps a KMS to behave like a remote one: each GenerateDataKey/Decrypt waits a modelled latency on
 * the injected clock, and a token bucket refuses calls over the quota with ThrottlingException,
 * as AWS KMS does. DescribeKey is passed straight through: it is not on the key path.
 */
export class ModeledKms implements CountingKms {
  private readonly counter: CallCounter;
  private readonly rate: number;
  private readonly burst: number;
  private tokens: number;
  private refilledAt: number;

  constructor(private readonly inner: Kms, private readonly clock: Clock, private readonly options: ModeledKmsOptions = {}) {
    const rate = options.ratePerSecond ?? Infinity;
    if (!(rate > 0)) throw new RangeError('ModeledKms ratePerSecond must be greater than 0');
    const burst = options.burst ?? Math.max(1, Math.ceil(rate === Infinity ? 1 : rate));
    if (!Number.isFinite(burst) || burst < 1) throw new RangeError('ModeledKms burst must be a finite number of at least 1');
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst;
    this.refilledAt = clock.now();
    this.counter = new CallCounter(options.onCall);
  }

  generateDataKey(keyIdOrAlias: string, context: EncryptionContext, reason: KeyReason): Promise<GeneratedDataKey> {
    return this.call('GenerateDataKey', reason, () => this.inner.generateDataKey(keyIdOrAlias, context, reason));
  }

  decrypt(ciphertextBlob: Buffer, context: EncryptionContext, reason: KeyReason): Promise<DecryptedDataKey> {
    return this.call('Decrypt', reason, () => this.inner.decrypt(ciphertextBlob, context, reason));
  }

  describeKey(keyIdOrAlias: string): Promise<KeyMetadata> {
    return this.inner.describeKey(keyIdOrAlias);
  }

  /** Accepted calls by operation and reason; `throttled` counts the refused ones. */
  counts(): KmsCallCounts {
    return this.counter.snapshot();
  }

  private call<T>(op: KmsOperation, reason: KeyReason, run: () => Promise<T>): Promise<T> {
    if (!this.take()) {
      this.counter.recordThrottle();
      this.options.onThrottle?.(op, reason);
      return Promise.reject(new KmsError('ThrottlingException', `${op} rate exceeded`));
    }
    this.counter.record(op, reason);
    let work: Promise<T>;
    try {
      work = run();
    } catch (err) {
      work = Promise.reject(err);
    }
    const ms = this.options.latency?.() ?? 0;
    // A zero draw adds no timer, so unmodelled calls need no clock advance.
    if (!(ms > 0)) return work;
    return this.after(ms, work);
  }

  /** The inner outcome, success or failure alike, is held back until the round trip has passed. */
  private async after<T>(ms: number, work: Promise<T>): Promise<T> {
    await Promise.allSettled([work, new Promise<void>((resolve) => this.clock.setTimer(ms, resolve))]);
    return work;
  }

  /** Token bucket refilled continuously from the clock. */
  private take(): boolean {
    if (this.rate === Infinity) return true;
    const now = this.clock.now();
    if (now > this.refilledAt) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) * this.rate) / 1000);
      this.refilledAt = now;
    }
    // The epsilon absorbs float error so a refill of exactly one token's time always counts.
    if (this.tokens < 1 - 1e-9) return false;
    this.tokens = Math.max(0, this.tokens - 1);
    return true;
  }
}
