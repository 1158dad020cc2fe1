/**
 * Moves the WAL into the database from a worker thread with a connection of its own, so that a
 * checkpoint (copying megabytes and two fsyncs) never runs in the event-loop turn of a commit, where
 * it held up every request in flight (the tail of the request latency).
 *
 * The writer pokes it after each commit; once the WAL file has grown to `minWalBytes`, it runs a
 * PASSIVE checkpoint (which never waits for, nor blocks, the writer) at most every `intervalMs`.
 * Once the WAL is all copied, the writer's next transaction writes it again from its beginning, so
 * the file stays at `minWalBytes` as long as the checkpoints keep up with the writes.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** The worker's source (CommonJS, evaluated): better-sqlite3 comes from the path the main thread resolved. */
const WORKER_SOURCE = `
const { statSync } = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('synchronous = ' + workerData.synchronous);
function walBytes() {
  try {
    return statSync(workerData.path + '-wal').size;
  } catch {
    return 0;
  }
}
const busy = new Int32Array(workerData.busy);
let due = false;
let timer;
function checkpoint() {
  timer = undefined;
  if (!due) return;
  due = false;
  if (walBytes() < workerData.minWalBytes) {
    parentPort.postMessage({ frames: 0 });
    return;
  }
  Atomics.store(busy, 0, 1);
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ frames: r.checkpointed });
  } catch (error) {
    // Busy or out of room: the next poke tries again, and the writer bounds the WAL meanwhile.
    parentPort.postMessage({ error: String(error && error.code || error) });
  } finally {
    Atomics.store(busy, 0, 0);
    Atomics.notify(busy, 0);
  }
  timer = setTimeout(checkpoint, workerData.intervalMs);
}
parentPort.on('message', (m) => {
  if (m === 'close') {
    if (timer) clearTimeout(timer);
    db.close();
    parentPort.close();
    return;
  }
  due = true;
  if (!timer) timer = setTimeout(checkpoint, 0);
});
`;

export interface WalCheckpointerOptions {
  /** The database file (in WAL mode). */
  path: string;
  /** 'NORMAL' or 'FULL', as the writer's: how the checkpoint syncs. */
  synchronous: 'NORMAL' | 'FULL';
  /** At most one checkpoint this often. */
  intervalMs: number;
  /**
   * No checkpoint until the WAL file has grown to this size. The file is reused from its start, not
   * shrunk, so this much room stays in it for the writes that must work on a full disk.
   */
  minWalBytes: number;
  /** Called after each checkpoint with the frames it copied, or with the SQLite error code that stopped it. */
  onCheckpoint?: (outcome: { frames: number } | { error: string }) => void;
}

export class WalCheckpointer {
  private readonly worker: Worker;
  private readonly ended: Promise<void>;
  /** 1 while the worker's checkpoint runs (set by the worker, waited on by the writer). */
  private readonly busy = new Int32Array(new SharedArrayBuffer(4));
  private poked = false;

  constructor(options: WalCheckpointerOptions) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), path: options.path, synchronous: options.synchronous, intervalMs: options.intervalMs, minWalBytes: options.minWalBytes, busy: this.busy.buffer },
    });
    this.ended = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    // A store that is not closed must not keep the process alive for its checkpointer.
    this.worker.unref();
    const onCheckpoint = options.onCheckpoint;
    this.worker.on('message', (m: { frames: number } | { error: string }) => {
      this.poked = false;
      onCheckpoint?.(m);
    });
    // A worker that died leaves the writer's own autocheckpoint to bound the WAL.
    this.worker.on('error', () => {});
  }

  /** After a commit: a checkpoint is due (one message per checkpoint, however many commits). */
  poke(): void {
    if (this.poked) return;
    this.poked = true;
    this.worker.postMessage('poke');
  }

  /**
   * Blocks until the worker's checkpoint, if one is running, has ended (at most `timeoutMs`): the
   * writer then checkpoints itself, which a checkpoint in progress elsewhere would refuse.
   */
  waitIdle(timeoutMs: number): void {
    Atomics.wait(this.busy, 0, 1, timeoutMs);
  }

  /** Closes the worker's connection and waits for the worker to end. */
  async close(): Promise<void> {
    this.worker.ref(); // until it has ended
    this.worker.postMessage('close');
    await this.ended;
  }
}
