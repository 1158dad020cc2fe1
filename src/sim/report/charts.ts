/**
 * The replay report's charts, rendered to SVG strings in Node with ECharts' server-side
 * renderer, so the page needs no script and no network to show them.
 */
import { init, type EChartsOption } from 'echarts';
import type { KeyReason } from '../../kms/types.ts';
import { idlePriceLambda } from '../policies/idle-price.ts';
import type { PolicyResult } from '../simulator.ts';
import { formatPercent, formatShortCount, formatSig } from './format.ts';
import { CHAR_PX, placeLabels, type Place } from './label-places.ts';

/** Known policies keep their colour from report to report; others take the rest in turn. */
const KNOWN_COLORS: Record<string, string> = {
  reactive: '#d9534f',
  'refresh-ahead': '#f0a30a',
  histogram: '#2b7bba',
  pkp: '#3aa357',
  oracle: '#222222',
  none: '#9a9a9a',
};
/** The idle-price baseline at its several prices: shades of one hue, one per price. */
const IDLE_PRICE_COLORS = ['#8e5ec4', '#5e3a8c', '#b48ee0', '#3f2163', '#d2b8f0'];
const SPARE_COLORS = ['#17a2b8', '#c2185b', '#795548', '#607d8b', '#9ccc65'];

export function policyColors(names: string[]): Map<string, string> {
  const colors = new Map<string, string>();
  let spare = 0;
  let shade = 0;
  for (const name of names) {
    const color = KNOWN_COLORS[name]
      ?? (idlePriceLambda(name) !== undefined ? IDLE_PRICE_COLORS[shade++ % IDLE_PRICE_COLORS.length] : SPARE_COLORS[spare++ % SPARE_COLORS.length]);
    colors.set(name, color!);
  }
  return colors;
}

/** Causes of KMS calls: hues no policy uses, so a cause is never read as a policy. */
export const REASON_COLORS: Record<KeyReason, string> = { demand: '#8c564b', prefetch: '#bcbd22', refresh: '#e377c2' };
const HOUR_MS = 3_600_000;

/**
 * How to scale an axis over `values`: log when the positive values span more than `decades`
 * (miss ratios run from 100% for no cache down to fractions of a percent), else linear from 0.
 * Zeros cannot sit on a log axis, so they are drawn at `floor`, a decade below the smallest
 * positive value, and that tick is labelled 0.
 */
export interface AxisPlan {
  log: boolean;
  min?: number;
  max?: number;
  floor: number | null;
}

export function planAxis(values: number[], decades = 2): AxisPlan {
  const positive = values.filter((v) => v > 0 && Number.isFinite(v));
  if (positive.length === 0) return { log: false, floor: null };
  const lo = Math.min(...positive);
  const hi = Math.max(...positive);
  if (hi / lo <= 10 ** decades) return { log: false, min: 0, floor: null };
  const hasZero = values.some((v) => v <= 0);
  const bottom = Math.floor(Math.log10(lo)) - (hasZero ? 1 : 0);
  const min = pow10(bottom);
  const max = pow10(Math.max(bottom + 1, Math.ceil(Math.log10(hi))));
  return { log: true, min, max, floor: hasZero ? min : null };
}

/** 10^e without the float error of 10 ** -4 (0.00009999…), which would spoil the '0.01%' tick. */
function pow10(e: number): number {
  return e < 0 ? 1 / 10 ** -e : 10 ** e;
}

/** Where a value is drawn under a plan (zeros go to the floor on a log axis). */
function place(plan: AxisPlan, value: number): number {
  return plan.floor !== null && value <= 0 ? plan.floor : value;
}

function isFloor(plan: AxisPlan, value: number): boolean {
  return plan.floor !== null && value <= plan.floor * (1 + 1e-9);
}

function axisFor(plan: AxisPlan, name: string, label: (v: number) => string) {
  return {
    type: plan.log ? ('log' as const) : ('value' as const),
    ...(plan.log ? { logBase: 10 } : {}),
    min: plan.min,
    max: plan.max,
    name: plan.log ? `${name} (log${plan.floor !== null ? '; 0 drawn at the bottom' : ''})` : name,
    nameLocation: 'middle' as const,
    nameGap: 34,
    axisLabel: { formatter: (v: number) => (isFloor(plan, v) ? '0' : label(v)) },
    splitLine: { show: true },
  };
}

const BASE: EChartsOption = {
  animation: false,
  backgroundColor: '#ffffff',
  textStyle: { fontFamily: 'system-ui, sans-serif' },
};

function renderSvg(option: EChartsOption, width: number, height: number): string {
  const chart = init(null, null, { renderer: 'svg', ssr: true, width, height });
  try {
    chart.setOption({ ...BASE, ...option });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

export type Policies = [name: string, result: PolicyResult][];

/** A wide gap between legend items: ECharts estimates text widths in Node, narrower than a browser draws them. */
const LEGEND = { top: 0, itemGap: 24 };
/** The trade-off chart's size and plot margins (px); `legend` is the band its legend takes at the top. */
const TRADEOFF = { width: 900, height: 460, left: 80, right: 150, top: 50, bottom: 60, legend: 30 };

/** A point of pkp's trade-off curve: its budget and what it did. */
export interface CurvePoint {
  maxKmsOverhead: number;
  result: PolicyResult;
}

/**
 * Demand misses (log) against KMS calls ÷ the oracle's: one labelled point per policy and pkp's
 * sweep as a curve. No cache is left out (hundreds of times the calls would crush the rest); the
 * axes start near the data and the labels sit inside the plot, with room kept on the right.
 */
export function tradeoffChart(policies: Policies, colors: Map<string, string>, curve: CurvePoint[] = []): string {
  const shown = policies.filter(([name]) => name !== 'none');
  const byOracle = [...shown.map(([, r]) => r), ...curve.map((p) => p.result)].every((r) => r.kmsCallsVsOracle !== null);
  const x = (r: PolicyResult): number => (byOracle ? r.kmsCallsVsOracle! : r.kmsCalls);
  const all = [...shown.map(([, r]) => r), ...curve.map((p) => p.result)];
  const xs = all.map(x);
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  const pad = Math.max((hi - lo) * 0.06, byOracle ? 0.005 : 1);
  const misses = all.map((r) => r.demandMisses);
  const positive = misses.filter((m) => m > 0);
  // Zero misses (the oracle) go on a labelled floor a decade below the fewest positive.
  const floor = positive.length > 0 ? pow10(Math.floor(Math.log10(Math.min(...positive))) - 1) : 0.1;
  const top = positive.length > 0 ? pow10(Math.ceil(Math.log10(Math.max(...positive) * 1.01))) : 10;
  const y = (m: number): number => (m > 0 ? m : floor);
  const pkpColor = colors.get('pkp') ?? KNOWN_COLORS.pkp!;
  // The idle-price baseline at several prices is one curve, each point labelled with its price.
  const priced = shown.filter(([name]) => idlePriceLambda(name) !== undefined).sort((a, b) => x(a[1]) - x(b[1]));
  const single = priced.length > 1 ? shown.filter(([name]) => idlePriceLambda(name) === undefined) : shown;
  // Each label's side, chosen in the chart's pixels so that neighbouring labels stay apart: pkp's
  // curve first, then the priced baseline, then the single policies.
  const [xMin, xMax] = [Math.max(0, lo - pad), hi + pad];
  const plot = { x: TRADEOFF.left, y: TRADEOFF.top, w: TRADEOFF.width - TRADEOFF.left - TRADEOFF.right, h: TRADEOFF.height - TRADEOFF.top - TRADEOFF.bottom };
  const at = (r: PolicyResult) => ({
    px: plot.x + ((x(r) - xMin) / (xMax - xMin || 1)) * plot.w,
    py: plot.y + plot.h - ((Math.log10(y(r.demandMisses)) - Math.log10(floor)) / (Math.log10(top) - Math.log10(floor) || 1)) * plot.h,
  });
  const curveTexts = curve.map((p) => `${p.maxKmsOverhead}: ${formatShortCount(p.result.demandMisses)}`);
  const pricedTexts = priced.map(([name, r]) => `λ${idlePriceLambda(name)}: ${formatShortCount(r.demandMisses)}`);
  const singleTexts = single.map(([name, r]) => `${name}  ${formatShortCount(r.demandMisses)}`);
  const sides = placeLabels([
    ...curve.map((p, i) => ({ ...at(p.result), text: curveTexts[i]!, sides: ['top', 'bottom', 'right', 'left'] as const })),
    ...priced.map(([, r], i) => ({ ...at(r), text: pricedTexts[i]!, sides: ['bottom', 'left', 'right', 'top'] as const })),
    ...single.map(([, r], i) => ({ ...at(r), text: singleTexts[i]!, sides: ['right', 'left', 'top', 'bottom'] as const })),
  ], { x: 0, y: TRADEOFF.legend, w: TRADEOFF.width, h: TRADEOFF.height - TRADEOFF.legend });
  const curveSides = sides.slice(0, curve.length);
  const pricedSides = sides.slice(curve.length, curve.length + priced.length);
  const singleSides = sides.slice(curve.length + priced.length);
  const labelled = (text: string, place: Place) => ({ show: true, position: place.side, distance: 5 + place.farther, color: '#222', formatter: text });
  const series: NonNullable<EChartsOption['series']> = single.map(([name, r], i) => ({
    type: 'scatter' as const,
    name,
    symbolSize: 12,
    itemStyle: { color: colors.get(name) },
    data: [{ value: [x(r), y(r.demandMisses)], label: labelled(singleTexts[i]!, singleSides[i]!) }],
  }));
  if (priced.length > 1) {
    const color = colors.get(priced[0]![0]) ?? IDLE_PRICE_COLORS[0];
    series.push({
      type: 'line' as const,
      name: 'idle-price (λ)',
      symbolSize: 8,
      symbol: 'diamond',
      itemStyle: { color },
      lineStyle: { width: 2, color, type: 'dashed' },
      data: priced.map(([, r], i) => ({ value: [x(r), y(r.demandMisses)], label: labelled(pricedTexts[i]!, pricedSides[i]!) })),
    });
  }
  if (curve.length > 0) {
    series.push({
      type: 'line' as const,
      name: 'pkp (sweep)',
      symbolSize: 8,
      itemStyle: { color: pkpColor },
      lineStyle: { width: 2, color: pkpColor },
      data: curve.map((p, i) => ({ value: [x(p.result), y(p.result.demandMisses)], label: labelled(curveTexts[i]!, curveSides[i]!) })),
    });
  }
  return renderSvg(
    {
      legend: LEGEND,
      grid: { left: TRADEOFF.left, right: TRADEOFF.right, top: TRADEOFF.top, bottom: TRADEOFF.bottom },
      xAxis: {
        type: 'value', min: xMin, max: xMax, name: byOracle ? "KMS calls ÷ oracle's" : 'KMS calls',
        nameLocation: 'middle', nameGap: 34, axisLabel: { formatter: (v: number) => formatSig(v) }, splitLine: { show: true },
      },
      yAxis: {
        type: 'log', logBase: 10, min: floor, max: top, name: 'demand misses (log; 0 drawn at the bottom)', nameLocation: 'middle', nameGap: 58,
        axisLabel: { formatter: (v: number) => (v <= floor * (1 + 1e-9) ? '0' : formatShortCount(v)) }, splitLine: { show: true },
      },
      series,
    },
    TRADEOFF.width,
    TRADEOFF.height,
  );
}

const LINE_WIDTH = 760;

/**
 * The plot's top margin under a legend of these names: room for as many rows as the legend
 * wraps to (each item estimated as generously as the labels: its text, the icon and the gap).
 */
export function legendTop(names: readonly string[], width: number): number {
  let rows = 1;
  let used = 0;
  for (const name of names) {
    const w = 25 + 5 + name.length * CHAR_PX + LEGEND.itemGap;
    if (used > 0 && used + w > width - 20) {
      rows++;
      used = 0;
    }
    used += w;
  }
  return 16 + 24 * rows;
}

/** Timeline buckets carry absolute trace time; the trace start is the first measured bucket less the warm-up. */
export function timelineOrigin(policies: Policies, warmupMs: number): number {
  let first = Infinity;
  for (const [, r] of policies) if (r.timeline.length > 0) first = Math.min(first, r.timeline[0]!.t);
  return Number.isFinite(first) ? Math.max(0, first - warmupMs) : 0;
}

/** Demand-miss ratio per timeline bucket, one line per policy. */
export function timelineChart(policies: Policies, colors: Map<string, string>, warmupMs: number): string {
  const origin = timelineOrigin(policies, warmupMs);
  const lines = policies.map(([name, r]) => ({
    name,
    points: r.timeline.filter((p) => p.requests > 0).map((p) => [(p.t - origin) / HOUR_MS, p.misses / p.requests] as [number, number]),
  }));
  const yPlan = planAxis(lines.flatMap((l) => l.points.map((p) => p[1])));
  return renderSvg(
    {
      legend: LEGEND,
      grid: { left: 80, right: 30, top: legendTop(lines.map((l) => l.name), LINE_WIDTH), bottom: 60 },
      xAxis: { type: 'value', min: 'dataMin', max: 'dataMax', name: 'hours from trace start', nameLocation: 'middle', nameGap: 34, axisLabel: { formatter: (v: number) => formatSig(v) } },
      yAxis: { ...axisFor(yPlan, 'demand-miss ratio', (v) => formatPercent(v, 2)), nameGap: 58 },
      series: lines.map((l) => ({
        type: 'line' as const,
        name: l.name,
        showSymbol: false,
        lineStyle: { width: 1.5 },
        itemStyle: { color: colors.get(l.name) },
        data: l.points.map(([x, y]) => [x, place(yPlan, y)]),
      })),
    },
    LINE_WIDTH,
    400,
  );
}

/** At most this many points per CDF line: enough for a smooth curve, small enough to keep the SVG light. */
const CDF_POINTS = 400;

/** Sorted per-queue miss ratios as (ratio, share of queues at or below it), thinned to CDF_POINTS. */
export function cdfPoints(r: PolicyResult): [number, number][] {
  const ratios = r.perQueue.filter((q) => q.requests > 0).map((q) => q.misses / q.requests).sort((a, b) => a - b);
  const n = ratios.length;
  const step = Math.max(1, n / CDF_POINTS);
  const points: [number, number][] = [];
  for (let i = 0; i < n; i += step) {
    const k = Math.floor(i);
    points.push([ratios[k]!, (k + 1) / n]);
  }
  // Thinning must keep the top of the curve.
  if (n > 0 && points[points.length - 1]![1] !== 1) points.push([ratios[n - 1]!, 1]);
  return points;
}

/** Per-queue miss-ratio CDF, one line per policy. */
export function queueCdfChart(policies: Policies, colors: Map<string, string>): string {
  const lines = policies.map(([name, r]) => ({ name, points: cdfPoints(r) }));
  const xPlan = planAxis(lines.flatMap((l) => l.points.map((p) => p[0])));
  return renderSvg(
    {
      legend: LEGEND,
      grid: { left: 70, right: 30, top: legendTop(lines.map((l) => l.name), LINE_WIDTH), bottom: 60 },
      xAxis: axisFor(xPlan, 'demand-miss ratio of a queue', (v) => formatPercent(v, 2)),
      yAxis: { type: 'value', min: 0, max: 1, name: 'share of queues', nameLocation: 'middle', nameGap: 48, axisLabel: { formatter: (v: number) => formatPercent(v) } },
      series: lines.map((l) => ({
        type: 'line' as const,
        name: l.name,
        step: 'end' as const,
        showSymbol: false,
        lineStyle: { width: 1.5 },
        itemStyle: { color: colors.get(l.name) },
        data: l.points.map(([x, y]) => [place(xPlan, x), y]),
      })),
    },
    LINE_WIDTH,
    400,
  );
}

function barHeight(count: number): number {
  return 90 + 34 * Math.max(1, count);
}

/** Key-resident time per policy (key·hours), horizontal bars. */
export function residentChart(policies: Policies, colors: Map<string, string>): string {
  const names = policies.map(([name]) => name);
  return renderSvg(
    {
      grid: { left: 110, right: 70, top: 20, bottom: 50 },
      xAxis: { type: 'value', name: 'key·hours', nameLocation: 'middle', nameGap: 30, axisLabel: { formatter: (v: number) => formatShortCount(v) } },
      yAxis: { type: 'category', data: names, inverse: true },
      series: [
        {
          type: 'bar',
          barMaxWidth: 22,
          label: { show: true, position: 'right', formatter: (p: { value: unknown }) => formatSig(Number(p.value)) },
          data: policies.map(([name, r]) => ({ value: r.keyResidentSeconds / 3600, itemStyle: { color: colors.get(name) } })),
        },
      ],
    },
    440,
    barHeight(names.length),
  );
}

/** KMS calls per policy, stacked by why they were made. */
export function kmsReasonChart(policies: Policies): string {
  const names = policies.map(([name]) => name);
  const reasons: KeyReason[] = ['demand', 'prefetch', 'refresh'];
  return renderSvg(
    {
      legend: { bottom: 0 },
      grid: { left: 110, right: 30, top: 20, bottom: 70 },
      xAxis: { type: 'value', name: 'KMS calls', nameLocation: 'middle', nameGap: 30, axisLabel: { formatter: (v: number) => formatShortCount(v) } },
      yAxis: { type: 'category', data: names, inverse: true },
      series: reasons.map((reason) => ({
        type: 'bar' as const,
        name: reason,
        stack: 'kms',
        barMaxWidth: 22,
        itemStyle: { color: REASON_COLORS[reason] },
        data: policies.map(([, r]) => r.kmsCallsByReason[reason]),
      })),
    },
    440,
    barHeight(names.length) + 20,
  );
}

/** The timeline's bucket width is not in the result; the smallest gap between buckets is it (null if unknown). */
export function timelineBucketMs(policies: Policies): number | null {
  let gap = Infinity;
  for (const [, r] of policies) {
    for (let i = 1; i < r.timeline.length; i++) gap = Math.min(gap, r.timeline[i]!.t - r.timeline[i - 1]!.t);
  }
  return Number.isFinite(gap) && gap > 0 ? gap : null;
}
