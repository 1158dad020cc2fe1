// `pkp kms`: the AWS KMS API served by PKP's KMS, driven by the real @aws-sdk/client-kms, and the
// service running on it across the network (including a KMS that goes away).
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateAliasCommand, CreateKeyCommand, DecryptCommand, DescribeKeyCommand, DisableKeyCommand, EnableKeyCommand,
  GenerateDataKeyCommand, KMSClient, ListAliasesCommand, ListKeysCommand,
} from '@aws-sdk/client-kms';
import { CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { VirtualClock } from '../src/core/clock.ts';
import { KmsError } from '../src/core/errors.ts';
import { silentLogger } from '../src/core/log.ts';
import { AwsKms } from '../src/kms/aws-kms.ts';
import { startKmsRole, type RunningKmsRole } from '../src/kms/kms-role.ts';
import { startService } from '../src/service.ts';
import { failure } from './helpers/failure.ts';

const OPERATOR = { accessKeyId: 'AKPKKMSOPERATOR', secretAccessKey: 'kms-operator-secret-0123' };
const SQS_USER = { accessKeyId: 'AKPKSQSUSER', secretAccessKey: 'sqs-user-secret-0123' };

const kmsClient = (endpoint: string, credentials = OPERATOR) =>
  new KMSClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });

const errorName = async (p: Promise<unknown>): Promise<string> => (await failure(p)).name;

/** A hand-signed KMS request (real SigV4 via @smithy/signature-v4), to send what the SDK never would. */
async function signedFetch(endpoint: string, target: string, opts: { service?: string; unsigned?: string[] }): Promise<{ status: number; type: string | undefined }> {
  const url = new URL(endpoint);
  const signer = new SignatureV4({ credentials: OPERATOR, region: 'us-east-1', service: opts.service ?? 'kms', sha256: Sha256, applyChecksum: false });
  const body = '{}';
  const signed = await signer.sign(
    { method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: '/', headers: { host: url.host, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target }, body },
    { unsignableHeaders: new Set(opts.unsigned ?? []) },
  );
  const headers = Object.fromEntries(Object.entries(signed.headers).filter(([name]) => name.toLowerCase() !== 'host'));
  const response = await fetch(`${endpoint}/`, { method: 'POST', headers, body });
  const text = await response.text();
  return { status: response.status, type: response.status === 200 ? undefined : (JSON.parse(text) as { __type?: string }).__type };
}

async function withRole(options: { ratePerSecond?: number; clock?: VirtualClock }, body: (role: RunningKmsRole, clock: VirtualClock) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-kms-api-'));
  const clock = options.clock ?? new VirtualClock(Date.now());
  let role: RunningKmsRole | undefined;
  try {
    role = await startKmsRole({
      dataDir, port: 0, clock, logger: silentLogger, ratePerSecond: options.ratePerSecond,
      credentials: new Map([[OPERATOR.accessKeyId, OPERATOR.secretAccessKey]]),
    });
    await body(role, clock);
  } finally {
    await role?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

describe('the AWS KMS API through @aws-sdk/client-kms', () => {
  let role: RunningKmsRole;
  let kms: KMSClient;
  let done: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  let running: Promise<void>;

  before(async () => {
    let ready: () => void;
    const started = new Promise<void>((resolve) => (ready = resolve));
    running = withRole({}, async (r) => {
      role = r;
      ready();
      await finished;
    });
    await Promise.race([started, running]);
    kms = kmsClient(role.endpoint);
  });
  after(async () => {
    kms?.destroy();
    done();
    await running;
  });

  it('creates, describes, aliases and lists keys', async () => {
    const created = await kms.send(new CreateKeyCommand({ Description: 'orders' }));
    const keyId = created.KeyMetadata!.KeyId!;
    assert.equal(created.KeyMetadata!.Enabled, true);
    assert.equal(created.KeyMetadata!.KeyState, 'Enabled');
    assert.match(created.KeyMetadata!.Arn!, new RegExp(`^arn:aws:kms:us-east-1:\\d{12}:key/${keyId}$`));
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/orders', TargetKeyId: keyId }));
    const described = await kms.send(new DescribeKeyCommand({ KeyId: 'alias/orders' }));
    assert.equal(described.KeyMetadata!.KeyId, keyId);
    assert.equal(described.KeyMetadata!.Description, 'orders');
    const aliases = await kms.send(new ListAliasesCommand({}));
    assert.deepEqual(aliases.Aliases!.map((a) => a.AliasName).sort(), ['alias/aws/sqs', 'alias/orders']);
    assert.equal(aliases.Aliases!.find((a) => a.AliasName === 'alias/orders')!.TargetKeyId, keyId);
    const onlyOrders = await kms.send(new ListAliasesCommand({ KeyId: keyId }));
    assert.deepEqual(onlyOrders.Aliases!.map((a) => a.AliasName), ['alias/orders']);
    // Pagination: one key a page walks every key exactly once.
    const seen: string[] = [];
    for (let marker: string | undefined; ; ) {
      const page = await kms.send(new ListKeysCommand({ Limit: 1, Marker: marker }));
      seen.push(...page.Keys!.map((k) => k.KeyId!));
      if (!page.Truncated) break;
      marker = page.NextMarker;
    }
    assert.equal(seen.length, 2);
    assert.ok(seen.includes(keyId));
    assert.equal(await errorName(kms.send(new CreateAliasCommand({ AliasName: 'alias/orders', TargetKeyId: keyId }))), 'AlreadyExistsException');
    assert.equal(await errorName(kms.send(new DescribeKeyCommand({ KeyId: 'alias/missing' }))), 'NotFoundException');
    assert.equal(await errorName(kms.send(new ListKeysCommand({ Marker: 'nonsense' }))), 'InvalidMarkerException');
  });

  it('generates a data key that decrypts only under its encryption context', async () => {
    const context = { 'pkp:queue': 'q-1' };
    const generated = await kms.send(new GenerateDataKeyCommand({ KeyId: 'alias/aws/sqs', KeySpec: 'AES_256', EncryptionContext: context }));
    assert.equal(generated.Plaintext!.length, 32);
    const decrypted = await kms.send(new DecryptCommand({ CiphertextBlob: generated.CiphertextBlob, EncryptionContext: context }));
    assert.deepEqual(Buffer.from(decrypted.Plaintext!), Buffer.from(generated.Plaintext!));
    assert.equal(decrypted.KeyId, generated.KeyId);
    assert.equal(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: generated.CiphertextBlob, EncryptionContext: { 'pkp:queue': 'q-2' } }))), 'InvalidCiphertextException');
    assert.equal(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: generated.CiphertextBlob }))), 'InvalidCiphertextException');
    assert.equal(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: Buffer.from('not a blob') }))), 'InvalidCiphertextException');
    // Naming another key than the blob's is refused, as AWS KMS refuses it.
    const other = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    assert.equal(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: generated.CiphertextBlob, EncryptionContext: context, KeyId: other }))), 'IncorrectKeyException');
    assert.equal(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: 'alias/aws/sqs', NumberOfBytes: 16 }))), 'ValidationException');
    assert.equal(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: 'alias/aws/sqs' }))), 'ValidationException');
  });

  it('a disabled key neither generates nor decrypts until enabled again', async () => {
    const keyId = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const generated = await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' }));
    await kms.send(new DisableKeyCommand({ KeyId: keyId }));
    assert.equal((await kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata!.KeyState, 'Disabled');
    assert.equal(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' }))), 'DisabledException');
    assert.equal(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: generated.CiphertextBlob }))), 'DisabledException');
    await kms.send(new EnableKeyCommand({ KeyId: keyId }));
    const decrypted = await kms.send(new DecryptCommand({ CiphertextBlob: generated.CiphertextBlob }));
    assert.deepEqual(Buffer.from(decrypted.Plaintext!), Buffer.from(generated.Plaintext!));
  });

  it('refuses unknown credentials, a wrong secret and a signature for another service', async () => {
    const stranger = kmsClient(role.endpoint, { accessKeyId: 'AKPKSTRANGER', secretAccessKey: 'whatever-secret-0123' });
    const wrongSecret = kmsClient(role.endpoint, { ...OPERATOR, secretAccessKey: 'not-the-secret-0123' });
    try {
      assert.equal(await errorName(stranger.send(new ListKeysCommand({}))), 'UnrecognizedClientException');
      assert.equal(await errorName(wrongSecret.send(new ListKeysCommand({}))), 'InvalidSignatureException');
    } finally {
      stranger.destroy();
      wrongSecret.destroy();
    }
    // Signed correctly, but for SQS: refused. Signed without covering the target: refused too, so a
    // captured request cannot be replayed as another operation.
    const asSqs = await signedFetch(role.endpoint, 'TrentService.ListKeys', { service: 'sqs' });
    assert.equal(asSqs.status, 400);
    assert.equal(asSqs.type, 'InvalidSignatureException');
    const targetUnsigned = await signedFetch(role.endpoint, 'TrentService.ListKeys', { unsigned: ['x-amz-target'] });
    assert.equal(targetUnsigned.status, 400);
    assert.equal(targetUnsigned.type, 'IncompleteSignatureException');
    const ok = await signedFetch(role.endpoint, 'TrentService.ListKeys', {});
    assert.equal(ok.status, 200);
  });
});

test('throttling: calls beyond the KMS quota get ThrottlingException until the bucket refills', async () => {
  await withRole({ ratePerSecond: 2 }, async (role, clock) => {
    const kms = kmsClient(role.endpoint);
    try {
      const generate = () => kms.send(new GenerateDataKeyCommand({ KeyId: 'alias/aws/sqs', KeySpec: 'AES_256' }));
      await generate();
      await generate();
      assert.equal(await errorName(generate()), 'ThrottlingException');
      await clock.advance(1_000);
      await generate();
    } finally {
      kms.destroy();
    }
  });
});

test('the service on `pkp kms` across the network: messages round-trip; with the KMS gone, cached keys still serve', async () => {
  const serviceDir = mkdtempSync(join(tmpdir(), 'pkp-kms-remote-'));
  const clock = new VirtualClock(Date.now());
  const sqsClients: SQSClient[] = [];
  let service: Awaited<ReturnType<typeof startService>> | undefined;
  try {
    await withRole({ clock }, async (role) => {
      service = await startService({
        dataDir: serviceDir, port: 0, adminPort: null, frontends: 2, credentials: [SQS_USER], clock, prefetch: false,
        kms: { endpoint: role.endpoint, region: 'us-east-1', credentials: OPERATOR, requestTimeoutMs: 2_000 },
      });
      const sqs = new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials: SQS_USER, maxAttempts: 1 });
      sqsClients.push(sqs);
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'remote-kms' }));
      for (let i = 0; i < 4; i++) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `m${i}` }));
      const received = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0 }));
      assert.deepEqual(received.Messages?.map((m) => m.Body).sort(), ['m0', 'm1', 'm2', 'm3']);
      // The remote KMS made the data key; the service counted its own calls by reason.
      assert.ok(role.kms.counts().byOperation.GenerateDataKey >= 1);
      assert.equal(service.kms.counts().byOperation.GenerateDataKey, role.kms.counts().byOperation.GenerateDataKey);
      const { QueueUrl: other } = await sqs.send(new CreateQueueCommand({ QueueName: 'needs-a-new-key' }));
      await role.close();

      // The KMS is gone: the queue whose key is cached keeps working on every node ...
      for (let i = 0; i < 4; i++) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `after ${i}` }));
      // ... and a queue that needs a new key gets a clear, retryable SQS error.
      try {
        await sqs.send(new SendMessageCommand({ QueueUrl: other, MessageBody: 'no key' }));
        assert.fail('a send that needs a new key succeeded without a KMS');
      } catch (error) {
        const e = error as { name: string; $metadata?: { httpStatusCode?: number } };
        assert.equal(e.name, 'KmsUnavailable');
        assert.equal(e.$metadata?.httpStatusCode, 503);
      }
    });
  } finally {
    for (const c of sqsClients) c.destroy();
    await service?.close();
    rmSync(serviceDir, { recursive: true, force: true });
  }
});

test('`pkp kms` prints its endpoint line and answers the SDK', { timeout: 60_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-kms-cli-'));
  const child = spawn(process.execPath, ['bin/pkp.js', 'kms', '--port', '0', '--data-dir', dataDir, '--credentials', `${OPERATOR.accessKeyId}:${OPERATOR.secretAccessKey}`, '--log-level', 'warn'], {
    cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'],
  });
  let kms: KMSClient | undefined;
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /^KMS endpoint: (http:\/\/127\.0\.0\.1:\d+)$/m.exec(out);
        if (match) resolve(match[1]!);
      });
      child.once('exit', (code) => reject(new Error(`pkp kms exited early with ${code}`)));
    });
    kms = kmsClient(endpoint);
    const keys = await kms.send(new ListKeysCommand({}));
    assert.equal(keys.Keys!.length, 1);
    const generated = await kms.send(new GenerateDataKeyCommand({ KeyId: 'alias/aws/sqs', KeySpec: 'AES_256', EncryptionContext: { a: 'b' } }));
    const decrypted = await kms.send(new DecryptCommand({ CiphertextBlob: generated.CiphertextBlob, EncryptionContext: { a: 'b' } }));
    assert.deepEqual(Buffer.from(decrypted.Plaintext!), Buffer.from(generated.Plaintext!));
  } finally {
    kms?.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)));
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('AwsKms: a KMS that accepts the connection and never answers fails the call at its timeout, as unreachable', async () => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.resume();
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const kms = new AwsKms({ endpoint: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, region: 'us-east-1', credentials: OPERATOR, requestTimeoutMs: 300 });
  try {
    const started = Date.now();
    await assert.rejects(kms.generateDataKey('alias/pkp-default', { queue: 'q' }, 'demand'), (error: unknown) => {
      assert.ok(error instanceof KmsError);
      assert.equal(error.code, 'KmsUnreachable');
      return true;
    });
    assert.ok(sockets.size >= 1, 'the request reached the silent server');
    // Bounded by the request timeout, not by the test's own.
    assert.ok(Date.now() - started < 5_000, `${Date.now() - started} ms`);
  } finally {
    await kms.close();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});
