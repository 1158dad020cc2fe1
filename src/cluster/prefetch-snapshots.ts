import pg from 'pg';
import type { HistoryEvent } from '../prefetcher/types.ts';

/**
 * A prefetcher partition's state, kept in PostgreSQL so that whoever owns the partition next starts
 * from it: the recent requests of each stream (the history its models learn from), bounded per stream
 * and per partition. A new owner learns from the snapshot, then reads the event stream from the
 * snapshot's time on. Ids and times only: no key, no body, nothing a key could be derived from.
 */

/** Requests kept per stream: enough for the idle-time and seasonal models' recent gaps. */
const PER_STREAM = 32;
/** Streams kept per partition (the most recently active). */
const MAX_STREAMS = 20_000;

export interface PartitionSnapshot {
  takenAt: number;
  events: HistoryEvent[];
}

/** The recent requests of one partition's streams, as they happen. */
export class RecentHistory {
  private readonly streams = new Map<string, HistoryEvent[]>();
  changed = false;

  constructor(events: readonly HistoryEvent[] = []) {
    for (const e of events) this.add(e);
    this.changed = false;
  }

  add(event: HistoryEvent): void {
    const key = `${event.queue}\u0000${event.principal ?? ''}`;
    let ring = this.streams.get(key);
    if (ring) this.streams.delete(key);
    else ring = [];
    ring.push(event);
    if (ring.length > PER_STREAM) ring.shift();
    // Re-inserted: the map's order is least recently active first.
    this.streams.set(key, ring);
    if (this.streams.size > MAX_STREAMS) this.streams.delete(this.streams.keys().next().value!);
    this.changed = true;
  }

  /** Every kept request in time order. */
  events(): HistoryEvent[] {
    return [...this.streams.values()].flat().sort((a, b) => a.t - b.t);
  }
}

export class SnapshotStore {
  private readonly pool: pg.Pool;
  private ready: Promise<void> | undefined;

  constructor(url: string, private readonly cluster: string) {
    this.pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5_000, application_name: `pkp snapshots ${cluster}` });
    this.pool.on('error', () => undefined);
  }

  async save(partition: number, snapshot: PartitionSnapshot): Promise<void> {
    await this.schema();
    // Compact: column arrays, not one object per event.
    const e = snapshot.events;
    const body = { t: e.map((x) => x.t), q: e.map((x) => x.queue), p: e.map((x) => x.principal ?? null), n: e.map((x) => x.node ?? null), o: e.map((x) => x.op) };
    await this.pool.query(
      `INSERT INTO pkp_prefetch_snapshots (cluster, partition, taken_at, history) VALUES ($1, $2, $3, $4)
       ON CONFLICT (cluster, partition) DO UPDATE SET taken_at = EXCLUDED.taken_at, history = EXCLUDED.history`,
      [this.cluster, partition, snapshot.takenAt, JSON.stringify(body)]);
  }

  async load(partition: number): Promise<PartitionSnapshot | undefined> {
    await this.schema();
    const { rows } = await this.pool.query<{ taken_at: string; history: Record<string, unknown[]> }>(
      'SELECT taken_at, history FROM pkp_prefetch_snapshots WHERE cluster = $1 AND partition = $2', [this.cluster, partition]);
    const row = rows[0];
    if (!row) return undefined;
    const h = row.history;
    const events: HistoryEvent[] = [];
    const ts = Array.isArray(h.t) ? h.t : [];
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i], queue = h.q?.[i], principal = h.p?.[i], node = h.n?.[i], op = h.o?.[i];
      if (typeof t !== 'number' || typeof queue !== 'string' || (op !== 'send' && op !== 'receive' && op !== 'delete')) continue;
      events.push({ t, queue, principal: typeof principal === 'string' ? principal : undefined, node: typeof node === 'string' ? node : undefined, op });
    }
    return { takenAt: Number(row.taken_at), events };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private schema(): Promise<void> {
    this.ready ??= this.pool.query(
      `CREATE TABLE IF NOT EXISTS pkp_prefetch_snapshots (
         cluster text NOT NULL, partition integer NOT NULL, taken_at bigint NOT NULL, history jsonb NOT NULL,
         PRIMARY KEY (cluster, partition))`).then(() => undefined, (error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }
}
