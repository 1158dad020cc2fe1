/** Opens a trace file with the loader its format needs. */
import { closeSync, openSync, readSync } from 'node:fs';
import { InputError } from '../../core/errors.ts';
import { openAzure } from './azure.ts';
import { openEvents } from './events.ts';
import type { TraceFormat, TraceReader } from './types.ts';

export interface OpenTraceOptions {
  /** Detected from the file's first line when omitted: `HashOwner,…` is azure, anything else events. */
  format?: TraceFormat;
  /** Azure only: keep rows with this Trigger (e.g. 'queue'). */
  trigger?: string;
  /** Azure only: seeds the instants inside each minute. Default 1. */
  seed?: number;
  /** Skip bad rows (counted in stats.skipped) instead of failing. */
  lenient?: boolean;
}

export function openTrace(path: string, options: OpenTraceOptions = {}): TraceReader {
  const format = options.format ?? detectFormat(path);
  if (format === 'azure') {
    return openAzure(path, { seed: options.seed ?? 1, trigger: options.trigger, lenient: options.lenient });
  }
  if (options.trigger !== undefined) {
    throw new InputError(`${path}: a trigger filter applies only to Azure traces, not the events format`);
  }
  return openEvents(path, { lenient: options.lenient });
}

/** Reads the head of the file; also fails early, with the path, when it cannot be read. */
export function detectFormat(path: string): TraceFormat {
  const head = Buffer.alloc(4096);
  let n: number;
  try {
    const fd = openSync(path, 'r');
    try {
      n = readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw new InputError(`cannot read trace ${path}: ${(err as Error).message}`);
  }
  const text = head.toString('utf8', 0, n).replace(/^\uFEFF?\s*/, '');
  return text.startsWith('HashOwner') ? 'azure' : 'events';
}
