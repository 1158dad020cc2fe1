/**
 * Loader for the generic per-event format: CSV with a header naming the columns
 * (`ts_ms,queue,op[,node][,principal][,bytes]`, any order; RFC 4180 quoting within a line) or JSON
 * lines with the same field names. The time column is `ts_ms` (milliseconds), `ts_s` (seconds,
 * fractions allowed) or `ts` (seconds); any of them also takes an ISO-8601 date-time. Streams the file: memory is one chunk and its events, whatever the file's length.
 */
import { InputError } from '../../core/errors.ts';
import { Interner, isBlank, parseUint, quote, readLines, type LineSink } from './lines.ts';
import { emptyStats, flatten } from './source.ts';
import type { LoadStats, TraceEvent, TraceOp, TraceReader } from './types.ts';

export interface EventsOptions {
  /** Skip bad rows (counted in stats.skipped) instead of failing on the first one. */
  lenient?: boolean;
  /** Force the syntax; by default `.jsonl`/`.ndjson` files and files starting with `{` are JSON lines. */
  syntax?: 'csv' | 'jsonl';
}

// Column roles, as plain numbers so the row loop switches on small integers.
const Col = { Ts: 0, Queue: 1, Op: 2, Node: 3, Principal: 4, Bytes: 5 } as const;
type Col = (typeof Col)[keyof typeof Col];

const COLUMNS: Record<string, Col> = {
  ts_ms: Col.Ts,
  ts_s: Col.Ts,
  ts: Col.Ts,
  queue: Col.Queue,
  op: Col.Op,
  node: Col.Node,
  principal: Col.Principal,
  bytes: Col.Bytes,
};
const REQUIRED = ['queue', 'op'];
const TIME_COLUMNS = ['ts_ms', 'ts_s', 'ts'];
const ISO_8601 = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/** A time field as ms: an integer in the column's unit (seconds may have a fraction), or ISO-8601 (UTC unless it says). */
function parseTime(field: string, msPerUnit: number): number {
  if (/^\d+$/.test(field)) return Number(field) * msPerUnit <= Number.MAX_SAFE_INTEGER ? Number(field) * msPerUnit : -1;
  if (msPerUnit === 1000 && /^\d+\.\d+$/.test(field)) return Math.round(Number(field) * 1000);
  if (!ISO_8601.test(field)) return -1;
  const iso = field.replace(' ', 'T');
  const t = Date.parse(/(Z|[+-]\d{2}:?\d{2})$/.test(iso) ? iso : `${iso}Z`);
  return Number.isFinite(t) && t >= 0 ? t : -1;
}

/** The fields of one CSV line under RFC 4180 quoting ("a ""b""",c → [a "b", c]); null when a quote is left open. */
export function splitQuoted(line: string): string[] | null {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q === -1) return null;
        field += line.slice(i, q);
        if (line[q + 1] === '"') {
          field += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      const comma = line.indexOf(',', i);
      // Anything between the closing quote and the comma is kept as written (lenient, like most readers).
      field += line.slice(i, comma === -1 ? line.length : comma);
      i = comma === -1 ? line.length : comma;
    } else {
      const comma = line.indexOf(',', i);
      field = line.slice(i, comma === -1 ? line.length : comma);
      i = comma === -1 ? line.length : comma;
    }
    fields.push(field);
    if (i >= line.length) return fields;
    i++; // the comma
    if (i === line.length) {
      fields.push('');
      return fields;
    }
  }
}
const OPS: readonly TraceOp[] = ['send', 'receive', 'delete'];

export function openEvents(path: string, options: EventsOptions = {}): TraceReader {
  return new EventsReader(path, options);
}

class EventsReader implements TraceReader {
  readonly format = 'events' as const;
  stats: LoadStats = emptyStats();

  constructor(
    private readonly path: string,
    private readonly options: EventsOptions,
  ) {}

  async *batches(): AsyncGenerator<TraceEvent[]> {
    const stats = emptyStats();
    this.stats = stats;
    const parser = new EventsParser(this.syntaxFromName(), this.options.lenient === true, stats);
    for await (const _ of readLines(this.path, parser)) {
      const batch = parser.take();
      if (batch.length > 0) yield batch;
    }
    if (!parser.started) throw new InputError('file is empty: expected a CSV header or JSON lines', 1);
  }

  [Symbol.asyncIterator](): AsyncIterator<TraceEvent> {
    return flatten(this.batches());
  }

  private syntaxFromName(): 'csv' | 'jsonl' | undefined {
    if (this.options.syntax !== undefined) return this.options.syntax;
    return /\.(jsonl|ndjson)$/i.test(this.path) ? 'jsonl' : undefined;
  }
}

/** Turns lines into validated events; collects them until the reader takes the batch. */
class EventsParser implements LineSink {
  /** Whether any non-blank line was seen. */
  started = false;
  private out: TraceEvent[] = [];
  private roles: Col[] = [];
  /** Milliseconds per unit of the time column (ts_ms: 1; ts_s and ts: 1000). */
  private msPerUnit = 1;
  private lastT = 0;
  private problem = '';
  private readonly ids = new Interner();
  private lastQueue = '';

  constructor(
    private syntax: 'csv' | 'jsonl' | undefined,
    private readonly lenient: boolean,
    private readonly stats: LoadStats,
  ) {}

  take(): TraceEvent[] {
    const batch = this.out;
    this.out = [];
    return batch;
  }

  line(text: string, start: number, end: number, lineNo: number): void {
    if (isBlank(text, start, end)) return;
    this.started = true;
    if (this.syntax === undefined) {
      // The first non-blank line decides: a JSON object, or a CSV header.
      let i = start;
      while (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9) i++;
      if (text.charCodeAt(i) === 123 /* { */) {
        this.syntax = 'jsonl';
      } else {
        this.syntax = 'csv';
        this.header(text.slice(start, end), lineNo);
        return;
      }
    } else if (this.syntax === 'csv' && this.roles.length === 0) {
      this.header(text.slice(start, end), lineNo);
      return;
    }
    this.stats.rows++;
    const event = this.syntax === 'csv' ? this.csvRow(text, start, end) : this.jsonRow(text.slice(start, end));
    if (event !== null && event.t < this.lastT) {
      this.problem = `ts_ms ${event.t} is before the previous event's ${this.lastT} (out of order)`;
    } else if (event !== null) {
      this.lastT = event.t;
      this.out.push(event);
      this.stats.events++;
      return;
    }
    if (!this.lenient) throw new InputError(this.problem, lineNo);
    this.stats.skipped++;
  }

  private header(line: string, lineNo: number): void {
    const names = (splitQuoted(line) ?? line.split(',')).map((s) => s.trim());
    const seen = new Set<string>();
    for (const name of names) {
      const role = COLUMNS[name];
      if (role === undefined) {
        throw new InputError(
          `unknown column ${quote(name)} in header (known: ${Object.keys(COLUMNS).join(', ')})`,
          lineNo,
        );
      }
      if (seen.has(name)) throw new InputError(`column ${quote(name)} appears twice in header`, lineNo);
      seen.add(name);
      this.roles.push(role);
      if (role === Col.Ts) this.msPerUnit = name === 'ts_ms' ? 1 : 1000;
    }
    const times = TIME_COLUMNS.filter((n) => seen.has(n));
    if (times.length > 1) throw new InputError(`header names two time columns (${times.join(', ')}): keep one`, lineNo);
    if (times.length === 0) throw new InputError(`header lacks a time column (${TIME_COLUMNS.join(', ')})`, lineNo);
    const missing = REQUIRED.filter((n) => !seen.has(n));
    if (missing.length > 0) throw new InputError(`header lacks column(s) ${missing.join(', ')}`, lineNo);
  }

  /** Null with `problem` set when the row is bad. */
  private csvRow(text: string, start: number, end: number): TraceEvent | null {
    // Quoted fields, or a time that is not whole milliseconds: the general path.
    const quoteAt = text.indexOf('"', start);
    if ((quoteAt !== -1 && quoteAt < end) || this.msPerUnit !== 1) return this.generalRow(text.slice(start, end));
    const roles = this.roles;
    let t = -1;
    let queue = '';
    let op: TraceOp | undefined;
    let node: string | undefined;
    let principal: string | undefined;
    let bytes = -1;
    let pos = start;
    let col = 0;
    for (;;) {
      let stop = text.indexOf(',', pos);
      if (stop === -1 || stop > end) stop = end;
      if (col >= roles.length) return this.fail(`expected ${roles.length} fields, found more`);
      switch (roles[col]) {
        case Col.Ts:
          t = parseUint(text, pos, stop);
          if (t < 0) t = parseTime(text.slice(pos, stop), 1);
          if (t < 0) return this.fail(`ts_ms ${quote(text.slice(pos, stop))} is neither a non-negative integer nor an ISO-8601 date-time`);
          break;
        case Col.Queue:
          if (stop === pos) return this.fail('queue is empty');
          // Consecutive rows often name the same queue: reuse it without slicing.
          if (stop - pos === this.lastQueue.length && text.startsWith(this.lastQueue, pos)) {
            queue = this.lastQueue;
          } else {
            queue = this.lastQueue = this.ids.get(text, pos, stop);
          }
          break;
        case Col.Op:
          op = matchOp(text, pos, stop);
          if (op === undefined) {
            return this.fail(`op ${quote(text.slice(pos, stop))} is not one of send, receive, delete`);
          }
          break;
        case Col.Node:
          if (stop > pos) node = this.ids.get(text, pos, stop);
          break;
        case Col.Principal:
          if (stop > pos) principal = this.ids.get(text, pos, stop);
          break;
        case Col.Bytes:
          if (stop > pos) {
            bytes = parseUint(text, pos, stop);
            if (bytes < 0) return this.fail(`bytes ${quote(text.slice(pos, stop))} is not a non-negative integer`);
          }
          break;
      }
      col++;
      if (stop === end) break;
      pos = stop + 1;
    }
    if (col !== roles.length) return this.fail(`expected ${roles.length} fields, found ${col}`);
    const event: TraceEvent = { t, queue, op: op! };
    if (node !== undefined) event.node = node;
    if (principal !== undefined) event.principal = principal;
    if (bytes >= 0) event.bytes = bytes;
    return event;
  }

  /** A row the fast path does not take: split under RFC 4180, each field read as text. */
  private generalRow(line: string): TraceEvent | null {
    const fields = splitQuoted(line);
    if (fields === null) return this.fail('a quoted field is not closed on its line');
    if (fields.length !== this.roles.length) return this.fail(`expected ${this.roles.length} fields, found ${fields.length}`);
    let t = -1;
    let queue = '';
    let op: TraceOp | undefined;
    const event: Partial<TraceEvent> = {};
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      switch (this.roles[i]) {
        case Col.Ts:
          t = parseTime(f.trim(), this.msPerUnit);
          if (t < 0) return this.fail(`time ${quote(f)} is neither a non-negative number of ${this.msPerUnit === 1 ? 'ms' : 'seconds'} nor an ISO-8601 date-time`);
          break;
        case Col.Queue:
          if (f === '') return this.fail('queue is empty');
          queue = this.ids.get(f, 0, f.length);
          break;
        case Col.Op:
          op = matchOp(f, 0, f.length);
          if (op === undefined) return this.fail(`op ${quote(f)} is not one of send, receive, delete`);
          break;
        case Col.Node:
          if (f !== '') event.node = this.ids.get(f, 0, f.length);
          break;
        case Col.Principal:
          if (f !== '') event.principal = this.ids.get(f, 0, f.length);
          break;
        case Col.Bytes:
          if (f !== '') {
            const bytes = parseUint(f, 0, f.length);
            if (bytes < 0) return this.fail(`bytes ${quote(f)} is not a non-negative integer`);
            event.bytes = bytes;
          }
          break;
      }
    }
    return { ...event, t, queue, op: op! };
  }

  private jsonRow(line: string): TraceEvent | null {
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (err) {
      return this.fail(`not valid JSON (${(err as Error).message})`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) return this.fail('not a JSON object');
    const r = row as Record<string, unknown>;
    for (const key in r) {
      if (COLUMNS[key] === undefined) return this.fail(`unknown field ${quote(key)}`);
    }
    const name = TIME_COLUMNS.find((n) => r[n] !== undefined);
    if (name === undefined) return this.fail(`no time field (${TIME_COLUMNS.join(', ')})`);
    const raw = r[name];
    const perUnit = name === 'ts_ms' ? 1 : 1000;
    let t = -1;
    if (typeof raw === 'string') t = ISO_8601.test(raw) ? parseTime(raw, perUnit) : -1; // a string must be a date-time
    else if (typeof raw === 'number' && Number.isFinite(raw) && raw >= 0 && (perUnit === 1000 || Number.isSafeInteger(raw))) t = Math.round(raw * perUnit);
    if (t < 0 || !Number.isSafeInteger(t)) {
      return this.fail(`${name} ${quote(String(JSON.stringify(raw)))} is neither a non-negative ${perUnit === 1 ? 'integer' : 'number'} nor an ISO-8601 date-time`);
    }
    if (typeof r.queue !== 'string' || r.queue.length === 0) return this.fail('queue is missing or empty');
    const op = r.op;
    if (typeof op !== 'string' || !(OPS as readonly string[]).includes(op)) {
      return this.fail(`op ${quote(String(JSON.stringify(op)))} is not one of send, receive, delete`);
    }
    const event: TraceEvent = { t, queue: r.queue, op: op as TraceOp };
    for (const key of ['node', 'principal'] as const) {
      const v = r[key];
      if (v === undefined || v === null || v === '') continue;
      if (typeof v !== 'string') return this.fail(`${key} is not a string`);
      event[key] = v;
    }
    const bytes = r.bytes;
    if (bytes !== undefined && bytes !== null) {
      if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) {
        return this.fail(`bytes ${quote(String(JSON.stringify(bytes)))} is not a non-negative integer`);
      }
      event.bytes = bytes;
    }
    return event;
  }

  private fail(problem: string): null {
    this.problem = problem;
    return null;
  }
}

function matchOp(text: string, start: number, end: number): TraceOp | undefined {
  switch (end - start) {
    case 4:
      return text.startsWith('send', start) ? 'send' : undefined;
    case 7:
      return text.startsWith('receive', start) ? 'receive' : undefined;
    case 6:
      return text.startsWith('delete', start) ? 'delete' : undefined;
    default:
      return undefined;
  }
}
