import { createHash } from 'node:crypto';
import type { Clock } from '../core/clock.ts';
import { waitUntil } from '../core/deadline.ts';
import { DeadlineError, PkpError } from '../core/errors.ts';
import { Random } from '../core/random.ts';
import { zeroize } from '../crypto/zero.ts';
import { KeyCache, decryptSlot, encryptSlot, type KeyUse } from '../keycache/key-cache.ts';
import type { CachedKey } from '../keycache/types.ts';
import type { EncryptionContext, Kms, KeyReason } from '../kms/types.ts';
import { KmsScheduler, type CallClass, type KmsSchedulerOptions } from './kms-scheduler.ts';
import type { QueueKeySettings } from './types.ts';

export interface KeyServiceOptions {
  kms: Kms;
  clock: Clock;
  /** The key settings of a queue, or undefined when the queue does not exist (from the queue registry: may be async). */
  settingsOf: (queueId: string) => Promise<QueueKeySettings | undefined> | QueueKeySettings | undefined;
  scheduler?: Omit<KmsSchedulerOptions, 'clock'>;
  /** How long a failed KMS call is remembered before the next caller tries again (jittered ±50%). */
  failureBackoffMs?: number;
  /** Capacity of the tier cache. */
  maxEntries?: number;
  maxBytes?: number;
  expiryTimer?: boolean;
  random?: Random;
}

export interface TierRequest {
  reason?: KeyReason;
  /** Absolute clock time after which this caller stops waiting (others are unaffected). */
  deadline?: number;
  /** The key must stay valid at least this long from now, else a successor DEK is generated. */
  minRemainingMs?: number;
  /**
   * When the client request that needs the key arrived (demand). A new DEK's reuse period counts
   * from then, never from later: the key's life can only be shortened by the fetch, not extended.
   */
  requestedAt?: number;
  /** Encrypt keys: this DEK reached its encryption cap; it is dropped from the tier and never handed out again. */
  retireDekId?: string;
  /** Only a key the tier holds now: no KMS call (rejects with KeyNotHeld otherwise). */
  heldOnly?: boolean;
}

interface Flight {
  promise: Promise<void>;
  callClass: CallClass;
  started: boolean;
}

interface RememberedFailure {
  error: unknown;
  until: number;
}

/** The encryption context bound to every DEK of a queue. */
export function queueContext(queueId: string): EncryptionContext {
  return { 'pkp:queue': queueId };
}

/** Short public id of a DEK: safe to log and publish, reveals nothing of the key. */
export function dekIdOf(encryptedDek: Buffer): string {
  return createHash('sha256').update(encryptedDek).digest('hex').slice(0, 32);
}

/**
 * The DEK tier cache in front of the KMS: one DEK per (queue, principal) per reuse period, decrypt
 * keys by DEK id. Concurrent requests for one key share one KMS call; each caller has its own
 * deadline; a failure is remembered only for a short jittered back-off. Demand calls go before
 * prefetch calls, which run within a budget (see KmsScheduler).
 */
export class KeyService {
  private readonly kms: Kms;
  private readonly clock: Clock;
  private readonly settingsOf: KeyServiceOptions['settingsOf'];
  private readonly tier: KeyCache;
  private readonly scheduler: KmsScheduler;
  private readonly flights = new Map<string, Flight>();
  private readonly failures = new Map<string, RememberedFailure>();
  private readonly failureBackoffMs: number;
  private readonly random: Random;
  private closed = false;

  constructor(options: KeyServiceOptions) {
    this.kms = options.kms;
    this.clock = options.clock;
    this.settingsOf = options.settingsOf;
    this.failureBackoffMs = options.failureBackoffMs ?? 250;
    this.random = options.random ?? new Random(0x5eed);
    this.tier = new KeyCache({
      clock: options.clock,
      maxEntries: options.maxEntries ?? 100_000,
      maxBytes: options.maxBytes ?? 64 * 1024 * 1024,
      expiryTimer: options.expiryTimer ?? true,
    });
    this.scheduler = new KmsScheduler({ clock: options.clock, ...options.scheduler });
  }

  /**
   * Runs `consume` on the current encrypt DEK of (queue, principal), synchronously, while it is
   * valid. `consume` must copy or seal what it needs: the tier zeroes the key when it drops it.
   */
  async withEncryptKey<T>(queueId: string, principal: string, request: TierRequest, consume: (key: CachedKey) => T): Promise<T> {
    const slot = encryptSlot(queueId, principal);
    const minRemaining = request.minRemainingMs ?? 0;
    const retired = request.retireDekId;
    if (retired !== undefined) this.tier.retireEncrypt(queueId, principal, retired);
    const pick = (): CachedKey | undefined => {
      const key = this.tier.getEncrypt(queueId, principal);
      return key && key.dekId !== retired && key.expiresAt - this.clock.now() > minRemaining ? key : undefined;
    };
    return this.withKey('encrypt', slot, queueId, request, pick, () => this.generate(queueId, principal, request.reason ?? 'demand', request.requestedAt), consume);
  }

  /** Runs `consume` on the plaintext of an encrypted DEK of this queue (see withEncryptKey). */
  async withDecryptKey<T>(queueId: string, encryptedDek: Buffer, request: TierRequest, consume: (key: CachedKey) => T): Promise<T> {
    const dekId = dekIdOf(encryptedDek);
    const slot = decryptSlot(queueId, dekId);
    const pick = (): CachedKey | undefined => this.tier.getDecrypt(dekId, queueId);
    return this.withKey('decrypt', slot, queueId, request, pick, () => this.decrypt(queueId, encryptedDek, dekId, request.reason ?? 'demand', request.requestedAt), consume);
  }

  /** Readiness of the key tier: open, and demand calls not piling up behind the KMS. */
  health(): { serving: boolean; waiting: number } {
    const waiting = this.scheduler.waiting;
    return { serving: !this.closed && waiting < 1000, waiting };
  }

  close(): void {
    this.closed = true;
    this.scheduler.close();
    this.tier.clear();
  }

  private async withKey<T>(
    use: KeyUse,
    slot: string,
    queueId: string,
    request: TierRequest,
    pick: () => CachedKey | undefined,
    fetch: () => Promise<void>,
    consume: (key: CachedKey) => T,
  ): Promise<T> {
    const callClass: CallClass = (request.reason ?? 'demand') === 'demand' ? 'demand' : 'background';
    const settings = await this.settingsOf(queueId);
    if (!settings) throw new PkpError('QueueDoesNotExist', 'queue does not exist');
    for (let attempt = 0; ; attempt++) {
      const key = pick();
      if (key) {
        return consume(key);
      }
      if (request.heldOnly) throw new PkpError('KeyNotHeld', `the tier holds no valid ${use} key`);
      if (attempt >= 3) throw new PkpError('KeyUnavailable', `no valid ${use} key after ${attempt} fetches`);
      const remembered = this.failures.get(slot);
      if (remembered && remembered.until > this.clock.now() && callClass === 'demand') {
        throw remembered.error;
      }
      const flight = this.joinOrStart(slot, callClass, () => (pick() ? Promise.resolve() : fetch()));
      try {
        await waitUntil(flight.promise, this.clock, request.deadline, 'key');
      } catch (error) {
        // A demand caller never inherits the failure of a background call it merely joined.
        if (callClass === 'demand' && flight.callClass === 'background' && !(error instanceof DeadlineError)) continue;
        throw error;
      }
    }
  }

  /** `fetch` runs when the scheduler gives the call its turn; it re-checks the tier first. */
  private joinOrStart(slot: string, callClass: CallClass, fetch: () => Promise<void>): Flight {
    const existing = this.flights.get(slot);
    // Join a flight unless it is a background call still waiting for budget and we are demand.
    if (existing && (existing.started || existing.callClass === callClass || callClass === 'background')) {
      return existing;
    }
    const flight: Flight = { promise: Promise.resolve(), callClass, started: false };
    flight.promise = this.scheduler
      .schedule(callClass, () => {
        flight.started = true;
        return fetch();
      })
      .then(
        () => {
          this.failures.delete(slot);
        },
        (error: unknown) => {
          if (callClass === 'demand') {
            const jitter = 0.5 + this.random.next();
            this.failures.set(slot, { error, until: this.clock.now() + this.failureBackoffMs * jitter });
          }
          throw error;
        },
      )
      .finally(() => {
        if (this.flights.get(slot) === flight) this.flights.delete(slot);
      });
    // A flight no one awaits must not surface as an unhandled rejection.
    flight.promise.catch(() => undefined);
    this.flights.set(slot, flight);
    return flight;
  }

  private async generate(queueId: string, principal: string, reason: KeyReason, requestedAt: number | undefined): Promise<void> {
    const settings = await this.settingsOf(queueId);
    if (!settings) throw new PkpError('QueueDoesNotExist', 'queue does not exist');
    const issuedAt = issueTime(this.clock.now(), requestedAt);
    const generated = await this.kms.generateDataKey(settings.kmsMasterKeyId, queueContext(queueId), reason);
    const dekId = dekIdOf(generated.ciphertextBlob);
    const { keyId: kmsKeyId, ciphertextBlob: encryptedDek } = generated;
    const expiresAt = issuedAt + settings.reuseMs;
    // Written out in CachedKey's field order, as every key is: one shape keeps the caches' property
    // reads monomorphic (an object spread here was the slowest line of the simulator's miss path).
    this.tier.put('decrypt', { dekId, queueId, principal: '', kmsKeyId, material: Buffer.from(generated.plaintext), encryptedDek, issuedAt, expiresAt });
    this.tier.put('encrypt', { dekId, queueId, principal, kmsKeyId, material: generated.plaintext, encryptedDek, issuedAt, expiresAt });
  }

  private async decrypt(queueId: string, encryptedDek: Buffer, dekId: string, reason: KeyReason, requestedAt: number | undefined): Promise<void> {
    const settings = await this.settingsOf(queueId);
    if (!settings) throw new PkpError('QueueDoesNotExist', 'queue does not exist');
    const issuedAt = issueTime(this.clock.now(), requestedAt);
    const decrypted = await this.kms.decrypt(encryptedDek, queueContext(queueId), reason);
    const key: CachedKey = {
      dekId, queueId, principal: '', kmsKeyId: decrypted.keyId, material: decrypted.plaintext,
      encryptedDek: Buffer.from(encryptedDek), issuedAt, expiresAt: issuedAt + settings.reuseMs,
    };
    if (!this.tier.put('decrypt', key)) zeroize(key.material);
  }
}

/** Longest a node may claim its request waited; an older claim is taken as this old. */
const MAX_CLAIMED_WAIT_MS = 60_000;

/** The reuse period starts at the earlier of now and the (claimed) request time: never later. */
function issueTime(now: number, requestedAt: number | undefined): number {
  if (requestedAt === undefined || !Number.isFinite(requestedAt) || requestedAt >= now) return now;
  return Math.max(requestedAt, now - MAX_CLAIMED_WAIT_MS);
}
