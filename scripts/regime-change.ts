/**
 * Regime change: replays the generated regime-change trace (src/sim/regime-change.ts) under
 * reactive, refresh-ahead, histogram and pkp, and prints, as Markdown, the miss ratio per
 * 30-minute window around the change, pkp's first hour per reuse period, and how many reuse
 * periods each policy takes to come back to its level before the change.
 *
 *   node --import tsx scripts/regime-change.ts [--seed 1] [--queues 24] [--frontends 4]
 */
import { parseArgs } from 'node:util';
import { PkpPolicy } from '../src/sim/policies/pkp.ts';
import type { Policy } from '../src/sim/policy.ts';
import { recovery, windows, missesBetween, type WindowMisses } from '../src/sim/recovery.ts';
import { regimeChangeTrace } from '../src/sim/regime-change.ts';
import { createPolicy } from '../src/sim/replay.ts';
import { simulate, type PolicyResult } from '../src/sim/simulator.ts';

const { values } = parseArgs({ options: { seed: { type: 'string', default: '1' }, queues: { type: 'string', default: '24' }, frontends: { type: 'string', default: '4' } } });
const seed = Number(values.seed);
const frontends = Number(values.frontends);
const R = 300_000;
const HOUR = 3_600_000;
const WINDOW = 30 * 60_000;
/** The yardstick the test uses too: back within 2 × the level before + 0.5 points, judged on 30-minute windows. */
const RECOVERY = { periodMs: R, windowMs: WINDOW, baselineMs: 12 * HOUR, horizonMs: 12 * HOUR, factor: 2, slack: 0.005 };

const trace = regimeChangeTrace({ seed, queues: Number(values.queues) });
const change = trace.changeAtMs;
const options = { frontends, reuseSeconds: R / 1000, warmupMs: HOUR, seed, timelineBucketMs: R };

/**
 * pkp, with its decision threshold and the KMS price factor of its budget read at the first
 * request of each window (what explains a second wave of misses after the change), and its
 * misses per hour by pattern pair (which queues take long).
 */
const pkp = new PkpPolicy();
const knobs = new Map<number, { threshold: number; kmsPrice: number }>();
const pairOf = (queue: string): string => queue.replace(/^rc\d+-/, '');
const pairs = [...new Set(trace.queues.map((q) => pairOf(q.name)))];
const byPair = new Map<string, { requests: number; misses: number }>();
const observed: Policy = {
  name: 'pkp',
  start: (context) => pkp.start(context),
  onRequest(o) {
    pkp.onRequest(o);
    const w = Math.floor((o.at - change) / WINDOW);
    if (!knobs.has(w)) knobs.set(w, { threshold: pkp.prefetcher!.threshold, kmsPrice: pkp.prefetcher!.budget.factor });
    const key = `${pairOf(o.queueId)}@${Math.floor((o.at - change) / HOUR)}`;
    const tally = byPair.get(key) ?? { requests: 0, misses: 0 };
    tally.requests++;
    if (!o.hit) tally.misses++;
    byPair.set(key, tally);
  },
  finish: () => pkp.finish(),
};

const results: PolicyResult[] = [];
for (const name of ['reactive', 'refresh-ahead', 'histogram'] as const) results.push(await simulate([trace.events], createPolicy(name), options));
results.push(await simulate([trace.events], observed, options));

const pct = (w: WindowMisses): string => `${w.misses}/${w.requests} (${(100 * w.ratio).toFixed(1)} %)`;
const clock = (ms: number): string => `${ms < 0 ? '−' : '+'}${Math.floor(Math.abs(ms) / HOUR)}:${String((Math.abs(ms) % HOUR) / 60_000).padStart(2, '0')}`;
const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;

console.log(`Trace: ${trace.queues.length} queues, ${trace.events.length.toLocaleString('en-US')} events over ${(trace.endMs - trace.startMs) / HOUR} h, ` +
  `every queue changes pattern at ${change / HOUR} h; ${frontends} front-ends, reuse period ${R / 1000} s, seed ${seed}.\n`);

console.log('Demand misses / requests (miss ratio) per 30-minute window, from the change:\n');
console.log(row(['window', ...results.map((r) => r.policy), 'pkp threshold', 'pkp KMS price']));
console.log(row(['---', ...results.map(() => '---:'), '---:', '---:']));
console.log(row(['12 h before', ...results.map((r) => pct(missesBetween(r.timeline, change, -12 * HOUR, 0))), '', '']));
for (let from = -2 * HOUR; from < 6 * HOUR; from += WINDOW) {
  const k = knobs.get(from / WINDOW);
  const cells = results.map((r) => pct(windows(r.timeline, change, from, from + WINDOW, WINDOW)[0]!));
  console.log(row([`${clock(from)} … ${clock(from + WINDOW)}`, ...cells, k ? k.threshold.toFixed(2) : '-', k ? k.kmsPrice.toFixed(2) : '-']));
}
console.log(row(['12 … 24 h after', ...results.map((r) => pct(missesBetween(r.timeline, change, 12 * HOUR, 24 * HOUR + HOUR))), '', '']));

console.log('\nThe first hour after the change, per reuse period:\n');
console.log(row(['reuse period', ...results.map((r) => r.policy)]));
console.log(row(['---', ...results.map(() => '---:')]));
for (let k = 0; k < 12; k++) console.log(row([`${k + 1}`, ...results.map((r) => pct(missesBetween(r.timeline, change, k * R, (k + 1) * R)))]));

console.log(`\npkp's misses / requests per hour by pattern pair (${trace.queues.length / pairs.length} queues each):\n`);
console.log(row(['hour', ...pairs]));
console.log(row(['---', ...pairs.map(() => '---:')]));
for (let h = -2; h < 6; h++) {
  console.log(row([`${clock(h * HOUR)} … ${clock((h + 1) * HOUR)}`, ...pairs.map((p) => {
    const t = byPair.get(`${p}@${h}`) ?? { requests: 0, misses: 0 };
    return `${t.misses}/${t.requests}`;
  })]));
}

console.log('\nRecovery (a 30-minute window is back when its miss ratio ≤ 2 × the 12 h before + 0.5 points):\n');
console.log(row(['policy', 'before', 'bound', 'first window back', 'back for good', 'KMS calls']));
console.log(row(['---', '---:', '---:', '---:', '---:', '---:']));
for (const r of results) {
  const rec = recovery(r.timeline, change, RECOVERY);
  const periods = (k: number | null): string => (k === null ? 'not within 12 h' : `${k} reuse periods (${(k * R) / 60_000} min)`);
  // Reactive and refresh-ahead predict nothing, so there is nothing for them to re-learn.
  const learns = r.policy !== 'reactive' && r.policy !== 'refresh-ahead';
  const [first, good] = learns ? [periods(rec.firstWithin), periods(rec.periods)] : ['no model', 'no model'];
  console.log(row([r.policy, `${(100 * rec.before).toFixed(2)} %`, learns ? `${(100 * rec.bound).toFixed(2)} %` : '-', first, good, r.kmsCalls.toLocaleString('en-US')]));
}
