import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ChangeMessageVisibilityBatchCommand, ChangeMessageVisibilityCommand, CreateQueueCommand, DeleteMessageBatchCommand,
  DeleteMessageCommand, DeleteQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, ListQueuesCommand,
  PurgeQueueCommand, ReceiveMessageCommand, SendMessageBatchCommand, SendMessageCommand, SetQueueAttributesCommand,
  SQSClient, type ReceiveMessageCommandInput, type ReceiveMessageCommandOutput,
} from '@aws-sdk/client-sqs';
import type { AccessEvent, PkpEvent } from '../src/bus/types.ts';
import { VirtualClock } from '../src/core/clock.ts';
import { md5OfMessageAttributes } from '../src/frontend/md5.ts';
import { accountOf, startService, type RunningService } from '../src/service.ts';
import { failure } from './helpers/failure.ts';
import { openTestStore, type TestStore } from './helpers/test-store.ts';

/** End to end: the official SDK against the running service, time driven by a virtual clock. */

const CREDENTIALS = { accessKeyId: 'AKIDPKPE2ETEST', secretAccessKey: 'e2e-secret-access-key-0123456789' };
/** The credential's own account: none is configured, so it is derived from the access key id. */
const ACCOUNT = accountOf(CREDENTIALS);

let clock: VirtualClock;
let dataDir: string;
let service: RunningService;
let sqs: SQSClient;
let store: TestStore | undefined;

function client(secretAccessKey = CREDENTIALS.secretAccessKey): SQSClient {
  // One attempt: a retry would hide the first answer and back off in real time.
  return new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials: { ...CREDENTIALS, secretAccessKey }, maxAttempts: 1 });
}


async function rejectsWith(promise: Promise<unknown>, name: string, status = 400): Promise<void> {
  const error = await failure(promise);
  assert.equal(error.name, name, `${error.name}: ${error.message}`);
  assert.equal(error.$metadata?.httpStatusCode, status);
}

/** Yields to the event loop (no timers) until `n` ReceiveMessage calls are parked in a long poll. */
async function longPollsParked(n: number): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    if (service.frontends.reduce((sum, f) => sum + f.node.activeLongPolls, 0) >= n) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  assert.fail('the long poll never started waiting');
}

async function createQueue(name: string, attributes?: Record<string, string>): Promise<string> {
  const out = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
  assert.ok(out.QueueUrl);
  return out.QueueUrl;
}

async function counts(queueUrl: string): Promise<{ visible: number; inFlight: number; delayed: number }> {
  const out = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['All'] }));
  return {
    visible: Number(out.Attributes?.ApproximateNumberOfMessages),
    inFlight: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible),
    delayed: Number(out.Attributes?.ApproximateNumberOfMessagesDelayed),
  };
}

async function receive(queueUrl: string, input: Partial<ReceiveMessageCommandInput> = {}): Promise<NonNullable<ReceiveMessageCommandOutput['Messages']>> {
  const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MessageSystemAttributeNames: ['All'], ...input }));
  return out.Messages ?? [];
}

before(async () => {
  clock = new VirtualClock(Date.now()); // SigV4 dates come from the real clock: start near it
  dataDir = mkdtempSync(join(tmpdir(), 'pkp-sqs-e2e-'));
  store = await openTestStore();
  service = await startService({ dataDir, port: 0, frontends: 3, credentials: [CREDENTIALS], clock, postgres: store.postgres });
  sqs = client();
});

after(async () => {
  sqs?.destroy();
  await service?.close();
  await store?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('queues', () => {
  it('creates a queue and returns its URL; the same attributes again return the same URL', async () => {
    const url = await createQueue('e2e-create', { VisibilityTimeout: '60' });
    assert.equal(url, `${service.endpoint}/${ACCOUNT}/e2e-create`);
    assert.equal(await createQueue('e2e-create', { VisibilityTimeout: '60' }), url);
    assert.equal(await createQueue('e2e-create'), url);
  });

  it('refuses the name with different attributes (QueueAlreadyExists)', async () => {
    const error = await failure(sqs.send(new CreateQueueCommand({ QueueName: 'e2e-create', Attributes: { VisibilityTimeout: '61' } })));
    assert.equal(error.name, 'QueueNameExists'); // the SDK's name for the QueueAlreadyExists query code
    assert.equal(error.Code, 'QueueAlreadyExists');
    assert.equal(error.$metadata?.httpStatusCode, 400);
  });

  it('refuses mismatched FIFO names and attributes, and bad names', async () => {
    await rejectsWith(sqs.send(new CreateQueueCommand({ QueueName: 'jobs.fifo' })), 'InvalidParameterValue');
    await rejectsWith(sqs.send(new CreateQueueCommand({ QueueName: 'jobs', Attributes: { FifoQueue: 'true' } })), 'InvalidParameterValue');
    await rejectsWith(sqs.send(new CreateQueueCommand({ QueueName: 'bad name' })), 'InvalidParameterValue');
    await rejectsWith(sqs.send(new CreateQueueCommand({ QueueName: 'jobs', Attributes: { Colour: 'blue' } as never })), 'InvalidAttributeName');
  });

  it('gets a queue URL, and QueueDoesNotExist for an unknown name', async () => {
    const out = await sqs.send(new GetQueueUrlCommand({ QueueName: 'e2e-create' }));
    assert.equal(out.QueueUrl, `${service.endpoint}/${ACCOUNT}/e2e-create`);
    const error = await failure(sqs.send(new GetQueueUrlCommand({ QueueName: 'e2e-nope' })));
    assert.equal(error.name, 'QueueDoesNotExist');
    assert.equal(error.Code, 'AWS.SimpleQueueService.NonExistentQueue');
  });

  it('lists queues by prefix, in pages', async () => {
    for (const name of ['e2e-list-c', 'e2e-list-a', 'e2e-list-b', 'e2e-other']) await createQueue(name);
    const all = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: 'e2e-list-' }));
    assert.deepEqual(all.QueueUrls?.map((u) => u.split('/').pop()), ['e2e-list-a', 'e2e-list-b', 'e2e-list-c']);
    const first = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: 'e2e-list-', MaxResults: 2 }));
    assert.deepEqual(first.QueueUrls?.map((u) => u.split('/').pop()), ['e2e-list-a', 'e2e-list-b']);
    assert.ok(first.NextToken);
    const second = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: 'e2e-list-', MaxResults: 2, NextToken: first.NextToken }));
    assert.deepEqual(second.QueueUrls?.map((u) => u.split('/').pop()), ['e2e-list-c']);
    assert.equal(second.NextToken, undefined);
  });

  it('gets and sets attributes; KmsDataKeyReusePeriodSeconds 59 is InvalidAttributeValue', async () => {
    const url = await createQueue('e2e-attrs');
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { VisibilityTimeout: '45', KmsDataKeyReusePeriodSeconds: '120' } }));
    const got = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['All'] }));
    assert.equal(got.Attributes?.VisibilityTimeout, '45');
    assert.equal(got.Attributes?.KmsDataKeyReusePeriodSeconds, '120');
    assert.equal(got.Attributes?.QueueArn, `arn:aws:sqs:us-east-1:${ACCOUNT}:e2e-attrs`);
    assert.equal(got.Attributes?.ApproximateNumberOfMessages, '0');
    assert.equal(got.Attributes?.SqsManagedSseEnabled, 'true');
    const some = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['DelaySeconds'] }));
    assert.deepEqual(some.Attributes, { DelaySeconds: '0' });
    await rejectsWith(sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { KmsDataKeyReusePeriodSeconds: '59' } })), 'InvalidAttributeValue');
    await rejectsWith(sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { VisibilityTimeout: '30', Bogus: '1' } as never })), 'InvalidAttributeName');
    const unchanged = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['VisibilityTimeout', 'KmsDataKeyReusePeriodSeconds'] }));
    assert.deepEqual(unchanged.Attributes, { VisibilityTimeout: '45', KmsDataKeyReusePeriodSeconds: '120' });
  });
});

describe('messages', () => {
  let url: string;
  before(async () => {
    url = await createQueue('e2e-messages');
  });

  it('sends and receives a message with String, Number and Binary attributes', async () => {
    const binary = Uint8Array.from([0, 1, 2, 250, 255]);
    const attributes = {
      colour: { DataType: 'String', StringValue: 'grün ✓' },
      weight: { DataType: 'Number.kg', StringValue: '-12.50' },
      blob: { DataType: 'Binary', BinaryValue: binary },
    };
    const sentAt = clock.now();
    const sent = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'héllo wörld 🌍', MessageAttributes: attributes }));
    assert.ok(sent.MessageId);
    assert.equal(sent.MD5OfMessageAttributes, md5OfMessageAttributes(attributes));

    const [m, ...rest] = await receive(url, { MessageAttributeNames: ['All'] });
    assert.equal(rest.length, 0);
    assert.ok(m);
    assert.equal(m.MessageId, sent.MessageId);
    assert.equal(m.Body, 'héllo wörld 🌍');
    assert.equal(m.MD5OfMessageAttributes, sent.MD5OfMessageAttributes);
    assert.deepEqual(m.MessageAttributes?.colour, { DataType: 'String', StringValue: 'grün ✓' });
    assert.deepEqual(m.MessageAttributes?.weight, { DataType: 'Number.kg', StringValue: '-12.50' });
    assert.equal(m.MessageAttributes?.blob?.DataType, 'Binary');
    assert.deepEqual(Uint8Array.from(m.MessageAttributes?.blob?.BinaryValue ?? []), binary);
    assert.equal(m.Attributes?.ApproximateReceiveCount, '1');
    assert.equal(m.Attributes?.SenderId, CREDENTIALS.accessKeyId);
    assert.equal(m.Attributes?.SentTimestamp, String(sentAt));
    assert.equal(m.Attributes?.ApproximateFirstReceiveTimestamp, String(clock.now()));
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle }));
  });

  it('reports each queue-level request to the bus, without its body, and counts it in the metrics', async () => {
    const events: PkpEvent[] = [];
    const unsubscribe = service.bus.subscribe((e) => events.push(e));
    try {
      await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'report me, 18 byte' }));
      const [m] = await receive(url);
      await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m?.ReceiptHandle }));
    } finally {
      unsubscribe();
    }
    const access = events.filter((e): e is AccessEvent => e.type === 'access');
    assert.deepEqual(access.map((e) => [e.op, e.bytes, e.principal]), [
      ['send', 18, CREDENTIALS.accessKeyId], ['receive', 0, CREDENTIALS.accessKeyId], ['delete', 0, CREDENTIALS.accessKeyId],
    ]);
    assert.equal(new Set(access.map((e) => e.queueId)).size, 1);
    assert.ok(!JSON.stringify(events).includes('report me'));
    const metrics = await service.metrics.registry.getSingleMetricAsString('pkp_sqs_requests_total');
    assert.match(metrics, /action="SendMessage",code="200"/);
    assert.match(metrics, /action="GetQueueUrl",code="400"/);
  });

  it('returns only the message attributes asked for, with their own MD5', async () => {
    const attributes = {
      'app.a': { DataType: 'String', StringValue: '1' },
      'app.b': { DataType: 'String', StringValue: '2' },
      other: { DataType: 'String', StringValue: '3' },
    };
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'subset', MessageAttributes: attributes }));
    const [m] = await receive(url, { MessageAttributeNames: ['app.*'] });
    assert.ok(m);
    assert.deepEqual(Object.keys(m.MessageAttributes ?? {}).sort(), ['app.a', 'app.b']);
    assert.equal(m.MD5OfMessageAttributes, md5OfMessageAttributes({ 'app.a': attributes['app.a'], 'app.b': attributes['app.b'] }));
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle }));
  });

  it('sends a batch with a per-entry failure', async () => {
    const out = await sqs.send(new SendMessageBatchCommand({
      QueueUrl: url,
      Entries: [
        { Id: 'one', MessageBody: 'first' },
        { Id: 'bad', MessageBody: 'nul \u0000 inside' },
        { Id: 'two', MessageBody: 'second', DelaySeconds: 0 },
      ],
    }));
    assert.deepEqual(out.Successful?.map((s) => s.Id), ['one', 'two']);
    assert.equal(out.Failed?.length, 1);
    assert.equal(out.Failed?.[0]?.Id, 'bad');
    assert.equal(out.Failed?.[0]?.Code, 'InvalidMessageContents');
    assert.equal(out.Failed?.[0]?.SenderFault, true);
    const messages = await receive(url, { MaxNumberOfMessages: 10 });
    assert.deepEqual(messages.map((m) => m.Body).sort(), ['first', 'second']);
    const deleted = await sqs.send(new DeleteMessageBatchCommand({
      QueueUrl: url,
      Entries: [...messages.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle })), { Id: 'junk', ReceiptHandle: 'not-a-handle' }],
    }));
    assert.deepEqual(deleted.Successful?.map((s) => s.Id).sort(), ['d0', 'd1']);
    assert.equal(deleted.Failed?.[0]?.Id, 'junk');
    assert.equal(deleted.Failed?.[0]?.Code, 'ReceiptHandleIsInvalid');
    assert.deepEqual(await counts(url), { visible: 0, inFlight: 0, delayed: 0 });
  });

  it('refuses malformed batches as a whole', async () => {
    await rejectsWith(sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: [] })), 'EmptyBatchRequest');
    await rejectsWith(sqs.send(new SendMessageBatchCommand({
      QueueUrl: url, Entries: [{ Id: 'x', MessageBody: 'a' }, { Id: 'x', MessageBody: 'b' }],
    })), 'BatchEntryIdsNotDistinct');
    await rejectsWith(sqs.send(new SendMessageBatchCommand({
      QueueUrl: url, Entries: Array.from({ length: 11 }, (_, i) => ({ Id: `e${i}`, MessageBody: 'a' })),
    })), 'TooManyEntriesInBatchRequest');
    await rejectsWith(sqs.send(new SendMessageBatchCommand({
      QueueUrl: url, Entries: Array.from({ length: 3 }, (_, i) => ({ Id: `e${i}`, MessageBody: 'x'.repeat(400_000) })),
    })), 'BatchRequestTooLong');
    assert.deepEqual(await counts(url), { visible: 0, inFlight: 0, delayed: 0 });
  });

  it('hides a received message for its visibility timeout, then delivers it again', async () => {
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'again' }));
    const [first] = await receive(url, { VisibilityTimeout: 5 });
    assert.equal(first?.Attributes?.ApproximateReceiveCount, '1');
    assert.deepEqual(await receive(url), []);
    await clock.advance(5_001);
    const [second] = await receive(url);
    assert.equal(second?.MessageId, first?.MessageId);
    assert.equal(second?.Attributes?.ApproximateReceiveCount, '2');
    // The first receipt handle no longer names the in-flight receive.
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: second?.ReceiptHandle }));
  });

  it('changes visibility, singly and in batches', async () => {
    await sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: [{ Id: 'a', MessageBody: 'a' }, { Id: 'b', MessageBody: 'b' }, { Id: 'c', MessageBody: 'c' }] }));
    const got = await receive(url, { MaxNumberOfMessages: 10, VisibilityTimeout: 300 });
    assert.equal(got.length, 3);
    assert.deepEqual(await receive(url), []);
    await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: got[0]!.ReceiptHandle, VisibilityTimeout: 0 }));
    const batch = await sqs.send(new ChangeMessageVisibilityBatchCommand({
      QueueUrl: url,
      Entries: [
        { Id: 'b', ReceiptHandle: got[1]!.ReceiptHandle, VisibilityTimeout: 0 },
        { Id: 'c', ReceiptHandle: got[2]!.ReceiptHandle, VisibilityTimeout: 10 },
        { Id: 'junk', ReceiptHandle: 'junk', VisibilityTimeout: 0 },
      ],
    }));
    assert.deepEqual(batch.Successful?.map((s) => s.Id), ['b', 'c']);
    assert.equal(batch.Failed?.[0]?.Code, 'ReceiptHandleIsInvalid');
    const again = await receive(url, { MaxNumberOfMessages: 10 });
    assert.deepEqual(again.map((m) => m.Body).sort(), ['a', 'b']);
    assert.deepEqual(await counts(url), { visible: 0, inFlight: 3, delayed: 0 });
    await rejectsWith(sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: 'junk', VisibilityTimeout: 1 })), 'ReceiptHandleIsInvalid', 404);
    await sqs.send(new PurgeQueueCommand({ QueueUrl: url }));
  });

  it('refuses bad receive parameters', async () => {
    await rejectsWith(sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 11 })), 'InvalidParameterValue');
    await rejectsWith(sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 21 })), 'InvalidParameterValue');
    await rejectsWith(sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: 'garbage' })), 'ReceiptHandleIsInvalid', 404);
  });

  it('purges a queue', async () => {
    await clock.advance(60_000); // one purge per queue per minute: the one above was this queue's
    await sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: [{ Id: 'a', MessageBody: 'a' }, { Id: 'b', MessageBody: 'b', DelaySeconds: 60 }] }));
    assert.deepEqual(await counts(url), { visible: 1, inFlight: 0, delayed: 1 });
    await sqs.send(new PurgeQueueCommand({ QueueUrl: url }));
    assert.deepEqual(await counts(url), { visible: 0, inFlight: 0, delayed: 0 });
  });
});

describe('long polling', () => {
  let url: string;
  before(async () => {
    url = await createQueue('e2e-long-poll');
  });

  it('returns a message sent while the receive waits', async () => {
    const polling = receive(url, { WaitTimeSeconds: 10 });
    await longPollsParked(1);
    const sent = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'worth the wait' }));
    const [m] = await polling;
    assert.equal(m?.MessageId, sent.MessageId);
    assert.equal(m?.Body, 'worth the wait');
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m?.ReceiptHandle }));
  });

  it('returns empty when the wait time passes', async () => {
    const polling = receive(url, { WaitTimeSeconds: 10 });
    await longPollsParked(1);
    let done = false;
    void polling.then(() => { done = true; });
    await clock.advance(9_000);
    assert.equal(done, false);
    await clock.advance(1_000);
    assert.deepEqual(await polling, []);
  });

  it('wakes up when a delayed message comes due', async () => {
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'later', DelaySeconds: 3 }));
    const polling = receive(url, { WaitTimeSeconds: 10 });
    await longPollsParked(1);
    await clock.advance(3_000);
    const [m] = await polling;
    assert.equal(m?.Body, 'later');
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m?.ReceiptHandle }));
  });
});

describe('retention and shutdown', () => {
  it('drops messages older than the retention period', async () => {
    const url = await createQueue('e2e-retention', { MessageRetentionPeriod: '60' });
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'short-lived' }));
    await clock.advance(61_000);
    assert.deepEqual(await receive(url), []);
    assert.equal((await counts(url)).visible, 0);
  });

  it('does not deliver a message past retention that a receive kept invisible across the cutoff', async () => {
    const url = await createQueue('e2e-retention-received', { MessageRetentionPeriod: '60' });
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'received-late' }));
    await clock.advance(50_000);
    const [m] = await receive(url, { VisibilityTimeout: 30 });
    assert.equal(m?.Body, 'received-late');
    await clock.advance(31_000); // visible again at 80 s, its retention ended at 60 s
    assert.deepEqual(await receive(url), []);
    assert.deepEqual(await counts(url), { visible: 0, inFlight: 0, delayed: 0 });
  });

  it('ends parked long polls with an empty answer when the service closes', async () => {
    const otherDir = mkdtempSync(join(tmpdir(), 'pkp-sqs-e2e-close-'));
    const other = await startService({ dataDir: otherDir, port: 0, frontends: 1, credentials: [CREDENTIALS], clock });
    const c = new SQSClient({ endpoint: other.endpoint, region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 });
    try {
      const { QueueUrl } = await c.send(new CreateQueueCommand({ QueueName: 'closing' }));
      const polling = c.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 20 }));
      for (let i = 0; i < 100_000 && other.frontends[0]!.node.activeLongPolls === 0; i++) await new Promise<void>((r) => setImmediate(r));
      assert.equal(other.frontends[0]!.node.activeLongPolls, 1);
      const closed = other.close();
      assert.deepEqual((await polling).Messages ?? [], []);
      await closed;
    } finally {
      c.destroy();
      await other.close();
      rmSync(otherDir, { recursive: true, force: true });
    }
  });
});

describe('bad requests change nothing', () => {
  let url: string;
  before(async () => {
    url = await createQueue('e2e-bad', { MaximumMessageSize: '1024' });
  });

  it('refuses a body over the queue limit, counting attributes', async () => {
    await rejectsWith(sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'x'.repeat(1025) })), 'InvalidParameterValue');
    await rejectsWith(sqs.send(new SendMessageCommand({
      QueueUrl: url, MessageBody: 'x'.repeat(1000), MessageAttributes: { pad: { DataType: 'String', StringValue: 'y'.repeat(20) } },
    })), 'InvalidParameterValue');
    const big = await createQueue('e2e-big');
    await rejectsWith(sqs.send(new SendMessageCommand({ QueueUrl: big, MessageBody: 'x'.repeat(1_048_577) })), 'InvalidParameterValue');
    await sqs.send(new SendMessageCommand({ QueueUrl: big, MessageBody: 'x'.repeat(1_048_576) })); // 1 MiB: the default limit
    const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: big, VisibilityTimeout: 0 }));
    assert.equal(got.Messages?.[0]?.Body?.length, 1_048_576);
    assert.equal((await counts(big)).visible, 1);
    assert.equal((await counts(url)).visible, 0);
  });

  it('refuses characters SQS does not allow', async () => {
    await rejectsWith(sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'bell \u0007' })), 'InvalidMessageContents');
    await rejectsWith(sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'lone \ud800 surrogate' })), 'InvalidMessageContents');
    await rejectsWith(sqs.send(new SendMessageCommand({
      QueueUrl: url, MessageBody: 'ok', MessageAttributes: { a: { DataType: 'String', StringValue: '\uffff' } },
    })), 'InvalidMessageContents');
    assert.equal((await counts(url)).visible, 0);
  });

  it('refuses missing parameters', async () => {
    await rejectsWith(sqs.send(new SendMessageCommand({ QueueUrl: url } as never)), 'MissingParameter');
    await rejectsWith(sqs.send(new DeleteMessageCommand({ QueueUrl: url } as never)), 'MissingParameter');
    await rejectsWith(sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: 'h' } as never)), 'MissingParameter');
  });

  it('refuses bad message attributes', async () => {
    const send = (attrs: Record<string, unknown>) => sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'b', MessageAttributes: attrs as never }));
    await rejectsWith(send({ 'AWS.reserved': { DataType: 'String', StringValue: 'v' } }), 'InvalidParameterValue');
    await rejectsWith(send({ n: { DataType: 'Number', StringValue: 'twelve' } }), 'InvalidParameterValue');
    await rejectsWith(send({ n: { DataType: 'Text', StringValue: 'v' } }), 'InvalidParameterValue');
    await rejectsWith(send({ n: { DataType: 'String' } }), 'InvalidParameterValue');
    await rejectsWith(send(Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`a${i}`, { DataType: 'String', StringValue: 'v' }]))), 'InvalidParameterValue');
    assert.equal((await counts(url)).visible, 0);
  });

  it('answers an unknown action with InvalidAction', async () => {
    const odd = client();
    odd.middlewareStack.add((next) => async (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-amz-target'] = 'AmazonSQS.Frobnicate';
      return next(args);
    }, { step: 'build' });
    await rejectsWith(odd.send(new ListQueuesCommand({})), 'InvalidAction');
    odd.destroy();
  });

  it('refuses a bad signature with 403 and stores nothing', async () => {
    const forger = client('wrong-secret-wrong-secret-wrong');
    await rejectsWith(forger.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'forged' })), 'SignatureDoesNotMatch', 403);
    await rejectsWith(forger.send(new CreateQueueCommand({ QueueName: 'e2e-forged' })), 'SignatureDoesNotMatch', 403);
    forger.destroy();
    assert.equal((await counts(url)).visible, 0);
    await rejectsWith(sqs.send(new GetQueueUrlCommand({ QueueName: 'e2e-forged' })), 'QueueDoesNotExist');
  });

  it('maps KMS failures to SQS errors', async () => {
    const missing = await createQueue('e2e-kms-missing', { KmsMasterKeyId: 'alias/no-such-key' });
    await rejectsWith(sqs.send(new SendMessageCommand({ QueueUrl: missing, MessageBody: 'x' })), 'KmsNotFound');
    const key = await service.kms.createKey('e2e');
    await service.kms.disableKey(key.keyId);
    const disabled = await createQueue('e2e-kms-disabled', { KmsMasterKeyId: key.keyId });
    await rejectsWith(sqs.send(new SendMessageCommand({ QueueUrl: disabled, MessageBody: 'x' })), 'KmsDisabled');
    assert.equal((await counts(missing)).visible, 0);
    assert.equal((await counts(disabled)).visible, 0);
  });

  it('deletes a queue; afterwards it does not exist', async () => {
    const doomed = await createQueue('e2e-doomed');
    await sqs.send(new SendMessageCommand({ QueueUrl: doomed, MessageBody: 'bye' }));
    await sqs.send(new DeleteQueueCommand({ QueueUrl: doomed }));
    await rejectsWith(sqs.send(new GetQueueUrlCommand({ QueueName: 'e2e-doomed' })), 'QueueDoesNotExist');
    await rejectsWith(sqs.send(new SendMessageCommand({ QueueUrl: doomed, MessageBody: 'x' })), 'QueueDoesNotExist');
    await rejectsWith(sqs.send(new DeleteQueueCommand({ QueueUrl: doomed })), 'QueueDoesNotExist');
  });
});
