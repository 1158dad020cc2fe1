// The dashboard's data and, in a real Chromium, its page, against a live workload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateQueueCommand, DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { startService, type RunningService } from '../src/service.ts';

const ROOT = join(import.meta.dirname, '..');
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');
const CRED = { accessKeyId: 'DASHKEY', secretAccessKey: 'dashboard-secret-1' };
const SECRET_BODY = 'body-that-must-never-show-7f3a';
const SECRET_ATTRIBUTE = 'attribute-value-never-shown-91c2';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

async function withService(run: (service: RunningService, sqs: SQSClient) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-dash-'));
  const service = await startService({ dataDir, port: 0, adminPort: 0, frontends: 2, credentials: [CRED] });
  const sqs = new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials: CRED });
  try {
    await run(service, sqs);
  } finally {
    sqs.destroy();
    await service.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Sends and receives on two queues until stopped, leaving a backlog on one. */
function workload(sqs: SQSClient): { stop: () => Promise<void> } {
  let running = true;
  const loop = async (): Promise<void> => {
    const a = (await sqs.send(new CreateQueueCommand({ QueueName: 'dash-busy' }))).QueueUrl!;
    const b = (await sqs.send(new CreateQueueCommand({ QueueName: 'dash-backlog' }))).QueueUrl!;
    while (running) {
      await sqs.send(new SendMessageCommand({ QueueUrl: a, MessageBody: SECRET_BODY, MessageAttributes: { tag: { DataType: 'String', StringValue: SECRET_ATTRIBUTE } } }));
      await sqs.send(new SendMessageCommand({ QueueUrl: b, MessageBody: SECRET_BODY }));
      const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: a, MaxNumberOfMessages: 10 }));
      for (const m of got.Messages ?? []) await sqs.send(new DeleteMessageCommand({ QueueUrl: a, ReceiptHandle: m.ReceiptHandle! }));
      await sleep(20);
    }
  };
  const done = loop();
  return { stop: async () => { running = false; await done; } };
}

test('/api/stats: queue depths, per-node caches, prefetcher and series; ids and counts only', async () => {
  await withService(async (service, sqs) => {
    const load = workload(sqs);
    await sleep(1500);
    await load.stop();
    await service.stats.sample();
    const response = await fetch(`${service.adminEndpoint}/api/stats`, { headers: { authorization: `Bearer ${service.adminToken}` } });
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.ok(!text.includes(SECRET_BODY) && !text.includes(SECRET_ATTRIBUTE), 'no body or attribute value');
    assert.ok(!text.includes(CRED.secretAccessKey));
    const s = JSON.parse(text) as {
      queues: { name: string; visible: number; inFlight: number; sendPerSecond: number }[];
      nodes: { node: string; entries: number; hitRatio1m: number | null }[];
      prefetcher: { on: boolean; threshold: number };
      series: { t: number[]; requestsPerSecond: number[] };
    };
    const backlog = s.queues.find((q) => q.name === 'dash-backlog')!;
    assert.ok(backlog.visible > 0, 'the backlog queue shows its depth');
    assert.equal(s.queues[0]!.name, 'dash-backlog', 'deepest first');
    assert.ok(s.queues.find((q) => q.name === 'dash-busy')!.sendPerSecond > 0);
    assert.deepEqual(s.nodes.map((n) => n.node), ['fe-1', 'fe-2']);
    assert.ok(s.nodes.some((n) => n.entries > 0 && n.hitRatio1m !== null));
    assert.equal(s.prefetcher.on, true);
    assert.ok(s.series.t.length >= 1 && s.series.requestsPerSecond.some((x) => x > 0));
  });
});

test('the dashboard in Chromium: numbers move, charts render, no console error', { timeout: 90_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    // CI installs it and says so (PKP_REQUIRE_SERVICES=1): there a missing browser is a failure, not a skip.
    if (process.env.PKP_REQUIRE_SERVICES === '1') assert.fail(`${CHROMIUM} is missing`);
    t.skip(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the browser test`);
    return;
  }
  const { chromium } = await import('playwright-core');
  await withService(async (service, sqs) => {
    const load = workload(sqs);
    const profile = mkdtempSync(join(tmpdir(), 'pkp-chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
    });
    try {
      const page = browser.pages()[0] ?? await browser.newPage();
      const problems: string[] = [];
      page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
      page.on('pageerror', (e) => problems.push(e.message));
      // Nothing leaves the machine: every asset is served by the admin port.
      const offsite: string[] = [];
      page.on('request', (r) => { if (!r.url().startsWith(service.adminEndpoint!)) offsite.push(r.url()); });

      await page.goto(`${service.adminEndpoint}/?token=${service.adminToken}`);
      assert.equal(new URL(page.url()).search, '', 'the token left the address bar');
      await page.waitForFunction(() => document.querySelectorAll('#queues tbody tr').length >= 2, null, { timeout: 20_000 });
      const requests = async (): Promise<number> => Number(await page.locator('#queues tbody tr', { hasText: 'dash-backlog' }).locator('td').nth(1).textContent());
      const first = await requests();
      await page.waitForFunction((n) => {
        const row = [...document.querySelectorAll('#queues tbody tr')].find((r) => r.textContent!.includes('dash-backlog'));
        return row !== undefined && Number(row.children[1]!.textContent) > n;
      }, first, { timeout: 20_000 });
      assert.ok((await requests()) > first, 'the backlog depth moved');
      // Charts: uPlot drew canvases and has points on the request-rate line.
      await page.waitForFunction(() => document.querySelectorAll('.uplot canvas').length === 3, null, { timeout: 10_000 });
      await page.waitForFunction(() => document.querySelectorAll('#nodes tbody tr').length === 2, null, { timeout: 10_000 });
      await sleep(2500);
      const legend = await page.locator('#chart-rps .u-legend').count();
      assert.equal(legend, 1);
      const nodes = await page.locator('#nodes tbody tr').allTextContents();
      assert.ok(nodes.some((row) => row.includes('%')), `a hit ratio is shown: ${nodes.join(' | ')}`);
      const html = await page.content();
      assert.ok(!html.includes(SECRET_BODY) && !html.includes(SECRET_ATTRIBUTE));
      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, 'dashboard.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 10_000, 'a screenshot was written');
      assert.deepEqual(problems, [], 'no console error');
      assert.deepEqual(offsite, [], 'no request left the admin port');
    } finally {
      await browser.close();
      await load.stop();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
