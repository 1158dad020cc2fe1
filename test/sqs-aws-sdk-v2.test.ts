import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VirtualClock } from '../src/core/clock.ts';
import { md5OfBody } from '../src/frontend/md5.ts';
import { accountOf, startService, type RunningService } from '../src/service.ts';

/**
 * aws-sdk v2 (2.1400, whose SQS model still speaks the Query protocol: form requests, XML answers),
 * unchanged, against the running service: the flow a user of an older SDK runs.
 */

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const AWS = require('aws-sdk') as { SQS: new (options: Record<string, unknown>) => SqsV2; VERSION: string };

interface SqsV2 {
  config: { apiVersion?: string };
  api: { protocol: string };
  [operation: string]: unknown;
}

const CREDENTIALS = { accessKeyId: 'AKIDPKPSDKV2', secretAccessKey: 'sdk-v2-secret-access-key-0123456789' };
const ACCOUNT = accountOf(CREDENTIALS);

let dataDir: string;
let service: RunningService;
let sqs: SqsV2;

/** Calls an operation the v2 way (`sqs.op(params).promise()`). */
function call<T = Record<string, any>>(operation: string, params: Record<string, unknown> = {}): Promise<T> {
  const fn = sqs[operation] as (p: Record<string, unknown>) => { promise(): Promise<T> };
  return fn.call(sqs, params).promise();
}

async function fails(operation: string, params: Record<string, unknown>): Promise<{ code: string; statusCode: number }> {
  try {
    await call(operation, params);
  } catch (error) {
    return error as { code: string; statusCode: number };
  }
  assert.fail(`${operation} should have failed`);
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'pkp-sdk-v2-'));
  service = await startService({ dataDir, port: 0, adminPort: null, frontends: 2, credentials: [CREDENTIALS], clock: new VirtualClock(Date.now()) });
  sqs = new AWS.SQS({ endpoint: service.endpoint, region: 'us-east-1', credentials: CREDENTIALS, maxRetries: 0, sslEnabled: false });
});

after(async () => {
  await service?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe(`aws-sdk v2 (${AWS.VERSION}, Query protocol)`, () => {
  it('speaks the Query protocol', () => {
    assert.equal(sqs.api.protocol, 'query');
  });

  it('creates, lists, sends, receives, deletes, with attributes and batches', async () => {
    const { QueueUrl } = await call('createQueue', { QueueName: 'v2-flow', Attributes: { VisibilityTimeout: '20' } });
    assert.equal(QueueUrl, `${service.endpoint}/${ACCOUNT}/v2-flow`);
    assert.deepEqual((await call('listQueues', { QueueNamePrefix: 'v2-' })).QueueUrls, [QueueUrl]);
    const attrs = (await call('getQueueAttributes', { QueueUrl, AttributeNames: ['All'] })).Attributes;
    assert.equal(attrs.VisibilityTimeout, '20');

    const sent = await call('sendMessage', {
      QueueUrl, MessageBody: 'hello v2 <&>',
      MessageAttributes: { n: { DataType: 'Number', StringValue: '42' }, b: { DataType: 'Binary', BinaryValue: Buffer.from([1, 2, 3]) } },
    });
    assert.equal(sent.MD5OfMessageBody, md5OfBody('hello v2 <&>')); // the SDK checks both MD5s itself too
    const batch = await call('sendMessageBatch', { QueueUrl, Entries: [{ Id: 'x', MessageBody: 'two' }, { Id: 'y', MessageBody: 'three' }] });
    assert.deepEqual(batch.Successful.map((e: { Id: string }) => e.Id).sort(), ['x', 'y']);
    assert.deepEqual(batch.Failed, []);

    const got = await call('receiveMessage', { QueueUrl, MaxNumberOfMessages: 10, AttributeNames: ['All'], MessageAttributeNames: ['All'] });
    assert.deepEqual(got.Messages.map((m: { Body: string }) => m.Body).sort(), ['hello v2 <&>', 'three', 'two']);
    const first = got.Messages.find((m: { Body: string }) => m.Body.startsWith('hello'));
    assert.equal(first.MessageAttributes.n.StringValue, '42');
    assert.deepEqual([...first.MessageAttributes.b.BinaryValue], [1, 2, 3]);
    assert.equal(first.Attributes.ApproximateReceiveCount, '1');
    const deleted = await call('deleteMessageBatch', { QueueUrl, Entries: got.Messages.map((m: { ReceiptHandle: string }, i: number) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle })) });
    assert.equal(deleted.Successful.length, 3);
    assert.equal((await call('getQueueAttributes', { QueueUrl, AttributeNames: ['ApproximateNumberOfMessages'] })).Attributes.ApproximateNumberOfMessages, '0');
  });

  it('gets SQS errors with their query codes', async () => {
    const missing = await fails('getQueueUrl', { QueueName: 'v2-none' });
    assert.equal(missing.code, 'AWS.SimpleQueueService.NonExistentQueue');
    assert.equal(missing.statusCode, 400);
    const badAttr = await fails('createQueue', { QueueName: 'v2-bad', Attributes: { Colour: 'blue' } });
    assert.equal(badAttr.code, 'InvalidAttributeName');
  });

  it('FIFO, dead-letter queue and tags', async () => {
    const fifo = (await call('createQueue', { QueueName: 'v2.fifo', Attributes: { FifoQueue: 'true', ContentBasedDeduplication: 'true' } })).QueueUrl;
    const a = await call('sendMessage', { QueueUrl: fifo, MessageBody: 'one', MessageGroupId: 'g' });
    const b = await call('sendMessage', { QueueUrl: fifo, MessageBody: 'one', MessageGroupId: 'g' });
    assert.equal(a.MessageId, b.MessageId);
    assert.match(a.SequenceNumber, /^\d{20}$/);

    const dlq = (await call('createQueue', { QueueName: 'v2-dlq', tags: { owner: 'v2' } })).QueueUrl;
    const dlqArn = (await call('getQueueAttributes', { QueueUrl: dlq, AttributeNames: ['QueueArn'] })).Attributes.QueueArn;
    const src = (await call('createQueue', { QueueName: 'v2-src', Attributes: { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: 1 }) } })).QueueUrl;
    await call('sendMessage', { QueueUrl: src, MessageBody: 'bad' });
    assert.equal((await call('receiveMessage', { QueueUrl: src, VisibilityTimeout: 0 })).Messages.length, 1);
    assert.equal((await call('receiveMessage', { QueueUrl: src })).Messages, undefined);
    assert.equal((await call('receiveMessage', { QueueUrl: dlq })).Messages[0].Body, 'bad');
    assert.deepEqual((await call('listDeadLetterSourceQueues', { QueueUrl: dlq })).queueUrls, [src]);
    await call('tagQueue', { QueueUrl: dlq, Tags: { env: 'ci' } });
    assert.deepEqual((await call('listQueueTags', { QueueUrl: dlq })).Tags, { owner: 'v2', env: 'ci' });
  });
});
