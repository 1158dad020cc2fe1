/** `pkp gen`: writes a synthetic trace in the generic events format. */
import { InvalidArgumentError, type Command } from 'commander';
import { resolveOptions, writeSyntheticTrace, type GeneratorOptions, type GeneratorSummary } from '../sim/generator.ts';
import { resolveRegimeChange, writeRegimeChangeTrace, type RegimeChangeOptions } from '../sim/regime-change.ts';
import { intOption, numberOption } from './options.ts';

const PROFILES = ['mixed', 'regime-change'] as const;
type Profile = (typeof PROFILES)[number];
/** Options that shape the mixed workload only; the regime-change trace has its own fixed shape. */
const MIXED_ONLY = ['rate', 'principals', 'zipf', 'nodes'] as const;

interface GenCliOptions {
  out: string;
  profile: Profile;
  seed: number;
  queues: number;
  days: number;
  rate: number;
  principals: number;
  zipf: number;
  nodes: number;
  start: number;
}

export function registerGen(program: Command): void {
  program
    .command('gen')
    .description('write a synthetic trace (ts_ms,queue,op,principal CSV) with seasonal, cron, bursty, trending and new queues')
    .requiredOption('--out <file>', 'where to write the trace')
    .option('--profile <name>', `workload: mixed (every kind of queue) or regime-change (24 queues whose pattern changes at the middle; default 2 days; --seed, --queues, --days, --start apply)`, profile, 'mixed')
    .option('--seed <n>', 'seed: same options, byte-identical file', intOption(0, 2 ** 31), 1)
    .option('--queues <n>', 'number of queues', intOption(1, 100_000), 200)
    .option('--days <d>', 'span in days (fractions allowed)', numberOption(0.001, 3660), 7)
    .option('--rate <r>', 'mean requests per second over all queues', numberOption(1e-6, 1e6), 20)
    .option('--principals <n>', 'size of the principal pool', intOption(1, 1_000_000), 50)
    .option('--zipf <s>', 'Zipf exponent of queue popularity', numberOption(0, 5), 1)
    .option('--nodes <n>', 'add a node column naming one of n front-ends (0: no column)', intOption(0, 10_000), 0)
    .option('--start <ms>', 'time of the first event, ms since the epoch (calendar effects use its UTC date)', intOption(0, Number.MAX_SAFE_INTEGER), 0)
    .action(async (o: GenCliOptions, command: Command) => {
      const given = (name: string): boolean => command.getOptionValueSource(name) === 'cli';
      let write: () => Promise<GeneratorSummary>;
      if (o.profile === 'regime-change') {
        const ignored = MIXED_ONLY.filter(given);
        if (ignored.length > 0) throw new Error(`--profile regime-change does not take --${ignored.join(', --')}`);
        const options: RegimeChangeOptions = { seed: o.seed, startMs: o.start };
        // Its own defaults (24 queues, 2 days) unless asked otherwise.
        if (given('queues')) options.queues = o.queues;
        if (given('days')) options.days = o.days;
        resolveRegimeChange(options);
        write = () => writeRegimeChangeTrace(o.out, options);
      } else {
        const options: GeneratorOptions = {
          seed: o.seed,
          queues: o.queues,
          days: o.days,
          meanRatePerSecond: o.rate,
          principals: o.principals,
          zipfExponent: o.zipf,
          nodes: o.nodes,
          startMs: o.start,
        };
        resolveOptions(options);
        write = () => writeSyntheticTrace(o.out, options);
      }
      let summary;
      try {
        summary = await write();
      } catch (err) {
        throw new Error(`cannot write ${o.out}: ${(err as Error).message}`);
      }
      const span = summary.events > 0 ? summary.lastMs - summary.firstMs : 0;
      const n = (x: number): string => x.toLocaleString('en-US');
      console.log(
        `wrote ${o.out}: ${n(summary.events)} events (${n(summary.ops.send)} send, ${n(summary.ops.receive)} receive, ` +
          `${n(summary.ops.delete)} delete), ${summary.queues} queues, span ${(span / 86_400_000).toFixed(2)} days ` +
          `(${summary.firstMs}..${summary.lastMs} ms)`,
      );
    });
}

function profile(value: string): Profile {
  if (!(PROFILES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${PROFILES.join(', ')}`);
  return value as Profile;
}
