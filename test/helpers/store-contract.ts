// The MessageStore contract: what the SQS front-end relies on, run against every store. Each test
// works in an account of its own (12 random digits), so tests share one database and listing
// within the account still sees only the test's queues.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { PkpError } from '../../src/core/errors.ts';
import type { MessageStore, NewMessage } from '../../src/store/types.ts';

export interface StoreTarget {
  /** Prepares the storage (a directory, a database). */
  setUp(): Promise<void>;
  /** A store on that storage; a second call is a second store (connection, pool) on the same data. */
  open(): Promise<MessageStore>;
  /**
   * Whether two stores may be open on the same data at once (PostgreSQL: several processes share a
   * database). SQLite allows one (the store keeps part of the data in memory): a second is refused.
   */
  sharesData: boolean;
  /** Removes the storage. */
  tearDown(): Promise<void>;
}

const isCode = (code: string) => (err: unknown) => err instanceof PkpError && err.code === code;

function message(queueId: string, sentAt: number, overrides: Partial<NewMessage> = {}): NewMessage {
  return {
    messageId: randomUUID(), queueId, bodyCiphertext: randomBytes(40), attributesCiphertext: null, encryptedDek: randomBytes(60),
    dekId: 'dek-1', kmsKeyId: 'key-1', senderPrincipal: 'alice', sentAt, visibleAt: sentAt, bodyBytes: 12, ...overrides,
  };
}

function dekMessage(queueId: string, dekId: string, visibleAt: number): NewMessage {
  return message(queueId, visibleAt, { dekId, encryptedDek: Buffer.from(`blob-of-${dekId}`) });
}

const account = (): string => String(100_000_000_000 + Math.floor(Math.random() * 899_999_999_999));

export function describeStoreContract(kind: string, target: StoreTarget, options: { skip?: string | false } = {}): void {
  describe(`MessageStore contract: ${kind}`, { skip: options.skip }, () => {
    const open: MessageStore[] = [];
    before(() => target.setUp());
    afterEach(async () => {
      for (const s of open.splice(0)) await s.close();
    });
    after(() => target.tearDown());

    const store = async (): Promise<MessageStore> => {
      const s = await target.open();
      open.push(s);
      return s;
    };
    /** A store and one queue of a fresh account. */
    const fresh = async (name = 'q', attributes: Record<string, string> = {}) => {
      const s = await store();
      const acct = account();
      const queueId = (await s.createQueue(name, attributes, 0, acct)).queue.queueId;
      return { store: s, acct, queueId };
    };

    it('queues: create, exists, get, list by prefix, merge attributes, delete, known without I/O', async () => {
      const s = await store();
      const acct = account();
      const created = await s.createQueue('orders', { VisibilityTimeout: '30' }, 100, acct, { team: 'a' });
      assert.equal(created.outcome, 'created');
      assert.match(created.queue.queueId, /^[0-9a-f]{32}$/);
      assert.deepEqual(created.queue.tags, { team: 'a' });
      const again = await s.createQueue('orders', { VisibilityTimeout: '60' }, 200, acct);
      assert.equal(again.outcome, 'exists');
      assert.deepEqual(again.queue, created.queue, 'the existing record, untouched');

      for (const name of ['orders_dlq', 'ordersX', 'billing']) await s.createQueue(name, {}, 300, acct);
      assert.deepEqual((await s.listQueues('', acct)).map((q) => q.name), ['billing', 'orders', 'ordersX', 'orders_dlq']);
      assert.deepEqual((await s.listQueues('orders_', acct)).map((q) => q.name), ['orders_dlq'], "'_' is not a wildcard");
      assert.deepEqual(await s.listQueues('nope', acct), []);
      assert.ok((await s.listAllQueues()).some((q) => q.queueId === created.queue.queueId));

      const id = created.queue.queueId;
      const updated = await s.setQueueAttributes(id, { DelaySeconds: '5', VisibilityTimeout: '45' }, 400);
      assert.deepEqual(updated?.attributes, { VisibilityTimeout: '45', DelaySeconds: '5' });
      assert.equal(updated?.updatedAt, 400);
      assert.deepEqual(await s.getQueueById(id), updated);
      assert.deepEqual(await s.getQueueByName('orders', acct), updated);
      assert.deepEqual(s.knownQueue(id), updated);
      assert.equal(await s.setQueueAttributes('0'.repeat(32), { A: '1' }, 400), undefined);

      const tagged = await s.setQueueTags(id, { team: 'b', cost: 'c1' });
      assert.deepEqual(tagged?.tags, { team: 'b', cost: 'c1' });
      assert.deepEqual((await s.getQueueById(id))?.tags, { team: 'b', cost: 'c1' });
      assert.equal(await s.setQueueTags('0'.repeat(32), {}), undefined);

      assert.equal(await s.queueDeletedAt('orders', acct), undefined);
      assert.equal(await s.deleteQueue(id, 900), true);
      assert.equal(await s.deleteQueue(id), false);
      assert.equal(await s.getQueueById(id), undefined);
      assert.equal(await s.getQueueByName('orders', acct), undefined);
      assert.equal(s.knownQueue(id), undefined);
      assert.equal(await s.queueDeletedAt('orders', acct), 900, 'the deleted name is remembered');
      const recreated = await s.createQueue('orders', {}, 1000, acct);
      assert.equal(recreated.outcome, 'created');
      assert.notEqual(recreated.queue.queueId, id, 'a new queue of the same name gets a new id');
      await assert.rejects(s.createQueue('x', {}, 0, '12'), isCode('InvalidArgument'));
    });

    it('accounts: the same name in two accounts is two queues; listing stays within the account', async () => {
      const s = await store();
      const [one, two] = [account(), account()];
      const a = await s.createQueue('orders', {}, 0, one);
      const b = await s.createQueue('orders', { DelaySeconds: '5' }, 0, two);
      assert.equal(b.outcome, 'created');
      assert.notEqual(a.queue.queueId, b.queue.queueId);
      assert.equal((await s.getQueueByName('orders', one))?.queueId, a.queue.queueId);
      assert.equal((await s.getQueueByName('orders', two))?.attributes.DelaySeconds, '5');
      assert.equal(await s.getQueueByName('orders', account()), undefined);
      await s.createQueue('orders-dlq', {}, 0, one);
      assert.deepEqual((await s.listQueues('ord', one)).map((q) => [q.accountId, q.name]), [[one, 'orders'], [one, 'orders-dlq']]);
      assert.deepEqual((await s.listQueues('', two)).map((q) => q.name), ['orders']);
    });

    it('deleting a queue removes its messages and no other queue\'s', async () => {
      const { store: s, acct, queueId } = await fresh();
      const other = (await s.createQueue('other', {}, 0, acct)).queue.queueId;
      await s.putMessages([message(queueId, 0), message(queueId, 0), message(other, 0)]);
      assert.equal(await s.deleteQueue(queueId), true);
      assert.equal((await s.counts(queueId, 0)).visible, 0);
      assert.equal((await s.counts(other, 0)).visible, 1);
    });

    it('put, receive and delete round-trip every field', async () => {
      const { store: s, queueId } = await fresh();
      const sent = message(queueId, 1000, { attributesCiphertext: randomBytes(30) });
      await s.putMessages([sent]);
      const [got, ...rest] = await s.receiveMessages(queueId, 10, 30_000, 2000);
      assert.equal(rest.length, 0);
      const { receiptHandle, ...stored } = got!;
      assert.deepEqual(stored, { ...sent, visibleAt: 32_000, receiveCount: 1, firstReceivedAt: 2000 });
      assert.ok(Buffer.isBuffer(got!.bodyCiphertext));
      assert.equal(await s.deleteMessage(queueId, receiptHandle), 'deleted');
      assert.equal(await s.deleteMessage(queueId, receiptHandle), 'gone');
      assert.deepEqual(await s.receiveMessages(queueId, 10, 30_000, 100_000), []);
    });

    it('receive takes at most max messages, oldest first, only from its own queue; by visibility, then send order', async () => {
      const { store: s, acct, queueId } = await fresh();
      const other = (await s.createQueue('other', {}, 0, acct)).queue.queueId;
      const batch = [0, 1, 2, 3, 4].map((i) => message(queueId, 100 + i));
      await s.putMessages([message(other, 0), ...batch]);
      assert.deepEqual((await s.receiveMessages(queueId, 3, 1000, 200)).map((m) => m.messageId), batch.slice(0, 3).map((m) => m.messageId));
      assert.deepEqual((await s.receiveMessages(queueId, 3, 1000, 200)).map((m) => m.messageId), batch.slice(3).map((m) => m.messageId));
      assert.deepEqual(await s.receiveMessages(queueId, 0, 1000, 200), []);

      const q2 = (await s.createQueue('q', {}, 0, account())).queue.queueId;
      const a = message(q2, 0);
      const b = message(q2, 10);
      await s.putMessages([a, b]);
      assert.equal((await s.receiveMessages(q2, 1, 100, 20))[0]?.messageId, a.messageId);
      // At 200 both are visible: b since 10, a again since 120.
      assert.deepEqual((await s.receiveMessages(q2, 2, 100, 200)).map((m) => m.messageId), [b.messageId, a.messageId]);
    });

    it('visibility timeout: hidden until now + timeout, then redelivered with a new handle; the old one still deletes', async () => {
      const { store: s, queueId } = await fresh();
      await s.putMessages([message(queueId, 0)]);
      const [first] = await s.receiveMessages(queueId, 1, 30_000, 1000);
      assert.equal(first?.receiveCount, 1);
      assert.deepEqual(await s.receiveMessages(queueId, 1, 30_000, 30_999), [], 'still in flight');
      assert.equal(await s.nextVisibleAt(queueId), 31_000);
      const [second] = await s.receiveMessages(queueId, 1, 30_000, 31_000);
      assert.equal(second?.messageId, first?.messageId);
      assert.equal(second?.receiveCount, 2);
      assert.equal(second?.firstReceivedAt, 1000, 'first receive time is kept');
      assert.notEqual(second?.receiptHandle, first?.receiptHandle);
      assert.equal(await s.deleteMessage(queueId, first!.receiptHandle), 'deleted');
      assert.equal((await s.counts(queueId, 31_000)).inFlight, 0);
    });

    it('changeVisibility works only with the current handle of a message in flight', async () => {
      const { store: s, queueId } = await fresh();
      await s.putMessages([message(queueId, 0)]);
      const [first] = await s.receiveMessages(queueId, 1, 10_000, 1000);
      assert.equal(await s.changeVisibility(queueId, first!.receiptHandle, 50_000, 2000), 'changed');
      assert.deepEqual(await s.receiveMessages(queueId, 1, 10_000, 49_999), []);
      const [second] = await s.receiveMessages(queueId, 1, 10_000, 50_000);
      assert.equal(await s.changeVisibility(queueId, first!.receiptHandle, 90_000, 50_001), 'not-in-flight', 'stale handle');
      assert.equal(await s.changeVisibility(queueId, second!.receiptHandle, 50_001, 50_001), 'changed');
      assert.equal((await s.counts(queueId, 50_001)).visible, 1);
      assert.equal(await s.changeVisibility(queueId, second!.receiptHandle, 60_000, 50_002), 'expired');
      assert.equal((await s.counts(queueId, 50_002)).visible, 1, 'still visible');
      assert.equal(await s.deleteMessage(queueId, second!.receiptHandle), 'deleted');
      assert.equal(await s.changeVisibility(queueId, second!.receiptHandle, 60_000, 50_002), 'not-in-flight', 'deleted');
    });

    it('malformed handles and handles of another queue are invalid and change nothing', async () => {
      const { store: s, acct, queueId } = await fresh();
      const other = (await s.createQueue('other', {}, 0, acct)).queue.queueId;
      await s.putMessages([message(queueId, 0)]);
      const [got] = await s.receiveMessages(queueId, 1, 10_000, 0);
      const handle = got!.receiptHandle;
      const bad = ['', 'not a handle!', 'AAAA', handle + '=', handle.slice(0, -4), 'x'.repeat(2000),
        Buffer.from(`${queueId}:${got!.messageId}`).toString('base64url'),
        Buffer.from(`${queueId}:${got!.messageId}:nothex`).toString('base64url')];
      for (const h of bad) {
        assert.equal(await s.deleteMessage(queueId, h), 'invalid', h);
        assert.equal(await s.changeVisibility(queueId, h, 0, 1), 'invalid', h);
      }
      assert.equal(await s.deleteMessage(other, handle), 'invalid');
      assert.equal(await s.changeVisibility(other, handle, 0, 1), 'invalid');
      assert.deepEqual(await s.counts(queueId, 1), { visible: 0, inFlight: 1, delayed: 0 });
    });

    it('delays: invisible until visibleAt, counted as delayed; counts, nextVisibleAt and purge', async () => {
      const { store: s, queueId } = await fresh();
      assert.deepEqual(await s.counts(queueId, 0), { visible: 0, inFlight: 0, delayed: 0 });
      assert.equal(await s.nextVisibleAt(queueId), undefined);
      await s.putMessages([message(queueId, 0, { visibleAt: 5000 }), message(queueId, 0)]);
      assert.deepEqual(await s.counts(queueId, 0), { visible: 1, inFlight: 0, delayed: 1 });
      assert.equal((await s.receiveMessages(queueId, 10, 100_000, 0)).length, 1);
      assert.deepEqual(await s.counts(queueId, 4999), { visible: 0, inFlight: 1, delayed: 1 });
      assert.equal(await s.nextVisibleAt(queueId), 5000);
      const later = await s.receiveMessages(queueId, 10, 100_000, 5000);
      assert.deepEqual(later.map((m) => m.sentAt), [0]);
      assert.deepEqual(await s.counts(queueId, 5000), { visible: 0, inFlight: 2, delayed: 0 });

      await s.putMessages([message(queueId, 0)]);
      assert.equal(await s.nextVisibleAt(queueId), 0, 'a visible message makes it a time already passed');
      assert.equal(await s.purgeQueue(queueId, 7000), 3);
      assert.deepEqual(await s.counts(queueId, 10), { visible: 0, inFlight: 0, delayed: 0 });
      assert.equal(await s.nextVisibleAt(queueId), undefined);
      assert.equal((await s.getQueueById(queueId))?.lastPurgedAt, 7000);
      assert.equal(await s.purgeQueue(queueId), 0);
    });

    it('retention: dropExpired deletes messages past retention, in its queue only', async () => {
      const { store: s, acct, queueId } = await fresh();
      const other = (await s.createQueue('other', {}, 0, acct)).queue.queueId;
      await s.putMessages([message(queueId, 1000), message(queueId, 5000), message(other, 0)]);
      assert.equal(await s.dropExpired(queueId, 4000, 5000), 0, 'exactly the retention old is kept');
      assert.equal(await s.dropExpired(queueId, 4000, 5001), 1);
      assert.equal((await s.counts(queueId, 5001)).visible, 1);
      assert.equal((await s.counts(other, 5001)).visible, 1);
    });

    it('retention: no message sent before the cutoff is delivered, whether visible, delayed, in flight, visible again or with its visibility changed, and each is gone once visible', async () => {
      const { store: s, queueId } = await fresh();
      const sent = (at: number, visibleAt = at) => message(queueId, at, { visibleAt });
      const fresh1 = sent(1000);
      const delayed = sent(1000, 3000);
      const received = sent(1000);
      const receivedAgain = sent(1000);
      const changed = sent(1000);
      const late = sent(2000);
      const lateDelayed = sent(2000, 2500);
      await s.putMessages([received, receivedAgain, changed, fresh1, delayed, late, lateDelayed]);
      // In flight until 101,050; visible again at 1,200 (after a short visibility); changed to visible at 1,100.
      assert.deepEqual((await s.receiveMessages(queueId, 1, 100_000, 1050)).map((m) => m.messageId), [received.messageId]);
      const [again] = await s.receiveMessages(queueId, 1, 150, 1050);
      assert.equal(again?.messageId, receivedAgain.messageId);
      const [toChange] = await s.receiveMessages(queueId, 1, 100_000, 1050);
      assert.equal(toChange?.messageId, changed.messageId);
      assert.equal(await s.changeVisibility(queueId, toChange!.receiptHandle, 1100, 1060), 'changed');
      assert.equal(await s.dropExpired(queueId, 1000, 2000), 0, 'none sent before 1,000');
      // A store may leave those a receive moved past the cutoff to the receive that meets them.
      const dropped = await s.dropExpired(queueId, 1000, 2001);
      assert.ok(dropped >= 1 && dropped <= 5, `dropped ${dropped}`);
      const expiredBefore = 2000;
      assert.deepEqual((await s.receiveMessages(queueId, 10, 1000, 3000, { expiredBefore })).map((m) => m.messageId).sort(), [late.messageId, lateDelayed.messageId].sort());
      // Long after: the one in flight until 101,050 is visible again, and not delivered; only the late two come back.
      assert.deepEqual((await s.receiveMessages(queueId, 10, 1000, 200_000, { expiredBefore })).map((m) => m.messageId).sort(), [late.messageId, lateDelayed.messageId].sort());
      assert.deepEqual(await s.counts(queueId, 200_000), { visible: 0, inFlight: 2, delayed: 0 });
      await assert.rejects(s.receiveMessages(queueId, 1, 1000, 3000, { expiredBefore: Number.NaN }), isCode('InvalidArgument'));
    });

    it('backlog: every message of the queue whatever its state, counted up to the bound asked', async () => {
      const { store: s, acct, queueId } = await fresh();
      const other = (await s.createQueue('other', {}, 0, acct)).queue.queueId;
      await s.putMessages([message(queueId, 0), message(queueId, 0), message(queueId, 0, { visibleAt: 5000 }), message(other, 0)]);
      await s.receiveMessages(queueId, 1, 10_000, 100);
      assert.equal(await s.backlog(queueId, 10), 3, 'visible, in flight and delayed');
      assert.equal(await s.backlog(queueId, 2), 2, 'no more than asked');
      assert.equal(await s.backlog(other, 10), 1);
      await assert.rejects(s.backlog(queueId, -1), isCode('InvalidArgument'));
    });

    it('countsByQueue: every queue with messages in one call, each as counts() gives it; a queue without any is left out', async () => {
      const { store: s, acct, queueId } = await fresh();
      const other = (await s.createQueue('other', {}, 0, acct)).queue.queueId;
      const empty = (await s.createQueue('empty', {}, 0, acct)).queue.queueId;
      await s.putMessages([message(queueId, 0), message(queueId, 0), message(queueId, 0, { visibleAt: 5000 }), message(other, 0)]);
      await s.receiveMessages(queueId, 1, 10_000, 100);
      const all = await s.countsByQueue(200);
      assert.deepEqual(all.get(queueId), { visible: 1, inFlight: 1, delayed: 1 });
      assert.deepEqual(all.get(queueId), await s.counts(queueId, 200));
      assert.deepEqual(all.get(other), { visible: 1, inFlight: 0, delayed: 0 });
      assert.equal(all.has(empty), false);
    });

    it('batch atomicity: a put with a duplicate id or an unknown queue stores none of its messages; concurrent puts all land', async () => {
      const { store: s, queueId } = await fresh();
      const existing = message(queueId, 0);
      await s.putMessages([existing]);
      const fresh1 = message(queueId, 1);
      await assert.rejects(s.putMessages([fresh1, { ...existing }]), isCode('DuplicateMessageId'));
      const fresh2 = message(queueId, 2);
      await assert.rejects(s.putMessages([fresh2, message('f'.repeat(32), 2)]), isCode('QueueNotFound'));
      assert.deepEqual((await s.receiveMessages(queueId, 10, 1000, 100)).map((m) => m.messageId), [existing.messageId], 'the failed calls left nothing');
      await Promise.all(Array.from({ length: 50 }, (_, i) => s.putMessages([message(queueId, 200 + i), message(queueId, 200 + i)])));
      assert.equal((await s.counts(queueId, 1000)).visible, 100);
    });

    it('durability: an acknowledged send is there for a second store on the same data', async () => {
      const { store: s, acct, queueId } = await fresh();
      const sent = message(queueId, 0);
      await s.putMessages([sent]);
      await s.close();
      const again = await store();
      assert.equal((await again.getQueueByName('q', acct))?.queueId, queueId);
      assert.deepEqual((await again.receiveMessages(queueId, 10, 1000, 0)).map((m) => m.bodyCiphertext), [sent.bodyCiphertext]);
    });

    if (!target.sharesData) it('a second store on the same data while the first is open is refused with StoreInUse; once it is closed, one opens', async () => {
      const { store: s, queueId } = await fresh();
      await assert.rejects(store(), isCode('StoreInUse'));
      await s.putMessages([message(queueId, 0)]);
      await s.close();
      const again = await store();
      assert.equal((await again.receiveMessages(queueId, 10, 1000, 1)).length, 1, 'once the first is closed');
    });

    if (target.sharesData) it('concurrent receivers (two stores) never get the same message', async () => {
      const { store: s, queueId } = await fresh();
      const second = await store();
      await s.putMessages(Array.from({ length: 60 }, (_, i) => message(queueId, i)));
      const got = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? s : second).receiveMessages(queueId, 10, 60_000, 1000)));
      const ids = got.flat().map((m) => m.messageId);
      assert.equal(ids.length, 60);
      assert.equal(new Set(ids).size, 60);
    });

    it('redrive: a message at its limit is leased, not received, and moveMessages swaps it into the DLQ once', async () => {
      const { store: s, acct, queueId: source } = await fresh('src');
      const dlq = (await s.createQueue('dlq', {}, 0, acct)).queue.queueId;
      const sent = message(source, 0);
      await s.putMessages([sent]);
      const limit = { maxReceiveCount: 1, leaseMs: 30_000 };
      const first = await s.receiveMessages(source, 10, 1000, 10, { redrive: limit });
      assert.equal(first[0]!.redrive, undefined, 'the first receive delivers it');
      const second = await s.receiveMessages(source, 10, 1000, 2000, { redrive: limit });
      assert.equal(second[0]!.redrive, true, 'at the limit it is leased');
      assert.equal(second[0]!.receiveCount, 1, 'a lease is no receive');
      assert.deepEqual(await s.receiveMessages(source, 10, 1000, 3000, { redrive: limit }), [], 'leased: invisible');
      const again = await s.receiveMessages(source, 10, 1000, 32_000, { redrive: limit });
      assert.equal(again[0]!.redrive, true);
      const resealed = { ...sent, queueId: dlq, bodyCiphertext: randomBytes(40), visibleAt: 40_000, deadLetterSourceArn: 'arn:src' };
      assert.equal(await s.moveMessages(source, [{ receiptHandle: second[0]!.receiptHandle, message: resealed }]), 0, 'a lost lease moves nothing');
      assert.equal(await s.moveMessages(source, [{ receiptHandle: again[0]!.receiptHandle, message: resealed }]), 1);
      assert.equal(await s.moveMessages(source, [{ receiptHandle: again[0]!.receiptHandle, message: resealed }]), 0, 'a second move finds nothing');
      assert.equal(await s.nextVisibleAt(source), undefined, 'gone from the source');
      const inDlq = await s.receiveMessages(dlq, 10, 1000, 50_000);
      assert.deepEqual(inDlq.map((m) => [m.messageId, m.receiveCount, m.deadLetterSourceArn]), [[sent.messageId, 1, 'arn:src']]);
      assert.deepEqual(inDlq[0]!.bodyCiphertext, resealed.bodyCiphertext);
      await assert.rejects(s.moveMessages(source, [{ receiptHandle: again[0]!.receiptHandle, message: { ...resealed, messageId: 'other' } }]), isCode('InvalidArgument'));
    });

    it('FIFO: sequence numbers in order, deduplication within window and scope, groups blocked while in flight, attempt ids', async () => {
      const { store: s, queueId } = await fresh('q.fifo', { FifoQueue: 'true' });
      const fifo = (groupId: string, dedupId: string) => message(queueId, 0, { groupId, dedupId });
      const window = { scope: 'queue' as const, windowMs: 300_000 };
      const put = await s.putFifoMessages(queueId, [fifo('a', '1'), fifo('a', '2'), fifo('b', '3'), fifo('b', '1')], window, 10);
      assert.deepEqual(put.map((r) => r.duplicate), [false, false, false, true]);
      assert.equal(put[3]!.messageId, put[0]!.messageId);
      assert.ok(put[0]!.sequenceNumber < put[1]!.sequenceNumber && put[1]!.sequenceNumber < put[2]!.sequenceNumber);
      assert.equal((await s.putFifoMessages(queueId, [fifo('c', '1')], { scope: 'messageGroup', windowMs: 300_000 }, 20))[0]!.duplicate, false,
        'in group scope another group may reuse the id');
      assert.equal((await s.putFifoMessages(queueId, [fifo('a', '1')], window, 300_010))[0]!.duplicate, false, 'the window has passed');

      const attempt = { id: 'try-1', windowMs: 300_000 };
      const first = await s.receiveMessages(queueId, 1, 1000, 400_000, { fifo: true, attempt });
      assert.deepEqual(first.map((m) => [m.groupId, m.dedupId]), [['a', '1']]);
      const retried = await s.receiveMessages(queueId, 1, 1000, 400_001, { fifo: true, attempt });
      assert.deepEqual(retried.map((m) => m.receiptHandle), first.map((m) => m.receiptHandle), 'a retried attempt gets the same receive');
      const next = await s.receiveMessages(queueId, 10, 1000, 400_000, { fifo: true });
      assert.deepEqual(next.map((m) => m.groupId), ['b', 'c'], 'group a waits for its message in flight');
      assert.ok(next.every((m) => /^\d{20}$/.test(m.sequenceNumber ?? '')));
      await assert.rejects(s.putFifoMessages(queueId, [message(queueId, 0)], window, 0), isCode('InvalidArgument'));
      await assert.rejects(s.putFifoMessages('f'.repeat(32), [{ ...fifo('a', '9'), queueId: 'f'.repeat(32) }], window, 0), isCode('QueueNotFound'));
    });

    it('move tasks: saved by handle (replaced), listed newest first, saved only while in the expected status', async () => {
      const s = await store();
      const arn = `arn:aws:sqs:us-east-1:${account()}:dlq`;
      const task = (handle: string, startedAt: number) => ({
        taskHandle: handle, status: 'RUNNING' as const, sourceArn: arn, approximateNumberOfMessagesMoved: 0, approximateNumberOfMessagesToMove: 5, startedAt,
      });
      await s.saveMoveTask(task('t1', 100));
      await s.saveMoveTask({ ...task('t1', 100), status: 'COMPLETED', approximateNumberOfMessagesMoved: 5 });
      await s.saveMoveTask(task('t2', 200));
      assert.deepEqual((await s.getMoveTask('t1'))?.status, 'COMPLETED');
      assert.equal(await s.getMoveTask('nope'), undefined);
      assert.deepEqual((await s.listMoveTasks(arn, 10)).map((t) => t.taskHandle), ['t2', 't1']);
      assert.deepEqual((await s.listMoveTasks(arn, 1)).map((t) => t.taskHandle), ['t2']);
      assert.equal(await s.saveMoveTask({ ...task('t2', 200), status: 'CANCELLING' }, 'RUNNING'), true);
      assert.equal(await s.saveMoveTask({ ...task('t2', 200), approximateNumberOfMessagesMoved: 3 }, 'RUNNING'), false, 'a cancel that came in stands');
      assert.equal((await s.getMoveTask('t2'))?.status, 'CANCELLING');
      assert.equal(await s.saveMoveTask(task('t3', 300), 'RUNNING'), false, 'no task to compare with');
    });

    it('backlog DEK ids: distinct DEKs of waiting messages, soonest needed first, bounded; ids and blobs only', async () => {
      const { store: s, acct, queueId } = await fresh();
      const other = (await s.createQueue('other', {}, 0, acct)).queue.queueId;
      await s.putMessages([dekMessage(queueId, 'dek-b', 200), dekMessage(queueId, 'dek-a', 100), dekMessage(queueId, 'dek-b', 150),
        dekMessage(queueId, 'dek-c', 300), dekMessage(queueId, 'dek-a', 250), dekMessage(other, 'dek-other', 50)]);
      const deks = await s.backlogDeks(queueId, { now: 1_000 });
      assert.deepEqual(deks.map((d) => [d.dekId, d.messages, d.firstVisibleAt]), [['dek-a', 2, 100], ['dek-b', 2, 150], ['dek-c', 1, 300]]);
      assert.deepEqual(Object.keys(deks[0]!).sort(), ['dekId', 'encryptedDek', 'firstVisibleAt', 'messages']);
      assert.deepEqual(deks[0]!.encryptedDek, Buffer.from('blob-of-dek-a'));
      assert.deepEqual(await s.backlogDeks('no-such-queue', { now: 1_000 }), []);
      assert.deepEqual((await s.backlogDeks(queueId, { now: 1_000, maxDeks: 2 })).map((d) => d.dekId), ['dek-a', 'dek-b']);
      assert.deepEqual((await s.backlogDeks(queueId, { now: 1_000, scanMessages: 2 })).map((d) => d.dekId), ['dek-a', 'dek-b']);
      // Not waiting: deleted, or not visible within the horizon.
      const [head] = await s.receiveMessages(queueId, 1, 1_000_000, 1_000);
      await s.deleteMessage(queueId, head!.receiptHandle);
      assert.deepEqual((await s.backlogDeks(queueId, { now: 1_000, withinMs: 0 })).map((d) => [d.dekId, d.messages]), [['dek-b', 2], ['dek-a', 1], ['dek-c', 1]]);
      const bad: [unknown, unknown][] = [['', { now: 0 }], [queueId, null], [queueId, { now: Number.NaN }], [queueId, { now: 0, withinMs: -1 }],
        [queueId, { now: 0, maxDeks: 17 }], [queueId, { now: 0, scanMessages: 10_001 }]];
      for (const [id, query] of bad) {
        await assert.rejects(s.backlogDeks(id as string, query as { now: number }), isCode('InvalidArgument'), JSON.stringify([id, query]));
      }
    });

    it('readiness probe writes; a closed store refuses every call with StoreClosed', async () => {
      const { store: s, queueId } = await fresh();
      await s.probeWritable(1);
      await s.close();
      await s.close();
      await assert.rejects(s.putMessages([message(queueId, 0)]), isCode('StoreClosed'));
      await assert.rejects(s.receiveMessages(queueId, 1, 1000, 0), isCode('StoreClosed'));
      await assert.rejects(s.getQueueByName('q'), isCode('StoreClosed'));
      await assert.rejects(s.counts(queueId, 0), isCode('StoreClosed'));
      await assert.rejects(s.probeWritable(2), isCode('StoreClosed'));
    });
  });
}
