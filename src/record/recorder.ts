/**
 * `pkp up --record FILE`: the access trace the service sees, in the generic events format that
 * `pkp replay --trace` reads (ts_ms,queue,op,node,principal). Ids and times only, never content.
 * Queue and principal are written as names or as stable pseudonyms (HMAC under a key kept in the
 * data directory, so they stay the same across rotations and restarts). The file rotates by size:
 * FILE → FILE.1 → … → FILE.<keep>.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { AccessEvent, EventBus } from '../bus/types.ts';

export const RECORD_HEADER = 'ts_ms,queue,op,node,principal\n';

export interface RecorderOptions {
  path: string;
  /** 'pseudonyms' (default) or 'names'. */
  names?: 'names' | 'pseudonyms';
  /** Rotate when the file passes this size. Default 64 MiB. */
  maxBytes?: number;
  /** Rotated files kept. Default 5. */
  keep?: number;
  /** Where the pseudonym key lives (`record-key`, mode 0600). */
  dataDir: string;
  bus: EventBus;
  /** Queue id → queue name (undefined once deleted: the id is written instead). */
  queueName: (queueId: string) => string | undefined;
}

const FLUSH_EVERY_MS = 1000;
const FLUSH_AT_BYTES = 64 * 1024;

export class TraceRecorder {
  private fd: number;
  private size = 0;
  private pending: string[] = [];
  private pendingBytes = 0;
  private readonly names = new Map<string, string>();
  private readonly key: Buffer | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  private readonly maxBytes: number;
  private readonly keep: number;
  /** Events written (for the log at the end). */
  events = 0;

  constructor(private readonly options: RecorderOptions) {
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.keep = options.keep ?? 5;
    if ((options.names ?? 'pseudonyms') === 'pseudonyms') this.key = pseudonymKey(options.dataDir);
    // A file left by an earlier run is kept as the first rotation, not appended to.
    if (existsSync(options.path) && statSync(options.path).size > 0) this.shift();
    this.fd = this.openFresh();
    this.unsubscribe = options.bus.subscribe((event) => {
      if (event.type === 'access' && event.op !== 'other') this.add(event);
    });
    this.timer = setInterval(() => this.flush(), FLUSH_EVERY_MS);
    this.timer.unref();
  }

  private add(event: AccessEvent): void {
    const queue = this.name('q', this.options.queueName(event.queueId) ?? event.queueId);
    const line = `${Math.round(event.at)},${queue},${event.op},${event.nodeId},${this.name('p', event.principal)}\n`;
    this.pending.push(line);
    this.pendingBytes += line.length;
    this.events++;
    if (this.pendingBytes >= FLUSH_AT_BYTES || this.size + this.pendingBytes >= this.maxBytes) this.flush();
  }

  /** The name as written: itself, or a pseudonym (`q-` or `p-` and 12 hex digits). */
  private name(kind: 'q' | 'p', name: string): string {
    if (!this.key) return name;
    const id = `${kind}:${name}`;
    let pseudonym = this.names.get(id);
    if (pseudonym === undefined) {
      pseudonym = `${kind}-${createHmac('sha256', this.key).update(id).digest('hex').slice(0, 12)}`;
      this.names.set(id, pseudonym);
    }
    return pseudonym;
  }

  flush(): void {
    if (this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    writeSync(this.fd, chunk);
    this.size += Buffer.byteLength(chunk);
    if (this.size >= this.maxBytes) {
      closeSync(this.fd);
      this.shift();
      this.fd = this.openFresh();
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.unsubscribe();
    this.flush();
    closeSync(this.fd);
  }

  private openFresh(): number {
    const fd = openSync(this.options.path, 'w', 0o600);
    writeSync(fd, RECORD_HEADER);
    this.size = RECORD_HEADER.length;
    return fd;
  }

  /** FILE.n → FILE.n+1 (the oldest beyond `keep` removed), FILE → FILE.1. */
  private shift(): void {
    const p = this.options.path;
    rmSync(`${p}.${this.keep}`, { force: true });
    for (let i = this.keep - 1; i >= 1; i--) if (existsSync(`${p}.${i}`)) renameSync(`${p}.${i}`, `${p}.${i + 1}`);
    if (this.keep > 0) renameSync(p, `${p}.1`);
    else rmSync(p, { force: true });
  }
}

function pseudonymKey(dataDir: string): Buffer {
  const file = join(dataDir, 'record-key');
  if (existsSync(file)) return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
  const key = randomBytes(32);
  writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return key;
}
