import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Clock, Timer } from '../core/clock.ts';

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

export interface DialOptions {
  servers: string;
  name: string;
  clock: Clock;
  /** Between two attempts while NATS has never answered. Default 1 s. */
  retryMs?: number;
  /** Each attempt's own limit. Default 3 s. */
  timeoutMs?: number;
  /** Told of the first failure only (the attempts that follow are quiet until one succeeds). */
  onUnreachable: (error: unknown) => void;
  onConnected?: () => void;
}

/**
 * Dials NATS until it answers once; nats.js reconnects for ever after that. The first attempt is
 * awaited, so a process whose NATS is up has it from its first request.
 */
export class DialingNatsLink implements NatsLink {
  private nc: NatsConnection | undefined;
  private readonly waiting: ((nc: NatsConnection) => void)[] = [];
  private timer: Timer | undefined;
  private closed = false;
  private failures = 0;

  private constructor(private readonly options: DialOptions) {}

  static async open(options: DialOptions): Promise<DialingNatsLink> {
    const link = new DialingNatsLink(options);
    await link.attempt();
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
    return this.failures;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.timer?.cancel();
    this.waiting.length = 0;
    await this.nc?.drain().catch(() => undefined);
  }

  private async attempt(): Promise<void> {
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: this.options.servers, name: this.options.name, maxReconnectAttempts: -1, reconnectTimeWait: 250,
        timeout: this.options.timeoutMs ?? 3_000,
      });
    } catch (error) {
      if (this.failures++ === 0) this.options.onUnreachable(error);
      if (!this.closed) this.timer = this.options.clock.setTimer(this.options.retryMs ?? 1_000, () => void this.attempt());
      return;
    }
    if (this.closed) return void (await nc.close().catch(() => undefined));
    this.nc = nc;
    this.options.onConnected?.();
    for (const fn of this.waiting.splice(0)) fn(nc);
  }
}
