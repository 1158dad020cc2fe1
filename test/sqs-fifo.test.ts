import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CreateQueueCommand, DeleteMessageCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageBatchCommand,
  SendMessageCommand, SQSClient,
} from '@aws-sdk/client-sqs';
import type { VirtualClock } from '../src/core/clock.ts';
import { openSdkService, type SdkService } from './helpers/sdk-service.ts';
import { rejects } from './helpers/failure.ts';

/** FIFO queues through the official SDK: group order, in-flight blocking, deduplication, errors. */

const CREDENTIALS = { accessKeyId: 'AKIDPKPFIFOTEST', secretAccessKey: 'fifo-secret-access-key-0123456789' };

let env: SdkService | undefined;
let clock: VirtualClock;
let sqs: SQSClient;

before(async () => {
  env = await openSdkService(CREDENTIALS, 'pkp-fifo-', 3);
  ({ clock, sqs } = env);
});
after(async () => env?.close());


async function fifo(name: string, attributes: Record<string, string> = {}): Promise<string> {
  return (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: { FifoQueue: 'true', ...attributes } }))).QueueUrl!;
}

describe('FIFO queues', () => {
  it('creates a .fifo queue with its FIFO attributes; refuses FIFO misuse', async () => {
    const url = await fifo('orders.fifo');
    const attrs = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['All'] }))).Attributes!;
    assert.equal(attrs.FifoQueue, 'true');
    assert.equal(attrs.ContentBasedDeduplication, 'false');
    assert.equal(attrs.DeduplicationScope, 'queue');
    assert.equal(attrs.FifoThroughputLimit, 'perQueue');
    await rejects(sqs.send(new CreateQueueCommand({ QueueName: 'bad.fifo', Attributes: { FifoQueue: 'true', FifoThroughputLimit: 'perMessageGroupId' } })), 'InvalidAttributeValue');

    await rejects(sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'x', MessageDeduplicationId: 'd' })), 'MissingParameter');
    await rejects(sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'x', MessageGroupId: 'g' })), 'InvalidParameterValue');
    await rejects(sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'x', MessageGroupId: 'g', MessageDeduplicationId: 'd', DelaySeconds: 5 })), 'InvalidParameterValue');
    await rejects(sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'x', MessageGroupId: 'g h', MessageDeduplicationId: 'd' })), 'InvalidParameterValue');

    const standard = (await sqs.send(new CreateQueueCommand({ QueueName: 'plain' }))).QueueUrl!;
    await rejects(sqs.send(new SendMessageCommand({ QueueUrl: standard, MessageBody: 'x', MessageDeduplicationId: 'd' })), 'InvalidParameterValue');
    await sqs.send(new SendMessageCommand({ QueueUrl: standard, MessageBody: 'fair', MessageGroupId: 'tenant-1' })); // fair queues
    const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: standard, MessageSystemAttributeNames: ['MessageGroupId'] }));
    assert.equal(got.Messages?.[0]?.Attributes?.MessageGroupId, 'tenant-1');
    assert.equal((await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages'] }))).Attributes?.ApproximateNumberOfMessages, '0');
  });

  it('deduplicates within 5 minutes, by id or by content, and answers a duplicate with the first message', async () => {
    const url = await fifo('dedup.fifo', { ContentBasedDeduplication: 'true' });
    const first = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'once', MessageGroupId: 'g', MessageDeduplicationId: 'id-1' }));
    const again = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'once more', MessageGroupId: 'g', MessageDeduplicationId: 'id-1' }));
    assert.equal(again.MessageId, first.MessageId);
    assert.equal(again.SequenceNumber, first.SequenceNumber);
    const byContent = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'same body', MessageGroupId: 'g' }));
    const byContentAgain = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'same body', MessageGroupId: 'other' }));
    assert.equal(byContentAgain.MessageId, byContent.MessageId, 'queue scope: the group does not matter');
    assert.ok(BigInt(byContent.SequenceNumber!) > BigInt(first.SequenceNumber!));
    const batch = await sqs.send(new SendMessageBatchCommand({
      QueueUrl: url, Entries: [{ Id: 'a', MessageBody: 'b1', MessageGroupId: 'g', MessageDeduplicationId: 'id-1' }, { Id: 'b', MessageBody: 'b2', MessageGroupId: 'g' }],
    }));
    assert.equal(batch.Successful?.find((e) => e.Id === 'a')?.MessageId, first.MessageId);

    await clock.advance(5 * 60_000);
    const later = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'once', MessageGroupId: 'g', MessageDeduplicationId: 'id-1' }));
    assert.notEqual(later.MessageId, first.MessageId, 'after the window the id is new again');

    const bodies: string[] = [];
    for (;;) {
      const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10 }));
      if (!got.Messages?.length) break;
      for (const m of got.Messages) {
        bodies.push(m.Body!);
        await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle! }));
      }
    }
    assert.deepEqual(bodies, ['once', 'same body', 'b2', 'once']);
  });

  it('delivers each group in order, and nothing of a group while one of its messages is in flight', async () => {
    const url = await fifo('groups.fifo', { ContentBasedDeduplication: 'true' });
    for (const [group, n] of [['a', 1], ['b', 1], ['a', 2], ['a', 3], ['b', 2]] as const) {
      await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: `${group}${n}`, MessageGroupId: group }));
    }
    const first = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 2, VisibilityTimeout: 30, MessageSystemAttributeNames: ['All'] }));
    assert.deepEqual(first.Messages?.map((m) => m.Body), ['a1', 'b1']);
    assert.equal(first.Messages?.[0]?.Attributes?.MessageGroupId, 'a');
    assert.match(first.Messages?.[0]?.Attributes?.SequenceNumber ?? '', /^\d{20}$/);
    assert.equal(first.Messages?.[0]?.Attributes?.MessageDeduplicationId?.length, 64, 'the SHA-256 of the body');
    const blocked = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10 }));
    assert.deepEqual(blocked.Messages ?? [], [], 'both groups have a message in flight');

    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: first.Messages![0]!.ReceiptHandle! }));
    const next = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, VisibilityTimeout: 30 }));
    assert.deepEqual(next.Messages?.map((m) => m.Body), ['a2', 'a3'], 'group a only, in order');

    await clock.advance(30_000); // every in-flight message comes back, still in order
    const back = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10 }));
    assert.deepEqual(back.Messages?.map((m) => m.Body), ['b1', 'a2', 'a3', 'b2']);
  });

  it('concurrent consumers: every group in order, exactly once (in-flight blocking is the test above)', async () => {
    const url = await fifo('busy.fifo', { ContentBasedDeduplication: 'true' });
    const groups = ['g0', 'g1', 'g2', 'g3'];
    const perGroup = 15;
    for (let i = 0; i < perGroup; i++) {
      await sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: groups.map((g) => ({ Id: g, MessageBody: `${g}:${i}`, MessageGroupId: g })) }));
    }
    const seen = new Map<string, number[]>(groups.map((g) => [g, []]));
    let total = 0;
    const consumer = async (): Promise<void> => {
      for (let idle = 0; idle < 50 && total < groups.length * perGroup;) {
        const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 3, VisibilityTimeout: 600 }));
        if (!got.Messages?.length) {
          idle++;
          await new Promise((r) => setImmediate(r));
          continue;
        }
        for (const m of got.Messages) {
          const [g, n] = m.Body!.split(':') as [string, string];
          // Each delivery of a group continues exactly where the last one ended: no gap, no repeat.
          assert.equal(Number(n), seen.get(g)!.length, `group ${g}: got ${n} after ${seen.get(g)!.length} messages`);
          seen.get(g)!.push(Number(n));
          total++;
        }
        await new Promise((r) => setImmediate(r)); // let the others try while these are in flight
        for (const m of got.Messages) await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle! }));
      }
    };
    await Promise.all([consumer(), consumer(), consumer(), consumer()]);
    for (const g of groups) assert.deepEqual(seen.get(g), Array.from({ length: perGroup }, (_, i) => i), `group ${g} in order, exactly once`);
  });

  it('ReceiveRequestAttemptId: a retry within 5 minutes gets the same messages and receipt handles', async () => {
    const url = await fifo('attempts.fifo', { ContentBasedDeduplication: 'true' });
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'm1', MessageGroupId: 'g' }));
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'n1', MessageGroupId: 'h' }));
    const first = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1, ReceiveRequestAttemptId: 'try-1', VisibilityTimeout: 60 }));
    const retry = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1, ReceiveRequestAttemptId: 'try-1', VisibilityTimeout: 60 }));
    assert.deepEqual(retry.Messages?.map((m) => [m.Body, m.ReceiptHandle]), first.Messages?.map((m) => [m.Body, m.ReceiptHandle]));
    const other = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1, ReceiveRequestAttemptId: 'try-2' }));
    assert.deepEqual(other.Messages?.map((m) => m.Body), ['n1'], 'another attempt is a new receive');
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: first.Messages![0]!.ReceiptHandle! }));
    const afterDelete = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1, ReceiveRequestAttemptId: 'try-1' }));
    assert.deepEqual(afterDelete.Messages ?? [], [], 'its message was deleted: a new receive, which finds nothing visible');
    await rejects(sqs.send(new ReceiveMessageCommand({ QueueUrl: url, ReceiveRequestAttemptId: 'bad id' })), 'InvalidParameterValue');
  });
});
