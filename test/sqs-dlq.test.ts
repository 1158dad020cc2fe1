import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CancelMessageMoveTaskCommand, CreateQueueCommand, GetQueueAttributesCommand, ListDeadLetterSourceQueuesCommand, ListMessageMoveTasksCommand,
  ReceiveMessageCommand, SendMessageCommand, SetQueueAttributesCommand, StartMessageMoveTaskCommand, SQSClient,
} from '@aws-sdk/client-sqs';
import type { VirtualClock } from '../src/core/clock.ts';
import { openSdkService, type SdkService } from './helpers/sdk-service.ts';
import { rejects } from './helpers/failure.ts';
import { md5OfMessageAttributes } from '../src/frontend/md5.ts';
import { accountOf, type RunningService } from '../src/service.ts';

/** Dead-letter queues through the official SDK: RedrivePolicy enforced on receive, re-encrypted moves. */

const CREDENTIALS = { accessKeyId: 'AKIDPKPDLQTEST', secretAccessKey: 'dlq-secret-access-key-0123456789' };
const ACCOUNT = accountOf(CREDENTIALS);

let env: SdkService | undefined;
let clock: VirtualClock;
let service: RunningService;
let sqs: SQSClient;

before(async () => {
  env = await openSdkService(CREDENTIALS, 'pkp-dlq-', 2);
  ({ clock, service, sqs } = env);
});
after(async () => env?.close());

const arnOf = (name: string): string => `arn:aws:sqs:us-east-1:${ACCOUNT}:${name}`;

/**
 * The source's newest move task once it has `status`: the clock advances a second at a time, with
 * real time in between for the task's store I/O (a database across the network takes some).
 */
async function taskReaches(source: string, status: string) {
  for (let step = 0; step < 100; step++) {
    const task = (await sqs.send(new ListMessageMoveTasksCommand({ SourceArn: arnOf(source) }))).Results?.[0];
    if (task?.Status === status) return task;
    await clock.advance(1_000);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return assert.fail(`the move task of ${source} never became ${status}`);
}

async function create(name: string, attributes?: Record<string, string>): Promise<string> {
  return (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))).QueueUrl!;
}


async function count(url: string): Promise<number> {
  const out = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['All'] }));
  const a = out.Attributes!;
  return Number(a.ApproximateNumberOfMessages) + Number(a.ApproximateNumberOfMessagesNotVisible) + Number(a.ApproximateNumberOfMessagesDelayed);
}

describe('dead-letter queues', () => {
  it('after maxReceiveCount receives the next receive moves the message, resealed under the DLQ\'s key', async () => {
    const dlqUrl = await create('orders-dlq');
    const url = await create('orders', { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: arnOf('orders-dlq'), maxReceiveCount: 2 }) });
    const attributes = { colour: { DataType: 'String', StringValue: 'red' } };
    const sent = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'poison', MessageAttributes: attributes }));
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'healthy', DelaySeconds: 60 }));
    const source = (await service.store.getQueueByName('orders', ACCOUNT))!;
    const sourceDeks = (await service.store.backlogDeks(source.queueId, { now: clock.now(), withinMs: 120_000 })).map((d) => d.dekId);

    for (let i = 1; i <= 2; i++) {
      const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, VisibilityTimeout: 5, MessageSystemAttributeNames: ['ApproximateReceiveCount'] }));
      assert.equal(got.Messages?.[0]?.MessageId, sent.MessageId);
      assert.equal(got.Messages?.[0]?.Attributes?.ApproximateReceiveCount, String(i));
      await clock.advance(5_000);
    }
    const third = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, VisibilityTimeout: 5 }));
    assert.deepEqual(third.Messages ?? [], [], 'the third receive does not deliver it');
    assert.equal(await count(url), 1, 'only the delayed healthy message is left');
    assert.equal(await count(dlqUrl), 1);

    const moved = await sqs.send(new ReceiveMessageCommand({ QueueUrl: dlqUrl, MessageAttributeNames: ['All'], MessageSystemAttributeNames: ['All'] }));
    const m = moved.Messages?.[0];
    assert.equal(m?.MessageId, sent.MessageId, 'the message keeps its id');
    assert.equal(m?.Body, 'poison');
    assert.equal(m?.MD5OfMessageAttributes, md5OfMessageAttributes(attributes));
    assert.equal(m?.Attributes?.SenderId, CREDENTIALS.accessKeyId);
    assert.equal(m?.Attributes?.DeadLetterQueueSourceArn, arnOf('orders'));

    const dlq = (await service.store.getQueueByName('orders-dlq', ACCOUNT))!;
    const dlqDeks = await service.store.backlogDeks(dlq.queueId, { now: clock.now(), withinMs: 120_000 });
    assert.equal(dlqDeks.length, 1);
    assert.ok(!sourceDeks.includes(dlqDeks[0]!.dekId), 'sealed under a DEK of the dead-letter queue, not the source\'s');
  });

  it('checks the target when RedrivePolicy is set, and honours RedriveAllowPolicy', async () => {
    const url = await create('jobs');
    const policy = (name: string): string => JSON.stringify({ deadLetterTargetArn: arnOf(name), maxReceiveCount: 3 });
    await rejects(sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { RedrivePolicy: policy('no-such-queue') } })), 'InvalidParameterValue');
    await rejects(sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { RedrivePolicy: policy('jobs') } })), 'InvalidParameterValue');
    await rejects(sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: arnOf('jobs'), maxReceiveCount: 1001 }) } })), 'InvalidParameterValue');

    await create('closed-dlq', { RedriveAllowPolicy: JSON.stringify({ redrivePermission: 'denyAll' }) });
    await rejects(sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { RedrivePolicy: policy('closed-dlq') } })), 'InvalidParameterValue');
    await create('picky-dlq', { RedriveAllowPolicy: JSON.stringify({ redrivePermission: 'byQueue', sourceQueueArns: [arnOf('jobs')] }) });
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { RedrivePolicy: policy('picky-dlq') } }));
    const other = await create('other-source');
    await rejects(sqs.send(new SetQueueAttributesCommand({ QueueUrl: other, Attributes: { RedrivePolicy: policy('picky-dlq') } })), 'InvalidParameterValue');

    const got = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['RedrivePolicy'] }));
    assert.deepEqual(JSON.parse(got.Attributes!.RedrivePolicy!), { deadLetterTargetArn: arnOf('picky-dlq'), maxReceiveCount: 3 });
  });

  it('lists a dead-letter queue\'s source queues', async () => {
    const dlqUrl = `${service.endpoint}/${ACCOUNT}/picky-dlq`;
    const out = await sqs.send(new ListDeadLetterSourceQueuesCommand({ QueueUrl: dlqUrl }));
    assert.deepEqual(out.queueUrls, [`${service.endpoint}/${ACCOUNT}/jobs`]);
    const none = await sqs.send(new ListDeadLetterSourceQueuesCommand({ QueueUrl: `${service.endpoint}/${ACCOUNT}/jobs` }));
    assert.deepEqual(none.queueUrls ?? [], []);
  });

  it('a message move task returns dead-lettered messages to their source queue, resealed again', async () => {
    const dlqUrl = `${service.endpoint}/${ACCOUNT}/orders-dlq`;
    const url = `${service.endpoint}/${ACCOUNT}/orders`;
    await clock.advance(30_000); // the receive above has run out: the message is visible again
    await rejects(sqs.send(new StartMessageMoveTaskCommand({ SourceArn: arnOf('orders') })), 'InvalidParameterValue'); // not a DLQ
    const { TaskHandle } = await sqs.send(new StartMessageMoveTaskCommand({ SourceArn: arnOf('orders-dlq') }));
    assert.ok(TaskHandle);
    await rejects(sqs.send(new StartMessageMoveTaskCommand({ SourceArn: arnOf('orders-dlq') })), 'UnsupportedOperation');
    await taskReaches('orders-dlq', 'COMPLETED');
    const tasks = await sqs.send(new ListMessageMoveTasksCommand({ SourceArn: arnOf('orders-dlq'), MaxResults: 10 }));
    assert.equal(tasks.Results?.length, 1);
    assert.equal(tasks.Results?.[0]?.Status, 'COMPLETED');
    assert.equal(tasks.Results?.[0]?.ApproximateNumberOfMessagesMoved, 1);
    assert.equal(tasks.Results?.[0]?.ApproximateNumberOfMessagesToMove, 1);
    assert.equal(await count(dlqUrl), 0);
    const back = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MessageSystemAttributeNames: ['All'], VisibilityTimeout: 0 }));
    assert.equal(back.Messages?.[0]?.Body, 'poison');
    assert.equal(back.Messages?.[0]?.Attributes?.DeadLetterQueueSourceArn, undefined);
    const source = (await service.store.getQueueByName('orders', ACCOUNT))!;
    const dlq = (await service.store.getQueueByName('orders-dlq', ACCOUNT))!;
    assert.ok((await service.store.backlogDeks(source.queueId, { now: clock.now() })).length > 0, 'sealed under a key of the source again');
    assert.deepEqual(await service.store.backlogDeks(dlq.queueId, { now: clock.now() }), []);
    await rejects(sqs.send(new CancelMessageMoveTaskCommand({ TaskHandle })), 'ResourceNotFoundException');
  });

  it('a move task to a named destination keeps its pace and can be cancelled', async () => {
    const dlqUrl = await create('slow-dlq');
    const url = await create('slow', { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: arnOf('slow-dlq'), maxReceiveCount: 1 }) });
    const target = await create('slow-target');
    for (let i = 0; i < 5; i++) await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: `m${i}` }));
    await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, VisibilityTimeout: 0 }));
    assert.deepEqual((await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10 }))).Messages ?? [], []);
    assert.equal(await count(dlqUrl), 5);

    const { TaskHandle } = await sqs.send(new StartMessageMoveTaskCommand({ SourceArn: arnOf('slow-dlq'), DestinationArn: arnOf('slow-target'), MaxNumberOfMessagesPerSecond: 1 }));
    await clock.advance(0);
    const running = (await sqs.send(new ListMessageMoveTasksCommand({ SourceArn: arnOf('slow-dlq') }))).Results![0]!;
    assert.equal(running.Status, 'RUNNING');
    assert.equal(running.TaskHandle, TaskHandle);
    assert.ok(running.ApproximateNumberOfMessagesMoved! <= 1, 'one message a second');
    const cancelled = await sqs.send(new CancelMessageMoveTaskCommand({ TaskHandle }));
    const final = await taskReaches('slow-dlq', 'CANCELLED');
    assert.equal(final.Status, 'CANCELLED');
    assert.equal(final.TaskHandle, undefined, 'only a running task shows its handle');
    assert.ok(final.ApproximateNumberOfMessagesMoved! < 5, `moved ${final.ApproximateNumberOfMessagesMoved} before the cancel took`);
    // A step under way when the cancel came in still counts the message it moved (at this pace, one).
    assert.ok(final.ApproximateNumberOfMessagesMoved! - cancelled.ApproximateNumberOfMessagesMoved! <= 1, `moved ${final.ApproximateNumberOfMessagesMoved} after the cancel said ${cancelled.ApproximateNumberOfMessagesMoved}`);
    assert.equal(await count(target) + await count(dlqUrl), 5, 'every message in exactly one queue');
    assert.equal(await count(target), final.ApproximateNumberOfMessagesMoved);
  });
});
