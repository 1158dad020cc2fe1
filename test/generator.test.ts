import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { registerGen } from '../src/cli/gen.ts';
import {
  QUEUE_KINDS,
  generateMinutes,
  planQueues,
  resolveOptions,
  syntheticTrace,
  writeSyntheticTrace,
  type CronPattern,
  type GeneratorOptions,
  type SeasonalPattern,
} from '../src/sim/generator.ts';
import { regimeChangeTrace } from '../src/sim/regime-change.ts';
import { openEvents } from '../src/sim/traces/events.ts';
import type { TraceEvent } from '../src/sim/traces/types.ts';

const dir = mkdtempSync(join(tmpdir(), 'pkp-gen-'));
let fileNo = 0;
const out = (): string => join(dir, `g${fileNo++}.csv`);
const MINUTE = 60_000;
const HOUR = 3_600_000;

/** Visits every event in order without making objects: (t, queue index, op 0/1/2, principal index). */
function scan(options: GeneratorOptions, visit: (t: number, q: number, op: number, p: number) => void): number {
  let n = 0;
  for (const m of generateMinutes(options)) {
    for (let i = 0; i < m.length; i++) visit(m.t[i]!, m.queue[i]!, m.op[i]!, m.principal[i]!);
    n += m.length;
  }
  return n;
}

describe('synthetic trace generator', () => {
  const small: GeneratorOptions = { seed: 5, queues: 20, days: 0.25, meanRatePerSecond: 2 };

  it('is deterministic: same options give a byte-identical file, another seed a different one', async () => {
    const [a, b, c] = [out(), out(), out()];
    const sa = await writeSyntheticTrace(a, small);
    await writeSyntheticTrace(b, small);
    await writeSyntheticTrace(c, { ...small, seed: 6 });
    assert.ok(sa.events > 1000);
    assert.equal(readFileSync(a, 'utf8'), readFileSync(b, 'utf8'));
    assert.notEqual(readFileSync(a, 'utf8'), readFileSync(c, 'utf8'));
  });

  it('writes the generic CSV header and a file the events loader reads back exactly, in time order', async () => {
    const path = out();
    const summary = await writeSyntheticTrace(path, small);
    assert.equal(readFileSync(path, 'utf8').split('\n', 1)[0], 'ts_ms,queue,op,principal');
    const fromFile: TraceEvent[] = [];
    const reader = openEvents(path);
    for await (const e of reader) fromFile.push(e);
    assert.equal(fromFile.length, summary.events);
    assert.equal(summary.ops.send + summary.ops.receive + summary.ops.delete, summary.events);
    assert.deepEqual(reader.stats, { rows: summary.events, events: summary.events, skipped: 0 });
    const generated: TraceEvent[] = [];
    for await (const e of syntheticTrace(small)) generated.push(e);
    assert.deepEqual(generated, fromFile);
    assert.equal(summary.firstMs, fromFile[0]!.t);
    assert.equal(summary.lastMs, fromFile[fromFile.length - 1]!.t);
  });

  it('adds a node column only when asked', async () => {
    const path = out();
    await writeSyntheticTrace(path, { ...small, nodes: 3 });
    const nodes = new Set<string>();
    for await (const e of openEvents(path)) nodes.add(e.node!);
    assert.equal(readFileSync(path, 'utf8').split('\n', 1)[0], 'ts_ms,queue,op,principal,node');
    assert.deepEqual([...nodes].sort(), ['n0', 'n1', 'n2']);
  });

  it('has every kind of queue, named by kind, and each produces events', () => {
    const plan9 = planQueues({ queues: 9 });
    assert.deepEqual(new Set(plan9.map((q) => q.kind)), new Set(QUEUE_KINDS));
    const options: GeneratorOptions = { seed: 2, queues: 30, days: 2, meanRatePerSecond: 5, zipfExponent: 0 };
    const specs = planQueues(options);
    for (const s of specs) assert.match(s.name, new RegExp(`^q\\d{3}-${s.kind}$`));
    const perQueue = new Array<number>(specs.length).fill(0);
    scan(options, (_t, q) => perQueue[q]!++);
    for (const kind of QUEUE_KINDS) {
      const events = specs.filter((s) => s.kind === kind).reduce((n, s) => n + perQueue[s.index]!, 0);
      assert.ok(events > 0, `no events for kind ${kind}`);
    }
  });

  it('emits events sorted by time and meets the requested mean rate', () => {
    const options: GeneratorOptions = { seed: 9, queues: 60, days: 7, meanRatePerSecond: 2 };
    let last = -1;
    const n = scan(options, (t) => {
      assert.ok(t >= last);
      last = t;
    });
    const rate = n / (7 * 86_400);
    assert.ok(rate > 1.5 && rate < 2.5, `mean rate ${rate}`);
  });

  it('Zipf popularity: the most popular queue outweighs the median one by far', () => {
    const options: GeneratorOptions = { seed: 4, queues: 50, days: 1, meanRatePerSecond: 5, zipfExponent: 1.2 };
    const shares = planQueues(options).map((s) => s.share).sort((a, b) => b - a);
    assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 1) < 1e-9);
    assert.ok(shares[0]! > 20 * shares[25]!);
  });

  it('fires cron queues at their period and second, jittered ones close to it', () => {
    const options: GeneratorOptions = { seed: 11, queues: 80, days: 1, meanRatePerSecond: 5 };
    const crons = planQueues(options).filter((s) => s.kind === 'cron');
    assert.ok(crons.some((s) => (s.pattern as CronPattern).jitterMs === 0));
    assert.ok(crons.some((s) => (s.pattern as CronPattern).jitterMs > 0));
    const sends = new Map<number, number[]>(crons.map((s) => [s.index, []]));
    scan(options, (t, q, op) => {
      if (op === 0) sends.get(q)?.push(t);
    });
    for (const spec of crons) {
      const p = spec.pattern as CronPattern;
      const times = sends.get(spec.index)!;
      // A firing's batch lasts well under 30 s; a gap above that starts the next firing.
      const starts = times.filter((t, i) => i === 0 || t - times[i - 1]! > 30_000);
      // 1970-01-01 is a Thursday: a one-day trace has no weekend to skip.
      assert.equal(starts.length, Math.floor(1440 / p.periodMin) + (p.phaseMin < 1440 % p.periodMin ? 1 : 0), spec.name);
      for (let i = 1; i < starts.length; i++) {
        const gap = starts[i]! - starts[i - 1]!;
        if (p.jitterMs === 0) assert.equal(gap, p.periodMin * MINUTE, spec.name);
        else assert.ok(Math.abs(gap - p.periodMin * MINUTE) <= 6 * p.jitterMs, `${spec.name} gap ${gap}`);
      }
      for (const t of starts) {
        assert.equal((Math.floor(t / MINUTE) - p.phaseMin) % p.periodMin, 0);
        if (p.jitterMs === 0) assert.equal(t % MINUTE, p.second * 1000);
      }
    }
  });

  it('shows daily seasonality: far more events at the peak hour than twelve hours away', () => {
    const options: GeneratorOptions = { seed: 3, queues: 20, days: 3, meanRatePerSecond: 10 };
    const diurnal = planQueues(options)
      .filter((s) => s.kind === 'diurnal')
      .sort((a, b) => b.share - a.share)[0]!;
    const p = diurnal.pattern as SeasonalPattern;
    const byHour = new Array<number>(24).fill(0);
    scan(options, (t, q, op) => {
      if (q === diurnal.index && op === 0) byHour[Math.floor((t % 86_400_000) / HOUR)]!++;
    });
    const peak = Math.floor(p.peakHour);
    const trough = (peak + 12) % 24;
    assert.ok(byHour[peak]! > 2 * byHour[trough]!, `peak ${byHour[peak]} trough ${byHour[trough]} (amplitude ${p.daily})`);
  });

  it('trending queues grow or shrink over the span', () => {
    const options: GeneratorOptions = { seed: 8, queues: 60, days: 4, meanRatePerSecond: 10, zipfExponent: 0.5 };
    const trends = planQueues(options).filter((s) => s.kind === 'trend');
    assert.ok(trends.length >= 2);
    const firstDay = new Map<number, number>();
    const lastDay = new Map<number, number>();
    scan(options, (t, q) => {
      const day = Math.floor(t / 86_400_000);
      if (day === 0) firstDay.set(q, (firstDay.get(q) ?? 0) + 1);
      if (day === 3) lastDay.set(q, (lastDay.get(q) ?? 0) + 1);
    });
    for (const s of trends) {
      const a = firstDay.get(s.index) ?? 0;
      const b = lastDay.get(s.index) ?? 0;
      if (s.trendFactor! > 1) assert.ok(b > a, `${s.name} ×${s.trendFactor}: ${a} → ${b}`);
      else assert.ok(b < a, `${s.name} ×${s.trendFactor}: ${a} → ${b}`);
    }
  });

  it('gives queues several principals: producers send, consumers receive and delete', () => {
    const options: GeneratorOptions = { seed: 12, queues: 30, days: 0.5, meanRatePerSecond: 5, principals: 40, zipfExponent: 0 };
    const specs = planQueues(options);
    const seen = specs.map(() => new Set<number>());
    scan(options, (_t, q, op, p) => {
      const s = specs[q]!;
      const name = `p${String(p).padStart(3, '0')}`;
      assert.ok((op === 0 ? s.producers : s.consumers).includes(name), `${s.name} op ${op} by ${name}`);
      seen[q]!.add(p);
    });
    const multi = seen.filter((set) => set.size > 1).length;
    assert.ok(multi >= specs.length / 2, `${multi} of ${specs.length} queues have several principals`);
  });

  it('new queues have no events before their start, gone queues none after their end', () => {
    const options: GeneratorOptions = { seed: 14, queues: 80, days: 2, meanRatePerSecond: 10, zipfExponent: 0 };
    const specs = planQueues(options);
    const news = specs.filter((s) => s.kind === 'new');
    const gone = specs.filter((s) => s.kind === 'gone');
    assert.ok(news.length > 0 && gone.length > 0);
    const first = new Map<number, number>();
    const lastSend = new Map<number, number>();
    const last = new Map<number, number>();
    scan(options, (t, q, op) => {
      if (!first.has(q)) first.set(q, t);
      if (op === 0) lastSend.set(q, t);
      last.set(q, t);
    });
    for (const s of news) {
      assert.ok(s.activeFromMs > 0);
      assert.ok(first.get(s.index)! >= s.activeFromMs, `${s.name} starts ${s.activeFromMs}, first event ${first.get(s.index)}`);
      assert.ok(first.get(s.index)! < s.activeFromMs + 2 * HOUR, `${s.name} is silent long after its start`);
    }
    for (const s of gone) {
      assert.ok(lastSend.get(s.index)! < s.activeToMs, s.name);
      // Receives and deletes of the last messages may trail the end by under a minute.
      assert.ok(last.get(s.index)! < s.activeToMs + MINUTE, s.name);
    }
  });

  it('switches a regime queue to another pattern at its change time', () => {
    const specs = planQueues({ seed: 1, queues: 200 });
    const regimes = specs.filter((s) => s.kind === 'regime');
    assert.ok(regimes.length > 0);
    for (const s of regimes) {
      assert.notEqual(s.regime!.pattern.type, s.pattern.type);
      assert.ok(s.regime!.atMs > 0 && s.regime!.atMs < 7 * 86_400_000);
    }
  });

  it('rejects bad options with a message naming the option', () => {
    assert.throws(() => resolveOptions({ queues: 0 }), /queues must be an integer in 1\.\.100000, got 0/);
    assert.throws(() => resolveOptions({ days: -1 }), /days must be/);
    assert.throws(() => resolveOptions({ meanRatePerSecond: Number.NaN }), /meanRatePerSecond must be/);
    assert.throws(() => resolveOptions({ principals: 1.5 }), /principals must be/);
  });
});

describe('pkp gen', () => {
  function program(): Command {
    const p = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
    registerGen(p);
    return p;
  }

  it('writes the file and prints a one-line summary', async () => {
    const path = out();
    const lines: string[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => lines.push(args.join(' '));
    try {
      await program().parseAsync(['gen', '--out', path, '--seed', '3', '--queues', '12', '--days', '0.1', '--rate', '1', '--principals', '5'], {
        from: 'user',
      });
    } finally {
      console.log = log;
    }
    assert.equal(lines.length, 1);
    const rows = readFileSync(path, 'utf8').trimEnd().split('\n').length - 1;
    assert.match(lines[0]!, new RegExp(`${rows.toLocaleString('en-US')} events .* 12 queues, span 0\\.\\d\\d days`));
    const again = out();
    await writeSyntheticTrace(again, { seed: 3, queues: 12, days: 0.1, meanRatePerSecond: 1, principals: 5 });
    assert.equal(readFileSync(path, 'utf8'), readFileSync(again, 'utf8'));
  });

  it('--profile regime-change writes the regime-change trace, with its own defaults, and refuses mixed-only options', async () => {
    const path = out();
    const log = console.log;
    console.log = () => {};
    try {
      await program().parseAsync(['gen', '--out', path, '--profile', 'regime-change', '--seed', '2', '--days', '0.25', '--queues', '6'], { from: 'user' });
    } finally {
      console.log = log;
    }
    const fromFile: TraceEvent[] = [];
    for await (const e of openEvents(path)) fromFile.push(e);
    assert.deepEqual(fromFile, regimeChangeTrace({ seed: 2, days: 0.25, queues: 6 }).events);
    await assert.rejects(program().parseAsync(['gen', '--out', out(), '--profile', 'regime-change', '--rate', '2'], { from: 'user' }), /does not take --rate/);
    await assert.rejects(program().parseAsync(['gen', '--out', out(), '--profile', 'weekly'], { from: 'user' }), /--profile.*expected one of mixed, regime-change/);
  });

  it('refuses bad options and a missing --out', async () => {
    await assert.rejects(program().parseAsync(['gen', '--out', out(), '--queues', 'many'], { from: 'user' }), /--queues.*expected an integer/);
    await assert.rejects(program().parseAsync(['gen', '--days', '1'], { from: 'user' }), /required option '--out/);
    await assert.rejects(program().parseAsync(['gen', '--out', join(dir, 'no', 'such', 'dir.csv'), '--days', '0.01'], { from: 'user' }), /cannot write/);
  });
});
