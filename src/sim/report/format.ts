/** Text helpers shared by the HTML report and its charts. */

const DASH = '—';

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const grouped = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** Whole number with thousands separators; null or non-finite → '—'. */
export function formatCount(value: number | null): string {
  return value === null || !Number.isFinite(value) ? DASH : grouped.format(value);
}

/**
 * About `digits` significant digits, but never scientific notation and never more than
 * 8 decimals: miss ratios of 0.0004% must stay readable next to 12.3%.
 */
export function formatSig(value: number | null, digits = 3): string {
  if (value === null || !Number.isFinite(value)) return DASH;
  if (value === 0) return '0';
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  if (magnitude >= digits - 1) return grouped.format(value);
  const decimals = Math.min(8, digits - 1 - magnitude);
  // Trailing zeros carry no information here ('5.00' → '5').
  return value.toFixed(decimals).replace(/\.?0+$/, '');
}

/** A ratio (0..1) shown as a percentage. */
export function formatPercent(ratio: number | null, digits = 3): string {
  return ratio === null || !Number.isFinite(ratio) ? DASH : `${formatSig(ratio * 100, digits)}%`;
}

/** Compact count for axis ticks: 1.2k, 3.4M. */
export function formatShortCount(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${formatSig(value / 1e9, 3)}G`;
  if (abs >= 1e6) return `${formatSig(value / 1e6, 3)}M`;
  if (abs >= 1e3) return `${formatSig(value / 1e3, 3)}k`;
  return formatSig(value, 3);
}

/** A duration in ms as the largest unit that keeps it short: '90 s', '1 h', '1.5 h'. */
export function formatDurationMs(ms: number): string {
  if (ms >= 3_600_000) return `${formatSig(ms / 3_600_000)} h`;
  if (ms >= 60_000) return `${formatSig(ms / 60_000)} min`;
  if (ms >= 1000) return `${formatSig(ms / 1000)} s`;
  return `${formatSig(ms)} ms`;
}
