/**
 * One connection that LISTENs on PostgreSQL channels and hands each notification's payload to a
 * callback. A lost connection is reopened (backoff up to 30 s); until then nothing is heard, and
 * whoever waits on these notifications must have a timeout of its own (long polls do).
 */
import pg from 'pg';

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 30_000;

export class PgListener {
  private client: pg.Client | undefined;
  private retryMs = RETRY_MIN_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly config: pg.ClientConfig,
    private readonly channels: readonly string[],
    private readonly onNotify: (channel: string, payload: string) => void,
    private readonly onReconnect: () => void,
  ) {}

  /**
   * Resolves once listening (rejects when the first connection fails). `onReconnect` runs after a
   * lost connection is back: notifications sent meanwhile were missed.
   */
  static async open(config: pg.ClientConfig, channels: readonly string[], onNotify: (channel: string, payload: string) => void, onReconnect: () => void): Promise<PgListener> {
    const listener = new PgListener(config, channels, onNotify, onReconnect);
    await listener.connect();
    return listener;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.config);
    client.on('notification', (n) => this.onNotify(n.channel, n.payload ?? ''));
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    await client.connect();
    try {
      for (const channel of this.channels) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.retryMs = RETRY_MIN_MS;
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().then(() => this.onReconnect(), () => {
        this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
        this.scheduleRetry();
      });
    }, this.retryMs);
    this.retryTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
