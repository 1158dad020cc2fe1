import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { PkpError } from '../src/core/errors.ts';
import { aeadEncrypt } from '../src/crypto/aead.ts';
import { decodeReceiptHandle, encodeReceiptHandle } from '../src/store/receipt-handle.ts';
import { MIGRATIONS, SCHEMA_VERSION, SqliteMessageStore } from '../src/store/sqlite-store.ts';
import type { NewMessage } from '../src/store/types.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const storeModule = fileURLToPath(new URL('../src/store/sqlite-store.ts', import.meta.url));

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pkp-store-'));
  tempDirs.push(dir);
  return dir;
}

function message(queueId: string, sentAt: number, overrides: Partial<NewMessage> = {}): NewMessage {
  return {
    messageId: randomUUID(),
    queueId,
    bodyCiphertext: randomBytes(40),
    attributesCiphertext: null,
    encryptedDek: randomBytes(60),
    dekId: 'dek-1',
    kmsKeyId: 'key-1',
    senderPrincipal: 'alice',
    sentAt,
    visibleAt: sentAt,
    bodyBytes: 12,
    ...overrides,
  };
}

function memoryStore(onOp?: (op: string) => void): { store: SqliteMessageStore; queueId: string } {
  const store = SqliteMessageStore.open({ path: ':memory:', onOp });
  const queueId = store.createQueue('q', {}, 0).queue.queueId;
  return { store, queueId };
}

const isCode = (code: string) => (err: unknown) => err instanceof PkpError && err.code === code;

test('queues: create, exists, get, list by prefix, merge attributes, delete', () => {
  const store = SqliteMessageStore.open({ path: ':memory:' });
  const created = store.createQueue('orders', { VisibilityTimeout: '30' }, 100);
  assert.equal(created.outcome, 'created');
  assert.match(created.queue.queueId, /^[0-9a-f]{32}$/);

  const again = store.createQueue('orders', { VisibilityTimeout: '60' }, 200);
  assert.equal(again.outcome, 'exists');
  assert.deepEqual(again.queue, created.queue, 'the existing record, untouched');

  store.createQueue('orders_dlq', {}, 300);
  store.createQueue('ordersX', {}, 300);
  store.createQueue('billing', {}, 300);
  assert.deepEqual(store.listQueues().map((q) => q.name), ['billing', 'orders', 'ordersX', 'orders_dlq']);
  assert.deepEqual(store.listQueues('orders_').map((q) => q.name), ['orders_dlq'], "'_' is not a wildcard");
  assert.deepEqual(store.listQueues('nope'), []);

  const id = created.queue.queueId;
  const updated = store.setQueueAttributes(id, { DelaySeconds: '5', VisibilityTimeout: '45' }, 400);
  assert.deepEqual(updated?.attributes, { VisibilityTimeout: '45', DelaySeconds: '5' });
  assert.equal(updated?.updatedAt, 400);
  assert.deepEqual(store.getQueueById(id), updated);
  assert.deepEqual(store.getQueueByName('orders'), updated);
  assert.equal(store.setQueueAttributes('0'.repeat(32), { A: '1' }, 400), undefined);

  assert.equal(store.deleteQueue(id), true);
  assert.equal(store.deleteQueue(id), false);
  assert.equal(store.getQueueById(id), undefined);
  const recreated = store.createQueue('orders', {}, 500);
  assert.equal(recreated.outcome, 'created');
  assert.notEqual(recreated.queue.queueId, id, 'a new queue of the same name gets a new id');
});

test('deleting a queue removes its messages and no other queue\'s', async () => {
  const { store, queueId } = memoryStore();
  const other = store.createQueue('other', {}, 0).queue.queueId;
  await store.putMessages([message(queueId, 0), message(queueId, 0), message(other, 0)]);
  assert.equal(store.deleteQueue(queueId), true);
  assert.equal(store.counts(queueId, 0).visible, 0);
  assert.equal(store.counts(other, 0).visible, 1);
});

test('put, receive and delete round-trip every field', async () => {
  const { store, queueId } = memoryStore();
  const sent = message(queueId, 1000, {
    attributesCiphertext: randomBytes(30),
  });
  await store.putMessages([sent]);

  const [got, ...rest] = await store.receiveMessages(queueId, 10, 30_000, 2000);
  assert.equal(rest.length, 0);
  assert.ok(got);
  const { receiptHandle, ...stored } = got;
  assert.deepEqual(stored, { ...sent, visibleAt: 32_000, receiveCount: 1, firstReceivedAt: 2000 });
  assert.ok(Buffer.isBuffer(got.bodyCiphertext));

  assert.equal(await store.deleteMessage(queueId, receiptHandle), 'deleted');
  assert.equal(await store.deleteMessage(queueId, receiptHandle), 'gone');
  assert.deepEqual(await store.receiveMessages(queueId, 10, 30_000, 100_000), []);
});

test('receive takes at most max messages, oldest first, and only from its own queue', async () => {
  const { store, queueId } = memoryStore();
  const other = store.createQueue('other', {}, 0).queue.queueId;
  const batch = [0, 1, 2, 3, 4].map((i) => message(queueId, 100 + i));
  await store.putMessages([message(other, 0), ...batch]);
  const first = await store.receiveMessages(queueId, 3, 1000, 200);
  assert.deepEqual(first.map((m) => m.messageId), batch.slice(0, 3).map((m) => m.messageId));
  const second = await store.receiveMessages(queueId, 3, 1000, 200);
  assert.deepEqual(second.map((m) => m.messageId), batch.slice(3).map((m) => m.messageId));
  assert.deepEqual(await store.receiveMessages(queueId, 0, 1000, 200), []);
});

test('messages come in the order they became visible: a redelivery queues behind older visible ones', async () => {
  const { store, queueId } = memoryStore();
  const a = message(queueId, 0);
  const b = message(queueId, 10);
  await store.putMessages([a, b]);
  assert.equal((await store.receiveMessages(queueId, 1, 100, 20))[0]?.messageId, a.messageId);
  // At 200 both are visible: b since 10, a again since 120.
  const again = await store.receiveMessages(queueId, 2, 100, 200);
  assert.deepEqual(again.map((m) => m.messageId), [b.messageId, a.messageId]);
});

test('visibility timeout: hidden until now + timeout, then redelivered with a new handle; the old one still deletes', async () => {
  const { store, queueId } = memoryStore();
  await store.putMessages([message(queueId, 0)]);
  const [first] = await store.receiveMessages(queueId, 1, 30_000, 1000);
  assert.equal(first?.receiveCount, 1);

  assert.deepEqual(await store.receiveMessages(queueId, 1, 30_000, 30_999), [], 'still in flight');
  assert.equal(store.nextVisibleAt(queueId), 31_000);

  const [second] = await store.receiveMessages(queueId, 1, 30_000, 31_000);
  assert.equal(second?.messageId, first?.messageId);
  assert.equal(second?.receiveCount, 2);
  assert.equal(second?.firstReceivedAt, 1000, 'first receive time is kept');
  assert.notEqual(second?.receiptHandle, first?.receiptHandle);

  assert.equal(await store.deleteMessage(queueId, first!.receiptHandle), 'deleted');
  assert.equal(store.counts(queueId, 31_000).inFlight, 0);
});

test('changeVisibility works only with the current handle of a message in flight', async () => {
  const { store, queueId } = memoryStore();
  await store.putMessages([message(queueId, 0)]);
  const [first] = await store.receiveMessages(queueId, 1, 10_000, 1000);
  assert.equal(await store.changeVisibility(queueId, first!.receiptHandle, 50_000, 2000), 'changed');
  assert.deepEqual(await store.receiveMessages(queueId, 1, 10_000, 49_999), []);

  const [second] = await store.receiveMessages(queueId, 1, 10_000, 50_000);
  assert.equal(await store.changeVisibility(queueId, first!.receiptHandle, 90_000, 50_001), 'not-in-flight', 'stale handle');
  // Visibility 0 returns the message to the queue at once.
  assert.equal(await store.changeVisibility(queueId, second!.receiptHandle, 50_001, 50_001), 'changed');
  assert.equal(store.counts(queueId, 50_001).visible, 1);
  // No longer in flight: the current handle changes nothing (as SQS: an accepted no-op).
  assert.equal(await store.changeVisibility(queueId, second!.receiptHandle, 60_000, 50_002), 'expired');
  assert.equal(store.counts(queueId, 50_002).visible, 1, 'still visible');

  assert.equal(await store.deleteMessage(queueId, second!.receiptHandle), 'deleted');
  assert.equal(await store.changeVisibility(queueId, second!.receiptHandle, 60_000, 50_002), 'not-in-flight', 'deleted');
});

test('malformed handles and handles of another queue are invalid and change nothing', async () => {
  const { store, queueId } = memoryStore();
  const other = store.createQueue('other', {}, 0).queue.queueId;
  await store.putMessages([message(queueId, 0)]);
  const [got] = await store.receiveMessages(queueId, 1, 10_000, 0);
  const handle = got!.receiptHandle;

  const bad = [
    '',
    'not a handle!',
    'AAAA',
    handle + '=',
    handle.slice(0, -4),
    'x'.repeat(2000),
    Buffer.from(`${queueId}:${got!.messageId}`).toString('base64url'),
    Buffer.from(`${queueId}:${got!.messageId}:nothex`).toString('base64url'),
    Buffer.from(`nothex:${got!.messageId}:${'a'.repeat(32)}`).toString('base64url'),
  ];
  for (const h of bad) {
    assert.equal(await store.deleteMessage(queueId, h), 'invalid', h);
    assert.equal(await store.changeVisibility(queueId, h, 0, 1), 'invalid', h);
  }
  assert.equal(await store.deleteMessage(other, handle), 'invalid');
  assert.equal(await store.changeVisibility(other, handle, 0, 1), 'invalid');
  assert.deepEqual(store.counts(queueId, 1), { visible: 0, inFlight: 1, delayed: 0 });
});

test('receipt handles round-trip message ids that contain colons', () => {
  const parts = { queueId: 'ab'.repeat(16), messageId: 'a:b::c', nonce: 'cd'.repeat(16) };
  assert.deepEqual(decodeReceiptHandle(encodeReceiptHandle(parts)), parts);
});

test('delayed messages are invisible until visibleAt and are counted as delayed', async () => {
  const { store, queueId } = memoryStore();
  await store.putMessages([message(queueId, 0, { visibleAt: 5000 }), message(queueId, 0)]);
  assert.deepEqual(store.counts(queueId, 0), { visible: 1, inFlight: 0, delayed: 1 });
  const now = await store.receiveMessages(queueId, 10, 100_000, 0);
  assert.equal(now.length, 1);
  assert.deepEqual(store.counts(queueId, 4999), { visible: 0, inFlight: 1, delayed: 1 });
  assert.equal(store.nextVisibleAt(queueId), 5000);
  const later = await store.receiveMessages(queueId, 10, 100_000, 5000);
  assert.equal(later.length, 1);
  assert.equal(later[0]?.sentAt, 0);
  assert.deepEqual(store.counts(queueId, 5000), { visible: 0, inFlight: 2, delayed: 0 });
});

test('counts, nextVisibleAt and purge', async () => {
  const { store, queueId } = memoryStore();
  assert.deepEqual(store.counts(queueId, 0), { visible: 0, inFlight: 0, delayed: 0 });
  assert.equal(store.nextVisibleAt(queueId), undefined);
  await store.putMessages([0, 1, 2, 3].map(() => message(queueId, 0)));
  await store.putMessages([message(queueId, 0, { visibleAt: 900 })]);
  await store.receiveMessages(queueId, 1, 500, 10);
  assert.deepEqual(store.counts(queueId, 10), { visible: 3, inFlight: 1, delayed: 1 });
  assert.deepEqual(store.counts(queueId, 510), { visible: 4, inFlight: 0, delayed: 1 });
  assert.equal(store.nextVisibleAt(queueId), 0, 'a visible message makes it a time already passed');

  assert.equal(await store.purgeQueue(queueId), 5);
  assert.deepEqual(store.counts(queueId, 10), { visible: 0, inFlight: 0, delayed: 0 });
  assert.equal(store.nextVisibleAt(queueId), undefined);
  assert.equal(await store.purgeQueue(queueId), 0);
});

test('dropExpired deletes by send time, whatever the visibility', async () => {
  const { store, queueId } = memoryStore();
  const other = store.createQueue('other', {}, 0).queue.queueId;
  const old = message(queueId, 1000);
  await store.putMessages([old, message(queueId, 1000, { visibleAt: 9000 }), message(queueId, 5000), message(other, 0)]);
  await store.receiveMessages(queueId, 1, 100_000, 1500);
  assert.equal(await store.dropExpired(queueId, 4000, 5000), 0, 'exactly the retention old is kept');
  assert.equal(await store.dropExpired(queueId, 4000, 5001), 2);
  assert.equal(store.counts(queueId, 5001).visible, 1);
  assert.equal(store.counts(other, 5001).visible, 1);
});

test('group commit: 200 concurrent puts resolve after one transaction and are all stored', async () => {
  const ops: string[] = [];
  const { store, queueId } = memoryStore((op) => ops.push(op));
  const calls = Array.from({ length: 200 }, (_, i) => store.putMessages([message(queueId, i)]));
  await Promise.all(calls);
  assert.equal(ops.filter((op) => op === 'groupCommit').length, 1);
  assert.equal(ops.filter((op) => op === 'putMessages').length, 200);
  assert.deepEqual(store.counts(queueId, 1000), { visible: 200, inFlight: 0, delayed: 0 });
});

test('group commit: a failing call rolls back only itself, whole, while the rest of its batch commits', async () => {
  const ops: string[] = [];
  const { store, queueId } = memoryStore((op) => ops.push(op));
  const existing = message(queueId, 0);
  await store.putMessages([existing]);

  const good1 = message(queueId, 1);
  const fresh = message(queueId, 2);
  const good2 = message(queueId, 3);
  const results = await Promise.allSettled([
    store.putMessages([good1]),
    store.putMessages([fresh, { ...existing }]),
    store.putMessages([message('f'.repeat(32), 4)]),
    store.putMessages([good2]),
  ]);
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled']);
  assert.ok(isCode('DuplicateMessageId')((results[1] as PromiseRejectedResult).reason));
  assert.ok(isCode('QueueNotFound')((results[2] as PromiseRejectedResult).reason));
  assert.equal(ops.filter((op) => op === 'groupCommit').length, 2, 'one commit for the first put, one for the batch');

  const received = await store.receiveMessages(queueId, 10, 1000, 100);
  assert.deepEqual(
    received.map((m) => m.messageId).sort(),
    [existing.messageId, good1.messageId, good2.messageId].sort(),
    'the failed call left nothing, not even its first message',
  );
});

test('a receive sees every put called before it, even one not yet committed', async () => {
  const ops: string[] = [];
  const { store, queueId } = memoryStore((op) => ops.push(op));
  const put = store.putMessages([message(queueId, 0)]);
  const received = await store.receiveMessages(queueId, 10, 1000, 0);
  assert.equal(received.length, 1);
  await put;
  assert.equal(ops.filter((op) => op === 'groupCommit').length, 1);
});

test('close commits pending puts; afterwards every call fails with StoreClosed', async () => {
  const dir = tempDir();
  const path = join(dir, 'nested', 'messages.db');
  const store = SqliteMessageStore.open({ path });
  const queueId = store.createQueue('q', {}, 0).queue.queueId;
  const put = store.putMessages([message(queueId, 0)]);
  await store.close();
  await put;
  await store.close();

  await assert.rejects(store.putMessages([message(queueId, 0)]), isCode('StoreClosed'));
  await assert.rejects(store.receiveMessages(queueId, 1, 1000, 0), isCode('StoreClosed'));
  await assert.rejects(store.deleteMessage(queueId, 'x'), isCode('StoreClosed'));
  assert.throws(() => store.getQueueByName('q'), isCode('StoreClosed'));
  assert.throws(() => store.counts(queueId, 0), isCode('StoreClosed'));

  const reopened = SqliteMessageStore.open({ path });
  assert.equal(reopened.counts(queueId, 0).visible, 1);
  await reopened.close();
});

test('durability: a resolved put is seen by a second connection and after reopening; WAL mode, versioned schema', async () => {
  const path = join(tempDir(), 'messages.db');
  const store = SqliteMessageStore.open({ path, synchronous: 'full' });
  const queueId = store.createQueue('q', { A: '1' }, 0).queue.queueId;
  const sent = message(queueId, 0);
  await store.putMessages([sent]);

  const reader = new Database(path, { readonly: true });
  assert.equal(reader.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(reader.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  const row = reader.prepare('SELECT body FROM messages WHERE message_id = ?').get(sent.messageId) as { body: Buffer };
  assert.deepEqual(row.body, sent.bodyCiphertext);
  reader.close();

  await store.close();
  const reopened = SqliteMessageStore.open({ path });
  assert.deepEqual(reopened.getQueueById(queueId)?.attributes, { A: '1' });
  const [got] = await reopened.receiveMessages(queueId, 1, 1000, 0);
  assert.equal(got?.messageId, sent.messageId);
  await reopened.close();
});

test('a schema-1 database migrates: its messages stay receivable and no plaintext MD5 stays in a column', async () => {
  const path = join(tempDir(), 'messages.db');
  const raw = new Database(path);
  raw.exec(MIGRATIONS[0]!);
  raw.pragma('user_version = 1');
  raw.prepare("INSERT INTO queues VALUES ('q-1', 'old', 0, 0, '{}')").run();
  raw.prepare(`INSERT INTO messages (queue_id, message_id, body, attributes, encrypted_dek, dek_id, kms_key_id, md5_body, md5_attrs, sender, sent_at, visible_at, body_bytes)
    VALUES ('q-1', 'm-1', x'00', NULL, x'01', 'd', 'k', '5d41402abc4b2a76b9719d911017c592', NULL, 'alice', 0, 0, 5)`).run();
  raw.close();
  const store = SqliteMessageStore.open({ path });
  try {
    const [got] = await store.receiveMessages('q-1', 10, 1000, 1);
    assert.equal(got?.messageId, 'm-1');
  } finally {
    await store.close();
  }
  const after = new Database(path, { readonly: true });
  try {
    assert.equal(after.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    const columns = (after.prepare('PRAGMA table_info(messages)').all() as { name: string }[]).map((c) => c.name);
    assert.ok(!columns.some((c) => c.startsWith('md5')), `columns still hold MD5s: ${columns.join(', ')}`);
  } finally {
    after.close();
  }
});

test('a database from a newer schema version is refused', () => {
  const path = join(tempDir(), 'messages.db');
  const raw = new Database(path);
  raw.pragma('user_version = 99');
  raw.close();
  assert.throws(() => SqliteMessageStore.open({ path }), isCode('StoreSchemaTooNew'));
});

test('kill -9: every put acknowledged before the crash is there after reopening, and every acknowledged delete stays done', async (t) => {
  const dir = tempDir();
  const path = join(dir, 'messages.db');
  const script = join(dir, 'writer.mjs');
  writeFileSync(script, `
import { SqliteMessageStore } from ${JSON.stringify(storeModule)};
import { randomBytes, randomUUID } from 'node:crypto';
const store = SqliteMessageStore.open({ path: process.argv[2] });
const queueId = store.createQueue('q', {}, 0).queue.queueId;
process.stdout.write('queue ' + queueId + '\\n');
for (let i = 0; ; i++) {
  const ids = [randomUUID(), randomUUID()];
  await store.putMessages(ids.map((messageId) => ({
    messageId, queueId, bodyCiphertext: randomBytes(64), attributesCiphertext: null, encryptedDek: randomBytes(60),
    dekId: 'd', kmsKeyId: 'k', senderPrincipal: 'p',
    sentAt: i, visibleAt: i, bodyBytes: 64,
  })));
  process.stdout.write('acked ' + ids.join(' ') + '\\n');
  // Receives and deletes are group-committed too: one message of each pair is deleted.
  const [got] = await store.receiveMessages(queueId, 1, 1e9, i);
  if (await store.deleteMessage(queueId, got.receiptHandle) === 'deleted') process.stdout.write('deleted ' + got.messageId + '\\n');
}
`);
  const child = spawn(process.execPath, ['--import', 'tsx', script, path], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  // The writer never stops by itself: whatever happens to this test, it must not outlive it.
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let output = '';
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      // Kill it mid-stream, once it has acknowledged a few hundred messages.
      if ((output.match(/^acked /gm) ?? []).length >= 200) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.on('close', () => resolve());
  });
  assert.equal(await exited, 'SIGKILL');

  const lines = output.split('\n');
  const queueId = lines.find((l) => l.startsWith('queue '))!.slice(6);
  // Only complete lines count: a torn last line was never fully acknowledged.
  const complete = lines.slice(0, -1);
  const acked = complete.filter((l) => l.startsWith('acked ')).flatMap((l) => l.slice(6).split(' '));
  const deleted = new Set(complete.filter((l) => l.startsWith('deleted ')).map((l) => l.slice(8)));
  assert.ok(acked.length >= 400);
  assert.ok(deleted.size >= 150);

  const store = SqliteMessageStore.open({ path });
  const stored = new Set((await store.receiveMessages(queueId, 1_000_000, 1000, 1e12)).map((m) => m.messageId));
  for (const id of acked) {
    if (deleted.has(id)) assert.ok(!stored.has(id), `acknowledged delete of ${id} was undone`);
    else assert.ok(stored.has(id), `acknowledged message ${id} was lost`);
  }
  await store.close();
});

test('the database files hold the ciphertext given and never the plaintext behind it', async () => {
  const dir = tempDir();
  const path = join(dir, 'messages.db');
  const store = SqliteMessageStore.open({ path });
  const queueId = store.createQueue('q', {}, 0).queue.queueId;
  const key = randomBytes(32);
  const plaintext = Buffer.from(`canary plaintext ${randomUUID()} that must never reach the disk`);
  const attrsPlain = Buffer.from(`{"canary":"${randomUUID()}"}`);
  const sent = message(queueId, 0, {
    bodyCiphertext: aeadEncrypt(key, plaintext, Buffer.from(queueId)),
    attributesCiphertext: aeadEncrypt(key, attrsPlain, Buffer.from(queueId)),
  });
  await store.putMessages([sent]);

  const scan = (): Buffer => Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
  // Checked both while the rows live in the WAL and after close has checkpointed them.
  for (const stage of ['open', 'closed']) {
    if (stage === 'closed') await store.close();
    const bytes = scan();
    assert.ok(bytes.includes(sent.bodyCiphertext), `${stage}: the scan does see stored bodies`);
    assert.ok(bytes.includes(sent.attributesCiphertext!), `${stage}: the scan does see stored attributes`);
    assert.equal(bytes.includes(plaintext), false, `${stage}: body plaintext found on disk`);
    assert.equal(bytes.includes(attrsPlain), false, `${stage}: attribute plaintext found on disk`);
    assert.equal(bytes.includes(key), false, `${stage}: key found on disk`);
  }
});

test('accounts: the same name in two accounts is two queues; listing stays within the account', () => {
  const store = SqliteMessageStore.open({ path: ':memory:' });
  const a = store.createQueue('orders', {}, 0, '111111111111');
  const b = store.createQueue('orders', { DelaySeconds: '5' }, 0, '222222222222');
  assert.equal(a.outcome, 'created');
  assert.equal(b.outcome, 'created');
  assert.notEqual(a.queue.queueId, b.queue.queueId);
  assert.equal(store.getQueueByName('orders', '111111111111')?.queueId, a.queue.queueId);
  assert.equal(store.getQueueByName('orders', '222222222222')?.attributes.DelaySeconds, '5');
  assert.equal(store.getQueueByName('orders', '333333333333'), undefined);
  assert.equal(store.getQueueByName('orders'), undefined, 'the legacy account has none');
  store.createQueue('orders-dlq', {}, 0, '111111111111');
  assert.deepEqual(store.listQueues('ord', '111111111111').map((q) => [q.accountId, q.name]), [['111111111111', 'orders'], ['111111111111', 'orders-dlq']]);
  assert.deepEqual(store.listQueues('', '222222222222').map((q) => q.name), ['orders']);
  assert.throws(() => store.createQueue('x', {}, 0, '12'), isCode('InvalidArgument'));
  void store.close();
});

test('a database made by the schema-1 build (before accounts) opens: its queues and messages are the legacy account\'s', async () => {
  const path = join(tempDir(), 'messages.db');
  const store = SqliteMessageStore.open({ path });
  const queueId = store.createQueue('orders', { VisibilityTimeout: '40' }, 10).queue.queueId;
  await store.putMessages([message(queueId, 10, { messageId: 'm-1' })]);
  await store.close();
  // Back to exactly what schema 1 held: bare names, version 1.
  const raw = new Database(path);
  raw.prepare("UPDATE queues SET name = substr(name, instr(name, '/') + 1)").run();
  raw.exec(`DROP TABLE receive_attempts; DROP INDEX move_tasks_by_source; DROP TABLE move_tasks; ALTER TABLE messages DROP COLUMN dead_letter_source;
    DROP INDEX messages_by_group; DROP TABLE fifo_dedup; ALTER TABLE messages DROP COLUMN group_id;
    ALTER TABLE messages DROP COLUMN dedup_id; ALTER TABLE messages DROP COLUMN sequence_number; ALTER TABLE queues DROP COLUMN fifo_sequence;
    ALTER TABLE queues DROP COLUMN tags; ALTER TABLE queues DROP COLUMN purged_at; DROP TABLE deleted_queues;
    ALTER TABLE messages ADD COLUMN md5_body TEXT NOT NULL DEFAULT ''; ALTER TABLE messages ADD COLUMN md5_attrs TEXT;`);
  raw.pragma('user_version = 1');
  assert.equal((raw.prepare('SELECT name FROM queues').get() as { name: string }).name, 'orders');
  raw.close();

  const reopened = SqliteMessageStore.open({ path });
  const queue = reopened.getQueueByName('orders', '000000000000');
  assert.equal(queue?.queueId, queueId);
  assert.equal(queue?.attributes.VisibilityTimeout, '40');
  const got = await reopened.receiveMessages(queueId, 10, 1000, 20);
  assert.deepEqual(got.map((m) => m.messageId), ['m-1']);
  await reopened.close();
  const check = new Database(path);
  assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  check.close();
});

test('redrive: a message at its limit is leased, not received, and moveMessages swaps it into the DLQ once', async () => {
  const store = SqliteMessageStore.open({ path: ':memory:' });
  const source = store.createQueue('src', {}, 0).queue.queueId;
  const dlq = store.createQueue('dlq', {}, 0).queue.queueId;
  const sent = message(source, 0);
  await store.putMessages([sent]);
  const limit = { maxReceiveCount: 1, leaseMs: 30_000 };
  const first = await store.receiveMessages(source, 10, 1000, 10, { redrive: limit });
  assert.equal(first.length, 1);
  assert.equal(first[0]!.redrive, undefined, 'the first receive delivers it');
  const second = await store.receiveMessages(source, 10, 1000, 2000, { redrive: limit });
  assert.equal(second[0]!.redrive, true, 'at the limit it is leased');
  assert.equal(second[0]!.receiveCount, 1, 'a lease is no receive');
  assert.deepEqual(await store.receiveMessages(source, 10, 1000, 3000, { redrive: limit }), [], 'leased: invisible');

  // The lease ran out without a move (a crash): leased again under a new handle; the old one is dead.
  const again = await store.receiveMessages(source, 10, 1000, 2000 + 30_000, { redrive: limit });
  assert.equal(again[0]!.redrive, true);
  const resealed = { ...sent, queueId: dlq, bodyCiphertext: randomBytes(40), sentAt: sent.sentAt, visibleAt: 40_000 };
  assert.equal(await store.moveMessages(source, [{ receiptHandle: second[0]!.receiptHandle, message: resealed }]), 0, 'a lost lease moves nothing');
  assert.equal(await store.moveMessages(source, [{ receiptHandle: again[0]!.receiptHandle, message: resealed }]), 1);
  assert.equal(await store.moveMessages(source, [{ receiptHandle: again[0]!.receiptHandle, message: resealed }]), 0, 'a second move finds nothing');
  assert.equal(store.nextVisibleAt(source), undefined, 'gone from the source');
  const inDlq = await store.receiveMessages(dlq, 10, 1000, 50_000);
  assert.deepEqual(inDlq.map((m) => [m.messageId, m.receiveCount]), [[sent.messageId, 1]]);
  assert.deepEqual(inDlq[0]!.bodyCiphertext, resealed.bodyCiphertext);
  await assert.rejects(store.moveMessages(source, [{ receiptHandle: again[0]!.receiptHandle, message: { ...resealed, messageId: 'other' } }]), isCode('InvalidArgument'));
  await store.close();
});

test('kill -9 during dead-letter moves: every message is in exactly one of the two queues afterwards', async () => {
  const dir = tempDir();
  const path = join(dir, 'messages.db');
  const script = join(dir, 'mover.mjs');
  writeFileSync(script, `
import { SqliteMessageStore } from ${JSON.stringify(storeModule)};
import { randomBytes, randomUUID } from 'node:crypto';
const store = SqliteMessageStore.open({ path: process.argv[2] });
const source = store.createQueue('src', {}, 0).queue.queueId;
const dlq = store.createQueue('dlq', {}, 0).queue.queueId;
const row = (messageId, queueId) => ({
  messageId, queueId, bodyCiphertext: randomBytes(64), attributesCiphertext: null, encryptedDek: randomBytes(60),
  dekId: 'd', kmsKeyId: 'k', md5OfBody: 'm', md5OfMessageAttributes: null, senderPrincipal: 'p', sentAt: 0, visibleAt: 0, bodyBytes: 64,
});
const ids = Array.from({ length: 2000 }, () => randomUUID());
await store.putMessages(ids.map((id) => row(id, source)));
await store.receiveMessages(source, 2000, 0, 0); // each received once: the next receive moves it
process.stdout.write('ids ' + source + ' ' + dlq + ' ' + ids.join(' ') + '\\n');
for (let now = 1; ; now++) {
  const leased = await store.receiveMessages(source, 10, 0, now, { redrive: { maxReceiveCount: 1, leaseMs: 1 } });
  const moves = leased.filter((m) => m.redrive).map((m) => ({ receiptHandle: m.receiptHandle, message: row(m.messageId, dlq) }));
  if (moves.length) await store.moveMessages(source, moves);
  process.stdout.write('moved\\n');
}
`);
  const child = spawn(process.execPath, ['--import', 'tsx', script, path], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if ((output.match(/^moved$/gm) ?? []).length >= 60) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.on('close', () => resolve());
  });
  assert.equal(await exited, 'SIGKILL');
  const [source, dlq, ...ids] = output.split('\n').find((l) => l.startsWith('ids '))!.slice(4).split(' ');
  assert.equal(ids.length, 2000);

  const store = SqliteMessageStore.open({ path });
  const inSource = (await store.receiveMessages(source!, 1_000_000, 1000, 1e12)).map((m) => m.messageId);
  const inDlq = (await store.receiveMessages(dlq!, 1_000_000, 1000, 1e12)).map((m) => m.messageId);
  assert.ok(inDlq.length > 0 && inSource.length > 0, `killed mid-way: ${inDlq.length} moved, ${inSource.length} left`);
  assert.equal(inSource.length + inDlq.length, ids.length, 'no message lost, none doubled');
  assert.deepEqual([...inSource, ...inDlq].sort(), [...ids].sort());
  await store.close();
});

test('FIFO: sequence numbers in order, deduplication within the window and scope, groups blocked while in flight', async () => {
  const store = SqliteMessageStore.open({ path: ':memory:' });
  const queueId = store.createQueue('q.fifo', { FifoQueue: 'true' }, 0).queue.queueId;
  const fifo = (groupId: string, dedupId: string) => message(queueId, 0, { groupId, dedupId });
  const window = { scope: 'queue' as const, windowMs: 300_000 };
  const put = await store.putFifoMessages(queueId, [fifo('a', '1'), fifo('a', '2'), fifo('b', '3'), fifo('b', '1')], window, 10);
  assert.deepEqual(put.map((r) => r.duplicate), [false, false, false, true]);
  assert.equal(put[3]!.messageId, put[0]!.messageId);
  assert.ok(put[0]!.sequenceNumber < put[1]!.sequenceNumber && put[1]!.sequenceNumber < put[2]!.sequenceNumber);
  const grouped = await store.putFifoMessages(queueId, [fifo('c', '1')], { scope: 'messageGroup', windowMs: 300_000 }, 20);
  assert.equal(grouped[0]!.duplicate, false, 'in group scope another group may reuse the id');
  assert.equal((await store.putFifoMessages(queueId, [fifo('a', '1')], window, 300_010)).at(0)!.duplicate, false, 'the window has passed');

  const first = await store.receiveMessages(queueId, 1, 1000, 400_000, { fifo: true });
  assert.deepEqual(first.map((m) => [m.groupId, m.dedupId]), [['a', '1']]);
  const next = await store.receiveMessages(queueId, 10, 1000, 400_000, { fifo: true });
  assert.deepEqual(next.map((m) => m.groupId), ['b', 'c'], 'group a waits for its message in flight');
  assert.ok(next.every((m) => /^\d{20}$/.test(m.sequenceNumber ?? '')));
  await assert.rejects(store.putFifoMessages(queueId, [message(queueId, 0)], window, 0), isCode('InvalidArgument'));
  await store.close();
});

test('receives and deletes called in one turn share one commit, each in call order and settling after it', async () => {
  const ops: string[] = [];
  const { store, queueId } = memoryStore((op) => ops.push(op));
  const sent = Array.from({ length: 4 }, () => message(queueId, 0));
  await store.putMessages(sent);
  const [a, b] = await Promise.all([store.receiveMessages(queueId, 2, 1000, 0), store.receiveMessages(queueId, 2, 1000, 0)]);
  assert.equal(ops.filter((op) => op === 'opsCommit').length, 1);
  // Run in call order: the first receive took the first two messages, the second the next two.
  assert.deepEqual([...a!, ...b!].map((m) => m.messageId), sent.map((m) => m.messageId));
  const outcomes = await Promise.all([...a!, ...b!, a![0]!].map((m) => store.deleteMessage(queueId, m.receiptHandle)));
  assert.deepEqual(outcomes, ['deleted', 'deleted', 'deleted', 'deleted', 'gone']);
  assert.equal(ops.filter((op) => op === 'opsCommit').length, 2);
  assert.deepEqual(store.counts(queueId, 0), { visible: 0, inFlight: 0, delayed: 0 });
  await store.close();
});
