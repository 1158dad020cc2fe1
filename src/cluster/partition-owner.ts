import pg from 'pg';

/**
 * Which event partitions this prefetcher owns, decided with PostgreSQL session advisory locks.
 *
 * Why advisory locks rather than leases: a lock belongs to a database session, so when a prefetcher
 * dies (kill -9, a lost machine) the server ends its session and frees its locks at once, with no
 * lease to run out and no clock to trust; two processes can never hold one partition. Each member
 * also holds one "member" lock, so every member counts the live members from `pg_locks` and takes
 * the same fair share, ceil(P / members): survivors take a dead member's partitions on their next
 * round (every `roundMs`, default 1 s), and a new member is given some as the others let go.
 */

export interface PartitionOwnerOptions {
  /** PostgreSQL connection string. */
  url: string;
  /** Names the cluster: members of different clusters on one database do not see each other. */
  cluster: string;
  partitions: number;
  /** Starts work on a partition; resolves once it is running. */
  onAcquire: (partition: number) => Promise<void>;
  /** Stops work on a partition; the lock is let go only after it resolves. */
  onRelease: (partition: number) => Promise<void>;
  roundMs?: number;
  onError?: (error: unknown) => void;
}

/** A 31-bit key from the cluster name, so that different clusters use different locks. */
export function clusterKey(cluster: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < cluster.length; i++) h = Math.imul(h ^ cluster.charCodeAt(i), 0x01000193);
  return (h >>> 1) & 0x3ffffffe;
}

export class PartitionOwner {
  private client: pg.Client | undefined;
  private readonly owned = new Set<number>();
  private readonly member = 1 + Math.floor(Math.random() * 0x7ffffffe);
  private readonly partitionSpace: number;
  private readonly memberSpace: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Live members seen in the last round (this one included). */
  members = 0;

  constructor(private readonly options: PartitionOwnerOptions) {
    this.partitionSpace = clusterKey(options.cluster);
    this.memberSpace = this.partitionSpace + 1;
  }

  get partitions(): number[] {
    return [...this.owned].sort((a, b) => a - b);
  }

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.round().catch(async (error: unknown) => {
        // A failed round may mean a lost session, and with it the locks: stop the work, start over.
        this.options.onError?.(error);
        const client = this.client;
        this.client = undefined;
        for (const p of this.partitions) await this.release(p, false);
        await client?.end().catch(() => undefined);
      }).finally(() => {
        this.running = undefined;
        if (!this.stopped) this.timer = setTimeout(tick, this.options.roundMs ?? 1_000);
      });
    };
    tick();
  }

  /** Stops every partition's work, then frees the locks (by ending the session). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    for (const p of this.partitions) await this.release(p, false);
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
  }

  /** One round: connect if needed, count members, let go of the surplus, take up to the fair share. */
  private async round(): Promise<void> {
    const client = await this.connect();
    const { rows } = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND objsubid = 2
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, [this.memberSpace]);
    this.members = Math.max(1, Number(rows[0]?.n ?? 1));
    const share = Math.ceil(this.options.partitions / this.members);
    for (const p of this.partitions.slice(share)) await this.release(p, true);
    // Start the search at a place of this member's own, so members do not all contend for partition 0.
    for (let i = 0; i < this.options.partitions && this.owned.size < share && !this.stopped; i++) {
      const p = (this.member + i) % this.options.partitions;
      if (this.owned.has(p)) continue;
      const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [this.partitionSpace, p]);
      if (!got.rows[0]?.ok) continue;
      this.owned.add(p);
      try {
        await this.options.onAcquire(p);
      } catch (error) {
        this.options.onError?.(error);
        await this.release(p, true);
      }
    }
  }

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({ connectionString: this.options.url, connectionTimeoutMillis: 5_000, application_name: `pkp prefetcher ${this.options.cluster}` });
    client.on('error', (error) => {
      // The session is gone, and with it every lock: stop the work it guarded before anyone else starts it.
      this.options.onError?.(error);
      if (this.client === client) this.client = undefined;
      for (const p of this.partitions) void this.release(p, false);
    });
    await client.connect();
    await client.query('SELECT pg_advisory_lock($1, $2)', [this.memberSpace, this.member]);
    this.client = client;
    return client;
  }

  private async release(partition: number, unlock: boolean): Promise<void> {
    if (!this.owned.delete(partition)) return;
    try {
      await this.options.onRelease(partition);
    } catch (error) {
      this.options.onError?.(error);
    }
    if (unlock) await this.client?.query('SELECT pg_advisory_unlock($1, $2)', [this.partitionSpace, partition]).catch((error: unknown) => this.options.onError?.(error));
  }
}
