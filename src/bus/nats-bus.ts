import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient } from '@nats-io/jetstream';
import { checkPartitions, partitionOf } from './partition.ts';
import { parseEvent } from './schema.ts';
import type { ClusterIdentity } from '../cluster/identity.ts';
import type { BusStats, EventBus, PkpEvent, SubscribeOptions, Unsubscribe } from './types.ts';

export interface NatsBusOptions {
  /** e.g. nats://127.0.0.1:4222 */
  servers: string | string[];
  /** The JetStream stream that holds the events (created if missing). Letters, digits, '-' and '_'. */
  stream: string;
  /** Subjects are `<stream>.<partition>`; queues map to partitions by partitionOf. Default 8. */
  partitions?: number;
  /** Events waiting to be sent at most; beyond it publish drops and counts. Default 100,000. */
  maxBuffered?: number;
  /** Events in one NATS message at most. Default 500. */
  maxBatch?: number;
  /** How long the stream keeps events (the prefetcher's history at start). Default 24 h. */
  retentionMs?: number;
  /** Bytes the stream keeps at most (oldest go first). Default 1 GiB. */
  maxBytes?: number;
  /** NATS credentials; a server that requires them refuses a connection without. */
  user?: string;
  pass?: string;
  /** Client name shown by the server (e.g. the role and node). */
  name?: string;
  /** A transport or subscriber failure (names and codes only are passed on to logs). */
  onError?: (error: unknown) => void;
  /**
   * A cluster member's identity: every batch it publishes is signed, and only batches signed by a
   * front-end of the cluster are delivered (others are counted as rejected).
   */
  identity?: ClusterIdentity;
}

function deliverFrom(options: SubscribeOptions): { deliver_policy: DeliverPolicy; opt_start_time?: string } {
  if (options.from !== 'retained') return { deliver_policy: DeliverPolicy.New };
  if (options.since === undefined) return { deliver_policy: DeliverPolicy.All };
  return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(options.since).toISOString() };
}

/** One NATS message: a batch of events, versioned so a later format can be told apart. */
interface Envelope {
  v: 1;
  events: PkpEvent[];
}

const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** How long one pull waits on the server; also the longest a consumer takes to close. */
const PULL_EXPIRES_MS = 1_000;
/** A failed consumer is made again after this long, doubling up to the most. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

/**
 * The event bus on NATS JetStream. Publishing buffers (bounded) and sends batches per partition
 * off the request path; subscribing runs one ordered consumer per partition and checks every event
 * that arrives before handing it on. The stream retains events, so a subscriber that starts late can
 * read the history (`from: 'retained'`).
 */
export class NatsEventBus implements EventBus {
  readonly partitions: number;
  private readonly pending: PkpEvent[][];
  private buffered = 0;
  private readonly maxBuffered: number;
  private readonly maxBatch: number;
  private readonly counts: BusStats = { published: 0, dropped: 0, delivered: 0, rejected: 0, handlerErrors: 0 };
  private readonly consumers = new Set<ConsumerMessages>();
  private readonly starting = new Set<Promise<void>>();
  private sending: Promise<void> | undefined;
  private sendScheduled = false;
  private closed = false;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly options: NatsBusOptions,
  ) {
    this.partitions = checkPartitions(options.partitions ?? 8);
    this.pending = Array.from({ length: this.partitions }, () => []);
    this.maxBuffered = options.maxBuffered ?? 100_000;
    this.maxBatch = options.maxBatch ?? 500;
  }

  /** Connects (reconnecting for ever after the first success) and makes sure the stream exists. */
  static async open(options: NatsBusOptions): Promise<NatsEventBus> {
    if (!STREAM_NAME.test(options.stream)) throw new RangeError('stream must be 1-64 letters, digits, - or _');
    const partitions = checkPartitions(options.partitions ?? 8);
    const nc = await connect({
      servers: options.servers, user: options.user, pass: options.pass, name: options.name ?? 'pkp',
      maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 5_000,
    });
    try {
      const jsm = await jetstreamManager(nc);
      const config = {
        name: options.stream,
        subjects: [`${options.stream}.*`],
        max_age: (options.retentionMs ?? 24 * 3_600_000) * 1_000_000,
        max_bytes: options.maxBytes ?? 1024 ** 3,
      };
      try {
        await jsm.streams.info(options.stream);
        await jsm.streams.update(options.stream, { max_age: config.max_age, max_bytes: config.max_bytes });
      } catch {
        await jsm.streams.add(config);
      }
      return new NatsEventBus(nc, jetstream(nc), { ...options, partitions });
    } catch (error) {
      await nc.close();
      throw error;
    }
  }

  publish(event: PkpEvent): void {
    this.counts.published++;
    if (this.closed || this.buffered >= this.maxBuffered) {
      this.counts.dropped++;
      return;
    }
    this.pending[partitionOf(event.queueId, this.partitions)]!.push(event);
    this.buffered++;
    if (!this.sendScheduled) {
      this.sendScheduled = true;
      // Everything published in this turn of the event loop goes out together.
      setImmediate(() => void this.send());
    }
  }

  subscribe(handler: (event: PkpEvent) => void, options: SubscribeOptions = {}): Unsubscribe {
    const partitions = options.partitions ?? Array.from({ length: this.partitions }, (_, i) => i);
    for (const p of partitions) if (!Number.isInteger(p) || p < 0 || p >= this.partitions) throw new RangeError(`no partition ${p}`);
    const mine = new Set<ConsumerMessages>();
    let stopped = false;
    for (const partition of partitions) this.follow(partition, options, handler, mine, () => stopped);
    return () => {
      stopped = true;
      for (const messages of mine) {
        this.consumers.delete(messages);
        void messages.close().catch(() => undefined);
      }
    };
  }

  /**
   * One partition's consumer, for as long as the subscription lasts: when it fails or ends (the
   * server restarted, the stream was briefly gone) it is made again, from the message after the
   * last one delivered, so nothing is skipped or seen twice. flush() waits for its first start.
   */
  private follow(partition: number, options: SubscribeOptions, handler: (event: PkpEvent) => void, mine: Set<ConsumerMessages>, stopped: () => boolean): void {
    let ready!: () => void;
    const listening = new Promise<void>((resolve) => (ready = resolve));
    this.starting.add(listening);
    void listening.finally(() => this.starting.delete(listening));
    const over = (): boolean => stopped() || this.closed;
    void (async () => {
      let resumeAt: number | undefined;
      let backoffMs = RETRY_MIN_MS;
      while (!over()) {
        try {
          const consumer = await this.js.consumers.get(this.options.stream, {
            filter_subjects: this.subject(partition),
            ...(resumeAt === undefined ? deliverFrom(options) : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: resumeAt }),
          });
          const messages = await consumer.consume({ expires: PULL_EXPIRES_MS });
          if (over()) {
            await messages.close();
            break;
          }
          mine.add(messages);
          this.consumers.add(messages);
          ready();
          backoffMs = RETRY_MIN_MS;
          for await (const m of messages) {
            resumeAt = m.seq + 1;
            this.hand(m.subject, m.data, handler);
          }
          mine.delete(messages);
          this.consumers.delete(messages);
        } catch (error) {
          if (!over()) this.options.onError?.(error);
        }
        // A first start that failed must not hold flush() up: it is retried in the background.
        ready();
        if (over()) break;
        await new Promise((resolve) => setTimeout(resolve, backoffMs).unref());
        backoffMs = Math.min(backoffMs * 2, RETRY_MAX_MS);
      }
      ready();
    })();
  }

  /**
   * What the stream holds of one partition (from `since`, or all it keeps), in batches, up to the
   * moment of the call: the history a prefetcher learns from when it takes the partition over.
   */
  async *history(partition: number, since?: number): AsyncGenerator<PkpEvent[]> {
    if (!Number.isInteger(partition) || partition < 0 || partition >= this.partitions) throw new RangeError(`no partition ${partition}`);
    const consumer = await this.js.consumers.get(this.options.stream, { filter_subjects: this.subject(partition), ...deliverFrom({ from: 'retained', since }) });
    // Asked first, so an empty partition costs one round trip, not a pull's whole wait.
    let pending = (await consumer.info()).num_pending;
    while (pending > 0) {
      let got = 0;
      for await (const m of await consumer.fetch({ max_messages: Math.min(200, pending), expires: PULL_EXPIRES_MS })) {
        got++;
        pending = m.info.pending;
        yield this.decode(m.subject, m.data);
      }
      if (got === 0) return;
    }
  }

  /** Everything published so far has been sent (or dropped), and every subscription so far is listening. */
  async flush(): Promise<void> {
    await Promise.all([...this.starting]);
    while (this.buffered > 0 || this.sending) await this.send();
  }

  stats(): BusStats {
    return { ...this.counts };
  }

  /** Sends what is buffered, then stops consumers and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush().catch(() => undefined);
    this.closed = true;
    await Promise.all([...this.starting]);
    // A consumer's close waits for its open pull, which expires within PULL_EXPIRES_MS.
    await Promise.all([...this.consumers].map((m) => m.close().catch(() => undefined)));
    this.consumers.clear();
    await this.nc.close();
  }

  private subject(partition: number): string {
    return `${this.options.stream}.${partition}`;
  }

  /** One sender at a time; each round sends a batch per partition, in parallel across partitions. */
  private send(): Promise<void> {
    this.sendScheduled = false;
    if (this.sending) return this.sending;
    // Nothing to send: no round is started. (An async function with nothing to await would finish,
    // clearing `sending`, before the assignment below, which would then hold a settled promise for
    // ever and make flush() spin.)
    if (this.buffered === 0) return Promise.resolve();
    this.sending = (async () => {
      try {
        while (this.buffered > 0) {
          const rounds: Promise<void>[] = [];
          for (let p = 0; p < this.partitions; p++) {
            const queue = this.pending[p]!;
            if (queue.length === 0) continue;
            const batch = queue.splice(0, this.maxBatch);
            this.buffered -= batch.length;
            const envelope: Envelope = { v: 1, events: batch };
            const subject = this.subject(p);
            const data = this.options.identity ? this.options.identity.sign(subject, envelope) : this.encoder.encode(JSON.stringify(envelope));
            rounds.push(this.js.publish(subject, data).then(
              () => undefined,
              (error: unknown) => {
                this.counts.dropped += batch.length;
                this.options.onError?.(error);
              },
            ));
          }
          await Promise.all(rounds);
        }
      } finally {
        this.sending = undefined;
      }
    })();
    return this.sending;
  }

  /** Hands the valid events of one message to the subscriber; its failures are counted, never thrown. */
  private hand(subject: string, data: Uint8Array, handler: (event: PkpEvent) => void): void {
    for (const event of this.decode(subject, data)) {
      try {
        this.counts.delivered++;
        handler(event);
      } catch (error) {
        this.counts.handlerErrors++;
        this.options.onError?.(error);
      }
    }
  }

  /** The valid events of one message; anything else is counted as rejected. */
  private decode(subject: string, data: Uint8Array): PkpEvent[] {
    let envelope: unknown;
    try {
      // Retained history is as valid as new events: no age limit on signed batches here.
      envelope = this.options.identity ? this.options.identity.open(subject, data, ['frontend'], Infinity).body : JSON.parse(this.decoder.decode(data));
    } catch {
      this.counts.rejected++;
      return [];
    }
    const e = envelope as Partial<Envelope> | null;
    if (typeof e !== 'object' || e === null || e.v !== 1 || !Array.isArray(e.events)) {
      this.counts.rejected++;
      return [];
    }
    const events: PkpEvent[] = [];
    for (const raw of e.events) {
      const event = parseEvent(raw);
      if (event) events.push(event);
      else this.counts.rejected++;
    }
    return events;
  }
}
