// The key path end to end, through the SQS endpoint with the real AWS SDK: stampede, isolation,
// rotation, what is at rest, and durability across kill -9.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Agent } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient,
} from '@aws-sdk/client-sqs';
import { VirtualClock } from '../src/core/clock.ts';
import { startService, type Credential, type RunningService } from '../src/service.ts';

const ALICE: Credential = { accessKeyId: 'AKPKALICE', secretAccessKey: 'alice-secret-0123456789', accountId: '000000000000' }; // one account: they share queues
const BOB: Credential = { accessKeyId: 'AKPKBOB', secretAccessKey: 'bob-secret-0123456789', accountId: '000000000000' }; // one account: they share queues

function client(service: { endpoint: string }, credentials: Credential, maxSockets = 50): SQSClient {
  return new SQSClient({
    endpoint: service.endpoint, region: 'us-east-1', credentials, maxAttempts: 1,
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets }) },
  });
}

async function withService(options: { kmsLatency?: string }, body: (s: RunningService, clock: VirtualClock) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-keys-e2e-'));
  const clock = new VirtualClock(Date.now());
  const service = await startService({ dataDir, port: 0, adminPort: null, frontends: 3, credentials: [ALICE, BOB], clock, kmsLatency: options.kmsLatency });
  try {
    await body(service, clock);
  } finally {
    await service.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Waits (for I/O, not for time) until `done` holds; fails after a real-time bound. */
async function until(done: () => boolean, what: string, limitMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!done()) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const totalMisses = (s: RunningService): number => s.frontends.reduce((n, f) => n + f.cache.stats.misses, 0);

test('3,000 concurrent SendMessage on a cold queue cause exactly one GenerateDataKey', async () => {
  await withService({ kmsLatency: '50' }, async (service, clock) => {
    const sqs = client(service, ALICE, 3000);
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'stampede' }));
    const sends = Array.from({ length: 3000 }, (_, i) => sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `message ${i}` })));
    // Every request has reached a node and missed its cache while the one KMS call is pending.
    await until(() => totalMisses(service) >= 3000, '3,000 cache misses');
    await clock.advance(100);
    const results = await Promise.all(sends);
    assert.equal(results.length, 3000);
    assert.equal(service.kms.counts().byOperation.GenerateDataKey, 1);
    sqs.destroy();
  });
});

test('two principals on one queue get two DEKs; each reads the other’s messages', async () => {
  await withService({}, async (service) => {
    const alice = client(service, ALICE);
    const bob = client(service, BOB);
    const { QueueUrl } = await alice.send(new CreateQueueCommand({ QueueName: 'shared' }));
    await alice.send(new SendMessageCommand({ QueueUrl, MessageBody: 'from alice' }));
    await bob.send(new SendMessageCommand({ QueueUrl, MessageBody: 'from bob' }));
    assert.equal(service.kms.counts().byOperation.GenerateDataKey, 2);
    const queue = service.store.getQueueByName('shared')!;
    const received = await bob.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
    assert.deepEqual(received.Messages?.map((m) => m.Body).sort(), ['from alice', 'from bob']);
    const stored = await service.store.receiveMessages(queue.queueId, 10, 0, Date.now() + 3_600_000);
    assert.equal(new Set(stored.map((m) => m.dekId)).size, 2);
    alice.destroy();
    bob.destroy();
  });
});

test('rotation: after the reuse period new messages use a new DEK and old ones still decrypt', async () => {
  await withService({}, async (service, clock) => {
    const sqs = client(service, ALICE);
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'rotating', Attributes: { KmsDataKeyReusePeriodSeconds: '60' } }));
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'before' }));
    await clock.advance(61_000);
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'after' }));
    assert.equal(service.kms.counts().byOperation.GenerateDataKey, 2);
    const queue = service.store.getQueueByName('rotating')!;
    const peek = await service.store.receiveMessages(queue.queueId, 10, 0, clock.now());
    assert.equal(new Set(peek.map((m) => m.dekId)).size, 2);
    // Caches emptied by expiry: reading needs KMS Decrypt for the old DEKs, and works.
    await clock.advance(61_000);
    for (const f of service.frontends) assert.equal(f.cache.size, 0, `${f.nodeId} still holds an expired key`);
    const received = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
    assert.deepEqual(received.Messages?.map((m) => m.Body).sort(), ['after', 'before']);
    assert.ok(service.kms.counts().byOperation.Decrypt >= 1);
    sqs.destroy();
  });
});

test('at rest: the data directory holds no plaintext body and no key', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-at-rest-'));
  const clock = new VirtualClock(Date.now());
  const service = await startService({ dataDir, port: 0, adminPort: null, credentials: [ALICE], clock });
  const sqs = client(service, ALICE);
  const marker = `PLAINTEXT-MARKER-${Date.now()}-the-body`;
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'at-rest' }));
  await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: marker, MessageAttributes: { secret: { DataType: 'String', StringValue: `${marker}-attr` } } }));
  // Capture the DEK the node used (white-box: the cache is this process's own memory).
  const dek = service.frontends.map((f) => f.cache.peekEncrypt(service.store.getQueueByName('at-rest')!.queueId, ALICE.accessKeyId)).find(Boolean)!;
  const dekBytes = Buffer.from(dek.key.material);
  sqs.destroy();
  await service.close();
  const files = readdirSync(dataDir);
  assert.ok(files.includes('messages.db'));
  const needles = [Buffer.from(marker), Buffer.from(`${marker}-attr`), dekBytes, Buffer.from(dekBytes.toString('hex')), Buffer.from(dekBytes.toString('base64'))];
  for (const file of files) {
    const bytes = readFileSync(join(dataDir, file));
    for (const needle of needles) assert.equal(bytes.indexOf(needle), -1, `${file} contains plaintext or key material`);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

test('durability: every acknowledged message survives kill -9 and restart', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-durable-'));
  const root = join(import.meta.dirname, '..');
  const start = () => {
    const child = spawn(process.execPath, ['bin/pkp.js', 'up', '--port', '0', '--admin-port', '0', '--data-dir', dataDir, '--credentials', `${ALICE.accessKeyId}:${ALICE.secretAccessKey}`, '--log-level', 'warn'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    const endpoint = new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = out.match(/SQS endpoint: (http:\/\/[0-9.:]+)/);
        if (match) resolve(match[1]!);
      });
      child.once('exit', (code) => reject(new Error(`pkp up exited early with ${code}`)));
    });
    return { child, endpoint };
  };
  const first = start();
  const sqs = client({ endpoint: await first.endpoint }, ALICE);
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'durable' }));
  const acknowledged: string[] = [];
  // Keep sending concurrently; kill -9 while sends are in flight.
  let killed = false;
  const senders = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; !killed; i++) {
      const body = `w${w}-m${i}`;
      try {
        await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: body }));
        acknowledged.push(body);
        if (acknowledged.length >= 300 && !killed) {
          killed = true;
          first.child.kill('SIGKILL');
        }
      } catch {
        return;
      }
    }
  });
  await Promise.all(senders);
  await new Promise((resolve) => (first.child.exitCode !== null || first.child.signalCode !== null ? resolve(null) : first.child.once('exit', resolve)));
  sqs.destroy();

  const second = start();
  const again = client({ endpoint: await second.endpoint }, ALICE);
  const url = QueueUrl!.replace(/^http:\/\/[^/]+/, await second.endpoint);
  const seen = new Set<string>();
  for (let empty = 0; empty < 2; ) {
    const r = await again.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, VisibilityTimeout: 600 }));
    const messages = r.Messages ?? [];
    if (messages.length === 0) empty++;
    for (const m of messages) seen.add(m.Body!);
  }
  again.destroy();
  second.child.kill('SIGTERM');
  await new Promise((resolve) => second.child.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
  assert.ok(acknowledged.length >= 300);
  const lost = acknowledged.filter((b) => !seen.has(b));
  assert.deepEqual(lost, []);
});
