import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CreateQueueCommand, GetQueueAttributesCommand, ListDeadLetterSourceQueuesCommand, ReceiveMessageCommand, SendMessageCommand,
  SetQueueAttributesCommand, SQSClient,
} from '@aws-sdk/client-sqs';
import { VirtualClock } from '../src/core/clock.ts';
import { md5OfMessageAttributes } from '../src/frontend/md5.ts';
import { accountOf, startService, type RunningService } from '../src/service.ts';

/** Dead-letter queues through the official SDK: RedrivePolicy enforced on receive, re-encrypted moves. */

const CREDENTIALS = { accessKeyId: 'AKIDPKPDLQTEST', secretAccessKey: 'dlq-secret-access-key-0123456789' };
const ACCOUNT = accountOf(CREDENTIALS);

let clock: VirtualClock;
let dataDir: string;
let service: RunningService;
let sqs: SQSClient;

before(async () => {
  clock = new VirtualClock(Date.now());
  dataDir = mkdtempSync(join(tmpdir(), 'pkp-dlq-'));
  service = await startService({ dataDir, port: 0, adminPort: null, frontends: 2, credentials: [CREDENTIALS], clock });
  sqs = new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 });
});

after(async () => {
  sqs?.destroy();
  await service?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const arnOf = (name: string): string => `arn:aws:sqs:us-east-1:${ACCOUNT}:${name}`;

async function create(name: string, attributes?: Record<string, string>): Promise<string> {
  return (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))).QueueUrl!;
}

async function rejects(promise: Promise<unknown>, name: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    assert.equal((error as Error).name, name, (error as Error).message);
    return;
  }
  assert.fail('expected the request to fail');
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
    const source = service.store.getQueueByName('orders', ACCOUNT)!;
    const sourceDeks = service.store.backlogDeks(source.queueId, { now: clock.now(), withinMs: 120_000 }).map((d) => d.dekId);

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

    const dlq = service.store.getQueueByName('orders-dlq', ACCOUNT)!;
    const dlqDeks = service.store.backlogDeks(dlq.queueId, { now: clock.now(), withinMs: 120_000 });
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
});
