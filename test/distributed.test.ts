// Distributed mode: each role its own OS process (`pkp up --distributed`) on a private NATS server
// and the machine's PostgreSQL; plus the cluster identity that every process checks.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { CreateQueueCommand, DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { ClusterAuthority, ClusterIdentity } from '../src/cluster/identity.ts';
import { callRpc } from '../src/cluster/rpc.ts';
import { clusterKey } from '../src/cluster/partition-owner.ts';
import { freePort } from '../src/roles/local-cluster.ts';
import { NATS_SERVER, natsServerMissing, POSTGRES_URL, skipUnless } from './services.ts';
import { until } from './helpers/until.ts';
import { createTestDatabase, type TestDatabase } from './helpers/pg-database.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'pkp.js');

describe('cluster identity', () => {
  const authority = ClusterAuthority.generate();
  const frontend = new ClusterIdentity(authority.issue('fe-1', 'frontend'));
  const metadata = new ClusterIdentity(authority.issue('meta-1', 'metadata'));

  test('a message opens only for its topic, from the roles allowed', () => {
    const signed = frontend.sign('rpc:fetch-encrypt', { a: 1 });
    assert.deepEqual(metadata.open('rpc:fetch-encrypt', signed, ['frontend']).body, { a: 1 });
    assert.throws(() => metadata.open('rpc:prefetch', signed, ['frontend']), /bad signature/);
    assert.throws(() => metadata.open('rpc:fetch-encrypt', signed, ['prefetcher']), /a frontend may not send this/);
  });

  test('an altered body, or a certificate given another role, is refused even once the genuine one is trusted', () => {
    const signed = JSON.parse(Buffer.from(frontend.sign('t', { n: 1 })).toString());
    metadata.open('t', Buffer.from(JSON.stringify(signed)), ['frontend']);
    assert.throws(() => metadata.open('t', Buffer.from(JSON.stringify({ ...signed, body: '{"n":2}' })), ['frontend']), /bad signature/);
    const promoted = { ...signed, cert: { ...signed.cert, role: 'metadata' } };
    assert.throws(() => metadata.open('t', Buffer.from(JSON.stringify(promoted)), ['metadata']), /not the cluster's/);
  });

  test('a credential from another authority is refused', () => {
    const stranger = new ClusterIdentity(ClusterAuthority.generate().issue('fe-1', 'frontend'));
    assert.throws(() => metadata.open('t', stranger.sign('t', {}), ['frontend']), /not the cluster's/);
  });
});

describe('distributed mode: separate processes on NATS and PostgreSQL', async () => {
  const skip = (await skipUnless('postgres', POSTGRES_URL)) || natsServerMissing();
  const dir = mkdtempSync(join(tmpdir(), 'pkp-dist-'));
  const cluster = `pkp_test_${process.pid}`;
  let nats: ChildProcess | undefined;
  let natsPort = 0;
  let up: ChildProcess | undefined;
  let endpoint = '';
  let metadataUrl = '';
  let processes: { role: string; id: string; pid: number }[] = [];
  let sqs: SQSClient;
  let db: pg.Client;
  let database: TestDatabase | undefined;
  let PG_URL = '';

  const startNats = (): ChildProcess => spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', join(dir, 'nats')], { stdio: 'ignore' });

  before(async () => {
    if (skip) return;
    natsPort = await freePort();
    nats = startNats();
    database = await createTestDatabase();
    PG_URL = database.url;
    db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    up = spawn(process.execPath, [BIN, 'up', '--distributed', '--port', '0', '--data-dir', join(dir, 'data'), '--postgres', PG_URL,
      '--nats', `nats://127.0.0.1:${natsPort}`, '--cluster', cluster, '--prefetchers', '3', '--log-level', 'error'],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PKP_FROM_SOURCE: '1' } });
    const lines = createInterface({ input: up.stdout! });
    await new Promise<void>((resolve, reject) => {
      up!.once('exit', (code) => reject(new Error(`pkp up --distributed exited (${code})`)));
      lines.on('line', (line) => {
        const m = /^(SQS endpoint|Metadata service): (\S+)/.exec(line);
        if (m?.[1] === 'SQS endpoint') endpoint = m[2]!;
        if (m?.[1] === 'Metadata service') metadataUrl = m[2]!;
        if (line.startsWith('Processes: ')) {
          processes = [...line.matchAll(/(\w+) ([\w.-]+) \(pid (\d+)\)/g)].map((p) => ({ role: p[1]!, id: p[2]!, pid: Number(p[3]) }));
          resolve();
        }
      });
    });
    const [credential] = JSON.parse(readFileSync(join(dir, 'data', 'credentials.json'), 'utf8')) as { accessKeyId: string; secretAccessKey: string }[];
    // A request on a connection that died with its front-end must fail, not hang the test: the SDK
    // has no request timeout of its own, and without throwOnRequestTimeout it only warns at one.
    sqs = new SQSClient({ endpoint, region: 'us-east-1', credentials: credential!, maxAttempts: 1, requestHandler: { requestTimeout: 10_000, connectionTimeout: 5_000, throwOnRequestTimeout: true } });
  }, { timeout: 60_000 });

  after(async () => {
    sqs?.destroy();
    if (up && up.exitCode === null) {
      const exited = new Promise((resolve) => up!.once('exit', resolve));
      up.kill('SIGINT');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
      up.kill('SIGKILL');
    }
    for (const p of processes) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await db?.end();
    await database?.drop();
    nats?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const ownedPartitions = async (): Promise<number> => {
    const { rows } = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND objsubid = 2`, [clusterKey(cluster)]);
    return Number(rows[0]!.n);
  };

  test('each role is its own process, and ps tells them apart', { skip }, () => {
    const roles = processes.map((p) => p.role).sort();
    assert.deepEqual(roles, ['frontend', 'frontend', 'frontend', 'kms', 'metadata', 'prefetcher', 'prefetcher', 'prefetcher']);
    for (const p of processes) {
      const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0');
      assert.equal(cmdline[cmdline.indexOf(BIN) + 1], p.role, `pid ${p.pid}: ${cmdline.join(' ')}`);
    }
  });

  test('the SDK flow across front-end processes: create, send, receive, delete', { skip }, async () => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'dist-flow' }));
    const sent = new Set<string>();
    for (let i = 0; i < 30; i++) sent.add((await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `m${i}` }))).MessageId!);
    const bodies = new Set<string>();
    await until(async () => {
      const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
      for (const m of r.Messages ?? []) {
        bodies.add(m.Body!);
        await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: m.ReceiptHandle! }));
      }
      return bodies.size === 30;
    }, 'all 30 messages', 30_000, 50);
    assert.deepEqual([...bodies].sort(), Array.from({ length: 30 }, (_, i) => `m${i}`).sort());
  });

  test('all partitions are owned, in fair shares', { skip }, async () => {
    await until(async () => (await ownedPartitions()) === 8, 'all 8 partitions owned', 20_000, 50);
    assert.equal(await ownedPartitions(), 8);
  });

  test('kill -9 one of three prefetchers under load: its partitions are owned again within 10 s', { skip }, async () => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'dist-load' }));
    let sending = true;
    const load = (async () => {
      while (sending) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'x' }));
    })();
    try {
      await until(async () => (await ownedPartitions()) === 8, 'all 8 partitions owned', 20_000, 50);
      const victim = processes.find((p) => p.role === 'prefetcher')!;
      const { rows } = await db.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objsubid = 2 AND a.application_name LIKE 'pkp prefetcher%'
          GROUP BY l.pid ORDER BY 1 LIMIT 1`, [clusterKey(cluster)]);
      assert.ok(Number(rows[0]?.n ?? 0) >= 2, 'each prefetcher holds a share');
      const killedAt = Date.now();
      process.kill(victim.pid, 'SIGKILL');
      // The dead session's locks go at once; the survivors' next rounds take them up.
      await until(async () => (await ownedPartitions()) < 8 || Date.now() - killedAt > 3_000, 'the dead session\'s locks to go', 10_000, 10);
      await until(async () => (await ownedPartitions()) === 8, 'the partitions owned again', 10_000, 10);
      const failoverMs = Date.now() - killedAt;
      process.stderr.write(`# prefetcher failover: all 8 partitions owned again ${failoverMs} ms after kill -9\n`);
      assert.ok(failoverMs <= 10_000, `${failoverMs} ms`);
    } finally {
      sending = false;
      await load;
    }
  });

  test('kill -9 a front-end under load: every acknowledged send is kept and the port keeps answering', { skip }, async () => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'dist-fe-kill' }));
    const acknowledged = new Set<string>();
    let failures = 0;
    let sending = true;
    const load = Promise.all(Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; sending; i++) {
        try {
          await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `w${w}-${i}` }));
          acknowledged.add(`w${w}-${i}`);
        } catch {
          failures++;
        }
      }
    }));
    await until(() => acknowledged.size >= 50, '50 acknowledged sends', 20_000);
    process.kill(processes.find((p) => p.role === 'frontend')!.pid, 'SIGKILL');
    const afterKill = acknowledged.size;
    await until(() => acknowledged.size >= afterKill + 100, '100 more after the kill', 20_000);
    sending = false;
    await load;
    const received = new Set<string>();
    await until(async () => {
      const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 60 }));
      for (const m of r.Messages ?? []) received.add(m.Body!);
      return [...acknowledged].every((b) => received.has(b));
    }, 'every acknowledged message received', 60_000, 50);
    assert.ok([...acknowledged].every((b) => received.has(b)), 'no acknowledged message lost');
    // Only requests on the killed process's connections can fail.
    assert.ok(failures <= 8, `${failures} sends failed`);
  });

  test('kill -9 the metadata service: keys already cached keep serving; it is started again and new keys follow', { skip }, async () => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'dist-meta-warm' }));
    // One keep-alive connection: the same front-end serves these sends, and holds the key after the first.
    for (let i = 0; i < 6; i++) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `warm ${i}` }));
    process.kill(processes.find((p) => p.role === 'metadata')!.pid, 'SIGKILL');
    for (let i = 0; i < 6; i++) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `cached ${i}` }));
    const { QueueUrl: fresh } = await sqs.send(new CreateQueueCommand({ QueueName: 'dist-meta-new' }));
    let sent = false;
    await until(async () => {
      try {
        await sqs.send(new SendMessageCommand({ QueueUrl: fresh, MessageBody: 'needs a new key' }));
        sent = true;
      } catch {
        // 503 until the metadata service is back
      }
      return sent;
    }, 'the metadata service back', 30_000, 200);
    assert.ok(sent);
  });

  test('a caller without a cluster credential is refused by the metadata service', { skip }, async () => {
    const stranger = new ClusterIdentity(ClusterAuthority.generate().issue('fe-1', 'frontend'));
    await assert.rejects(callRpc(metadataUrl, stranger, 'register', { nodeId: 'fe-1', publicKey: 'AAAA' }, ['metadata'], 5_000), /not the cluster's/);
  });

  test('NATS restarted: front-ends keep serving, reconnect, and events flow to the prefetchers again', { skip }, async () => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'dist-nats' }));
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'before' }));
    nats!.kill('SIGKILL');
    await new Promise((resolve) => nats!.once('exit', resolve));
    // Cached keys serve; key fetches go over HTTP, not NATS.
    for (let i = 0; i < 10; i++) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `during ${i}` }));
    const { QueueUrl: other } = await sqs.send(new CreateQueueCommand({ QueueName: 'dist-nats-new-key' }));
    await sqs.send(new SendMessageCommand({ QueueUrl: other, MessageBody: 'a new key with NATS down' }));
    const restartedAt = Date.now();
    nats = startNats();
    // Events flow again: a prefetcher saves a snapshot only when it has learned something new.
    const snapshotAfterRestart = async (): Promise<boolean> => {
      await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'after' }));
      const { rows } = await db.query<{ t: string }>('SELECT max(taken_at) AS t FROM pkp_prefetch_snapshots WHERE cluster = $1', [cluster]);
      return Number(rows[0]?.t ?? 0) > restartedAt + 1_000;
    };
    await until(snapshotAfterRestart, 'a snapshot after the restart', 30_000, 50);
    const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl: other, WaitTimeSeconds: 5 }));
    assert.equal(r.Messages?.[0]?.Body, 'a new key with NATS down');
  });
});
