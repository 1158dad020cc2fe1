// A full disk, for real: the store on a small tmpfs. Sends fail whole with StoreFull; every message
// already acknowledged can still be received and deleted, also after a restart on the full disk;
// sends resume once there is room. Needs root to mount the tmpfs; skipped (and said why) otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMessageStore } from '../src/store/sqlite-store.ts';
import type { NewMessage } from '../src/store/types.ts';

function mountTmpfs(dir: string, size: string): string | false {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return false;
  } catch {
    return 'mount -t tmpfs failed here';
  }
}

const message = (queueId: string): NewMessage => ({
  messageId: randomUUID(), queueId, bodyCiphertext: randomBytes(1024), attributesCiphertext: null, encryptedDek: randomBytes(60),
  dekId: 'd', kmsKeyId: 'k', senderPrincipal: 'p', sentAt: 0, visibleAt: 0, bodyBytes: 1024,
});

const isStoreFull = (e: unknown): boolean => (e as { code?: string }).code === 'StoreFull';

/** Puts batches until the disk is full; returns the acknowledged ids. */
async function fill(store: SqliteMessageStore, queueId: string): Promise<string[]> {
  const acked: string[] = [];
  for (;;) {
    const batch = Array.from({ length: 25 }, () => message(queueId));
    try {
      await store.putMessages(batch);
    } catch (error) {
      assert.ok(isStoreFull(error), `expected StoreFull, got ${String(error)}`);
      return acked;
    }
    acked.push(...batch.map((m) => m.messageId));
  }
}

/** Receives (at `now`, hiding each for 10 minutes) until nothing is visible; deletes each if asked. */
async function drain(store: SqliteMessageStore, queueId: string, now: number, remove: boolean): Promise<Set<string>> {
  const seen = new Set<string>();
  for (;;) {
    const got = await store.receiveMessages(queueId, 10, 600_000, now);
    if (got.length === 0) return seen;
    for (const m of got) {
      seen.add(m.messageId);
      if (remove) assert.equal(await store.deleteMessage(queueId, m.receiptHandle), 'deleted');
    }
  }
}

const dir = mkdtempSync(join(tmpdir(), 'pkp-disk-full-'));
const skip = mountTmpfs(dir, '16m');

test('a full disk: sends fail whole, stored messages are still received and deleted, sends resume', { skip, timeout: 120_000 }, async () => {
  const path = join(dir, 'messages.db');
  let store: SqliteMessageStore | undefined;
  try {
    store = SqliteMessageStore.open({ path, reserveBytes: 1024 * 1024 });
    const queueId = (await store.createQueue('q', {}, 0)).queue.queueId;
    const acked = await fill(store, queueId);
    assert.ok(acked.length > 1000, `only ${acked.length} messages fit`);
    // Another send on the full disk fails as a whole.
    await assert.rejects(store.putMessages([message(queueId), message(queueId)]), isStoreFull);

    // Restart on the still-full disk: it opens, and every acknowledged message is there and readable.
    await store.close();
    store = SqliteMessageStore.open({ path, reserveBytes: 1024 * 1024 });
    const seen = await drain(store, queueId, 1, false);
    assert.equal(seen.size, acked.length, 'a failed send left part of itself behind, or a message was lost');
    for (const id of acked) assert.ok(seen.has(id), `acknowledged message ${id} was lost`);

    // Ten minutes later they are visible again, and each is received and deleted on the full disk.
    const counts = await store.counts(queueId, 1);
    assert.equal(counts.inFlight, acked.length);
    const deleted = await drain(store, queueId, 700_000, true);
    assert.equal(deleted.size, acked.length);
    assert.equal((await store.counts(queueId, 700_000)).visible + (await store.counts(queueId, 700_000)).inFlight, 0);
    // Room inside the database again: sends work.
    await store.putMessages([message(queueId)]);
  } finally {
    await store?.close().catch(() => undefined);
    if (!skip) execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

const fifoDir = mkdtempSync(join(tmpdir(), 'pkp-disk-full-fifo-'));
const fifoSkip = mountTmpfs(fifoDir, '16m');

test('a full disk: FIFO sends and dead-letter moves are refused whole too, so receives and deletes keep their room', { skip: fifoSkip, timeout: 120_000 }, async () => {
  let store: SqliteMessageStore | undefined;
  try {
    store = SqliteMessageStore.open({ path: join(fifoDir, 'messages.db'), reserveBytes: 1024 * 1024 });
    const queueId = (await store.createQueue('q', {}, 0)).queue.queueId;
    const dlqId = (await store.createQueue('dlq', {}, 0)).queue.queueId;
    const fifoId = (await store.createQueue('f.fifo', { FifoQueue: 'true' }, 0)).queue.queueId;
    const acked = await fill(store, queueId);
    assert.ok(acked.length > 1000, `only ${acked.length} messages fit`);

    // The reserve was given up for reading: a FIFO send must not take its room.
    const fifoMessage = (): NewMessage => ({ ...message(fifoId), groupId: 'g', dedupId: randomUUID() });
    await assert.rejects(store.putFifoMessages(fifoId, [fifoMessage(), fifoMessage()], { scope: 'queue', windowMs: 300_000 }, 1), isStoreFull);
    assert.deepEqual((await store.counts(fifoId, 1)), { visible: 0, inFlight: 0, delayed: 0 });

    // Nor a dead-letter move: the leased messages stay where they were.
    const leased = await store.receiveMessages(queueId, 10, 0, 1, { redrive: { maxReceiveCount: 0, leaseMs: 30_000 } });
    assert.equal(leased.length, 10);
    await assert.rejects(store.moveMessages(queueId, leased.map((m) => ({ receiptHandle: m.receiptHandle, message: { ...message(dlqId), messageId: m.messageId } }))), isStoreFull);
    assert.equal((await store.counts(dlqId, 1)).visible, 0);
    assert.equal((await store.counts(queueId, 40_000)).visible, acked.length);

    // Everything stored is still received and deleted; then there is room and FIFO sends work again.
    assert.equal((await drain(store, queueId, 40_000, true)).size, acked.length);
    const stored = await store.putFifoMessages(fifoId, [fifoMessage()], { scope: 'queue', windowMs: 300_000 }, 50_000);
    assert.equal(stored.length, 1);
    assert.equal((await store.counts(fifoId, 50_000)).visible, 1);
  } finally {
    await store?.close().catch(() => undefined);
    if (!fifoSkip) execFileSync('umount', [fifoDir]);
    rmSync(fifoDir, { recursive: true, force: true });
  }
});
