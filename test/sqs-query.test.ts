import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreateQueueCommand, SQSClient } from '@aws-sdk/client-sqs';
import { VirtualClock } from '../src/core/clock.ts';
import { md5OfBody, md5OfMessageAttributes } from '../src/frontend/md5.ts';
import { accountOf, startService, type RunningService } from '../src/service.ts';
import { all, at, mapOf, QueryClient, textAt, type QueryResponse } from './helpers/query-client.ts';

/** The Query protocol end to end: hand-signed form requests against the running service. */

const CREDENTIALS = { accessKeyId: 'AKIDPKPQUERYTEST', secretAccessKey: 'query-secret-access-key-0123456789' };
/** The credential's own account: none is configured, so it is derived from the access key id. */
const ACCOUNT = accountOf(CREDENTIALS);
const NS = 'http://queue.amazonaws.com/doc/2012-11-05/';

let clock: VirtualClock;
let dataDir: string;
let service: RunningService;
let query: QueryClient;

before(async () => {
  clock = new VirtualClock(Date.now()); // SigV4 dates come from the real clock: start near it
  dataDir = mkdtempSync(join(tmpdir(), 'pkp-sqs-query-'));
  service = await startService({ dataDir, port: 0, frontends: 2, credentials: [CREDENTIALS], clock });
  query = new QueryClient(service.endpoint, CREDENTIALS.accessKeyId, CREDENTIALS.secretAccessKey);
});

after(async () => {
  await service?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function ok(r: QueryResponse, action: string): void {
  assert.equal(r.status, 200, r.raw);
  assert.match(r.headers.get('content-type') ?? '', /^text\/xml/);
  assert.equal(r.xml.name, `${action}Response`);
  assert.match(r.raw, new RegExp(`<${action}Response xmlns="${NS.replace(/\./g, '\\.')}">`));
  const requestId = textAt(r.xml, 'ResponseMetadata', 'RequestId');
  assert.match(requestId ?? '', /^[0-9a-f-]{36}$/);
  assert.equal(r.headers.get('x-amzn-requestid'), requestId);
}

function failed(r: QueryResponse, status: number, code: string, type = 'Sender'): void {
  assert.equal(r.status, status, r.raw);
  assert.match(r.headers.get('content-type') ?? '', /^text\/xml/);
  assert.equal(r.xml.name, 'ErrorResponse');
  assert.equal(textAt(r.xml, 'Error', 'Code'), code);
  assert.equal(textAt(r.xml, 'Error', 'Type'), type);
  assert.ok((textAt(r.xml, 'Error', 'Message') ?? '').length > 0);
  assert.equal(textAt(r.xml, 'RequestId'), r.headers.get('x-amzn-requestid'));
}

async function createQueue(name: string, params: Record<string, string> = {}): Promise<string> {
  const r = await query.call('CreateQueue', { QueueName: name, ...params });
  ok(r, 'CreateQueue');
  return textAt(r.xml, 'CreateQueueResult', 'QueueUrl')!;
}

async function receive(url: string, params: Record<string, string | number> = {}): Promise<QueryResponse> {
  const r = await query.call('ReceiveMessage', { QueueUrl: url, ...params });
  ok(r, 'ReceiveMessage');
  return r;
}

describe('queues over Query', () => {
  it('creates a queue with Attribute.N, gets its URL, lists it', async () => {
    const url = await createQueue('q-create', { 'Attribute.1.Name': 'VisibilityTimeout', 'Attribute.1.Value': '45', 'Attribute.2.Name': 'DelaySeconds', 'Attribute.2.Value': '0' });
    assert.equal(url, `${service.endpoint}/${ACCOUNT}/q-create`);

    const got = await query.call('GetQueueUrl', { QueueName: 'q-create' });
    ok(got, 'GetQueueUrl');
    assert.equal(textAt(got.xml, 'GetQueueUrlResult', 'QueueUrl'), url);

    await createQueue('q-create-b');
    const list = await query.call('ListQueues', { QueueNamePrefix: 'q-create' });
    ok(list, 'ListQueues');
    assert.deepEqual(all(at(list.xml, 'ListQueuesResult'), 'QueueUrl').map((n) => n.text), [url, `${url}-b`]);

    const page = await query.call('ListQueues', { QueueNamePrefix: 'q-create', MaxResults: 1 });
    assert.equal(all(at(page.xml, 'ListQueuesResult'), 'QueueUrl').length, 1);
    assert.ok(textAt(page.xml, 'ListQueuesResult', 'NextToken'));
  });

  it('reads attributes as a flattened Name/Value list and sets them', async () => {
    const url = await createQueue('q-attrs', { 'Attribute.1.Name': 'VisibilityTimeout', 'Attribute.1.Value': '45' });
    const set = await query.call('SetQueueAttributes', { QueueUrl: url, 'Attribute.1.Name': 'DelaySeconds', 'Attribute.1.Value': '7' });
    ok(set, 'SetQueueAttributes');
    assert.equal(at(set.xml, 'SetQueueAttributesResult'), undefined); // only ResponseMetadata

    const r = await query.call('GetQueueAttributes', { QueueUrl: url, 'AttributeName.1': 'VisibilityTimeout', 'AttributeName.2': 'DelaySeconds', 'AttributeName.3': 'QueueArn' });
    ok(r, 'GetQueueAttributes');
    assert.deepEqual(mapOf(all(at(r.xml, 'GetQueueAttributesResult'), 'Attribute')), {
      VisibilityTimeout: '45', DelaySeconds: '7', QueueArn: `arn:aws:sqs:us-east-1:${ACCOUNT}:q-attrs`,
    });

    const bad = await query.call('SetQueueAttributes', { QueueUrl: url, 'Attribute.1.Name': 'DelaySeconds', 'Attribute.1.Value': '901' });
    failed(bad, 400, 'InvalidAttributeValue');
    const after = await query.call('GetQueueAttributes', { QueueUrl: url, 'AttributeName.1': 'DelaySeconds' });
    assert.equal(mapOf(all(at(after.xml, 'GetQueueAttributesResult'), 'Attribute')).DelaySeconds, '7');
  });

  it('answers errors with an ErrorResponse body and the legacy query code', async () => {
    failed(await query.call('GetQueueUrl', { QueueName: 'q-none' }), 400, 'AWS.SimpleQueueService.NonExistentQueue');
    failed(await query.call('CreateQueue', { QueueName: 'q-create', 'Attribute.1.Name': 'VisibilityTimeout', 'Attribute.1.Value': '46' }), 400, 'QueueAlreadyExists');
    failed(await query.call('CreateQueue', { QueueName: 'q-x', 'Attribute.1.Name': 'Colour', 'Attribute.1.Value': 'blue' }), 400, 'InvalidAttributeName');
    failed(await query.call('FlyToTheMoon'), 400, 'InvalidAction');
    failed(await query.call('GetQueueUrl', {}), 400, 'MissingParameter');
    failed(await query.call('GetQueueUrl', { QueueName: 'q-create' }, { secretAccessKey: 'not-the-secret-0123456789' }), 403, 'SignatureDoesNotMatch');
    failed(await query.call('ReceiveMessage', { QueueUrl: `${service.endpoint}/${ACCOUNT}/q-create`, MaxNumberOfMessages: 'ten' }), 400, 'InvalidParameterValue');
  });

  it('takes GET requests with the parameters in the query string', async () => {
    const r = await query.call('GetQueueUrl', { QueueName: 'q-create' }, { method: 'GET' });
    ok(r, 'GetQueueUrl');
    assert.equal(textAt(r.xml, 'GetQueueUrlResult', 'QueueUrl'), `${service.endpoint}/${ACCOUNT}/q-create`);
  });

  it('takes a request posted to the queue URL without a QueueUrl parameter', async () => {
    const url = await createQueue('q-path');
    const sent = await query.call('SendMessage', { MessageBody: 'by path' }, { path: `/${ACCOUNT}/q-path` });
    ok(sent, 'SendMessage');
    const r = await receive(url);
    assert.equal(textAt(r.xml, 'ReceiveMessageResult', 'Message', 'Body'), 'by path');
  });
});

describe('messages over Query', () => {
  it('sends with MessageAttribute.N and receives them back with their MD5s; XML-special bodies survive', async () => {
    const url = await createQueue('q-msg');
    const body = 'a <b> & "c" \'d\' \r\n\ttab ünï 😀';
    const binary = Buffer.from([0, 1, 2, 250, 255]);
    const sent = await query.call('SendMessage', {
      QueueUrl: url,
      MessageBody: body,
      'MessageAttribute.1.Name': 'colour',
      'MessageAttribute.1.Value.DataType': 'String',
      'MessageAttribute.1.Value.StringValue': 'blue & <green>',
      'MessageAttribute.2.Name': 'weight',
      'MessageAttribute.2.Value.DataType': 'Number',
      'MessageAttribute.2.Value.StringValue': '12.5',
      'MessageAttribute.3.Name': 'blob',
      'MessageAttribute.3.Value.DataType': 'Binary',
      'MessageAttribute.3.Value.BinaryValue': binary.toString('base64'),
    });
    ok(sent, 'SendMessage');
    const expectedAttrs = {
      colour: { DataType: 'String', StringValue: 'blue & <green>' },
      weight: { DataType: 'Number', StringValue: '12.5' },
      blob: { DataType: 'Binary', BinaryValue: binary },
    };
    assert.equal(textAt(sent.xml, 'SendMessageResult', 'MD5OfMessageBody'), md5OfBody(body));
    assert.equal(textAt(sent.xml, 'SendMessageResult', 'MD5OfMessageAttributes'), md5OfMessageAttributes(expectedAttrs));
    const messageId = textAt(sent.xml, 'SendMessageResult', 'MessageId');
    assert.ok(messageId);

    const r = await receive(url, { 'AttributeName.1': 'All', 'MessageAttributeName.1': 'All', VisibilityTimeout: 30 });
    const messages = all(at(r.xml, 'ReceiveMessageResult'), 'Message');
    assert.equal(messages.length, 1);
    const m = messages[0]!;
    assert.equal(textAt(m, 'MessageId'), messageId);
    assert.equal(textAt(m, 'Body'), body);
    assert.equal(textAt(m, 'MD5OfBody'), md5OfBody(body));
    const system = mapOf(all(m, 'Attribute'));
    assert.equal(system.SenderId, CREDENTIALS.accessKeyId);
    assert.equal(system.ApproximateReceiveCount, '1');
    assert.equal(system.SentTimestamp, String(clock.now()));
    const attrs = Object.fromEntries(all(m, 'MessageAttribute').map((n) => [textAt(n, 'Name'), {
      DataType: textAt(n, 'Value', 'DataType'), StringValue: textAt(n, 'Value', 'StringValue'), BinaryValue: textAt(n, 'Value', 'BinaryValue'),
    }]));
    assert.deepEqual(attrs, {
      colour: { DataType: 'String', StringValue: 'blue & <green>', BinaryValue: undefined },
      weight: { DataType: 'Number', StringValue: '12.5', BinaryValue: undefined },
      blob: { DataType: 'Binary', StringValue: undefined, BinaryValue: binary.toString('base64') },
    });
    assert.equal(textAt(m, 'MD5OfMessageAttributes'), md5OfMessageAttributes(expectedAttrs));

    const handle = textAt(m, 'ReceiptHandle')!;
    ok(await query.call('DeleteMessage', { QueueUrl: url, ReceiptHandle: handle }), 'DeleteMessage');
    await clock.advance(31_000);
    assert.equal(all(at((await receive(url)).xml, 'ReceiveMessageResult'), 'Message').length, 0);
    failed(await query.call('DeleteMessage', { QueueUrl: url, ReceiptHandle: 'garbage' }), 404, 'ReceiptHandleIsInvalid');
  });

  it('sends a batch with a failing entry, then deletes and re-times entries in batches', async () => {
    const url = await createQueue('q-batch');
    const r = await query.call('SendMessageBatch', {
      QueueUrl: url,
      'SendMessageBatchRequestEntry.1.Id': 'one',
      'SendMessageBatchRequestEntry.1.MessageBody': 'first',
      'SendMessageBatchRequestEntry.2.Id': 'two',
      'SendMessageBatchRequestEntry.2.MessageBody': 'second',
      'SendMessageBatchRequestEntry.2.DelaySeconds': 5,
      'SendMessageBatchRequestEntry.3.Id': 'bad',
      'SendMessageBatchRequestEntry.3.MessageBody': 'x',
      'SendMessageBatchRequestEntry.3.DelaySeconds': 901,
    });
    ok(r, 'SendMessageBatch');
    const result = at(r.xml, 'SendMessageBatchResult');
    const okEntries = all(result, 'SendMessageBatchResultEntry');
    assert.deepEqual(okEntries.map((e) => textAt(e, 'Id')), ['one', 'two']);
    assert.equal(textAt(okEntries[0], 'MD5OfMessageBody'), md5OfBody('first'));
    const errors = all(result, 'BatchResultErrorEntry');
    assert.equal(errors.length, 1);
    assert.equal(textAt(errors[0], 'Id'), 'bad');
    assert.equal(textAt(errors[0], 'SenderFault'), 'true');
    assert.equal(textAt(errors[0], 'Code'), 'InvalidParameterValue');

    await clock.advance(5_000);
    const got = all(at((await receive(url, { MaxNumberOfMessages: 10 })).xml, 'ReceiveMessageResult'), 'Message');
    assert.deepEqual(got.map((m) => textAt(m, 'Body')).sort(), ['first', 'second']);

    const change = await query.call('ChangeMessageVisibilityBatch', {
      QueueUrl: url,
      'ChangeMessageVisibilityBatchRequestEntry.1.Id': 'a',
      'ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle': textAt(got[0], 'ReceiptHandle')!,
      'ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout': 0,
      'ChangeMessageVisibilityBatchRequestEntry.2.Id': 'b',
      'ChangeMessageVisibilityBatchRequestEntry.2.ReceiptHandle': 'garbage',
      'ChangeMessageVisibilityBatchRequestEntry.2.VisibilityTimeout': 0,
    });
    ok(change, 'ChangeMessageVisibilityBatch');
    assert.deepEqual(all(at(change.xml, 'ChangeMessageVisibilityBatchResult'), 'ChangeMessageVisibilityBatchResultEntry').map((e) => textAt(e, 'Id')), ['a']);
    assert.equal(textAt(at(change.xml, 'ChangeMessageVisibilityBatchResult'), 'BatchResultErrorEntry', 'Code'), 'ReceiptHandleIsInvalid');

    const again = all(at((await receive(url, { MaxNumberOfMessages: 10 })).xml, 'ReceiveMessageResult'), 'Message');
    assert.equal(again.length, 1);
    const del = await query.call('DeleteMessageBatch', {
      QueueUrl: url,
      'DeleteMessageBatchRequestEntry.1.Id': 'x',
      'DeleteMessageBatchRequestEntry.1.ReceiptHandle': textAt(again[0], 'ReceiptHandle')!,
      'DeleteMessageBatchRequestEntry.2.Id': 'y',
      'DeleteMessageBatchRequestEntry.2.ReceiptHandle': textAt(got[1], 'ReceiptHandle')!,
    });
    ok(del, 'DeleteMessageBatch');
    assert.deepEqual(all(at(del.xml, 'DeleteMessageBatchResult'), 'DeleteMessageBatchResultEntry').map((e) => textAt(e, 'Id')), ['x', 'y']);
    const counts = await query.call('GetQueueAttributes', { QueueUrl: url, 'AttributeName.1': 'All' });
    const attrs = mapOf(all(at(counts.xml, 'GetQueueAttributesResult'), 'Attribute'));
    assert.equal(attrs.ApproximateNumberOfMessages, '0');
    assert.equal(attrs.ApproximateNumberOfMessagesNotVisible, '0');
  });

  it('refuses a malformed batch as a whole', async () => {
    const url = await createQueue('q-batch-bad');
    failed(await query.call('SendMessageBatch', { QueueUrl: url }), 400, 'AWS.SimpleQueueService.EmptyBatchRequest');
    failed(await query.call('SendMessageBatch', {
      QueueUrl: url,
      'SendMessageBatchRequestEntry.1.Id': 'same', 'SendMessageBatchRequestEntry.1.MessageBody': 'a',
      'SendMessageBatchRequestEntry.2.Id': 'same', 'SendMessageBatchRequestEntry.2.MessageBody': 'b',
    }), 400, 'AWS.SimpleQueueService.BatchEntryIdsNotDistinct');
    const c = await query.call('GetQueueAttributes', { QueueUrl: url, 'AttributeName.1': 'ApproximateNumberOfMessages' });
    assert.equal(mapOf(all(at(c.xml, 'GetQueueAttributesResult'), 'Attribute')).ApproximateNumberOfMessages, '0');
  });

  it('purges and deletes a queue', async () => {
    const url = await createQueue('q-purge');
    ok(await query.call('SendMessage', { QueueUrl: url, MessageBody: 'x' }), 'SendMessage');
    ok(await query.call('PurgeQueue', { QueueUrl: url }), 'PurgeQueue');
    assert.equal(all(at((await receive(url)).xml, 'ReceiveMessageResult'), 'Message').length, 0);
    ok(await query.call('DeleteQueue', { QueueUrl: url }), 'DeleteQueue');
    failed(await query.call('SendMessage', { QueueUrl: url, MessageBody: 'x' }), 400, 'AWS.SimpleQueueService.NonExistentQueue');
  });
});

describe('one action layer, two codecs', () => {
  it('a queue made over JSON is the queue seen over Query', async () => {
    const sqs = new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 });
    try {
      const out = await sqs.send(new CreateQueueCommand({ QueueName: 'q-both', Attributes: { DelaySeconds: '3' } }));
      const r = await query.call('GetQueueAttributes', { QueueUrl: out.QueueUrl!, 'AttributeName.1': 'DelaySeconds' });
      assert.equal(mapOf(all(at(r.xml, 'GetQueueAttributesResult'), 'Attribute')).DelaySeconds, '3');
    } finally {
      sqs.destroy();
    }
  });

  it('JSON errors carry x-amzn-query-error for query-compatible clients', async () => {
    const url = new URL(service.endpoint);
    const { SignatureV4 } = await import('@smithy/signature-v4');
    const { Sha256 } = await import('@smithy/core/checksum');
    const body = JSON.stringify({ QueueName: 'q-nothing-here' });
    const signer = new SignatureV4({ credentials: CREDENTIALS, region: 'us-east-1', service: 'sqs', sha256: Sha256 });
    const signed = await signer.sign({
      method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: '/',
      headers: { host: url.host, 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.GetQueueUrl', 'x-amzn-query-mode': 'true' },
      body,
    });
    const response = await fetch(`${service.endpoint}/`, { method: 'POST', headers: signed.headers as Record<string, string>, body });
    assert.equal(response.status, 400);
    assert.equal(response.headers.get('x-amzn-query-error'), 'AWS.SimpleQueueService.NonExistentQueue;Sender');
    const json = await response.json() as { __type: string };
    assert.equal(json.__type, 'com.amazonaws.sqs#QueueDoesNotExist');
  });
});

describe('requests refused before any handler', () => {
  it('headers over 16 KiB get an SQS error body, not a bare connection reset', async () => {
    const response = await fetch(`${service.endpoint}/`, { method: 'POST', headers: { 'x-padding': 'p'.repeat(20_000) }, body: 'Action=ListQueues' });
    assert.equal(response.status, 431);
    assert.equal(response.headers.get('x-amzn-query-error'), 'RequestHeaderSectionTooLarge;Sender');
    const xml = (await import('./helpers/query-client.ts')).parseXml(await response.text());
    assert.equal(textAt(xml, 'Error', 'Code'), 'RequestHeaderSectionTooLarge');
    assert.equal(textAt(xml, 'RequestId'), response.headers.get('x-amzn-requestid'));
  });
});
