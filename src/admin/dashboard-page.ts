/**
 * The dashboard page: one HTML document that polls /api/stats every second and draws with uPlot,
 * served from this process (no CDN: it works offline). Values are put in with textContent only;
 * the script is its own asset, so the page's CSP allows no inline script.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>PKP dashboard</title>
<link rel="stylesheet" href="/assets/uPlot.min.css">
<style>
  body { font: 14px system-ui, sans-serif; margin: 16px 24px; color: #222; }
  h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 6px; }
  table { border-collapse: collapse; } td, th { padding: 3px 10px; text-align: right; border-bottom: 1px solid #ddd; }
  th:first-child, td:first-child { text-align: left; }
  .grid { display: flex; flex-wrap: wrap; gap: 24px; } .muted { color: #777; }
  .kv td:first-child { color: #555; }
  #status.stale { color: #b00; }
</style>
</head>
<body>
<h1>PKP</h1>
<div class="muted">updated <span id="updated">-</span> <span id="status"></span></div>
<div class="grid">
  <div><h2>Key caches per node</h2>
    <table id="nodes"><thead><tr><th>node</th><th>entries</th><th>hit ratio 1 min</th><th>hit ratio 1 h</th></tr></thead><tbody></tbody></table></div>
  <div><h2>Prefetcher</h2><table class="kv" id="prefetcher"><tbody></tbody></table></div>
</div>
<h2>Queues <span class="muted" id="queue-count"></span></h2>
<table id="queues"><thead><tr><th>queue</th><th>visible</th><th>in flight</th><th>delayed</th><th>sends/s</th><th>receives/s</th></tr></thead><tbody></tbody></table>
<div class="grid">
  <div><h2>KMS calls by reason (per second)</h2><div id="chart-kms"></div></div>
  <div><h2>Request latency (ms, 10 s window)</h2><div id="chart-latency"></div></div>
  <div><h2>Requests per second</h2><div id="chart-rps"></div></div>
</div>
<script src="/assets/uPlot.iife.min.js"></script>
<script src="/assets/dashboard.js"></script>
</body>
</html>
`;

/** The page's script, served as /assets/dashboard.js so the page needs no inline script. */
export const DASHBOARD_JS = `'use strict';
const $ = (id) => document.getElementById(id);
const pct = (x) => (x === null || x === undefined ? '-' : (100 * x).toFixed(1) + '%');
const num = (x, d = 0) => (x === null || x === undefined ? '-' : Number(x).toFixed(d));
function rows(tbody, data) {
  const body = tbody.tagName === 'TBODY' ? tbody : tbody.querySelector('tbody');
  body.replaceChildren(...data.map((cells) => {
    const tr = document.createElement('tr');
    for (const c of cells) { const td = document.createElement('td'); td.textContent = String(c); tr.appendChild(td); }
    return tr;
  }));
}
const size = { width: 460, height: 220 };
function chart(id, labels, colors) {
  const series = [{}, ...labels.map((label, i) => ({ label, stroke: colors[i], width: 1.5, spanGaps: true }))];
  return new uPlot({ ...size, series, axes: [{}, { size: 50 }], scales: { x: { time: true } } }, [[], ...labels.map(() => [])], $(id));
}
const charts = {
  kms: chart('chart-kms', ['demand', 'prefetch', 'refresh'], ['#c0392b', '#2980b9', '#27ae60']),
  latency: chart('chart-latency', ['p50', 'p99'], ['#2980b9', '#8e44ad']),
  rps: chart('chart-rps', ['requests/s'], ['#34495e']),
};
async function refresh() {
  try {
    const response = await fetch('/api/stats?seconds=600', { credentials: 'same-origin' });
    if (!response.ok) throw new Error('HTTP ' + response.status);
    const s = await response.json();
    $('updated').textContent = new Date(s.at).toISOString();
    $('status').textContent = ''; $('status').className = '';
    rows($('nodes'), s.nodes.map((n) => [n.node, n.entries, pct(n.hitRatio1m), pct(n.hitRatio1h)]));
    const p = s.prefetcher;
    rows($('prefetcher'), p.on ? [
      ['issued', p.issued], ['used', p.used], ['wasted', p.wasted],
      ['precision (' + p.windowSeconds + ' s)', pct(p.precision)], ['recall (' + p.windowSeconds + ' s)', pct(p.recall)],
      ['threshold', num(p.threshold, 3)],
      ['KMS budget: max overhead', p.kmsBudget.maxOverhead === null ? 'off' : pct(p.kmsBudget.maxOverhead)],
      ['KMS budget: overhead now', pct(p.kmsBudget.overhead)], ['KMS budget: price factor', num(p.kmsBudget.priceFactor, 2)],
    ] : [['prefetcher', 'off']]);
    $('queue-count').textContent = s.queueCount > s.queues.length ? '(deepest ' + s.queues.length + ' of ' + s.queueCount + ')' : '(' + s.queueCount + ')';
    rows($('queues'), s.queues.map((q) => [q.name, q.visible, q.inFlight, q.delayed, num(q.sendPerSecond, 1), num(q.receivePerSecond, 1)]));
    const t = s.series.t;
    charts.kms.setData([t, s.series.kms.demand, s.series.kms.prefetch, s.series.kms.refresh]);
    charts.latency.setData([t, s.series.latencyMs.p50, s.series.latencyMs.p99]);
    charts.rps.setData([t, s.series.requestsPerSecond]);
  } catch (error) {
    $('status').textContent = '(cannot update: ' + error.message + ')'; $('status').className = 'stale';
  }
}
refresh();
setInterval(refresh, 1000);
`;
