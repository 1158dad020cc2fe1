import { connect, type NatsConnection } from '@nats-io/transport-node';
import { RetryOpen, type RetryPacing } from '../core/retry-open.ts';

/**
 * The way to NATS for what rides on it besides events (prefetched keys). A process may start before
 * NATS does: it serves on demand meanwhile, and what needs NATS is attached once it answers.
 */
export interface NatsLink {
  /** The connection, once made (it reconnects by itself from then on); undefined until then. */
  current(): NatsConnection | undefined;
  /** Runs fn with the connection: now if there is one, otherwise once it is made. */
  whenConnected(fn: (nc: NatsConnection) => void): void;
}

/** A link over a connection that is already made (or none: demand fetches only). */
export function natsLinkOf(nc: NatsConnection | undefined): NatsLink {
  return { current: () => nc, whenConnected: (fn) => void (nc && fn(nc)) };
}

export interface DialOptions extends RetryPacing {
  servers: string;
  name: string;
  /** Each attempt's own limit. Default 3 s. */
  timeoutMs?: number;
  onConnected?: () => void;
}

/**
 * Dials NATS until it answers once; nats.js reconnects for ever after that. The first attempt is
 * awaited, so a process whose NATS is up has it from its first request.
 */
export class DialingNatsLink implements NatsLink {
  private nc: NatsConnection | undefined;
  private readonly waiting: ((nc: NatsConnection) => void)[] = [];
  private readonly dialling: RetryOpen<NatsConnection>;

  private constructor(options: DialOptions) {
    const dial = (): Promise<NatsConnection> => connect({
      servers: options.servers, name: options.name, maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: options.timeoutMs ?? 3_000,
    });
    this.dialling = new RetryOpen(dial, {
      clock: options.clock, retryMs: options.retryMs, onUnreachable: options.onUnreachable,
      onOpen: (nc) => {
        this.nc = nc;
        options.onConnected?.();
        for (const fn of this.waiting.splice(0)) fn(nc);
      },
      discard: (nc) => nc.close().catch(() => undefined),
    });
  }

  static async open(options: DialOptions): Promise<DialingNatsLink> {
    const link = new DialingNatsLink(options);
    await link.dialling.start();
    return link;
  }

  current(): NatsConnection | undefined {
    return this.nc;
  }

  whenConnected(fn: (nc: NatsConnection) => void): void {
    if (this.nc) fn(this.nc);
    else this.waiting.push(fn);
  }

  /** Attempts so far that found no NATS. */
  get failedAttempts(): number {
    return this.dialling.failedAttempts;
  }

  async close(): Promise<void> {
    this.dialling.cancel();
    this.waiting.length = 0;
    await this.nc?.drain().catch(() => undefined);
  }
}
