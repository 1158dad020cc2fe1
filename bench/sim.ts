import { join } from 'node:path';
import { replay } from '../src/sim/replay.ts';
import { openTrace } from '../src/sim/traces/open.ts';
import type { TraceEvent } from '../src/sim/traces/types.ts';
import { median } from './stats.ts';

const TRACE = join(import.meta.dirname, '..', '..', 'shared', 'traces', 'azure2019-250fn-8h.csv');

/**
 * Simulator speed: (1) reactive on the whole 8-hour Azure sample held in memory (the simulator's
 * own events/s, reading excluded), beside a bare loop over the same events; (2) all five policies
 * on that file read from disk, total seconds (target < 30 s).
 */
export async function benchSim(): Promise<Record<string, unknown>> {
  const reader = openTrace(TRACE, { seed: 1 });
  const batches: TraceEvent[][] = [];
  for await (const batch of reader.batches()) batches.push(batch);
  const events = batches.reduce((n, b) => n + b.length, 0);

  const reactiveRates: number[] = [];
  for (let round = 0; round < 3; round++) {
    const result = await replay(() => batches, ['reactive'], { frontends: 4 });
    reactiveRates.push(result.policies.reactive!.eventsPerSecond);
  }
  // The floor: touching every event once, as any replay must.
  const loopRates: number[] = [];
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    let sum = 0;
    for (const batch of batches) for (const e of batch) sum += e.t + e.queue.length;
    loopRates.push(events / ((performance.now() - start) / 1000) + (sum === -1 ? 1 : 0));
  }
  const allSeconds: number[] = [];
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    await replay(() => openTrace(TRACE, { seed: 1 }).batches(), ['reactive', 'refresh-ahead', 'histogram', 'oracle', 'none'], { frontends: 4 });
    allSeconds.push((performance.now() - start) / 1000);
  }
  const reactive = median(reactiveRates);
  return {
    trace: 'azure2019-250fn-8h.csv',
    events,
    reactiveEventsPerSecond: reactive,
    bareLoopEventsPerSecond: median(loopRates),
    reactiveTarget: 1_000_000,
    reactiveMeetsTarget: reactive >= 1_000_000,
    allFivePoliciesSeconds: median(allSeconds),
    allFiveTargetSeconds: 30,
    allFiveMeetsTarget: median(allSeconds) < 30,
    rounds: { reactiveRates, allSeconds },
  };
}
