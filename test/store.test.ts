import { after, test, type TestContext } from 'node:test';
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

/**
 * A script run in a child process with `store` open on the database at `path`; the test reads its
 * output and kills it (it never outlives the test).
 */
interface Child {
  readonly pid: number;
  /** Everything the child has printed so far. */
  output(): string;
  /** Resolves once `enough` holds for the output, or the child has ended. */
  until(enough: (output: string) => boolean): Promise<void>;
  /** SIGKILL; resolves with the signal the child ended by (null: it had ended by itself). */
  kill(): Promise<NodeJS.Signals | null>;
}

function startChild(t: TestContext, dir: string, body: string, path: string): Child {
  const script = join(dir, `child-${randomUUID()}.mjs`);
  // The body may import modules of its own: imports are hoisted, whatever their place.
  writeFileSync(script, `import { SqliteMessageStore } from ${JSON.stringify(storeModule)};
const store = SqliteMessageStore.open({ path: process.argv[2] });
${body}`);
  const child = spawn(process.execPath, ['--import', 'tsx', script, path], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const ended = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
  let output = '';
  const waiting = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    for (const check of waiting) check();
  });
  return {
    pid: child.pid!,
    output: () => output,
    until: (enough) => new Promise<void>((resolve) => {
      const check = (): void => {
        if (!enough(output)) return;
        waiting.delete(check);
        resolve();
      };
      waiting.add(check);
      void ended.then(() => {
        waiting.delete(check);
        resolve();
      });
      check();
    }),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return ended;
    },
  };
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

async function memoryStore(onOp?: (op: string) => void): Promise<{ store: SqliteMessageStore; queueId: string }> {
  const store = SqliteMessageStore.open({ path: ':memory:', onOp });
  const queueId = (await store.createQueue('q', {}, 0)).queue.queueId;
  return { store, queueId };
}

const isCode = (code: string) => (err: unknown) => err instanceof PkpError && err.code === code;

test('receipt handles round-trip message ids that contain colons', async () => {
  const parts = { queueId: 'ab'.repeat(16), messageId: 'a:b::c', nonce: 'cd'.repeat(16) };
  assert.deepEqual(decodeReceiptHandle(encodeReceiptHandle(parts)), parts);
});

test('group commit: 200 concurrent puts resolve after one transaction and are all stored', async () => {
  const ops: string[] = [];
  const { store, queueId } = await memoryStore((op) => ops.push(op));
  const calls = Array.from({ length: 200 }, (_, i) => store.putMessages([message(queueId, i)]));
  await Promise.all(calls);
  assert.equal(ops.filter((op) => op === 'groupCommit').length, 1);
  assert.equal(ops.filter((op) => op === 'putMessages').length, 200);
  assert.deepEqual(await store.counts(queueId, 1000), { visible: 200, inFlight: 0, delayed: 0 });
});

test('group commit: a failing call rolls back only itself, whole, while the rest of its batch commits', async () => {
  const ops: string[] = [];
  const { store, queueId } = await memoryStore((op) => ops.push(op));
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
  const { store, queueId } = await memoryStore((op) => ops.push(op));
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
  const queueId = (await store.createQueue('q', {}, 0)).queue.queueId;
  const put = store.putMessages([message(queueId, 0)]);
  await store.close();
  await put;
  await store.close();

  await assert.rejects(store.putMessages([message(queueId, 0)]), isCode('StoreClosed'));
  await assert.rejects(store.receiveMessages(queueId, 1, 1000, 0), isCode('StoreClosed'));
  await assert.rejects(store.deleteMessage(queueId, 'x'), isCode('StoreClosed'));
  await assert.rejects(store.getQueueByName('q'), isCode('StoreClosed'));
  await assert.rejects(store.counts(queueId, 0), isCode('StoreClosed'));

  const reopened = SqliteMessageStore.open({ path });
  assert.equal((await reopened.counts(queueId, 0)).visible, 1);
  await reopened.close();
});

test('durability: a resolved put is seen by a second connection and after reopening; WAL mode, versioned schema', async () => {
  const path = join(tempDir(), 'messages.db');
  const store = SqliteMessageStore.open({ path, synchronous: 'full' });
  const queueId = (await store.createQueue('q', { A: '1' }, 0)).queue.queueId;
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
  assert.deepEqual((await reopened.getQueueById(queueId))?.attributes, { A: '1' });
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

test('a database from a newer schema version is refused', async () => {
  const path = join(tempDir(), 'messages.db');
  const raw = new Database(path);
  raw.pragma('user_version = 99');
  raw.close();
  assert.throws(() => SqliteMessageStore.open({ path }), isCode('StoreSchemaTooNew'));
});

test('kill -9: every put acknowledged before the crash is there after reopening, and every acknowledged delete stays done', async (t) => {
  const dir = tempDir();
  const path = join(dir, 'messages.db');
  const writer = startChild(t, dir, `
import { randomBytes, randomUUID } from 'node:crypto';
const queueId = (await store.createQueue('q', {}, 0)).queue.queueId;
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
  // Said before it is asked (a pipe write is synchronous on Linux): a delete in flight at the crash may or may not be done.
  process.stdout.write('deleting ' + got.messageId + '\\n');
  if (await store.deleteMessage(queueId, got.receiptHandle) === 'deleted') process.stdout.write('deleted ' + got.messageId + '\\n');
}
`, path);
  // The writer never stops by itself: killed mid-stream, once it has acknowledged a few hundred messages.
  await writer.until((output) => (output.match(/^acked /gm) ?? []).length >= 200);
  assert.equal(await writer.kill(), 'SIGKILL');

  const lines = writer.output().split('\n');
  const queueId = lines.find((l) => l.startsWith('queue '))!.slice(6);
  // Only complete lines count: a torn last line was never fully acknowledged.
  const complete = lines.slice(0, -1);
  const acked = complete.filter((l) => l.startsWith('acked ')).flatMap((l) => l.slice(6).split(' '));
  const deleted = new Set(complete.filter((l) => l.startsWith('deleted ')).map((l) => l.slice(8)));
  // Asked but not acknowledged when the writer died: either outcome is right.
  const inFlight = new Set(lines.filter((l) => l.startsWith('deleting ')).map((l) => l.slice(9)).filter((id) => !deleted.has(id)));
  assert.ok(acked.length >= 400);
  assert.ok(deleted.size >= 150);
  assert.ok(inFlight.size <= 1, 'one delete at most is in flight at the crash');

  const store = SqliteMessageStore.open({ path });
  const stored = new Set((await store.receiveMessages(queueId, 1_000_000, 1000, 1e12)).map((m) => m.messageId));
  for (const id of acked) {
    if (deleted.has(id)) assert.ok(!stored.has(id), `acknowledged delete of ${id} was undone`);
    else if (!inFlight.has(id)) assert.ok(stored.has(id), `acknowledged message ${id} was lost`);
  }
  await store.close();
});

test('the database files hold the ciphertext given and never the plaintext behind it', async () => {
  const dir = tempDir();
  const path = join(dir, 'messages.db');
  const store = SqliteMessageStore.open({ path });
  const queueId = (await store.createQueue('q', {}, 0)).queue.queueId;
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

test('a database made by the schema-1 build (before accounts) opens: its queues and messages are the legacy account\'s', async () => {
  const path = join(tempDir(), 'messages.db');
  const store = SqliteMessageStore.open({ path });
  const queueId = (await store.createQueue('orders', { VisibilityTimeout: '40' }, 10)).queue.queueId;
  await store.putMessages([message(queueId, 10, { messageId: 'm-1' })]);
  await store.close();
  // Back to exactly what schema 1 held: bare names, version 1.
  const raw = new Database(path);
  raw.prepare("UPDATE queues SET name = substr(name, instr(name, '/') + 1)").run();
  raw.exec(`DROP INDEX messages_fresh; DROP INDEX messages_by_visibility; CREATE INDEX messages_by_visibility ON messages (queue_id, visible_at, seq);
    DROP TABLE receive_attempts; DROP INDEX move_tasks_by_source; DROP TABLE move_tasks; ALTER TABLE messages DROP COLUMN dead_letter_source;
    DROP INDEX messages_by_group; DROP TABLE fifo_dedup; ALTER TABLE messages DROP COLUMN group_id;
    ALTER TABLE messages DROP COLUMN dedup_id; ALTER TABLE messages DROP COLUMN sequence_number; ALTER TABLE queues DROP COLUMN fifo_sequence;
    ALTER TABLE queues DROP COLUMN tags; ALTER TABLE queues DROP COLUMN purged_at; DROP TABLE deleted_queues;
    ALTER TABLE messages ADD COLUMN md5_body TEXT NOT NULL DEFAULT ''; ALTER TABLE messages ADD COLUMN md5_attrs TEXT;`);
  raw.pragma('user_version = 1');
  assert.equal((raw.prepare('SELECT name FROM queues').get() as { name: string }).name, 'orders');
  raw.close();

  const reopened = SqliteMessageStore.open({ path });
  const queue = await reopened.getQueueByName('orders', '000000000000');
  assert.equal(queue?.queueId, queueId);
  assert.equal(queue?.attributes.VisibilityTimeout, '40');
  const got = await reopened.receiveMessages(queueId, 10, 1000, 20);
  assert.deepEqual(got.map((m) => m.messageId), ['m-1']);
  await reopened.close();
  const check = new Database(path);
  assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  check.close();
});

test('kill -9 during dead-letter moves: every message is in exactly one of the two queues afterwards', async (t) => {
  const dir = tempDir();
  const path = join(dir, 'messages.db');
  const mover = startChild(t, dir, `
import { randomBytes, randomUUID } from 'node:crypto';
const source = (await store.createQueue('src', {}, 0)).queue.queueId;
const dlq = (await store.createQueue('dlq', {}, 0)).queue.queueId;
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
`, path);
  await mover.until((output) => (output.match(/^moved$/gm) ?? []).length >= 60);
  assert.equal(await mover.kill(), 'SIGKILL');
  const [source, dlq, ...ids] = mover.output().split('\n').find((l) => l.startsWith('ids '))!.slice(4).split(' ');
  assert.equal(ids.length, 2000);

  const store = SqliteMessageStore.open({ path });
  const inSource = (await store.receiveMessages(source!, 1_000_000, 1000, 1e12)).map((m) => m.messageId);
  const inDlq = (await store.receiveMessages(dlq!, 1_000_000, 1000, 1e12)).map((m) => m.messageId);
  assert.ok(inDlq.length > 0 && inSource.length > 0, `killed mid-way: ${inDlq.length} moved, ${inSource.length} left`);
  assert.equal(inSource.length + inDlq.length, ids.length, 'no message lost, none doubled');
  assert.deepEqual([...inSource, ...inDlq].sort(), [...ids].sort());
  await store.close();
});

test('receives and deletes called in one turn share one commit, each in call order and settling after it', async () => {
  const ops: string[] = [];
  const { store, queueId } = await memoryStore((op) => ops.push(op));
  const sent = Array.from({ length: 4 }, () => message(queueId, 0));
  await store.putMessages(sent);
  const [a, b] = await Promise.all([store.receiveMessages(queueId, 2, 1000, 0), store.receiveMessages(queueId, 2, 1000, 0)]);
  assert.equal(ops.filter((op) => op === 'opsCommit').length, 1);
  // Run in call order: the first receive took the first two messages, the second the next two.
  assert.deepEqual([...a!, ...b!].map((m) => m.messageId), sent.map((m) => m.messageId));
  const outcomes = await Promise.all([...a!, ...b!, a![0]!].map((m) => store.deleteMessage(queueId, m.receiptHandle)));
  assert.deepEqual(outcomes, ['deleted', 'deleted', 'deleted', 'deleted', 'gone']);
  assert.equal(ops.filter((op) => op === 'opsCommit').length, 2);
  assert.deepEqual(await store.counts(queueId, 0), { visible: 0, inFlight: 0, delayed: 0 });
  await store.close();
});

test('one process per database: a live owner elsewhere is refused with StoreInUse; a killed one is taken over', async (t) => {
  const dir = tempDir();
  const path = join(dir, 'messages.db');
  const owner = startChild(t, dir, `
const queueId = (await store.createQueue('q', {}, 0)).queue.queueId;
process.stdout.write('open ' + queueId + '\\n');
setInterval(() => {}, 1000);
`, path);
  await owner.until((output) => output.includes('\n'));
  const queueId = /^open ([0-9a-f]+)$/m.exec(owner.output())?.[1];
  assert.ok(queueId, `the owner opened the store: ${owner.output()}`);
  assert.throws(() => SqliteMessageStore.open({ path }), (err: unknown) => err instanceof PkpError && err.code === 'StoreInUse' && err.message.includes(String(owner.pid)));
  assert.equal(await owner.kill(), 'SIGKILL');
  const store = SqliteMessageStore.open({ path });
  try {
    assert.equal((await store.getQueueById(queueId))?.name, 'q', 'the dead owner\'s lock was taken over');
    assert.throws(() => SqliteMessageStore.open({ path }), (err: unknown) => err instanceof PkpError && err.code === 'StoreInUse', 'a second store in this process too');
  } finally {
    await store.close();
  }
  const reopened = SqliteMessageStore.open({ path });
  await reopened.close();
});
