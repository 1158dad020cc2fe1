// Recorded traffic: `pkp up --record` writes what the service sees; `pkp replay --trace` replays it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateQueueCommand, DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { startService } from '../src/service.ts';

const ROOT = join(import.meta.dirname, '..');
const CRED = { accessKeyId: 'RECORDKEY', secretAccessKey: 'record-secret-1' };
const BODY = 'recorded-body-never-written-55e1';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Runs a small workload against a recording service: 2 queues, `n` sends, receives and deletes each. */
async function recordWorkload(dataDir: string, record: { path: string; names?: 'names' | 'pseudonyms'; maxBytes?: number; keep?: number }, n: number) {
  const service = await startService({ dataDir, port: 0, adminPort: null, frontends: 2, credentials: [CRED], prefetch: false, record });
  const sqs = new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials: CRED });
  try {
    for (const name of ['rec-orders', 'rec-mail']) {
      const url = (await sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl!;
      for (let i = 0; i < n; i++) await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: BODY }));
      for (let i = 0; i < n; i++) {
        const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url }));
        for (const m of got.Messages ?? []) await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle! }));
      }
    }
  } finally {
    sqs.destroy();
    await service.close();
  }
}

const rows = (path: string): string[][] => readFileSync(path, 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));

test('the recording: header, names or stable pseudonyms, every request, no content; it replays', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pkp-record-'));
  try {
    const named = join(dir, 'named.csv');
    await recordWorkload(join(dir, 'data'), { path: named, names: 'names' }, 5);
    const text = readFileSync(named, 'utf8');
    assert.ok(text.startsWith('ts_ms,queue,op,node,principal\n'));
    assert.ok(!text.includes(BODY));
    const r = rows(named);
    assert.deepEqual([...new Set(r.map((x) => x[1]))].sort(), ['rec-mail', 'rec-orders']);
    const count = (op: string) => r.filter((x) => x[2] === op).length;
    assert.equal(count('send'), 10);
    assert.equal(count('receive'), 10);
    assert.equal(count('delete'), 10);
    assert.deepEqual([...new Set(r.map((x) => x[3]))].sort(), ['fe-1', 'fe-2']);
    assert.ok(r.every((x) => x[4] === CRED.accessKeyId));
    assert.equal(statSync(named).mode & 0o777, 0o600);

    // Pseudonyms: no name appears, the same name maps to the same pseudonym across runs of one data directory.
    const p1 = join(dir, 'p1.csv');
    const p2 = join(dir, 'p2.csv');
    await recordWorkload(join(dir, 'data'), { path: p1 }, 2);
    await recordWorkload(join(dir, 'data'), { path: p2 }, 2);
    const t1 = readFileSync(p1, 'utf8');
    assert.ok(!t1.includes('rec-orders') && !t1.includes(CRED.accessKeyId));
    const queues = (path: string) => [...new Set(rows(path).map((x) => x[1]))].sort();
    assert.equal(queues(p1).length, 2);
    assert.ok(queues(p1).every((q) => /^q-[0-9a-f]{12}$/.test(q!)));
    assert.deepEqual(queues(p1), queues(p2));

    // The loop: the recording replays under every policy, with every request counted.
    const json = join(dir, 'replay.json');
    const replay = spawnSync(process.execPath, ['bin/pkp.js', 'replay', '--trace', named, '--policies', 'reactive,pkp,oracle', '--warmup', '0', '--json', json],
      { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(replay.status, 0, replay.stderr);
    const result = JSON.parse(readFileSync(json, 'utf8')) as { trace: { events: number }; policies: Record<string, { requests: number }> };
    assert.equal(result.trace.events, r.length);
    assert.equal(result.policies.reactive!.requests, r.length);
    assert.equal(result.policies.pkp!.requests, r.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the recording rotates by size and keeps the newest files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pkp-record-'));
  try {
    const path = join(dir, 'rot.csv');
    await recordWorkload(join(dir, 'data'), { path, names: 'names', maxBytes: 1024, keep: 2 }, 20);
    assert.ok(existsSync(`${path}.1`) && existsSync(`${path}.2`));
    assert.ok(!existsSync(`${path}.3`));
    for (const f of [path, `${path}.1`, `${path}.2`]) assert.ok(readFileSync(f, 'utf8').startsWith('ts_ms,queue,op,node,principal\n'), f);
    // Cut at the line that passed the limit.
    for (const f of [`${path}.1`, `${path}.2`]) assert.ok(statSync(f).size >= 1024 && statSync(f).size < 1024 + 100, `${f}: ${statSync(f).size}`);
    // The rotated files replay as one trace, oldest first.
    const files = [`${path}.2`, `${path}.1`, path];
    const total = files.reduce((n, f) => n + rows(f).length, 0);
    const json = join(dir, 'rot.json');
    const replay = spawnSync(process.execPath, ['bin/pkp.js', 'replay', ...files.flatMap((f) => ['--trace', f]), '--policies', 'reactive', '--warmup', '0', '--json', json],
      { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(replay.status, 0, replay.stderr);
    const result = JSON.parse(readFileSync(json, 'utf8')) as { trace: { events: number; path: string[] }; policies: Record<string, { requests: number }> };
    assert.equal(result.trace.events, total);
    assert.deepEqual(result.trace.path, files);
    assert.equal(result.policies.reactive!.requests, total);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a recording that cannot be opened stops the start with its reason', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pkp-record-'));
  try {
    const path = join(dir, 'missing-dir', 'x.csv');
    await assert.rejects(
      startService({ dataDir: join(dir, 'data'), port: 0, adminPort: null, credentials: [CRED], prefetch: false, record: { path } }),
      new RegExp(`cannot record to ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ENOENT`),
    );
    // Closed: the same data directory starts again.
    const again = await startService({ dataDir: join(dir, 'data'), port: 0, adminPort: null, credentials: [CRED], prefetch: false });
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
