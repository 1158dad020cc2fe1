/**
 * The trace-replay report as one self-contained HTML page: charts are inlined SVG rendered in
 * Node, styles are inline, and nothing is fetched, so the file opens offline and without script.
 */
import {
  kmsReasonChart, policyColors, queueCdfChart, residentChart, timelineBucketMs, timelineChart, tradeoffChart, type Policies,
} from './report/charts.ts';
import { idlePriceLambda } from './policies/idle-price.ts';
import { escapeHtml, formatCount, formatDurationMs, formatPercent, formatSig } from './report/format.ts';
import type { ReplayResult } from './replay.ts';
import type { PolicyResult } from './simulator.ts';

export interface ReportMeta {
  title: string;
  trace: string;
  generatedAt: string;
  command?: string;
}

interface Column {
  head: string;
  /** Hover text for the header, for columns whose short name needs it. */
  hint?: string;
  cell: (r: PolicyResult) => string;
}

const COLUMNS: Column[] = [
  { head: 'requests', cell: (r) => formatCount(r.requests) },
  { head: 'demand misses', cell: (r) => formatCount(r.demandMisses) },
  { head: 'miss ratio', cell: (r) => formatPercent(r.demandMissRatio) },
  { head: 'queue p50', hint: 'median of the per-queue miss ratios', cell: (r) => formatPercent(r.perQueueMissRatio.p50) },
  { head: 'queue p90', hint: '90th percentile of the per-queue miss ratios', cell: (r) => formatPercent(r.perQueueMissRatio.p90) },
  { head: 'KMS calls', cell: (r) => formatCount(r.kmsCalls) },
  { head: '× oracle', hint: "KMS calls as a multiple of the oracle's", cell: (r) => (r.kmsCallsVsOracle === null ? '—' : `${formatSig(r.kmsCallsVsOracle)}×`) },
  { head: 'KMS Decrypt', hint: "KMS Decrypt calls: receives' DEKs the key tier no longer held (not in KMS calls, which counts keys generated)", cell: (r) => (r.keyedReceives ? formatCount(r.kmsDecryptCalls ?? 0) : '—') },
  { head: 'prefetches', cell: (r) => formatCount(r.prefetches) },
  { head: 'wasted', hint: 'prefetched keys dropped unused', cell: (r) => formatCount(r.wastedPrefetches) },
  { head: 'precision', hint: 'used prefetches / (used + wasted)', cell: (r) => formatPercent(r.precision) },
  { head: 'recall', hint: "share of reactive's demand misses avoided", cell: (r) => formatPercent(r.recall) },
  { head: 'added p50 ms', hint: 'latency added by waiting for a key', cell: (r) => formatSig(r.addedLatencyMs.p50) },
  { head: 'p99 ms', cell: (r) => formatSig(r.addedLatencyMs.p99) },
  { head: 'p99.9 ms', cell: (r) => formatSig(r.addedLatencyMs.p999) },
  { head: 'key·hours', hint: 'time keys spent in node caches, summed over nodes', cell: (r) => formatSig(r.keyResidentSeconds / 3600) },
  { head: 'events/s', hint: 'simulator speed (wall clock)', cell: (r) => formatCount(r.eventsPerSecond) },
];

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 1400px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
.warning { background: #fff3cd; border-left: 4px solid #b8860b; padding: 6px 10px; }
dl.options { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
dl.options dt { color: #666; }
dl.options dd { margin: 0; }
pre { background: #f4f4f4; padding: 8px 10px; white-space: pre-wrap; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 6px; border-bottom: 1px solid #e3e3e3; white-space: nowrap; }
th { background: #f4f4f4; text-align: right; white-space: normal; vertical-align: bottom; max-width: 5.5em; }
table { width: 100%; max-width: 1368px; }
td { text-align: right; }
th:first-child, td:first-child { text-align: left; }
abbr { text-decoration: underline dotted; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
figure { margin: 12px 0; }
figure svg { max-width: 100%; height: auto; }
.pair { display: flex; flex-wrap: wrap; gap: 16px; }
figcaption, .read { color: #444; max-width: 820px; }
`;

export function renderReplayReport(result: ReplayResult, meta: ReportMeta): string {
  const policies: Policies = Object.entries(result.policies);
  const colors = policyColors(policies.map(([name]) => name));
  const o = result.options;
  const options: [string, string][] = [
    ['front-ends', String(o.frontends)],
    ['balancer', o.balancer],
    ['key reuse', `${formatSig(o.reuseSeconds)} s`],
    ['warm-up', formatDurationMs(o.warmupMs)],
    ['KMS latency', o.kmsLatency],
    ['hop', `${formatSig(o.hopMs)} ms`],
    ['seed', String(o.seed)],
    ['capacity', o.capacity === null ? 'unlimited' : `${formatCount(o.capacity)} keys per node`],
  ];
  const e = escapeHtml;
  const bucketMs = timelineBucketMs(policies);
  const bucket = bucketMs === null ? 'time' : formatDurationMs(bucketMs);

  const header = `<h1>${e(meta.title)}</h1>
<p class="sub">Trace <strong>${e(meta.trace)}</strong> · generated ${e(meta.generatedAt)}</p>
<dl class="options">
${options.map(([k, v]) => `<dt>${e(k)}</dt><dd>${e(v)}</dd>`).join('\n')}
</dl>
${meta.command ? `<pre><code>${e(meta.command)}</code></pre>` : ''}
${(result.warnings ?? []).map((w) => `<p class="warning">Warning: ${e(w)}</p>`).join('\n')}`;

  // The table lists pkp's sweep points after the policies, each under its budget.
  const rows: Policies = [...policies, ...(result.sweep ?? []).map((p) => [`pkp @${p.maxKmsOverhead}`, p.result] as [string, PolicyResult])];
  for (const [name] of rows) if (!colors.has(name)) colors.set(name, colors.get('pkp') ?? '#3aa357');
  const table = rows.length === 0
    ? '<p>No policy was replayed.</p>'
    : `<div class="scroll"><table>
<thead><tr><th>policy</th>${COLUMNS.map((c) => (c.hint ? `<th><abbr title="${e(c.hint)}">${e(c.head)}</abbr></th>` : `<th>${e(c.head)}</th>`)).join('')}</tr></thead>
<tbody>
${rows.map(([name, r]) => `<tr><td><span class="swatch" style="background:${colors.get(name)}"></span>${e(name)}</td>${COLUMNS.map((c) => `<td>${e(c.cell(r))}</td>`).join('')}</tr>`).join('\n')}
</tbody>
</table></div>
<p class="read">Everything is measured after the warm-up (${e(formatDurationMs(o.warmupMs))}). — marks a figure that does not apply: precision without prefetches, recall and × oracle when reactive or the oracle did not run.</p>`;

  const figure = (id: string, title: string, svg: string, read: string): string =>
    `<section id="${id}"><h2>${e(title)}</h2>
<figure>${svg}</figure>
<p class="read">${read}</p></section>`;

  const charts = policies.length === 0 ? '' : [
    figure('tradeoff', 'Trade-off: demand misses against KMS calls', tradeoffChart(policies, colors, result.sweep ?? []),
      'Each point is one policy' + (result.sweep ? '; the line is pkp at each budget of the sweep (labelled with --max-kms-overhead)' : '') +
      (policies.filter(([name]) => idlePriceLambda(name) !== undefined).length > 1 ? '; the dashed line is the idle-price baseline at each price λ' : '') +
      '. Lower is fewer requests waiting for a key (log scale), further left is fewer KMS calls (÷ the oracle\'s, the fewest the requests needed); ' +
      'the oracle marks the best reachable corner. No cache is left out: it makes hundreds of times the calls.'),
    figure('timeline', 'Miss ratio over time', timelineChart(policies, colors, o.warmupMs),
      `Demand-miss ratio per ${e(bucket)} bucket, from the end of the warm-up (hours count from the trace start, inferred as the first measured bucket less the warm-up). ` +
      'Spikes show when a policy falls behind the load, e.g. at bursts or when many keys expire together.'),
    figure('queue-cdf', 'Per-queue miss ratio (CDF)', queueCdfChart(policies, colors),
      'For each miss ratio, the share of queues whose own miss ratio is at most that. ' +
      'A curve that rises early means most queues are served well; a long tail to the right means a few queues miss often.'),
    `<section id="cost"><h2>Cache residency and KMS calls</h2>
<div class="pair"><figure>${residentChart(policies, colors)}</figure><figure>${kmsReasonChart(policies)}</figure></div>
<p class="read">Left: key·hours that data keys spent in front-end caches, the exposure and memory a policy pays for its hits. ` +
      'Right: KMS calls split by cause: demand (a request waited), prefetch (fetched ahead) and refresh (renewed before expiry).</p></section>',
  ].join('\n');

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(meta.title)} · ${e(meta.trace)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
${header}
</header>
<main>
<h2>Policies</h2>
${table}
${charts}
</main>
</body>
</html>
`;
}
