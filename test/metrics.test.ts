// Prometheus conventions: bounded per-queue labels, no prefetcher series without a prefetcher.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics } from '../src/core/metrics.ts';
import { startService } from '../src/service.ts';

test('per-queue depth gauges cover only the N deepest queues', async () => {
  const metrics = createMetrics({ queueMetrics: 2 });
  const depths = Array.from({ length: 50 }, (_, i) => ({ queue: `q${i}`, visible: i, inFlight: i % 3, delayed: 0 }));
  metrics.setQueueSource({ depths: async () => depths });
  const text = await metrics.registry.metrics();
  const queues = new Set([...text.matchAll(/^pkp_queue_messages\{queue="([^"]+)"/gm)].map((m) => m[1]));
  assert.deepEqual([...queues].sort(), ['q47', 'q49']); // by visible + in flight + delayed: 49+1, 47+2 (q48: 48)
  assert.match(text, /^pkp_queue_messages\{queue="q49",state="in_flight"\} 1$/m);
  assert.match(text, /^pkp_queues 50$/m);
  depths.splice(48);
  const after = await metrics.registry.metrics();
  assert.doesNotMatch(after, /queue="q49"/, 'a queue that left the top N leaves the output');
  assert.match(after, /queue="q47"/);
});

test('without a prefetcher no prefetcher series is exported; build info and code labels are', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-metrics-'));
  const service = await startService({ dataDir, port: 0, adminPort: 0, credentials: [{ accessKeyId: 'METRICS1', secretAccessKey: 'metrics-secret' }], prefetch: false });
  try {
    await fetch(service.endpoint, { method: 'POST', body: '{}' }); // unsigned: 400 or 403
    const text = await (await fetch(`${service.adminEndpoint}/metrics`, { headers: { authorization: `Bearer ${service.adminToken}` } })).text();
    assert.doesNotMatch(text, /^pkp_prefetch(es|_outcomes|_threshold|er_streams|_fanouts|_backlog)/m);
    assert.match(text, /^pkp_build_info\{version="[^"]+",node_version="v20[^"]*"\} 1$/m);
    assert.match(text, /^pkp_sqs_requests_total\{action="Unknown",code="4\d\d"\} 1$/m);
  } finally {
    await service.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('every series the Grafana dashboard queries is exported by a running service', async () => {
  const { readFileSync } = await import('node:fs');
  const dashboard = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'docs/grafana/pkp-dashboard.json'), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
  const wanted = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\b(pkp_[a-z_]+)/g)].map((m) => m[1]!))));
  assert.ok(wanted.size >= 10);
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-metrics-'));
  const service = await startService({ dataDir, port: 0, adminPort: 0, credentials: [{ accessKeyId: 'METRICS1', secretAccessKey: 'metrics-secret' }] });
  try {
    const text = await (await fetch(`${service.adminEndpoint}/metrics`, { headers: { authorization: `Bearer ${service.adminToken}` } })).text();
    const families = new Set([...text.matchAll(/^# TYPE (\S+) (\w+)/gm)].flatMap((m) => (m[2] === 'histogram' ? [`${m[1]}_bucket`] : [m[1]!])));
    for (const name of wanted) assert.ok(families.has(name), `${name} is exported`);
    // And docs/operations.md lists every pkp_ family.
    const doc = readFileSync(join(import.meta.dirname, '..', 'docs/operations.md'), 'utf8');
    for (const [, name] of text.matchAll(/^# TYPE (pkp_\S+)/gm)) assert.ok(doc.includes(`| \`${name}\` |`), `${name} documented`);
  } finally {
    await service.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a scrape and a dashboard snapshot count every queue with one grouped store query each, not one per queue', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-metrics-'));
  const service = await startService({ dataDir, port: 0, adminPort: 0, credentials: [{ accessKeyId: 'METRICS1', secretAccessKey: 'metrics-secret' }], prefetch: false });
  const auth = { authorization: `Bearer ${service.adminToken}` };
  const scrape = async (): Promise<string> => (await fetch(`${service.adminEndpoint}/metrics`, { headers: auth })).text();
  const ops = (text: string, op: string): number => Number(text.match(new RegExp(`^pkp_store_operations_total\\{op="${op}"\\} (\\d+)$`, 'm'))?.[1] ?? 0);
  try {
    for (let i = 0; i < 30; i++) await service.store.createQueue(`counted-${i}`, {}, 0);
    const first = await scrape();
    const second = await scrape();
    assert.match(second, /^pkp_queues 30$/m);
    assert.equal(ops(second, 'countsByQueue') - ops(first, 'countsByQueue'), 1, 'one grouped count a scrape');
    assert.equal(ops(second, 'counts'), 0, 'no count query per queue');
    const snapshot = await (await fetch(`${service.adminEndpoint}/api/stats`, { headers: auth })).json() as { queueCount: number };
    assert.equal(snapshot.queueCount, 30);
    const third = await scrape();
    assert.equal(ops(third, 'countsByQueue') - ops(second, 'countsByQueue'), 2, 'the snapshot and this scrape, one each');
    assert.equal(ops(third, 'counts'), 0);
  } finally {
    await service.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
