// The key path end to end, through the SQS endpoint with the real AWS SDK: stampede, isolation,
// rotation, what is at rest, and durability across kill -9.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
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

/**
 * A service on a virtual clock, and SDK clients that are destroyed before it closes whatever the
 * test did: a request parked on a held KMS then cannot keep the server open.
 */
async function withService(
  options: { kmsLatency?: string },
  body: (s: RunningService, clock: VirtualClock, connect: Connect) => Promise<void>,
): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-keys-e2e-'));
  try {
    await withServiceIn(dataDir, [ALICE, BOB], body, options.kmsLatency);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

type Connect = (c: Credential, maxSockets?: number) => SQSClient;

async function withServiceIn(
  dataDir: string,
  credentials: Credential[],
  body: (s: RunningService, clock: VirtualClock, connect: Connect) => Promise<void>,
  kmsLatency?: string,
): Promise<void> {
  const clock = new VirtualClock(Date.now());
  const clients: SQSClient[] = [];
  let service: RunningService | undefined;
  try {
    service = await startService({ dataDir, port: 0, adminPort: null, frontends: 3, credentials, clock, kmsLatency });
    const running = service;
    await body(service, clock, (c, maxSockets) => {
      const sqs = client(running, c, maxSockets);
      clients.push(sqs);
      return sqs;
    });
  } finally {
    for (const sqs of clients) sqs.destroy();
    await service?.close();
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

// The stampede property end to end: while the one GenerateDataKey is held (its latency is on the
// virtual clock, which only the test advances), every concurrent send misses, and all of them share
// that one call. 200 sockets prove it as well as thousands and do not depend on the machine's load.
const STAMPEDE = 200;
test(`${STAMPEDE} concurrent SendMessage on a cold queue, KMS held: exactly one GenerateDataKey`, async () => {
  await withService({ kmsLatency: '50' }, async (service, clock, connect) => {
    const sqs = connect(ALICE, STAMPEDE);
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'stampede' }));
    const sends = Array.from({ length: STAMPEDE }, (_, i) => sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `message ${i}` })));
    // Every request has reached a node and missed its cache while the one KMS call is held.
    await until(() => totalMisses(service) >= STAMPEDE, `${STAMPEDE} cache misses`);
    assert.equal(service.kms.counts().byOperation.GenerateDataKey, 1);
    await clock.advance(100);
    const results = await Promise.all(sends);
    assert.equal(results.filter((r) => r.MessageId).length, STAMPEDE);
    assert.equal(service.kms.counts().byOperation.GenerateDataKey, 1);
  });
});

test('two principals on one queue get two DEKs; each reads the other’s messages', async () => {
  await withService({}, async (service, _clock, connect) => {
    const alice = connect(ALICE);
    const bob = connect(BOB);
    const { QueueUrl } = await alice.send(new CreateQueueCommand({ QueueName: 'shared' }));
    await alice.send(new SendMessageCommand({ QueueUrl, MessageBody: 'from alice' }));
    await bob.send(new SendMessageCommand({ QueueUrl, MessageBody: 'from bob' }));
    assert.equal(service.kms.counts().byOperation.GenerateDataKey, 2);
    const queue = (await service.store.getQueueByName('shared'))!;
    const received = await bob.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
    assert.deepEqual(received.Messages?.map((m) => m.Body).sort(), ['from alice', 'from bob']);
    const stored = await service.store.receiveMessages(queue.queueId, 10, 0, Date.now() + 3_600_000);
    assert.equal(new Set(stored.map((m) => m.dekId)).size, 2);
  });
});

test('rotation: after the reuse period new messages use a new DEK and old ones still decrypt', async () => {
  await withService({}, async (service, clock, connect) => {
    const sqs = connect(ALICE);
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'rotating', Attributes: { KmsDataKeyReusePeriodSeconds: '60' } }));
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'before' }));
    await clock.advance(61_000);
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'after' }));
    assert.equal(service.kms.counts().byOperation.GenerateDataKey, 2);
    const queue = (await service.store.getQueueByName('rotating'))!;
    const peek = await service.store.receiveMessages(queue.queueId, 10, 0, clock.now());
    assert.equal(new Set(peek.map((m) => m.dekId)).size, 2);
    // Caches emptied by expiry: reading needs KMS Decrypt for the old DEKs, and works.
    await clock.advance(61_000);
    for (const f of service.frontends) assert.equal(f.cache.size, 0, `${f.nodeId} still holds an expired key`);
    const received = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
    assert.deepEqual(received.Messages?.map((m) => m.Body).sort(), ['after', 'before']);
    assert.ok(service.kms.counts().byOperation.Decrypt >= 1);
  });
});

test('at rest: the data directory holds no plaintext body and no key', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-at-rest-'));
  const marker = `PLAINTEXT-MARKER-${Date.now()}-the-body`;
  let dekBytes: Buffer | undefined;
  try {
    // The service closes (flushing the store) before its files are read.
    await withServiceIn(dataDir, [ALICE], async (service, _clock, connect) => {
      const sqs = connect(ALICE);
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'at-rest' }));
      await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: marker, MessageAttributes: { secret: { DataType: 'String', StringValue: `${marker}-attr` } } }));
      // Capture the DEK the node used (white-box: the cache is this process's own memory).
      const queueId = (await service.store.getQueueByName('at-rest'))!.queueId;
      const dek = service.frontends.map((f) => f.cache.peekEncrypt(queueId, ALICE.accessKeyId)).find(Boolean)!;
      dekBytes = Buffer.from(dek.key.material);
    });
    const files = readdirSync(dataDir);
    assert.ok(files.includes('messages.db'));
    assert.ok(dekBytes);
    // The body's MD5 (what SQS returns as MD5OfBody) is not at rest either: it would tell equal bodies apart.
    const md5 = createHash('md5').update(marker).digest('hex');
    const needles = [Buffer.from(marker), Buffer.from(`${marker}-attr`), Buffer.from(md5), dekBytes, Buffer.from(dekBytes.toString('hex')), Buffer.from(dekBytes.toString('base64'))];
    for (const file of files) {
      const bytes = readFileSync(join(dataDir, file));
      for (const needle of needles) assert.equal(bytes.indexOf(needle), -1, `${file} contains plaintext or key material`);
    }
  } finally {
    dekBytes?.fill(0);
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('durability: every acknowledged message survives kill -9 and restart', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-durable-'));
  const root = join(import.meta.dirname, '..');
  const children: ChildProcess[] = [];
  const clients: SQSClient[] = [];
  const start = () => {
    const child = spawn(process.execPath, ['bin/pkp.js', 'up', '--port', '0', '--admin-port', '0', '--data-dir', dataDir, '--credentials', `${ALICE.accessKeyId}:${ALICE.secretAccessKey}`, '--log-level', 'warn'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
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
  const connect = (endpoint: string): SQSClient => {
    const sqs = client({ endpoint }, ALICE);
    clients.push(sqs);
    return sqs;
  };
  try {
    const first = start();
    const sqs = connect(await first.endpoint);
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
    await exited(first.child);

    const second = start();
    const again = connect(await second.endpoint);
    const url = QueueUrl!.replace(/^http:\/\/[^/]+/, await second.endpoint);
    const seen = new Set<string>();
    for (let empty = 0; empty < 2; ) {
      const r = await again.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, VisibilityTimeout: 600 }));
      const messages = r.Messages ?? [];
      if (messages.length === 0) empty++;
      for (const m of messages) seen.add(m.Body!);
    }
    assert.ok(acknowledged.length >= 300);
    const lost = acknowledged.filter((b) => !seen.has(b));
    assert.deepEqual(lost, []);
  } finally {
    for (const sqs of clients) sqs.destroy();
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited(child);
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
});

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}
