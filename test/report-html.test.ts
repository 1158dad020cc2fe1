import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { cdfPoints, legendTop, planAxis, policyColors, REASON_COLORS, timelineOrigin } from '../src/sim/report/charts.ts';
import { POLICY_NAMES } from '../src/sim/replay.ts';
import { escapeHtml, formatPercent, formatSig } from '../src/sim/report/format.ts';
import { renderReplayReport } from '../src/sim/report-html.ts';
import type { ReplayResult } from '../src/sim/replay.ts';
import type { PolicyResult, QueueOutcome, TimelinePoint } from '../src/sim/simulator.ts';
import { placeLabels } from '../src/sim/report/label-places.ts';

const HOUR = 3_600_000;
const BUCKET = 600_000;

/** Small deterministic generator, so the sample looks the same on every run. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** A plausible policy result: `missRatio` overall, with noise over 23 h of buckets and 300 queues. */
function policy(name: string, missRatio: number, kms: { demand: number; prefetch: number; refresh: number }, extra: Partial<PolicyResult> = {}): PolicyResult {
  const rnd = lcg(name.length * 7919 + 1);
  const timeline: TimelinePoint[] = [];
  let requests = 0;
  let misses = 0;
  for (let t = HOUR; t < 24 * HOUR; t += BUCKET) {
    const r = 8000 + Math.floor(4000 * rnd());
    const noise = missRatio >= 1 ? 1 : (0.4 + 1.2 * rnd()) * (t % (6 * HOUR) < BUCKET ? 4 : 1);
    const m = Math.round(r * Math.min(1, missRatio * noise));
    timeline.push({ t, requests: r, misses: m });
    requests += r;
    misses += m;
  }
  const perQueue: QueueOutcome[] = [];
  for (let q = 0; q < 300; q++) {
    const r = 10 + Math.floor(5000 * rnd() ** 3);
    perQueue.push({ queue: `q${q}`, requests: r, misses: Math.round(r * Math.min(1, missRatio * 3 * rnd() ** 2)) });
  }
  const kmsCalls = kms.demand + kms.prefetch + kms.refresh;
  return {
    policy: name, requests, demandMisses: misses, demandMissRatio: misses / requests,
    perQueueMissRatio: { p50: missRatio * 0.6, p90: Math.min(1, missRatio * 2.1) },
    kmsCalls, kmsCallsByReason: kms, kmsThrottled: 0, kmsCallsVsOracle: kmsCalls / 41_000,
    prefetches: kms.prefetch, prefetchesUsed: Math.round(kms.prefetch * 0.8), wastedPrefetches: Math.round(kms.prefetch * 0.2),
    precision: kms.prefetch > 0 ? 0.8 : null, recall: null,
    addedLatencyMs: { p50: 0, p99: missRatio > 0.01 ? 14.2 : 0, p999: missRatio > 0 ? 27.5 : 0, max: 61 },
    keyResidentSeconds: 3600 * 1500 * (1 + rnd()), peakCacheEntries: 1200, expiredKeysServed: 0,
    events: requests * 1.05, wallMs: 2000, eventsPerSecond: (requests * 1.05) / 2,
    timeline, perQueue, ...extra,
  };
}

function sample(): ReplayResult {
  const none = policy('none', 1, { demand: 2_180_000, prefetch: 0, refresh: 0 }, { keyResidentSeconds: 0, precision: null, recall: null });
  const oracle = policy('oracle', 0, { demand: 0, prefetch: 41_000, refresh: 0 }, { precision: 1, recall: 1, kmsCallsVsOracle: 1, wastedPrefetches: 0 });
  return {
    options: { frontends: 4, balancer: 'random', reuseSeconds: 300, warmupMs: HOUR, kmsLatency: 'lognormal:10,0.5', hopMs: 1, seed: 7, capacity: null },
    policies: {
      reactive: policy('reactive', 0.021, { demand: 46_000, prefetch: 0, refresh: 0 }, { precision: null }),
      'refresh-ahead': policy('refresh-ahead', 0.0042, { demand: 9_000, prefetch: 0, refresh: 51_000 }, { precision: null, recall: 0.8 }),
      histogram: policy('histogram', 0.00061, { demand: 1_300, prefetch: 47_000, refresh: 0 }, { recall: 0.971 }),
      oracle,
      none,
    },
    warnings: [],
  };
}

const META = { title: 'PKP trace replay', trace: 'synthetic-24h.csv', generatedAt: '2025-01-02T03:04:05Z', command: 'pkp replay synthetic-24h.csv --policies all' };

test('the report names every policy and shows its figures', () => {
  const result = sample();
  const html = renderReplayReport(result, META);
  assert.match(html, /^<!DOCTYPE html>/);
  for (const name of Object.keys(result.policies)) assert.ok(html.includes(`>${name}</td>`), `row for ${name}`);
  const hist = result.policies.histogram!;
  assert.ok(html.includes(`<td>${new Intl.NumberFormat('en-US').format(hist.requests)}</td>`), 'histogram requests');
  assert.ok(html.includes(`<td>${formatPercent(hist.demandMissRatio)}</td>`), 'histogram miss ratio');
  assert.ok(html.includes('<td>2,180,000</td>'), 'no-cache KMS calls');
  assert.ok(html.includes('<td>97.1%</td>'), 'histogram recall');
  assert.ok(html.includes('<td>—</td>'), 'null shown as a dash');
  // Header: options and command line.
  for (const text of ['synthetic-24h.csv', 'lognormal:10,0.5', '300 s', '1 h', 'unlimited', 'random', 'pkp replay synthetic-24h.csv --policies all']) {
    assert.ok(html.includes(text), `header shows ${text}`);
  }
});

test('every chart is an inline SVG and each has its explanation', () => {
  const html = renderReplayReport(sample(), META);
  assert.equal(html.match(/<svg\b/g)?.length, 5);
  for (const id of ['tradeoff', 'timeline', 'queue-cdf', 'cost']) {
    const section = html.slice(html.indexOf(`<section id="${id}">`));
    assert.ok(html.includes(`<section id="${id}">`), id);
    assert.match(section.slice(0, section.indexOf('</section>')), /<svg[\s\S]*<\/svg>[\s\S]*<p class="read">\S/);
  }
  // The trade-off labels each point; the oracle's zero sits on the log axis's floor, labelled 0.
  const tradeoff = html.slice(html.indexOf('<section id="tradeoff">'), html.indexOf('<section id="timeline">'));
  assert.ok(tradeoff.includes('oracle  0<'));
  assert.ok(tradeoff.includes('histogram  '));
  assert.ok(tradeoff.includes('(log; 0 drawn at the bottom)'));
  assert.match(tradeoff, />0<\/text>/);
  // Stacked KMS bars carry the three reasons in the legend.
  const cost = html.slice(html.indexOf('<section id="cost">'));
  for (const reason of ['demand', 'prefetch', 'refresh']) assert.ok(cost.includes(`>${reason}</text>`), reason);
  // Cause colours are not policy colours.
  const policyHues = new Set(policyColors([...POLICY_NAMES, 'pkp']).values());
  for (const color of Object.values(REASON_COLORS)) assert.ok(!policyHues.has(color), color);
});

test('a sweep draws pkp as a curve with every budget labelled, and lists each point in the table', () => {
  const base = sample();
  const pkp = { ...base.policies.histogram!, policy: 'pkp' };
  const sweep = [0, 0.1, 0.4].map((x, i) => ({ maxKmsOverhead: x, result: { ...pkp, demandMisses: 300 - 100 * i, kmsCallsVsOracle: 1.02 + 0.1 * i } }));
  const html = renderReplayReport({ ...base, sweep }, META);
  const tradeoff = html.slice(html.indexOf('<section id="tradeoff">'), html.indexOf('<section id="timeline">'));
  for (const p of sweep) assert.ok(tradeoff.includes(`>${p.maxKmsOverhead}: ${p.result.demandMisses}</text>`), String(p.maxKmsOverhead));
  assert.ok(tradeoff.includes('KMS calls ÷ oracle'));
  assert.ok(!tradeoff.includes('>none '), 'no cache is left out of the trade-off');
  for (const p of sweep) assert.ok(html.includes(`pkp @${p.maxKmsOverhead}</td>`));
});

test('the idle-price baseline at several prices is one curve labelled by price, in colours pkp does not use', () => {
  const base = sample();
  const priced = [8, 2, 0.5].map((lambda, i) => [`idle-price@${lambda}`, { ...base.policies.histogram!, policy: `idle-price@${lambda}`, demandMisses: 400 - 100 * i, kmsCallsVsOracle: 1.05 + 0.05 * i }] as const);
  const result = { ...base, policies: { ...base.policies, ...Object.fromEntries(priced) } };
  const html = renderReplayReport(result, META);
  const tradeoff = html.slice(html.indexOf('<section id="tradeoff">'), html.indexOf('<section id="timeline">'));
  for (const [name, r] of priced) assert.ok(tradeoff.includes(`>λ${name.slice('idle-price@'.length)}: ${r.demandMisses}</text>`), name);
  assert.ok(tradeoff.includes('idle-price (λ)'));
  const colors = policyColors(['pkp', ...priced.map(([name]) => name)]);
  assert.equal(new Set(colors.values()).size, 4, 'pkp and each price have colours of their own');
});

test('the page loads nothing from elsewhere and needs no script', () => {
  const html = renderReplayReport(sample(), META);
  assert.doesNotMatch(html, /\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
  assert.doesNotMatch(html, /url\(\s*["']?\s*(?:https?:)?\/\//i);
  assert.doesNotMatch(html, /@import/i);
  assert.doesNotMatch(html, /<script|<link|<iframe|<img/i);
});

test('a hostile trace name, title or command is escaped', () => {
  const hostile = '<script>alert("x")</script>';
  const result = sample();
  result.policies['<img src=x onerror=alert(1)>'] = policy('evil', 0.1, { demand: 5, prefetch: 0, refresh: 0 });
  const html = renderReplayReport(result, { title: hostile, trace: `${hostile}.csv`, generatedAt: '&now', command: `pkp replay '${hostile}'` });
  assert.doesNotMatch(html, /<script|<img/i);
  assert.ok(html.includes('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;.csv'));
  assert.ok(html.includes('&#38;now'));
});

test('an empty replay still renders a page', () => {
  const html = renderReplayReport({ ...sample(), policies: {} }, { title: 't', trace: 'empty', generatedAt: 'now' });
  assert.ok(html.includes('No policy was replayed.'));
  assert.doesNotMatch(html, /<svg/);
});

test('axes go log only past two decades, with zeros on a labelled floor', () => {
  assert.deepEqual(planAxis([0.2, 0.5, 1]), { log: false, min: 0, floor: null });
  assert.deepEqual(planAxis([0, 0]), { log: false, floor: null });
  assert.equal(planAxis([41_000, 60_000, 2_180_000]).log, false);
  assert.equal(planAxis([41_000, 60_000, 2_180_000], 1).log, true);
  assert.deepEqual(planAxis([1, 0.021, 0.00061]), { log: true, min: 1e-4, max: 1, floor: null });
  const withZero = planAxis([1, 0.021, 0.00061, 0]);
  assert.equal(withZero.log, true);
  assert.equal(withZero.min, 1e-5);
  assert.equal(withZero.floor, withZero.min);
});

test('CDF points are sorted, thinned, and end at 100%', () => {
  const r = policy('x', 0.1, { demand: 1, prefetch: 0, refresh: 0 });
  const points = cdfPoints(r);
  assert.ok(points.length <= 401);
  assert.deepEqual(points.at(-1)![1], 1);
  for (let i = 1; i < points.length; i++) assert.ok(points[i]![0] >= points[i - 1]![0] && points[i]![1] > points[i - 1]![1]);
  const small = cdfPoints({ ...r, perQueue: [{ queue: 'a', requests: 4, misses: 1 }, { queue: 'b', requests: 2, misses: 0 }, { queue: 'c', requests: 0, misses: 0 }] });
  assert.deepEqual(small, [[0, 0.5], [0.25, 1]]);
});

test('the timeline origin is the first measured bucket less the warm-up', () => {
  assert.equal(timelineOrigin(Object.entries(sample().policies), HOUR), 0);
  assert.equal(timelineOrigin([], HOUR), 0);
});

test('numbers stay readable', () => {
  assert.equal(formatSig(0.000612), '0.000612');
  assert.equal(formatSig(12.34), '12.3');
  assert.equal(formatSig(5), '5');
  assert.equal(formatSig(123_456.7), '123,457');
  assert.equal(formatSig(null), '—');
  assert.equal(formatSig(Number.NaN), '—');
  assert.equal(formatPercent(0.021), '2.1%');
  assert.equal(formatPercent(-0.05), '-5%');
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;');
});

test('writes a sample report to /tmp/report-sample.html', () => {
  const html = renderReplayReport(sample(), META);
  writeFileSync('/tmp/report-sample.html', html);
  assert.ok(html.length > 10_000);
});

test('warnings about the measured window are shown, escaped', () => {
  const html = renderReplayReport({ ...sample(), warnings: ['the warm-up (1.00 h) is not shorter than the trace <0.1 h>'] }, META);
  assert.match(html, /<p class="warning">Warning: the warm-up \(1\.00 h\) is not shorter than the trace &#60;0\.1 h&#62;<\/p>/);
});

test('point labels are placed apart: crowded points get free sides or farther places, inside the chart', () => {
  const texts = ['0: 879', '0.02: 783', '0.05: 540', '0.1: 215'];
  // Four points a few pixels apart, as a sweep's first budgets are, and one near the right edge.
  const points = [
    ...texts.map((text, i) => ({ px: 116 + 20 * i, py: 142 + 6 * i, text, sides: ['top', 'bottom', 'right', 'left'] as const })),
    { px: 895, py: 200, text: 'histogram  75', sides: ['right', 'left', 'top', 'bottom'] as const },
  ];
  const area = { x: 0, y: 30, w: 900, h: 430 };
  const places = placeLabels(points, area);
  const box = (i: number) => {
    const p = points[i]!;
    const w = p.text.length * 7.5;
    const gap = 11 + places[i]!.farther;
    switch (places[i]!.side) {
      case 'top': return { x: p.px - w / 2, y: p.py - gap - 16, w, h: 16 };
      case 'bottom': return { x: p.px - w / 2, y: p.py + gap, w, h: 16 };
      case 'right': return { x: p.px + gap, y: p.py - 8, w, h: 16 };
      case 'left': return { x: p.px - gap - w, y: p.py - 8, w, h: 16 };
    }
  };
  for (let i = 0; i < points.length; i++) {
    const a = box(i);
    assert.ok(a.x >= 0 && a.y >= 30 && a.x + a.w <= 900 && a.y + a.h <= 460, `label ${i} inside the chart`);
    for (let j = 0; j < i; j++) {
      const b = box(j);
      assert.ok(!(a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h), `labels ${j} and ${i} apart`);
    }
  }
  assert.equal(places[4]!.side, 'left', 'no room on the right at the edge');
  // Nowhere free (a point boxed in by others' symbols on every side, far out too): the preferred side.
  const boxed = placeLabels([{ px: 50, py: 50, text: 'x'.repeat(200), sides: ['top', 'bottom'] }], area);
  assert.deepEqual(boxed, [{ side: 'top', farther: 0 }]);
});

test('a line chart keeps room above its plot for every row its legend wraps to', () => {
  const few = legendTop(['reactive', 'pkp'], 760);
  const many = legendTop(['reactive', 'refresh-ahead', 'histogram', 'idle-price@8', 'idle-price@2', 'idle-price@0.75', 'idle-price@0.25', 'oracle'], 760);
  assert.equal(few, 40, 'one row');
  assert.equal(many, 64, 'eight policies wrap to a second row');
  assert.ok(legendTop(Array.from({ length: 30 }, (_, i) => `policy-${i}`), 760) > many, 'more rows, more room');
});
