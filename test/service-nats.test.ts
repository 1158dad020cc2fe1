// `pkp up --nats`: the service's events go through a real NATS JetStream, the prefetcher learns from
// them there, and a NATS that cannot be reached at start leaves the service serving (fail-open).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { NatsEventBus } from '../src/bus/nats-bus.ts';
import type { PkpEvent } from '../src/bus/types.ts';
import { VirtualClock } from '../src/core/clock.ts';
import { startService, type RunningService, type ServiceOptions } from '../src/service.ts';
import { NATS_URL, skipUnless } from './services.ts';
import { until } from './helpers/until.ts';

const ALICE = { accessKeyId: 'AKPKNATSALICE', secretAccessKey: 'nats-alice-secret-0123' };

async function withService(options: Partial<ServiceOptions>, body: (s: RunningService, sqs: SQSClient) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-nats-service-'));
  let service: RunningService | undefined;
  let sqs: SQSClient | undefined;
  try {
    service = await startService({ dataDir, port: 0, adminPort: null, frontends: 2, credentials: [ALICE], clock: new VirtualClock(Date.now()), ...options });
    sqs = new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials: ALICE, maxAttempts: 1 });
    await body(service, sqs);
  } finally {
    sqs?.destroy();
    await service?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

describe('the service on NATS JetStream', { skip: await skipUnless('nats', NATS_URL) }, () => {
  it('publishes its events to the stream, and the prefetcher ingests them from there', async () => {
    const stream = `PKP_TEST_SVC_${randomBytes(6).toString('hex')}`;
    let watcher: NatsEventBus | undefined;
    try {
      await withService({ nats: { servers: NATS_URL, stream, partitions: 2 } }, async (service, sqs) => {
        assert.ok(service.bus instanceof NatsEventBus, 'the service did not use NATS');
        watcher = await NatsEventBus.open({ servers: NATS_URL, stream, partitions: 2 });
        const seen: PkpEvent[] = [];
        watcher.subscribe((e) => seen.push(e));
        await watcher.flush();
        const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'on-nats' }));
        for (let i = 0; i < 5; i++) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `m${i}` }));
        await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
        await service.bus.flush();
        const sends = () => seen.filter((e) => e.type === 'access' && e.op === 'send').length;
        await until(() => sends() === 5 && seen.some((e) => e.type === 'access' && e.op === 'receive'), 'five send events and a receive event on the stream');
        // Events carry ids and counts only: no body.
        assert.ok(!JSON.stringify(seen).includes('m0'));
        await until(() => (service.prefetcher?.stats.observed ?? 0) >= 6, 'the prefetcher to ingest the events from NATS');
      });
    } finally {
      await watcher?.close();
      const nc = await connect({ servers: NATS_URL });
      await (await jetstreamManager(nc)).streams.delete(stream).catch(() => undefined);
      await nc.close();
    }
  });
});

it('with NATS unreachable at start, the service starts on the in-process bus and serves', async () => {
  await withService({ nats: { servers: 'nats://127.0.0.1:1', stream: 'PKP_UNREACHABLE' } }, async (service, sqs) => {
    assert.ok(!(service.bus instanceof NatsEventBus));
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'fail-open' }));
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'still served' }));
    const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl }));
    assert.equal(got.Messages?.[0]?.Body, 'still served');
  });
});
