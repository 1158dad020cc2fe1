import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { replay } from '../src/sim/replay.ts';
import { openTrace } from '../src/sim/traces/open.ts';
import type { TraceEvent } from '../src/sim/traces/types.ts';
import { median } from './stats.ts';

const TRACE = join(import.meta.dirname, '..', 'test', 'fixtures', 'azure2019-250fn-8h.csv');

async function loadAll(trigger: string | undefined): Promise<TraceEvent[][]> {
  const batches: TraceEvent[][] = [];
  for await (const batch of openTrace(TRACE, { seed: 1, trigger }).batches()) batches.push(batch);
  return batches;
}

/**
 * Median events/s of reactive over events held in memory (reading excluded), by wall time and by
 * this process's CPU time (the machine may be shared), and of a bare loop.
 */
async function reactiveSpeed(batches: TraceEvent[][]): Promise<{ events: number; reactive: number; reactiveCpu: number; bareLoop: number; reactiveRates: number[] }> {
  const events = batches.reduce((n, b) => n + b.length, 0);
  const reactiveRates: number[] = [];
  const cpuRates: number[] = [];
  for (let round = 0; round < 3; round++) {
    const cpu = process.cpuUsage();
    const result = await replay(() => batches, ['reactive'], { frontends: 4 });
    const used = process.cpuUsage(cpu);
    reactiveRates.push(result.policies.reactive!.eventsPerSecond);
    cpuRates.push(events / ((used.user + used.system) / 1e6));
  }
  // The floor: touching every event once, as any replay must.
  const loopRates: number[] = [];
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    let sum = 0;
    for (const batch of batches) for (const e of batch) sum += e.t + e.queue.length;
    loopRates.push(events / ((performance.now() - start) / 1000) + (sum === -1 ? 1 : 0));
  }
  return { events, reactive: median(reactiveRates), reactiveCpu: median(cpuRates), bareLoop: median(loopRates), reactiveRates };
}

/**
 * Simulator speed on the 8-hour Azure sample, 4 front-ends: (1) reactive over the events held in
 * memory, queue-triggered functions and all functions, beside a bare loop over the same events;
 * (2) all five policies on the whole file read from disk, total seconds (target < 30 s).
 */
export async function benchSim(): Promise<Record<string, unknown>> {
  const loadAtStart = loadavg()[0]!;
  const queue = await reactiveSpeed(await loadAll('queue'));
  const all = await reactiveSpeed(await loadAll(undefined));
  const allSeconds: number[] = [];
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    await replay(() => openTrace(TRACE, { seed: 1 }).batches(), ['reactive', 'refresh-ahead', 'histogram', 'oracle', 'none'], { frontends: 4 });
    allSeconds.push((performance.now() - start) / 1000);
  }
  return {
    trace: 'azure2019-250fn-8h.csv',
    reactiveTarget: 1_000_000,
    machine: { cpus: cpus().length, loadAverage1mAtStart: loadAtStart, loadAverage1mAtEnd: loadavg()[0] },
    queueTriggered: { events: queue.events, reactiveEventsPerSecond: queue.reactive, reactiveEventsPerCpuSecond: queue.reactiveCpu, bareLoopEventsPerSecond: queue.bareLoop, meetsTarget: queue.reactive >= 1_000_000 },
    allFunctions: { events: all.events, reactiveEventsPerSecond: all.reactive, reactiveEventsPerCpuSecond: all.reactiveCpu, bareLoopEventsPerSecond: all.bareLoop, meetsTarget: all.reactive >= 1_000_000 },
    allFivePoliciesSeconds: median(allSeconds),
    allFiveTargetSeconds: 30,
    allFiveMeetsTarget: median(allSeconds) < 30,
    rounds: { queueReactive: queue.reactiveRates, allReactive: all.reactiveRates, allSeconds },
  };
}
