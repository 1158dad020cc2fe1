import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AddPermissionCommand, CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, ListQueuesCommand,
  PurgeQueueCommand, ReceiveMessageCommand, RemovePermissionCommand, SendMessageBatchCommand, SendMessageCommand,
  SetQueueAttributesCommand, SQSClient,
} from '@aws-sdk/client-sqs';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { VirtualClock } from '../src/core/clock.ts';
import { defaultAccountId } from '../src/frontend/accounts.ts';
import { accountOf, parseCredential, startService, type Credential, type RunningService } from '../src/service.ts';
import { failure } from './helpers/failure.ts';

/** Tenant isolation through the official SDK: accounts, queue Policy grants, signing scope. */

const ALICE: Credential = { accessKeyId: 'AKPKALICE', secretAccessKey: 'alice-secret-0123456789' };
const BOB: Credential = { accessKeyId: 'AKPKBOB', secretAccessKey: 'bob-secret-0123456789' };
const DAVE: Credential = { accessKeyId: 'AKPKDAVE', secretAccessKey: 'dave-secret-0123456789' };
// Configured into Alice's account (as `--credentials AKPKCAROL:carol-secret-0123456789:<alice's account>` would).
const CAROL: Credential = { accessKeyId: 'AKPKCAROL', secretAccessKey: 'carol-secret-0123456789', accountId: accountOf(ALICE) };

let dataDir: string;
let service: RunningService;
const clients: SQSClient[] = [];

function client(credentials: Credential, region = 'us-east-1'): SQSClient {
  const c = new SQSClient({ endpoint: service.endpoint, region, credentials, maxAttempts: 1 });
  clients.push(c);
  return c;
}


async function doesNotExist(promise: Promise<unknown>): Promise<void> {
  const error = await failure(promise);
  assert.equal(error.name, 'QueueDoesNotExist', `${error.name}: ${error.message}`);
  assert.equal(error.$metadata?.httpStatusCode, 400);
}

let alice: SQSClient;
let bob: SQSClient;
let carol: SQSClient;
let dave: SQSClient;
let aliceUrl: string;
let aliceArn: string;

async function visibleCount(url: string): Promise<number> {
  const out = await alice.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages'] }));
  return Number(out.Attributes?.ApproximateNumberOfMessages);
}

async function setPolicy(statements: unknown[]): Promise<void> {
  await alice.send(new SetQueueAttributesCommand({
    QueueUrl: aliceUrl, Attributes: { Policy: statements.length ? JSON.stringify({ Version: '2012-10-17', Statement: statements }) : '' },
  }));
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'pkp-accounts-'));
  service = await startService({ dataDir, port: 0, adminPort: null, frontends: 2, credentials: [ALICE, BOB, CAROL, DAVE], clock: new VirtualClock(Date.now()) });
  alice = client(ALICE);
  bob = client(BOB);
  carol = client(CAROL);
  dave = client(DAVE);
  aliceUrl = (await alice.send(new CreateQueueCommand({ QueueName: 'private' }))).QueueUrl!;
  aliceArn = `arn:aws:sqs:us-east-1:${accountOf(ALICE)}:private`;
  await alice.send(new SendMessageCommand({ QueueUrl: aliceUrl, MessageBody: 'for alice only' }));
});

after(async () => {
  for (const c of clients) c.destroy();
  await service?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('accounts', () => {
  it('each credential has its own stable 12-digit account unless one is configured', () => {
    assert.match(accountOf(ALICE), /^[1-9]\d{11}$/);
    assert.equal(accountOf(ALICE), defaultAccountId('AKPKALICE'));
    assert.notEqual(accountOf(ALICE), accountOf(BOB));
    assert.equal(aliceUrl, `${service.endpoint}/${accountOf(ALICE)}/private`);
    assert.deepEqual(parseCredential('AKID1:secret-with:colons:123456789012'), { accessKeyId: 'AKID1', secretAccessKey: 'secret-with:colons', accountId: '123456789012' });
    assert.deepEqual(parseCredential('AKID1:plainsecret'), { accessKeyId: 'AKID1', secretAccessKey: 'plainsecret' });
  });

  it('a second account sees nothing of the first account\'s queues and cannot touch them', async () => {
    assert.deepEqual((await bob.send(new ListQueuesCommand({}))).QueueUrls ?? [], []);
    await doesNotExist(bob.send(new GetQueueUrlCommand({ QueueName: 'private' })));
    await doesNotExist(bob.send(new GetQueueUrlCommand({ QueueName: 'private', QueueOwnerAWSAccountId: accountOf(ALICE) })));
    await doesNotExist(bob.send(new ReceiveMessageCommand({ QueueUrl: aliceUrl })));
    await doesNotExist(bob.send(new SendMessageCommand({ QueueUrl: aliceUrl, MessageBody: 'intruder' })));
    await doesNotExist(bob.send(new GetQueueAttributesCommand({ QueueUrl: aliceUrl, AttributeNames: ['All'] })));
    await doesNotExist(bob.send(new SetQueueAttributesCommand({ QueueUrl: aliceUrl, Attributes: { DelaySeconds: '9' } })));
    await doesNotExist(bob.send(new PurgeQueueCommand({ QueueUrl: aliceUrl })));
    await doesNotExist(bob.send(new DeleteQueueCommand({ QueueUrl: aliceUrl })));
    assert.equal(await visibleCount(aliceUrl), 1, 'the message is still there, untouched');
    const attrs = await alice.send(new GetQueueAttributesCommand({ QueueUrl: aliceUrl, AttributeNames: ['DelaySeconds'] }));
    assert.equal(attrs.Attributes?.DelaySeconds, '0');
  });

  it('the same name in another account is another queue', async () => {
    const bobUrl = (await bob.send(new CreateQueueCommand({ QueueName: 'private', Attributes: { DelaySeconds: '3' } }))).QueueUrl!;
    assert.equal(bobUrl, `${service.endpoint}/${accountOf(BOB)}/private`);
    assert.deepEqual((await bob.send(new ListQueuesCommand({}))).QueueUrls, [bobUrl]);
    assert.deepEqual((await alice.send(new ListQueuesCommand({}))).QueueUrls, [aliceUrl]);
  });

  it('a credential configured into an account shares that account\'s queues', async () => {
    assert.deepEqual((await carol.send(new ListQueuesCommand({}))).QueueUrls, [aliceUrl]);
    assert.equal((await carol.send(new GetQueueUrlCommand({ QueueName: 'private' }))).QueueUrl, aliceUrl);
  });
});

describe('queue policies', () => {
  it('a grant opens exactly the actions, principal and resource it names', async () => {
    await setPolicy([{
      Sid: 'bob-sends', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountOf(BOB)}:root` }, Action: 'sqs:SendMessage', Resource: aliceArn,
    }]);
    await bob.send(new SendMessageCommand({ QueueUrl: aliceUrl, MessageBody: 'from bob' }));
    const batch = await bob.send(new SendMessageBatchCommand({ QueueUrl: aliceUrl, Entries: [{ Id: 'a', MessageBody: 'bob batch' }] }));
    assert.equal(batch.Successful?.length, 1, 'a batch needs sqs:SendMessage');
    assert.equal(await visibleCount(aliceUrl), 3);
    await doesNotExist(bob.send(new ReceiveMessageCommand({ QueueUrl: aliceUrl })));
    await doesNotExist(bob.send(new PurgeQueueCommand({ QueueUrl: aliceUrl })));
    await doesNotExist(dave.send(new SendMessageCommand({ QueueUrl: aliceUrl, MessageBody: 'dave' })));
    assert.equal(await visibleCount(aliceUrl), 3);
  });

  it('wildcards in Action and Resource, and conditions on aws:SourceAccount and aws:PrincipalArn', async () => {
    await setPolicy([
      { Effect: 'Allow', Principal: '*', Action: ['sqs:Get*', 'sqs:Receive*'], Resource: `arn:aws:sqs:*:${accountOf(ALICE)}:priv*`, Condition: { StringEquals: { 'aws:SourceAccount': accountOf(BOB) } } },
      { Effect: 'Allow', Principal: { AWS: '*' }, Action: 'sqs:*', Resource: aliceArn, Condition: { ArnLike: { 'aws:PrincipalArn': `arn:aws:iam::${accountOf(DAVE)}:user/AKPKD*` } } },
      { Effect: 'Deny', Principal: '*', Action: 'sqs:DeleteQueue', Resource: aliceArn, Condition: { StringNotEquals: { 'aws:SourceAccount': accountOf(ALICE) } } },
    ]);
    const got = await bob.send(new ReceiveMessageCommand({ QueueUrl: aliceUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0 }));
    assert.ok((got.Messages?.length ?? 0) > 0, 'bob may receive now');
    assert.equal((await bob.send(new GetQueueUrlCommand({ QueueName: 'private', QueueOwnerAWSAccountId: accountOf(ALICE) }))).QueueUrl, aliceUrl);
    await doesNotExist(bob.send(new SendMessageCommand({ QueueUrl: aliceUrl, MessageBody: 'no longer granted' })));
    // Dave matches the PrincipalArn grant for everything but the explicitly denied DeleteQueue.
    await dave.send(new SendMessageCommand({ QueueUrl: aliceUrl, MessageBody: 'dave' }));
    await doesNotExist(dave.send(new DeleteQueueCommand({ QueueUrl: aliceUrl })));
    assert.equal((await alice.send(new GetQueueUrlCommand({ QueueName: 'private' }))).QueueUrl, aliceUrl);
  });

  it('an explicit Deny binds the owner too (AccessDenied)', async () => {
    await setPolicy([{ Effect: 'Deny', Principal: '*', Action: 'sqs:PurgeQueue', Resource: aliceArn }]);
    const error = await failure(alice.send(new PurgeQueueCommand({ QueueUrl: aliceUrl })));
    assert.equal(error.$metadata?.httpStatusCode, 403);
    assert.equal(error.name, 'AccessDenied');
    assert.ok(await visibleCount(aliceUrl) > 0);
    await setPolicy([]);
  });

  it('refuses policies it cannot evaluate', async () => {
    const error = await failure(alice.send(new SetQueueAttributesCommand({
      QueueUrl: aliceUrl, Attributes: { Policy: JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 'sqs:*', Condition: { DateGreaterThan: { 'aws:CurrentTime': '2020-01-01' } } }] }) },
    })));
    assert.equal(error.name, 'InvalidAttributeValue');
  });

  it('AddPermission and RemovePermission edit the policy by label', async () => {
    await alice.send(new AddPermissionCommand({ QueueUrl: aliceUrl, Label: 'bob-receives', AWSAccountIds: [accountOf(BOB)], Actions: ['ReceiveMessage', 'GetQueueAttributes'] }));
    const policy = JSON.parse((await alice.send(new GetQueueAttributesCommand({ QueueUrl: aliceUrl, AttributeNames: ['Policy'] }))).Attributes!.Policy!) as { Statement: { Sid: string; Action: string[] }[] };
    assert.deepEqual(policy.Statement.map((s) => s.Sid), ['bob-receives']);
    assert.deepEqual(policy.Statement[0]!.Action, ['SQS:ReceiveMessage', 'SQS:GetQueueAttributes']);
    await bob.send(new ReceiveMessageCommand({ QueueUrl: aliceUrl, VisibilityTimeout: 0 }));
    await doesNotExist(bob.send(new SendMessageCommand({ QueueUrl: aliceUrl, MessageBody: 'not granted' })));
    await doesNotExist(dave.send(new ReceiveMessageCommand({ QueueUrl: aliceUrl })));

    const duplicate = await failure(alice.send(new AddPermissionCommand({ QueueUrl: aliceUrl, Label: 'bob-receives', AWSAccountIds: [accountOf(BOB)], Actions: ['SendMessage'] })));
    assert.equal(duplicate.name, 'InvalidParameterValue');
    const ownerOnly = await failure(alice.send(new AddPermissionCommand({ QueueUrl: aliceUrl, Label: 'x', AWSAccountIds: [accountOf(BOB)], Actions: ['DeleteQueue'] })));
    assert.equal(ownerOnly.name, 'InvalidParameterValue');

    await alice.send(new RemovePermissionCommand({ QueueUrl: aliceUrl, Label: 'bob-receives' }));
    await doesNotExist(bob.send(new ReceiveMessageCommand({ QueueUrl: aliceUrl })));
    const gone = await failure(alice.send(new RemovePermissionCommand({ QueueUrl: aliceUrl, Label: 'bob-receives' })));
    assert.equal(gone.name, 'InvalidParameterValue');
    const after = await alice.send(new GetQueueAttributesCommand({ QueueUrl: aliceUrl, AttributeNames: ['Policy'] }));
    assert.equal(after.Attributes?.Policy, undefined, 'the last statement removed removes the policy');
  });
});

describe('signing scope', () => {
  it('refuses a request signed for another region', async () => {
    const error = await failure(client(ALICE, 'eu-west-1').send(new ListQueuesCommand({})));
    assert.equal(error.$metadata?.httpStatusCode, 403);
    assert.equal(error.name, 'SignatureDoesNotMatch');
  });

  async function signedFetch(unsigned: string[], service = 'sqs'): Promise<Response> {
    const url = new URL(service === 'sqs' ? serviceEndpoint() : serviceEndpoint());
    const body = JSON.stringify({});
    const signer = new SignatureV4({ credentials: ALICE, region: 'us-east-1', service, sha256: Sha256 });
    const signed = await signer.sign({
      method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: '/',
      headers: { host: url.host, 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.ListQueues' },
      body,
    }, { unsignableHeaders: new Set(unsigned) });
    return fetch(`${url.origin}/`, { method: 'POST', headers: signed.headers as Record<string, string>, body });
  }
  const serviceEndpoint = (): string => service.endpoint;

  it('refuses a request signed for another service', async () => {
    const response = await signedFetch([], 'sns');
    assert.equal(response.status, 403);
    assert.equal(response.headers.get('x-amzn-query-error'), 'SignatureDoesNotMatch;Sender');
  });

  it('the signature must cover X-Amz-Target and Content-Type, so a captured request cannot become another action', async () => {
    assert.equal((await signedFetch([])).status, 200);
    for (const header of ['x-amz-target', 'content-type']) {
      const response = await signedFetch([header]);
      assert.equal(response.status, 400, header);
      assert.equal(response.headers.get('x-amzn-query-error'), 'IncompleteSignature;Sender');
    }
  });
});
