import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ChangeMessageVisibilityCommand, CreateQueueCommand, DeleteMessageCommand, DeleteQueueCommand, ListQueueTagsCommand, PurgeQueueCommand, ReceiveMessageCommand, SendMessageBatchCommand,
  SendMessageCommand, SQSClient, TagQueueCommand, UntagQueueCommand,
} from '@aws-sdk/client-sqs';
import type { VirtualClock } from '../src/core/clock.ts';
import { openSdkService, type SdkService } from './helpers/sdk-service.ts';
import { md5OfMessageAttributes } from '../src/frontend/md5.ts';
import type { RunningService } from '../src/service.ts';
import { all, at, mapOf, QueryClient } from './helpers/query-client.ts';

/** Tags, purge and delete pacing, AWSTraceHeader: through the official SDK (and Query for tags). */

const CREDENTIALS = { accessKeyId: 'AKIDPKPFEATURES', secretAccessKey: 'features-secret-access-key-0123456789' };

let env: SdkService | undefined;
let clock: VirtualClock;
let service: RunningService;
let sqs: SQSClient;

before(async () => {
  env = await openSdkService(CREDENTIALS, 'pkp-features-', 2);
  ({ clock, service, sqs } = env);
});
after(async () => env?.close());

async function failure(promise: Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { $metadata?: { httpStatusCode?: number } };
  }
  assert.fail('expected the request to fail');
}

describe('tags', () => {
  it('tags on CreateQueue, TagQueue, UntagQueue, ListQueueTags', async () => {
    const url = (await sqs.send(new CreateQueueCommand({ QueueName: 'tagged', tags: { team: 'payments', env: 'dev' } }))).QueueUrl!;
    assert.deepEqual((await sqs.send(new ListQueueTagsCommand({ QueueUrl: url }))).Tags, { team: 'payments', env: 'dev' });
    await sqs.send(new TagQueueCommand({ QueueUrl: url, Tags: { env: 'prod', cost: '' } }));
    assert.deepEqual((await sqs.send(new ListQueueTagsCommand({ QueueUrl: url }))).Tags, { team: 'payments', env: 'prod', cost: '' });
    await sqs.send(new UntagQueueCommand({ QueueUrl: url, TagKeys: ['team', 'absent'] }));
    assert.deepEqual((await sqs.send(new ListQueueTagsCommand({ QueueUrl: url }))).Tags, { env: 'prod', cost: '' });

    assert.equal((await failure(sqs.send(new TagQueueCommand({ QueueUrl: url, Tags: { 'aws:owner': 'x' } })))).name, 'InvalidParameterValue');
    const many = Object.fromEntries(Array.from({ length: 49 }, (_, i) => [`k${i}`, 'v']));
    assert.equal((await failure(sqs.send(new TagQueueCommand({ QueueUrl: url, Tags: many })))).name, 'InvalidParameterValue', '51 tags');
    assert.deepEqual((await sqs.send(new ListQueueTagsCommand({ QueueUrl: url }))).Tags, { env: 'prod', cost: '' }, 'a refused request changes nothing');

    const query = new QueryClient(service.endpoint, CREDENTIALS.accessKeyId, CREDENTIALS.secretAccessKey);
    const r = await query.call('ListQueueTags', { QueueUrl: url });
    assert.equal(r.status, 200, r.raw);
    assert.deepEqual(mapOf(all(at(r.xml, 'ListQueueTagsResult'), 'Tag'), 'Key', 'Value'), { env: 'prod', cost: '' });
    assert.equal((await query.call('TagQueue', { QueueUrl: url, 'Tag.1.Key': 'via', 'Tag.1.Value': 'query' })).status, 200);
    assert.equal((await sqs.send(new ListQueueTagsCommand({ QueueUrl: url }))).Tags?.via, 'query');
  });
});

describe('pacing', () => {
  it('one purge per queue per 60 seconds (PurgeQueueInProgress, 403)', async () => {
    const url = (await sqs.send(new CreateQueueCommand({ QueueName: 'purged' }))).QueueUrl!;
    await sqs.send(new PurgeQueueCommand({ QueueUrl: url }));
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'kept' }));
    await clock.advance(59_000);
    const error = await failure(sqs.send(new PurgeQueueCommand({ QueueUrl: url })));
    assert.equal(error.name, 'PurgeQueueInProgress');
    assert.equal(error.$metadata?.httpStatusCode, 403);
    const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, VisibilityTimeout: 0 }));
    assert.equal(got.Messages?.[0]?.Body, 'kept', 'the refused purge deleted nothing');
    await clock.advance(1_000);
    await sqs.send(new PurgeQueueCommand({ QueueUrl: url }));
    assert.deepEqual((await sqs.send(new ReceiveMessageCommand({ QueueUrl: url }))).Messages ?? [], []);
  });

  it('a deleted queue\'s name is free again only after 60 seconds (QueueDeletedRecently)', async () => {
    const url = (await sqs.send(new CreateQueueCommand({ QueueName: 'recycled' }))).QueueUrl!;
    await sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
    await clock.advance(30_000);
    const error = await failure(sqs.send(new CreateQueueCommand({ QueueName: 'recycled' })));
    assert.equal(error.name, 'QueueDeletedRecently');
    assert.equal(error.$metadata?.httpStatusCode, 400);
    await clock.advance(30_000);
    assert.equal((await sqs.send(new CreateQueueCommand({ QueueName: 'recycled' }))).QueueUrl, url);
  });
});

describe('AWSTraceHeader', () => {
  it('is kept with the message and returned when asked for, with its MD5', async () => {
    const url = (await sqs.send(new CreateQueueCommand({ QueueName: 'traced' }))).QueueUrl!;
    const trace = 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1';
    const system = { AWSTraceHeader: { DataType: 'String', StringValue: trace } };
    const sent = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'traced', MessageSystemAttributes: system }));
    assert.equal(sent.MD5OfMessageSystemAttributes, md5OfMessageAttributes(system));
    assert.equal(sent.MD5OfMessageAttributes, undefined, 'no user attributes');
    const batch = await sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: [{ Id: 'b', MessageBody: 'plain' }] }));
    assert.equal(batch.Successful?.[0]?.MD5OfMessageSystemAttributes, undefined);

    const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, MessageSystemAttributeNames: ['AWSTraceHeader'], MessageAttributeNames: ['All'] }));
    const byBody = Object.fromEntries((got.Messages ?? []).map((m) => [m.Body, m]));
    assert.deepEqual(byBody.traced?.Attributes, { AWSTraceHeader: trace });
    assert.equal(byBody.traced?.MessageAttributes, undefined, 'not shown as a user attribute');
    assert.deepEqual(byBody.plain?.Attributes, {});

    const bad = await failure(sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'x', MessageSystemAttributes: { Other: { DataType: 'String', StringValue: 'y' } } as never })));
    assert.equal(bad.name, 'InvalidParameterValue');
  });
});

describe('ChangeMessageVisibility after the visibility ran out', () => {
  it('is accepted and changes nothing while the message was not received again; refused once it was, or was deleted', async () => {
    const url = (await sqs.send(new CreateQueueCommand({ QueueName: 'visibility' }))).QueueUrl!;
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'v' }));
    const first = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, VisibilityTimeout: 10 }))).Messages![0]!;
    await clock.advance(10_000);
    await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: first.ReceiptHandle!, VisibilityTimeout: 300 }));
    const second = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, VisibilityTimeout: 10 }))).Messages?.[0];
    assert.equal(second?.MessageId, first.MessageId, 'the message stayed visible');
    const stale = await failure(sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: first.ReceiptHandle!, VisibilityTimeout: 300 })));
    assert.equal(stale.name, 'InvalidParameterValue');
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: second!.ReceiptHandle! }));
    const deleted = await failure(sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: second!.ReceiptHandle!, VisibilityTimeout: 300 })));
    assert.equal(deleted.name, 'InvalidParameterValue');
  });
});
