import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { BALANCERS, type BalancerKind } from '../sim/balancer.ts';
import type { ReplayResult } from '../sim/replay.ts';
import { formatPercent } from '../sim/report/format.ts';
import type { PolicyResult } from '../sim/simulator.ts';
import type { TraceEvent, TraceFormat } from '../sim/traces/types.ts';
import { DEFAULT_COSTS } from '../prefetcher/cost.ts';
import { MODEL_NAMES, parseModelList } from '../prefetcher/models/index.ts';
import { DEFAULT_MAX_KMS_OVERHEAD } from '../prefetcher/prefetcher.ts';
import { collect, configFlags, configOf, intOption, numberOption } from './options.ts';
import type { TraceReader } from '../sim/traces/types.ts';


interface ReplayCliOptions {
  trace: string[];
  format?: TraceFormat;
  trigger?: string;
  lenient?: boolean;
  policies: string;
  balancer: BalancerKind;
  warmup: number;
  hop: number;
  seed: number;
  json?: string;
  html?: string;
  sweep?: string;
  queueReuse?: string;
}

export function registerReplay(program: Command): void {
  const command = program
    .command('replay')
    .description('replay a trace in virtual time through the real key path under each policy, and compare them')
    .requiredOption('--trace <file>', 'trace file (generic events CSV/JSONL, or Azure Functions 2019 per-minute CSV); repeat it for consecutive files in time order, e.g. a rotated recording: --trace rec.csv.2 --trace rec.csv.1 --trace rec.csv', collect)
    .option('--format <format>', 'events | azure (default: detected from the header)')
    .option('--trigger <trigger>', 'Azure traces: keep only functions with this trigger (e.g. queue)')
    .option('--lenient', 'skip bad rows (and report how many) instead of failing')
    .option('--policies <list>', 'comma-separated: reactive,refresh-ahead,histogram,idle-price (or idle-price@<lambda>, e.g. idle-price@0.75),pkp,oracle,none', 'reactive,refresh-ahead,histogram,pkp,oracle')
    .option('--balancer <kind>', `load balancer: ${BALANCERS.join(' | ')}`, 'random')
    .option('--warmup <seconds>', 'trace time replayed but not measured', numberOption(0), 3600)
    .option('--hop <ms>', 'front-end ↔ metadata service latency, each way', numberOption(0, 10_000), 1)
    .option('--seed <n>', 'seed for arrival instants, balancer and latencies', intOption(0, 2 ** 31), 1)
    .option('--sweep <spec>', "run pkp at several budgets in one go, e.g. 'max-kms-overhead=0,0.02,0.05,0.1,0.2,0.4': its trade-off curve beside the baselines")
    .option('--queue-reuse <list>', "reuse periods of named queues, e.g. 'orders=60,audit=3600' (seconds; the others use --reuse-seconds)")
    .option('--json <file>', 'write the results as JSON')
    .option('--html <file>', 'write an offline HTML report');
  configFlags(command, ['frontends', 'reuseSeconds', 'cacheEntries', 'kmsLatency', 'kmsRate', 'missCost', 'kmsCallCost', 'maxKmsOverhead', 'pkpModels', 'aggregateMs'], {
    cacheEntries: 'key-cache entries per node (default unlimited)',
    pkpModels: `pkp: comma-separated subset of its models (${MODEL_NAMES.join(',')}; default all but queue-load)`,
  });
  command.action(async (cli: ReplayCliOptions) => {
      const c = configOf(command, 'replay', {
        frontends: 4, reuseSeconds: 300, kmsLatency: '10',
        missCost: DEFAULT_COSTS.missCost, kmsCallCost: DEFAULT_COSTS.kmsCallCost, maxKmsOverhead: DEFAULT_MAX_KMS_OVERHEAD,
      });
      const options = { ...cli, ...c };
      // Loaded here, not at the top: `pkp --help` should not pay for the simulator and the report's charts.
      const [{ default: cliProgress }, { parsePolicies, parseSweep, replay }, { openTrace }] = await Promise.all([
        import('cli-progress'), import('../sim/replay.ts'), import('../sim/traces/open.ts'),
      ]);
      if (options.format !== undefined && options.format !== 'events' && options.format !== 'azure') throw new Error(`--format must be events or azure, not '${options.format}'`);
      if (!BALANCERS.includes(options.balancer)) throw new Error(`--balancer must be one of ${BALANCERS.join(', ')}`);
      const names = parsePolicies(options.policies);
      const queueReuseSeconds = options.queueReuse === undefined ? undefined : parseQueueReuse(options.queueReuse);
      const sweep = options.sweep === undefined ? undefined : parseSweep(options.sweep);
      if (sweep && !names.includes('pkp')) throw new Error('--sweep moves pkp\'s budget: add pkp to --policies');
      const runs = names.length + (sweep ? sweep.length - 1 : 0);
      const pkpModels = options.pkpModels === undefined ? undefined : parseModelList(options.pkpModels.join(','));
      const reader = concatTraces(options.trace.map((file) => openTrace(file, { format: options.format, trigger: options.trigger, seed: options.seed, lenient: options.lenient })));

      const bar = new cliProgress.SingleBar(
        { format: 'replay {policy} |{bar}| {value}/{total} policies | {events} events', stream: process.stderr, hideCursor: true, noTTYOutput: false, notTTYSchedule: 5000 },
        cliProgress.Presets.shades_classic,
      );
      bar.start(runs, 0, { policy: names[0], events: 0 });
      let events = 0;
      const counted = async function* (): AsyncIterable<TraceEvent[]> {
        for await (const batch of reader.batches()) {
          events += batch.length;
          bar.update({ events });
          yield batch;
        }
      };
      let done = 0;
      const result = await replay(() => {
        events = 0;
        return counted();
      }, names, {
        frontends: options.frontends, balancer: options.balancer, reuseSeconds: options.reuseSeconds, queueReuseSeconds, warmupMs: options.warmup * 1000,
        capacity: options.cacheEntries, kmsLatency: options.kmsLatency, kmsRatePerSecond: options.kmsRate, hopMs: options.hop, seed: options.seed,
      }, (r) => {
        if (names.includes(r.policy as never)) done++;
        bar.update(done, { policy: r.policy });
      }, {
        costs: { missCost: options.missCost, kmsCallCost: options.kmsCallCost }, maxKmsOverhead: options.maxKmsOverhead,
        modelOptions: { only: pkpModels }, aggregateMs: options.aggregateMs,
      }, sweep);
      bar.stop();
      const stats = reader.stats;
      if (stats.skipped > 0) process.stderr.write(`skipped ${stats.skipped} bad rows (--lenient)\n`);
      for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      process.stdout.write(formatTable(result) + '\n');
      const trace = { path: options.trace.length === 1 ? options.trace[0]! : options.trace, format: reader.format, trigger: options.trigger ?? null, rows: stats.rows, events: stats.events, skipped: stats.skipped };
      if (options.json) writeFileSync(options.json, JSON.stringify({ trace, config: c, ...result }, null, 2));
      if (options.html) {
        const { renderReplayReport } = await import('../sim/report-html.ts');
        const command = `pkp replay ${process.argv.slice(3).join(' ')}`;
        writeFileSync(options.html, renderReplayReport(result, { title: `PKP replay: ${options.trace.map((f) => basename(f)).join(' + ')}`, trace: options.trace.join(', '), generatedAt: new Date().toISOString(), command }));
      }
    });
}

/** `name=seconds,…`: each queue's own reuse period. */
export function parseQueueReuse(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const at = part.lastIndexOf('=');
    const name = part.slice(0, at).trim();
    const seconds = Number(part.slice(at + 1));
    if (at <= 0 || name === '' || !(Number.isFinite(seconds) && seconds > 0)) throw new Error(`--queue-reuse takes queue=seconds,… with seconds > 0 (got '${part}')`);
    out[name] = seconds;
  }
  if (Object.keys(out).length === 0) throw new Error('--queue-reuse names no queue');
  return out;
}

/** Significant digits, so a small ratio still says something (0.000064%, not 0.000%). */
const pct = (x: number): string => formatPercent(x, 3);
const opt = (x: number | null, digits = 2): string => (x === null ? '-' : x.toFixed(digits));

/** The comparison table printed on stdout. */
export function formatTable(result: ReplayResult): string {
  const header = ['policy', 'requests', 'demand misses', 'of receives', 'miss ratio', 'per-queue p50', 'per-queue p90', 'KMS calls', 'vs oracle', 'KMS Decrypt', 'prefetches', 'wasted', 'precision', 'recall', 'p99 ms', 'p99.9 ms', 'key·h', 'events/s'];
  const runs: [string, PolicyResult][] = [
    ...Object.values(result.policies).map((r) => [r.policy, r] as [string, PolicyResult]),
    ...(result.sweep ?? []).map((p) => [`pkp @${p.maxKmsOverhead}`, p.result] as [string, PolicyResult]),
  ];
  const rows = runs.map(([name, r]) => [
    name, String(r.requests), String(r.demandMisses), r.keyedReceives ? String(r.decryptMisses ?? 0) : '-', pct(r.demandMissRatio), pct(r.perQueueMissRatio.p50), pct(r.perQueueMissRatio.p90),
    String(r.kmsCalls), opt(r.kmsCallsVsOracle, 3), r.keyedReceives ? String(r.kmsDecryptCalls ?? 0) : '-', String(r.prefetches), String(r.wastedPrefetches), opt(r.precision, 3), opt(r.recall, 3),
    r.addedLatencyMs.p99.toFixed(1), r.addedLatencyMs.p999.toFixed(1), (r.keyResidentSeconds / 3600).toFixed(1), Math.round(r.eventsPerSecond).toLocaleString('en-US'),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Consecutive trace files read as one (each in turn); their counts add up. */
function concatTraces(readers: TraceReader[]): TraceReader {
  if (readers.length === 1) return readers[0]!;
  const format = readers[0]!.format;
  if (readers.some((r) => r.format !== format)) throw new Error('--trace files must all be of one format');
  const batches = async function* (): AsyncGenerator<TraceEvent[]> {
    for (const r of readers) yield* r.batches();
  };
  return {
    format,
    get stats() {
      return readers.reduce((acc, r) => ({ rows: acc.rows + r.stats.rows, events: acc.events + r.stats.events, skipped: acc.skipped + r.stats.skipped }), { rows: 0, events: 0, skipped: 0 });
    },
    batches,
    [Symbol.asyncIterator]: async function* () {
      for await (const batch of batches()) yield* batch;
    },
  };
}
