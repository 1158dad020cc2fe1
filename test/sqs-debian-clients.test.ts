import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { VirtualClock } from '../src/core/clock.ts';
import { accountOf, startService, type RunningService } from '../src/service.ts';

/**
 * Debian 12's own SQS clients, which speak the Query protocol: python3-boto3 (botocore 1.29) and
 * awscli 2.9. Called by absolute path (a pyenv shim may shadow them on PATH). When a client is not
 * installed its test is skipped, saying so: `apt-get install -y python3-boto3 awscli`.
 */

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const AWS = '/usr/bin/aws';
const CREDENTIALS = { accessKeyId: 'AKIDPKPDEBIAN', secretAccessKey: 'debian-secret-access-key-0123456789' };
/** The credential's own account: none is configured, so it is derived from the access key id. */
const ACCOUNT = accountOf(CREDENTIALS);

let service: RunningService;
let dataDir: string;
let home: string;

async function hasBoto3(): Promise<boolean> {
  if (!existsSync(PYTHON)) return false;
  try {
    await run(PYTHON, ['-c', 'import boto3'], { timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

/** Environment for a client: our credentials, no user config files, no proxy. */
function clientEnv(): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/bin:/bin',
    HOME: home,
    AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: join(home, 'config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'credentials'),
    AWS_PAGER: '',
    NO_PROXY: '*',
  };
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'pkp-debian-clients-'));
  home = mkdtempSync(join(tmpdir(), 'pkp-debian-home-'));
  writeFileSync(join(home, 'config'), '[default]\nregion = us-east-1\n');
  writeFileSync(join(home, 'credentials'), '');
  service = await startService({ dataDir, port: 0, frontends: 2, credentials: [CREDENTIALS], clock: new VirtualClock(Date.now()) });
});

after(async () => {
  await service?.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

const BOTO3_FLOW = `
import json, sys, hashlib, boto3
sqs = boto3.client('sqs', endpoint_url=sys.argv[1], region_name='us-east-1')
assert sqs.meta.service_model.protocol == 'query', sqs.meta.service_model.protocol
url = sqs.create_queue(QueueName='boto3-flow', Attributes={'VisibilityTimeout': '40'})['QueueUrl']
attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=['All'])['Attributes']
assert attrs['VisibilityTimeout'] == '40', attrs
sent = sqs.send_message(QueueUrl=url, MessageBody='hello <boto3> & co',
    MessageAttributes={'colour': {'DataType': 'String', 'StringValue': 'blue'}, 'blob': {'DataType': 'Binary', 'BinaryValue': b'\\x00\\x01\\xff'}})
assert sent['MD5OfMessageBody'] == hashlib.md5(b'hello <boto3> & co').hexdigest()
batch = sqs.send_message_batch(QueueUrl=url, Entries=[{'Id': 'a', 'MessageBody': 'one'}, {'Id': 'b', 'MessageBody': 'two'}])
assert sorted(e['Id'] for e in batch['Successful']) == ['a', 'b'], batch
got = []
for _ in range(5):
    r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=['All'], MessageAttributeNames=['All'])
    got += r.get('Messages', [])
    if len(got) >= 3: break
bodies = sorted(m['Body'] for m in got)
assert bodies == ['hello <boto3> & co', 'one', 'two'], bodies
first = [m for m in got if m['Body'].startswith('hello')][0]
assert first['MessageAttributes']['blob']['BinaryValue'] == b'\\x00\\x01\\xff'
assert first['Attributes']['ApproximateReceiveCount'] == '1'
deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[{'Id': str(i), 'ReceiptHandle': m['ReceiptHandle']} for i, m in enumerate(got)])
assert len(deleted['Successful']) == 3, deleted
try:
    sqs.get_queue_url(QueueName='boto3-none')
    raise SystemExit('expected an error')
except sqs.exceptions.QueueDoesNotExist as e:
    assert e.response['Error']['Code'] == 'AWS.SimpleQueueService.NonExistentQueue'
urls = sqs.list_queues(QueueNamePrefix='boto3-')['QueueUrls']
assert urls == [url], urls
sqs.delete_queue(QueueUrl=url)
# FIFO
furl = sqs.create_queue(QueueName='boto3-flow.fifo', Attributes={'FifoQueue': 'true', 'ContentBasedDeduplication': 'true'})['QueueUrl']
s1 = sqs.send_message(QueueUrl=furl, MessageBody='f1', MessageGroupId='g')
s2 = sqs.send_message(QueueUrl=furl, MessageBody='f1', MessageGroupId='g')
assert s1['MessageId'] == s2['MessageId'] and s1['SequenceNumber'] == s2['SequenceNumber'], (s1, s2)
sqs.send_message(QueueUrl=furl, MessageBody='f2', MessageGroupId='g')
r = sqs.receive_message(QueueUrl=furl, MaxNumberOfMessages=10, AttributeNames=['All'])
assert [m['Body'] for m in r['Messages']] == ['f1', 'f2'], r
assert r['Messages'][0]['Attributes']['MessageGroupId'] == 'g'
# dead-letter queue and tags
dlq = sqs.create_queue(QueueName='boto3-dlq', tags={'team': 'a'})['QueueUrl']
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=['QueueArn'])['Attributes']['QueueArn']
src = sqs.create_queue(QueueName='boto3-src', Attributes={'RedrivePolicy': json.dumps({'deadLetterTargetArn': dlq_arn, 'maxReceiveCount': 1})})['QueueUrl']
sqs.send_message(QueueUrl=src, MessageBody='poison')
assert len(sqs.receive_message(QueueUrl=src, VisibilityTimeout=0).get('Messages', [])) == 1
assert sqs.receive_message(QueueUrl=src).get('Messages', []) == []
assert [m['Body'] for m in sqs.receive_message(QueueUrl=dlq)['Messages']] == ['poison']
assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)['queueUrls'] == [src]
sqs.tag_queue(QueueUrl=dlq, Tags={'env': 'test'})
assert sqs.list_queue_tags(QueueUrl=dlq)['Tags'] == {'team': 'a', 'env': 'test'}
print(json.dumps({'ok': True, 'received': len(got)}))
`;

describe('Debian clients (Query protocol)', () => {
  it('python3-boto3 runs create/send/receive/delete, FIFO, DLQ and tags', async (t) => {
    if (!(await hasBoto3())) {
      t.skip('python3-boto3 is not installed (apt-get install -y python3-boto3)');
      return;
    }
    const { stdout } = await run(PYTHON, ['-c', BOTO3_FLOW, service.endpoint], { env: clientEnv(), timeout: 60_000 });
    assert.deepEqual(JSON.parse(stdout.trim()), { ok: true, received: 3 });
  });

  it('the aws CLI runs the README example, a receive, FIFO order, a dead-letter queue and tags', async (t) => {
    if (!existsSync(AWS)) {
      t.skip('the Debian awscli package is not installed (apt-get install -y awscli)');
      return;
    }
    const aws = async (...args: string[]): Promise<Record<string, unknown>> => {
      const { stdout } = await run(AWS, ['--endpoint-url', service.endpoint, '--region', 'us-east-1', '--output', 'json', 'sqs', ...args], { env: clientEnv(), timeout: 60_000 });
      return stdout.trim() === '' ? {} : JSON.parse(stdout) as Record<string, unknown>;
    };
    const created = await aws('create-queue', '--queue-name', 'orders');
    assert.equal(created.QueueUrl, `${service.endpoint}/${ACCOUNT}/orders`);
    const sent = await aws('send-message', '--queue-url', String(created.QueueUrl), '--message-body', 'hello');
    assert.equal(sent.MD5OfMessageBody, '5d41402abc4b2a76b9719d911017c592');
    const got = await aws('receive-message', '--queue-url', String(created.QueueUrl), '--attribute-names', 'All');
    const messages = got.Messages as { Body: string; MessageId: string; ReceiptHandle: string }[];
    assert.equal(messages.length, 1);
    assert.equal(messages[0]!.Body, 'hello');
    assert.equal(messages[0]!.MessageId, sent.MessageId);
    await aws('delete-message', '--queue-url', String(created.QueueUrl), '--receipt-handle', messages[0]!.ReceiptHandle);
    const attrs = await aws('get-queue-attributes', '--queue-url', String(created.QueueUrl), '--attribute-names', 'ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible');
    assert.deepEqual(attrs.Attributes, { ApproximateNumberOfMessages: '0', ApproximateNumberOfMessagesNotVisible: '0' });

    // Tags.
    await aws('tag-queue', '--queue-url', String(created.QueueUrl), '--tags', 'env=test,team=a');
    assert.deepEqual((await aws('list-queue-tags', '--queue-url', String(created.QueueUrl))).Tags, { env: 'test', team: 'a' });

    // FIFO: one group's messages in order, a duplicate body dropped.
    const fifo = String((await aws('create-queue', '--queue-name', 'cli.fifo', '--attributes', 'FifoQueue=true,ContentBasedDeduplication=true')).QueueUrl);
    for (const body of ['one', 'two', 'three', 'three']) await aws('send-message', '--queue-url', fifo, '--message-body', body, '--message-group-id', 'g');
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = (await aws('receive-message', '--queue-url', fifo)).Messages as { Body: string; ReceiptHandle: string }[];
      order.push(r[0]!.Body);
      await aws('delete-message', '--queue-url', fifo, '--receipt-handle', r[0]!.ReceiptHandle);
    }
    assert.deepEqual(order, ['one', 'two', 'three']);
    assert.equal((await aws('receive-message', '--queue-url', fifo)).Messages, undefined);

    // Dead-letter queue: received once without deleting, the message moves on its next receive.
    const dlq = String((await aws('create-queue', '--queue-name', 'cli-dlq')).QueueUrl);
    const dlqArn = ((await aws('get-queue-attributes', '--queue-url', dlq, '--attribute-names', 'QueueArn')).Attributes as Record<string, string>).QueueArn;
    const redrive = JSON.stringify({ RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: 1 }) });
    const source = String((await aws('create-queue', '--queue-name', 'cli-src', '--attributes', redrive)).QueueUrl);
    await aws('send-message', '--queue-url', source, '--message-body', 'poison');
    assert.equal(((await aws('receive-message', '--queue-url', source, '--visibility-timeout', '0')).Messages as unknown[]).length, 1);
    assert.equal((await aws('receive-message', '--queue-url', source)).Messages, undefined);
    const dead = (await aws('receive-message', '--queue-url', dlq)).Messages as { Body: string }[];
    assert.equal(dead[0]!.Body, 'poison');
  });
});
