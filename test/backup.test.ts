// `pkp backup` while the service runs, restore, and the data directory's file modes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { startService } from '../src/service.ts';

const ROOT = join(import.meta.dirname, '..');
const CRED = { accessKeyId: 'BACKUPKEY', secretAccessKey: 'backup-secret-1' };
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const mode = (path: string): number => statSync(path).mode & 0o777;

test('a backup taken while the service runs restores every message sent before it; the root key stays apart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pkp-backup-'));
  const dataDir = join(dir, 'data');
  const backup = join(dir, 'backup');
  const restored = join(dir, 'restored');
  try {
    const service = await startService({ dataDir, port: 0, adminPort: null, credentials: [CRED], prefetch: false });
    const sqs = new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials: CRED });
    try {
      const url = (await sqs.send(new CreateQueueCommand({ QueueName: 'kept' }))).QueueUrl!;
      for (let i = 0; i < 5; i++) await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: `before ${i}` }));
      // The database files are the owner's only.
      for (const name of ['messages.db', 'messages.db-wal', 'messages.db-shm', 'kms-keys.json', 'kms-root.key']) {
        assert.equal(mode(join(dataDir, name)), 0o600, name);
      }
      assert.equal(mode(dataDir), 0o700);

      const run = spawnSync(process.execPath, ['bin/pkp.js', 'backup', '--data-dir', dataDir, '--out', backup],
        { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, PKP_FROM_SOURCE: '1' } });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /root key is not in the backup/);
      await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'after the backup' }));
    } finally {
      sqs.destroy();
      await service.close();
    }
    assert.deepEqual(readdirSync(backup).sort(), ['messages.db', 'kms-keys.json'].sort());
    for (const name of readdirSync(backup)) assert.equal(mode(join(backup, name)), 0o600, name);
    assert.equal(mode(backup), 0o700);

    // A backup never overwrites one.
    const run = spawnSync(process.execPath, ['bin/pkp.js', 'backup', '--data-dir', dataDir, '--out', backup], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, PKP_FROM_SOURCE: '1' } });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /exists and is not empty/);
    // Without its root key the backup does not open.
    const noKey = join(dir, 'no-key');
    spawnSync('cp', ['-r', backup, noKey]);
    await assert.rejects(startService({ dataDir: noKey, port: 0, adminPort: null, credentials: [CRED], prefetch: false }), /root key/);

    // Restore: the backup plus the root key kept apart.
    spawnSync('cp', ['-r', backup, restored]);
    copyFileSync(join(dataDir, 'kms-root.key'), join(restored, 'kms-root.key'));
    const again = await startService({ dataDir: restored, port: 0, adminPort: null, credentials: [CRED], prefetch: false });
    const client = new SQSClient({ endpoint: again.endpoint, region: 'us-east-1', credentials: CRED });
    try {
      const url = (await client.send(new CreateQueueCommand({ QueueName: 'kept' }))).QueueUrl!;
      const bodies: string[] = [];
      for (let i = 0; i < 5 && bodies.length < 6; i++) {
        const got = await client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10 }));
        bodies.push(...(got.Messages ?? []).map((m) => m.Body!));
      }
      assert.deepEqual(bodies.sort(), ['before 0', 'before 1', 'before 2', 'before 3', 'before 4']);
    } finally {
      client.destroy();
      await again.close();
    }
    assert.ok(existsSync(join(restored, 'messages.db')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
