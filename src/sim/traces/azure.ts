/**
 * Loader for the Azure Functions 2019 per-minute invocation counts. Each function stands for a
 * queue and each invocation for one 'send'. The count matrix (the file) is held in memory; the
 * expanded requests are generated minute by minute, so memory does not grow with their number.
 */
import { createHash } from 'node:crypto';
import { InputError } from '../../core/errors.ts';
import { Random } from '../../core/random.ts';
import { isBlank, parseUint, quote, readLines, type LineSink } from './lines.ts';
import { emptyStats, flatten } from './source.ts';
import type { LoadStats, TraceEvent, TraceReader } from './types.ts';

export interface AzureOptions {
  /** Seeds the instants drawn inside each minute. */
  seed: number;
  /** Keep only rows whose Trigger column equals this (e.g. 'queue'). */
  trigger?: string;
  /** Skip bad rows (counted in stats.skipped) instead of failing on the first one. */
  lenient?: boolean;
}

/**
 * Queue ids are this many leading characters of HashFunction, as in the generic example trace
 * derived from the same data; a row falls back to the whole hash when two prefixes collide.
 */
export const AZURE_ID_LENGTH = 16;

const MINUTE_MS = 60_000;
const MAX_COUNT = 0xffffffff;

export function openAzure(path: string, options: AzureOptions): TraceReader {
  return new AzureReader(path, options);
}

class AzureReader implements TraceReader {
  readonly format = 'azure' as const;
  stats: LoadStats = emptyStats();

  constructor(
    private readonly path: string,
    private readonly options: AzureOptions,
  ) {}

  async *batches(): AsyncGenerator<TraceEvent[]> {
    const stats = emptyStats();
    this.stats = stats;
    const matrix = new AzureMatrix(this.options, stats);
    for await (const _ of readLines(this.path, matrix));
    if (matrix.minutes.length === 0) throw new InputError('file is empty: no Azure header', 1);
    yield* expand(matrix, this.options.seed, stats);
  }

  [Symbol.asyncIterator](): AsyncIterator<TraceEvent> {
    return flatten(this.batches());
  }
}

/** The kept rows' counts, one Uint32Array a row, plus every row's identity for naming queues. */
class AzureMatrix implements LineSink {
  /** Minute-of-day (1-based) of each count column, strictly increasing. */
  minutes: number[] = [];
  private firstCount = 0;
  private hasTrigger = false;
  readonly kept: { owner: string; app: string; fn: string; counts: Uint32Array }[] = [];
  /** HashFunction of every valid row, kept or not, so ids do not depend on the filter. */
  readonly allFunctions: string[] = [];

  constructor(
    private readonly options: AzureOptions,
    private readonly stats: LoadStats,
  ) {}

  line(text: string, start: number, end: number, lineNo: number): void {
    if (isBlank(text, start, end)) return;
    if (this.minutes.length === 0) {
      this.header(text.slice(start, end), lineNo);
      return;
    }
    this.stats.rows++;
    const problem = this.row(text, start, end);
    if (problem === undefined) return;
    if (this.options.lenient !== true) throw new InputError(problem, lineNo);
    this.stats.skipped++;
  }

  private header(line: string, lineNo: number): void {
    const names = line.split(',').map((s) => s.trim());
    const fixed = ['HashOwner', 'HashApp', 'HashFunction'];
    for (let i = 0; i < fixed.length; i++) {
      if (names[i] !== fixed[i]) {
        throw new InputError(
          `not an Azure Functions header: column ${i + 1} is ${quote(names[i] ?? '')}, expected ${fixed[i]}`,
          lineNo,
        );
      }
    }
    this.hasTrigger = names[3] === 'Trigger';
    this.firstCount = this.hasTrigger ? 4 : 3;
    if (this.options.trigger !== undefined && !this.hasTrigger) {
      throw new InputError(`cannot filter on trigger ${quote(this.options.trigger)}: the file has no Trigger column`, lineNo);
    }
    const minutes: number[] = [];
    for (let i = this.firstCount; i < names.length; i++) {
      const name = names[i]!;
      const digits = name.startsWith('minute_') ? name.slice(7) : name;
      const m = parseUint(digits, 0, digits.length);
      if (m < 1) throw new InputError(`column ${i + 1} ${quote(name)} is not a minute (1, 2, … or minute_1, …)`, lineNo);
      if (minutes.length > 0 && m <= minutes[minutes.length - 1]!) {
        throw new InputError(`column ${i + 1} minute ${m} does not follow minute ${minutes[minutes.length - 1]}`, lineNo);
      }
      minutes.push(m);
    }
    if (minutes.length === 0) throw new InputError('header has no minute columns', lineNo);
    this.minutes = minutes;
  }

  /** Stores a valid row; returns the problem of a bad one. */
  private row(text: string, start: number, end: number): string | undefined {
    const fields = this.firstCount + this.minutes.length;
    const ident: string[] = [];
    let pos = start;
    for (let i = 0; i < this.firstCount; i++) {
      const stop = text.indexOf(',', pos);
      if (stop === -1 || stop >= end) return `expected ${fields} fields, found ${i + 1}`;
      ident.push(text.slice(pos, stop));
      pos = stop + 1;
    }
    const [owner, app, fn, trigger] = ident as [string, string, string, string | undefined];
    if (fn.length === 0) return 'HashFunction is empty';
    const keep = this.options.trigger === undefined || trigger === this.options.trigger;
    const counts = new Uint32Array(this.minutes.length);
    for (let j = 0; j < counts.length; j++) {
      if (pos > end) return `expected ${fields} fields, found ${this.firstCount + j}`;
      let stop = text.indexOf(',', pos);
      if (stop === -1 || stop > end) stop = end;
      const n = parseUint(text, pos, stop);
      if (n < 0 || n > MAX_COUNT) {
        return `minute ${this.minutes[j]}: count ${quote(text.slice(pos, stop))} is not a non-negative integer`;
      }
      counts[j] = n;
      pos = stop + 1;
    }
    if (pos <= end) {
      let found = fields;
      for (let i = pos - 1; i < end; i++) if (text.charCodeAt(i) === 44) found++;
      return `expected ${fields} fields, found ${found}`;
    }
    // Copies, so that the rows do not pin every chunk of the file's text.
    const fnCopy = copy(fn);
    this.allFunctions.push(fnCopy);
    if (keep) this.kept.push({ owner: copy(owner), app: copy(app), fn: fnCopy, counts });
    return undefined;
  }
}

/** Names each kept row's queue: a short HashFunction prefix, unique within the file. */
function queueIds(matrix: AzureMatrix): string[] {
  const fnCount = new Map<string, number>();
  const prefixFns = new Map<string, Set<string>>();
  for (const fn of matrix.allFunctions) {
    fnCount.set(fn, (fnCount.get(fn) ?? 0) + 1);
    const p = fn.slice(0, AZURE_ID_LENGTH);
    let set = prefixFns.get(p);
    if (set === undefined) prefixFns.set(p, (set = new Set()));
    set.add(fn);
  }
  return matrix.kept.map(({ owner, app, fn }) => {
    if (fnCount.get(fn)! > 1) {
      // The same function hash under several owners/apps: name the triple instead.
      const h = createHash('sha256').update(`${owner}\n${app}\n${fn}`).digest('hex');
      return h.slice(0, AZURE_ID_LENGTH);
    }
    return prefixFns.get(fn.slice(0, AZURE_ID_LENGTH))!.size > 1 ? fn : fn.slice(0, AZURE_ID_LENGTH);
  });
}

/** One batch per minute: every kept row's requests in that minute at seeded instants, sorted. */
function* expand(matrix: AzureMatrix, seed: number, stats: LoadStats): Generator<TraceEvent[]> {
  const rows = matrix.kept;
  const ids = queueIds(matrix);
  // One generator per queue: its instants depend on the seed and its id, not on the other rows.
  const rngs = ids.map((id) => new Random(`azure:${seed}:${id}`));
  const k = rows.length;
  let keys = new Float64Array(1024);
  for (let j = 0; j < matrix.minutes.length; j++) {
    let total = 0;
    for (let r = 0; r < k; r++) total += rows[r]!.counts[j]!;
    if (total === 0) continue;
    if (keys.length < total) keys = new Float64Array(Math.max(total, keys.length * 2));
    // Key = offset in minute × rows + row: sorting the keys orders by time, then by row.
    let n = 0;
    for (let r = 0; r < k; r++) {
      const c = rows[r]!.counts[j]!;
      const rng = rngs[r]!;
      for (let i = 0; i < c; i++) keys[n++] = Math.floor(rng.next() * MINUTE_MS) * k + r;
    }
    const sorted = keys.subarray(0, n).sort();
    const base = (matrix.minutes[j]! - 1) * MINUTE_MS;
    const batch: TraceEvent[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const key = sorted[i]!;
      const r = key % k;
      batch[i] = { t: base + (key - r) / k, queue: ids[r]!, op: 'send' };
    }
    stats.events += n;
    yield batch;
  }
}

/** A fresh string, so a kept id does not pin the chunk it was sliced from. */
function copy(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}
