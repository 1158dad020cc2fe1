// The Node clients users run against SQS, unchanged, against PKP: sqs-producer and sqs-consumer (on
// @aws-sdk/client-sqs v3) and @aws-lite/sqs — create, send, receive, delete, FIFO order, a
// dead-letter queue and tags, each through the client itself where it has the call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateQueueCommand, GetQueueAttributesCommand, ListQueueTagsCommand, SQSClient, TagQueueCommand } from '@aws-sdk/client-sqs';
import awsLite from '@aws-lite/client';
import { Consumer } from 'sqs-consumer';
import { Producer } from 'sqs-producer';
import { startService, type RunningService } from '../src/service.ts';
import { until } from './helpers/until.ts';

/** The @aws-lite/sqs plugin's calls as the test uses them. */
interface LiteMessage { Body: string; ReceiptHandle: string }
interface LiteSqs {
  SendMessage(p: Record<string, unknown>): Promise<{ MessageId?: string }>;
  ReceiveMessage(p: Record<string, unknown>): Promise<{ Messages?: LiteMessage[] }>;
  DeleteMessage(p: Record<string, unknown>): Promise<unknown>;
  GetQueueAttributes(p: Record<string, unknown>): Promise<{ Attributes?: Record<string, string> }>;
}

const USER = { accessKeyId: 'AKPKNODECLIENT', secretAccessKey: 'node-client-secret-0123' };

async function withService(body: (s: RunningService, sqs: SQSClient) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-node-clients-'));
  let service: RunningService | undefined;
  let sqs: SQSClient | undefined;
  try {
    service = await startService({ dataDir, port: 0, adminPort: null, frontends: 2, credentials: [USER], prefetch: false });
    sqs = new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials: USER, maxAttempts: 1 });
    await body(service, sqs);
  } finally {
    sqs?.destroy();
    await service?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Runs a consumer until `done` holds, then stops it. */
async function consume(consumer: Consumer, done: () => boolean, what: string): Promise<void> {
  const errors: unknown[] = [];
  consumer.on('error', (e) => errors.push(e));
  consumer.start();
  try {
    await until(done, what);
  } finally {
    consumer.stop({ abort: true });
  }
  assert.deepEqual(errors, []);
}

test('sqs-producer and sqs-consumer: standard, FIFO and dead-letter flows', { timeout: 60_000 }, async () => {
  await withService(async (_service, sqs) => {
    // Standard queue, with tags.
    const { QueueUrl: plain } = await sqs.send(new CreateQueueCommand({ QueueName: 'producer-plain', tags: { team: 'a' } }));
    const producer = Producer.create({ queueUrl: plain!, sqs });
    const sent = await producer.send(Array.from({ length: 12 }, (_, i) => ({ id: `m${i}`, body: `plain ${i}` })));
    assert.equal(sent.length, 12);
    const got: string[] = [];
    await consume(Consumer.create({ queueUrl: plain!, sqs, waitTimeSeconds: 1, batchSize: 10, handleMessage: async (m) => { got.push(m.Body!); return m; } }),
      () => got.length >= 12, 'the 12 messages');
    assert.deepEqual([...got].sort(), Array.from({ length: 12 }, (_, i) => `plain ${i}`).sort());
    const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: plain, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }));
    assert.equal(attrs.Attributes?.ApproximateNumberOfMessages, '0');
    await sqs.send(new TagQueueCommand({ QueueUrl: plain, Tags: { env: 'test' } }));
    assert.deepEqual((await sqs.send(new ListQueueTagsCommand({ QueueUrl: plain }))).Tags, { team: 'a', env: 'test' });

    // FIFO: one group's messages arrive in order.
    const { QueueUrl: fifo } = await sqs.send(new CreateQueueCommand({ QueueName: 'producer.fifo', Attributes: { FifoQueue: 'true', ContentBasedDeduplication: 'true' } }));
    const fifoProducer = Producer.create({ queueUrl: fifo!, sqs });
    for (let i = 0; i < 6; i++) await fifoProducer.send({ id: `f${i}`, body: `fifo ${i}`, groupId: 'g1' });
    await fifoProducer.send({ id: 'dup', body: 'fifo 5', groupId: 'g1' }); // same body: deduplicated
    const ordered: string[] = [];
    await consume(Consumer.create({ queueUrl: fifo!, sqs, waitTimeSeconds: 1, suppressFifoWarning: true, handleMessage: async (m) => { ordered.push(m.Body!); return m; } }),
      () => ordered.length >= 6, 'the six FIFO messages');
    assert.deepEqual(ordered, Array.from({ length: 6 }, (_, i) => `fifo ${i}`));

    // Dead-letter queue: a message the handler keeps failing moves there after maxReceiveCount.
    const { QueueUrl: dlq } = await sqs.send(new CreateQueueCommand({ QueueName: 'producer-dlq' }));
    const dlqArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
    const { QueueUrl: failing } = await sqs.send(new CreateQueueCommand({
      QueueName: 'producer-failing', Attributes: { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: 2 }) },
    }));
    await Producer.create({ queueUrl: failing!, sqs }).send({ id: 'poison', body: 'poison pill' });
    let attempts = 0;
    const failer = Consumer.create({
      queueUrl: failing!, sqs, waitTimeSeconds: 0, pollingWaitTimeMs: 20, terminateVisibilityTimeout: true,
      handleMessage: async () => { attempts++; throw new Error('cannot handle'); },
    });
    failer.on('processing_error', () => undefined);
    const dead: string[] = [];
    const dlqConsumer = Consumer.create({ queueUrl: dlq!, sqs, waitTimeSeconds: 1, handleMessage: async (m) => { dead.push(m.Body!); return m; } });
    failer.start();
    try {
      await consume(dlqConsumer, () => dead.length >= 1, 'the poison message in the dead-letter queue');
    } finally {
      failer.stop({ abort: true });
    }
    assert.deepEqual(dead, ['poison pill']);
    assert.equal(attempts, 2);
  });
});

test('@aws-lite/sqs: send, receive, delete, FIFO and DLQ through its calls; create and tags as raw aws-lite requests', { timeout: 60_000 }, async () => {
  await withService(async (service) => {
    const url = new URL(service.endpoint);
    const aws = await awsLite({
      accessKeyId: USER.accessKeyId, secretAccessKey: USER.secretAccessKey, region: 'us-east-1',
      protocol: 'http', host: url.hostname, port: Number(url.port), plugins: [import('@aws-lite/sqs')], autoloadPlugins: false,
    });
    const lite = (aws as unknown as { SQS: LiteSqs }).SQS;
    const json = async (action: string, payload: Record<string, unknown>) => (await aws({
      service: 'sqs', path: '/', awsjson: false, headers: { 'X-Amz-Target': `AmazonSQS.${action}`, 'content-type': 'application/x-amz-json-1.0' }, payload,
    })).payload as Record<string, unknown>;

    const queueUrl = (await json('CreateQueue', { QueueName: 'lite', tags: { owner: 'lite' } })).QueueUrl as string;
    const sent = await lite.SendMessage({ QueueUrl: queueUrl, MessageBody: 'hello from aws-lite' });
    assert.match(String(sent.MessageId), /^[0-9a-f-]{36}$/);
    const received = await lite.ReceiveMessage({ QueueUrl: queueUrl, MaxNumberOfMessages: 10 });
    assert.equal(received.Messages?.[0]?.Body, 'hello from aws-lite');
    await lite.DeleteMessage({ QueueUrl: queueUrl, ReceiptHandle: received.Messages![0]!.ReceiptHandle });
    const after = await lite.GetQueueAttributes({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] });
    assert.equal(after.Attributes?.ApproximateNumberOfMessages, '0');
    await json('TagQueue', { QueueUrl: queueUrl, Tags: { env: 'test' } });
    assert.deepEqual((await json('ListQueueTags', { QueueUrl: queueUrl })).Tags, { owner: 'lite', env: 'test' });

    const fifoUrl = (await json('CreateQueue', { QueueName: 'lite.fifo', Attributes: { FifoQueue: 'true' } })).QueueUrl as string;
    for (let i = 0; i < 3; i++) await lite.SendMessage({ QueueUrl: fifoUrl, MessageBody: `lite ${i}`, MessageGroupId: 'g', MessageDeduplicationId: `d${i}` });
    const bodies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await lite.ReceiveMessage({ QueueUrl: fifoUrl, MaxNumberOfMessages: 1 });
      bodies.push(r.Messages![0]!.Body);
      await lite.DeleteMessage({ QueueUrl: fifoUrl, ReceiptHandle: r.Messages![0]!.ReceiptHandle });
    }
    assert.deepEqual(bodies, ['lite 0', 'lite 1', 'lite 2']);

    const dlqUrl = (await json('CreateQueue', { QueueName: 'lite-dlq' })).QueueUrl as string;
    const dlqArn = ((await json('GetQueueAttributes', { QueueUrl: dlqUrl, AttributeNames: ['QueueArn'] })).Attributes as Record<string, string>).QueueArn;
    const srcUrl = (await json('CreateQueue', { QueueName: 'lite-src', Attributes: { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: 1 }) } })).QueueUrl as string;
    await lite.SendMessage({ QueueUrl: srcUrl, MessageBody: 'to the dlq' });
    const first = await lite.ReceiveMessage({ QueueUrl: srcUrl, VisibilityTimeout: 0 });
    assert.equal(first.Messages?.length, 1);
    const second = await lite.ReceiveMessage({ QueueUrl: srcUrl });
    assert.equal(second.Messages?.length ?? 0, 0);
    const inDlq = await lite.ReceiveMessage({ QueueUrl: dlqUrl });
    assert.equal(inDlq.Messages?.[0]?.Body, 'to the dlq');
  });
});
