/**
 * Splits a text file into lines without allocating a string per line: the sink gets the chunk and
 * the bounds of each line, so a parser can read fields in place. Memory stays one chunk plus one
 * partial line, whatever the file's length.
 */
import { createReadStream } from 'node:fs';
import { InputError } from '../../core/errors.ts';

export interface LineSink {
  /** `text.slice(start, end)` is line `lineNo` (1-based) without its line ending. */
  line(text: string, start: number, end: number, lineNo: number): void;
}

const CHUNK_BYTES = 1 << 20;
/** A line longer than this is not a trace row; refusing it keeps memory bounded. */
const MAX_LINE_CHARS = 64 << 20;

/** Feeds every line of the file to the sink, yielding after each chunk so the caller can drain. */
export async function* readLines(path: string, sink: LineSink): AsyncGenerator<void> {
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: CHUNK_BYTES });
  let carry = '';
  let lineNo = 0;
  let first = true;
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      let text = carry.length === 0 ? chunk : carry + chunk;
      // A byte-order mark would otherwise become part of the first header name.
      if (first) {
        first = false;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      let pos = 0;
      let nl: number;
      while ((nl = text.indexOf('\n', pos)) !== -1) {
        const end = nl > pos && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
        sink.line(text, pos, end, ++lineNo);
        pos = nl + 1;
      }
      carry = pos === 0 ? text : text.slice(pos);
      if (carry.length > MAX_LINE_CHARS) {
        throw new InputError(`line is longer than ${MAX_LINE_CHARS} characters`, lineNo + 1);
      }
      yield;
    }
  } finally {
    stream.destroy();
  }
  if (carry.length > 0) {
    const end = carry.charCodeAt(carry.length - 1) === 13 ? carry.length - 1 : carry.length;
    sink.line(carry, 0, end, ++lineNo);
    yield;
  }
}

/** True when the line holds only spaces and tabs. */
export function isBlank(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 9) return false;
  }
  return true;
}

/**
 * Parses a non-negative decimal integer in place; -1 when the field is empty, has any other
 * character, or exceeds 2^53.
 */
export function parseUint(text: string, start: number, end: number): number {
  if (end <= start) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v <= Number.MAX_SAFE_INTEGER ? v : -1;
}

/**
 * Reuses one copy of each distinct id. Slices of a chunk keep the whole chunk alive in V8, so an
 * id that a consumer keeps as a map key must be a fresh copy; interning makes that copy once. The
 * lookup hashes the characters in place, so a known id costs no allocation.
 */
export class Interner {
  private readonly byHash = new Map<number, string | string[]>();
  private size = 0;
  constructor(private readonly limit = 1 << 17) {}

  get(text: string, start: number, end: number): string {
    let h = 0x811c9dc5;
    for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    const len = end - start;
    const known = this.byHash.get(h);
    if (known !== undefined) {
      if (typeof known === 'string') {
        if (known.length === len && text.startsWith(known, start)) return known;
      } else {
        for (const s of known) if (s.length === len && text.startsWith(s, start)) return s;
      }
    }
    const copy = Buffer.from(text.slice(start, end), 'utf8').toString('utf8');
    if (this.size < this.limit) {
      this.size++;
      if (known === undefined) this.byHash.set(h, copy);
      else if (typeof known === 'string') this.byHash.set(h, [known, copy]);
      else known.push(copy);
    }
    return copy;
  }
}

/** Shows a field in an error message, cut short when long. */
export function quote(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}
