/** Helpers shared by the loaders. */
import type { LoadStats, TraceEvent } from './types.ts';

export function emptyStats(): LoadStats {
  return { rows: 0, events: 0, skipped: 0 };
}

/**
 * Serves a batch source one event at a time. Hand-written rather than an async generator: an
 * already-resolved promise per event costs about a third as much as a generator's yield.
 */
export function flatten(batches: AsyncIterable<TraceEvent[]>): AsyncIterator<TraceEvent> {
  const it = batches[Symbol.asyncIterator]();
  let batch: TraceEvent[] = [];
  let i = 0;
  const refill = async (): Promise<IteratorResult<TraceEvent>> => {
    for (;;) {
      const r = await it.next();
      if (r.done === true) return { value: undefined, done: true };
      batch = r.value;
      i = 0;
      if (batch.length > 0) return { value: batch[i++]!, done: false };
    }
  };
  return {
    next(): Promise<IteratorResult<TraceEvent>> {
      if (i < batch.length) return Promise.resolve({ value: batch[i++]!, done: false });
      return refill();
    },
    // Breaking out of a for-await closes the file.
    async return(): Promise<IteratorResult<TraceEvent>> {
      batch = [];
      await it.return?.(undefined);
      return { value: undefined, done: true };
    },
  };
}
