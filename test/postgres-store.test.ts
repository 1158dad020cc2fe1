// What only the PostgreSQL store does: a database that goes away, wake-ups across processes,
// its versioned schema, and what it keeps at rest. The shared semantics are in store-contract.test.ts.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import pg from 'pg';
import { VirtualClock } from '../src/core/clock.ts';
import { PkpError } from '../src/core/errors.ts';
import { startService, type RunningService } from '../src/service.ts';
import { PostgresMessageStore, SCHEMA_VERSION } from '../src/store/postgres-store.ts';
import type { NewMessage } from '../src/store/types.ts';
import { createTestDatabase, type TestDatabase } from './helpers/pg-database.ts';
import { failure } from './helpers/failure.ts';
import { until } from './helpers/until.ts';
import { POSTGRES_URL, skipUnless } from './services.ts';

const isCode = (code: string) => (err: unknown) => err instanceof PkpError && err.code === code;
const ACCOUNT = '123456789012';

function message(queueId: string, overrides: Partial<NewMessage> = {}): NewMessage {
  return {
    messageId: randomUUID(), queueId, bodyCiphertext: randomBytes(40), attributesCiphertext: null, encryptedDek: randomBytes(60),
    dekId: 'dek-1', kmsKeyId: 'key-1', senderPrincipal: 'alice', sentAt: 0, visibleAt: 0, bodyBytes: 12, ...overrides,
  };
}

/** A TCP relay to the test server that can be cut (every connection dropped, new ones refused) and restored. */
class Relay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  async start(): Promise<void> {
    const target = new URL(POSTGRES_URL);
    this.server = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async cut(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  urlFor(database: TestDatabase): string {
    const url = new URL(database.url);
    url.port = String(this.port);
    return url.toString();
  }
}

describe('PostgreSQL store', { skip: await skipUnless('postgres', POSTGRES_URL) }, () => {
  let database: TestDatabase;
  const closers: (() => Promise<unknown>)[] = [];
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
    await database?.drop();
  });
  const open = async (url = database.url): Promise<PostgresMessageStore> => {
    const store = await PostgresMessageStore.open({ url, connectTimeoutMs: 2_000 });
    closers.push(() => store.close());
    return store;
  };

  it('an unreachable database: open fails with StoreUnavailable, and says nothing of the URL', async () => {
    const error = await PostgresMessageStore.open({ url: 'postgres://pkp:secret-password@127.0.0.1:1/none', connectTimeoutMs: 2_000 }).then(
      () => assert.fail('opened'), (e: unknown) => e);
    assert.ok(isCode('StoreUnavailable')(error), String(error));
    assert.doesNotMatch((error as Error).message, /secret-password/);
  });

  it('the database goes away: every call fails with StoreUnavailable, nothing is half-written; once it is back calls work and long polls look again', async () => {
    const relay = new Relay();
    await relay.start();
    closers.push(() => relay.cut().catch(() => undefined));
    const store = await open(relay.urlFor(database));
    const queueId = (await store.createQueue('cut', {}, 0, ACCOUNT)).queue.queueId;
    const fifo = (await store.createQueue('cut.fifo', { FifoQueue: 'true' }, 0, ACCOUNT)).queue.queueId;
    await store.putMessages([message(queueId)]);
    const woken: string[] = [];
    store.subscribeWakeups((id) => woken.push(id));

    await relay.cut();
    const window = { scope: 'queue' as const, windowMs: 300_000 };
    await assert.rejects(store.putMessages([message(queueId), message(queueId)]), isCode('StoreUnavailable'));
    await assert.rejects(store.putFifoMessages(fifo, [message(fifo, { groupId: 'g', dedupId: 'd1' }), message(fifo, { groupId: 'g', dedupId: 'd2' })], window, 0), isCode('StoreUnavailable'));
    await assert.rejects(store.receiveMessages(queueId, 10, 1000, 0), isCode('StoreUnavailable'));
    await assert.rejects(store.counts(queueId, 0), isCode('StoreUnavailable'));
    await assert.rejects(store.probeWritable(0), isCode('StoreUnavailable'));

    await relay.start(); // the same port again
    // Notifications sent meanwhile were missed: once the listener is back, the long polls of every known queue look again.
    await until(() => woken.includes(queueId), 'the wake-up after the listener reconnected');
    assert.deepEqual(await store.counts(queueId, 0), { visible: 1, inFlight: 0, delayed: 0 }, 'only the acknowledged send');
    assert.deepEqual(await store.counts(fifo, 0), { visible: 0, inFlight: 0, delayed: 0 }, 'no part of the failed FIFO batch');
    const put = await store.putFifoMessages(fifo, [message(fifo, { groupId: 'g', dedupId: 'd1' })], window, 0);
    assert.equal(put[0]!.duplicate, false, 'the failed batch left no deduplication id behind');
    await relay.cut();
  });

  it('group commit: the puts of one turn are one statement; a bad call fails alone and whole', async () => {
    const ops: string[] = [];
    const store = await PostgresMessageStore.open({ url: database.url, onOp: (op) => ops.push(op) });
    closers.push(() => store.close());
    const commits = () => ops.filter((op) => op === 'groupCommit').length;
    const queueId = (await store.createQueue('group', {}, 0, ACCOUNT)).queue.queueId;
    await Promise.all(Array.from({ length: 200 }, () => store.putMessages([message(queueId)])));
    assert.equal(commits(), 1);
    const existing = message(queueId);
    await store.putMessages([existing]);
    const results = await Promise.allSettled([
      store.putMessages([message(queueId)]), store.putMessages([message(queueId), { ...existing }]), store.putMessages([message(queueId)]),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.ok(isCode('DuplicateMessageId')((results[1] as PromiseRejectedResult).reason));
    assert.equal((await store.counts(queueId, 0)).visible, 203, 'the bad call left nothing, not even its first message');
  });

  it('through the SDK: while the database is away a send fails ServiceUnavailable (503) and stores nothing; then sends work again', async () => {
    const relay = new Relay();
    await relay.start();
    closers.push(() => relay.cut().catch(() => undefined));
    const dataDir = mkdtempSync(join(tmpdir(), 'pkp-pg-away-'));
    const credentials = { accessKeyId: 'AKIDPKPPGAWAY', secretAccessKey: 'pg-away-secret-key-0123456789' };
    const service = await startService({ dataDir, port: 0, adminPort: null, frontends: 1, credentials: [credentials], clock: new VirtualClock(Date.now()), postgres: relay.urlFor(database), prefetch: false });
    const sqs = new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
    try {
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'away' }));
      await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'before' }));
      await relay.cut();
      const error = await failure(sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'while away' })));
      assert.equal(error.name, 'ServiceUnavailable', error.message);
      assert.equal(error.$metadata?.httpStatusCode, 503);
      await relay.start();
      await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'after' }));
      const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
      assert.deepEqual(got.Messages?.map((m) => m.Body).sort(), ['after', 'before']);
    } finally {
      sqs.destroy();
      await service.close();
      await relay.cut().catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a send through one store wakes subscribers of another on the same database, not its own', async () => {
    const a = await open();
    const b = await open();
    const queueId = (await a.createQueue('wake', {}, 0, ACCOUNT)).queue.queueId;
    const heardByA: string[] = [];
    const heardByB: string[] = [];
    a.subscribeWakeups((id) => heardByA.push(id));
    const unsubscribe = b.subscribeWakeups((id) => heardByB.push(id));
    await a.putMessages([message(queueId)]);
    await until(() => heardByB.length > 0, 'the notification');
    assert.deepEqual(heardByB, [queueId]);
    assert.deepEqual(heardByA, [], 'a store does not wake itself: its own front-ends did');
    unsubscribe();
  });

  it('the schema is versioned: created once by processes opening together, and a newer one is refused', async () => {
    const fresh = await createTestDatabase();
    try {
      const stores = await Promise.all([0, 1, 2].map(() => PostgresMessageStore.open({ url: fresh.url })));
      for (const s of stores) await s.close();
      const client = new pg.Client({ connectionString: fresh.url });
      await client.connect();
      try {
        assert.deepEqual((await client.query('SELECT version FROM schema_version')).rows, [{ version: SCHEMA_VERSION }]);
        await client.query('UPDATE schema_version SET version = $1', [SCHEMA_VERSION + 1]);
      } finally {
        await client.end();
      }
      await assert.rejects(PostgresMessageStore.open({ url: fresh.url }), isCode('StoreSchemaTooNew'));
    } finally {
      await fresh.drop();
    }
  });

  it('pkp up with PKP_POSTGRES runs on the database, and its settings log does not show the password', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pkp-pg-up-'));
    const url = new URL(database.url);
    url.password = 'not-shown-anywhere'; // trust auth: accepted and ignored
    const up = spawn(process.execPath, ['bin/pkp.js', 'up', '--port', '0', '--admin-port', '0', '--data-dir', dataDir, '--log-level', 'info'], {
      cwd: fileURLToPath(new URL('..', import.meta.url)), env: { ...process.env, PKP_POSTGRES: url.toString() }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    up.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    up.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      await until(() => /^Messages: .*\n/m.test(stdout) || up.exitCode !== null, 'pkp up to start', 60_000);
      assert.match(stdout, /SQS endpoint: http/, stderr);
      assert.match(stdout, /^Messages: PostgreSQL postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:5432\/pkp_test_/m);
      await until(() => /settings in force/.test(stderr), 'the settings log');
      assert.doesNotMatch(stderr + stdout, /not-shown-anywhere/);
      assert.match(stderr, /"postgres":"\[redacted\]"/);
    } finally {
      up.kill('SIGTERM');
      await new Promise((resolve) => (up.exitCode !== null ? resolve(null) : up.once('exit', resolve)));
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  describe('two services on one database', () => {
    const credentials = { accessKeyId: 'AKIDPKPPGTEST', secretAccessKey: 'pg-secret-access-key-0123456789' };
    // One data directory, opened by one service after the other: both have the same master keys
    // (as two processes on one `pkp kms` would), so either opens what the other sealed.
    const dataDir = mkdtempSync(join(tmpdir(), 'pkp-pg-'));
    const services: RunningService[] = [];
    const clients: SQSClient[] = [];
    after(async () => {
      for (const c of clients) c.destroy();
      for (const s of services) await s.close();
      rmSync(dataDir, { recursive: true, force: true });
    });
    const start = async (): Promise<SQSClient> => {
      const service = await startService({ dataDir, port: 0, adminPort: null, frontends: 1, credentials: [credentials], clock: new VirtualClock(Date.now()), postgres: database.url, prefetch: false });
      services.push(service);
      const client = new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
      clients.push(client);
      return client;
    };

    it('a long poll parked on one wakes at once for a send on the other (no clock moves: only the notification can wake it)', async () => {
      const one = await start();
      const two = await start();
      const { QueueUrl } = await one.send(new CreateQueueCommand({ QueueName: 'shared' }));
      const urlOnTwo = QueueUrl!.replace(new URL(QueueUrl!).origin, new URL(services[1]!.endpoint).origin);
      const polling = two.send(new ReceiveMessageCommand({ QueueUrl: urlOnTwo, WaitTimeSeconds: 20 }));
      await until(() => services[1]!.frontends[0]!.node.activeLongPolls === 1, 'the long poll to park');
      await one.send(new SendMessageCommand({ QueueUrl, MessageBody: 'across processes' }));
      const got = await polling;
      assert.deepEqual(got.Messages?.map((m) => m.Body), ['across processes']);
    });

    it('at rest: bodies are ciphertext, never the plaintext sent', async () => {
      const one = clients[0]!;
      const { QueueUrl } = await one.send(new CreateQueueCommand({ QueueName: 'at-rest' }));
      const marker = `plaintext-${randomUUID()}`;
      await one.send(new SendMessageCommand({ QueueUrl, MessageBody: marker, MessageAttributes: { note: { DataType: 'String', StringValue: marker } } }));
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        const rows = (await client.query<{ row: string }>('SELECT m::text AS row FROM messages m')).rows;
        assert.ok(rows.length > 0);
        for (const { row } of rows) assert.ok(!row.includes(marker) && !row.includes(Buffer.from(marker).toString('hex')), 'plaintext at rest');
      } finally {
        await client.end();
      }
    });
  });
});
