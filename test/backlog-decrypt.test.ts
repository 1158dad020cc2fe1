// Backlog decrypt prefetch: the store names the DEKs a queue's waiting messages need (ids and KMS
// blobs only); the metadata service delivers their decrypt keys, sealed, to the nodes that will
// serve the receives, so those receives hit the node's cache with no fetch and no KMS call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PkpEvent } from '../src/bus/types.ts';
import { VirtualClock } from '../src/core/clock.ts';
import { PkpError } from '../src/core/errors.ts';
import type { DecryptPrefetchInstruction, SealedKeyDelivery } from '../src/metadata/types.ts';
import { startService, type Credential, type RunningService } from '../src/service.ts';
import { SqliteMessageStore } from '../src/store/sqlite-store.ts';
import type { NewMessage } from '../src/store/types.ts';

const ALICE: Credential = { accessKeyId: 'AKPKALICE', secretAccessKey: 'alice-secret-0123456789', accountId: '000000000000' }; // one account: they share queues
const BOB: Credential = { accessKeyId: 'AKPKBOB', secretAccessKey: 'bob-secret-0123456789', accountId: '000000000000' }; // one account: they share queues
const CAROL: Credential = { accessKeyId: 'AKPKCAROL', secretAccessKey: 'carol-secret-0123456789', accountId: '000000000000' }; // one account: they share queues
/** The default KmsDataKeyReusePeriodSeconds (300 s). */
const REUSE_MS = 300_000;
const QUEUE = 'backlog';

const isCode = (code: string) => (error: unknown) => error instanceof PkpError && error.code === code;

// ---- the store: backlogDeks ----

function message(queueId: string, dekId: string, visibleAt: number, overrides: Partial<NewMessage> = {}): NewMessage {
  return {
    messageId: randomUUID(), queueId, bodyCiphertext: randomBytes(40), attributesCiphertext: null,
    encryptedDek: Buffer.from(`blob-of-${dekId}`), dekId, kmsKeyId: 'key-1',
    senderPrincipal: 'alice', sentAt: visibleAt, visibleAt, bodyBytes: 12, ...overrides,
  };
}

async function memoryStore(): Promise<{ store: SqliteMessageStore; queueId: string; ops: string[] }> {
  const ops: string[] = [];
  const store = SqliteMessageStore.open({ path: ':memory:', onOp: (op) => ops.push(op) });
  return { store, queueId: (await store.createQueue('q', {}, 0)).queue.queueId, ops };
}

test('store: puts called before are seen; bad input is refused before anything is read', async () => {
  const { store, queueId, ops } = await memoryStore();
  void store.putMessages([message(queueId, 'dek-a', 0)]);
  assert.deepEqual((await store.backlogDeks(queueId, { now: 0 })).map((d) => d.dekId), ['dek-a']);
  const before = ops.length;
  const bad: [unknown, unknown][] = [
    ['', { now: 0 }], [42, { now: 0 }], [queueId, null], [queueId, { now: Number.NaN }], [queueId, { now: '5' }],
    [queueId, { now: 0, withinMs: -1 }], [queueId, { now: 0, withinMs: Infinity }], [queueId, { now: 0, maxDeks: 0 }],
    [queueId, { now: 0, maxDeks: 17 }], [queueId, { now: 0, maxDeks: 1.5 }], [queueId, { now: 0, scanMessages: 0 }],
    [queueId, { now: 0, scanMessages: 10_001 }],
  ];
  for (const [id, query] of bad) {
    await assert.rejects(store.backlogDeks(id as string, query as { now: number }), isCode('InvalidArgument'), JSON.stringify([id, query]));
  }
  assert.equal(ops.length, before, 'a refused call reached the database');
  await store.close();
});

// ---- the metadata service and the nodes, through the real service ----

interface Harness {
  service: RunningService;
  clock: VirtualClock;
  queueId: string;
  deliveries: SealedKeyDelivery[];
  events: PkpEvent[];
  /** Calls each node made to the metadata service for a key (demand fetches). */
  fetches: { use: 'encrypt' | 'decrypt'; nodeId: string }[];
  /** Calls the metadata service made to the store for a backlog. */
  backlogReads: number;
  call(node: number, action: string, input: Record<string, unknown>, who?: Credential): Promise<Record<string, unknown>>;
  send(node: number, who: Credential, count: number): Promise<void>;
  receive(node: number, max: number): Promise<string[]>;
  frontend(nodeId: string): RunningService['frontends'][number];
}

async function withHarness(options: { budget?: number; queueAttributes?: Record<string, string> }, body: (h: Harness) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-backlog-'));
  const clock = new VirtualClock(1_700_000_000_000);
  const service = await startService({
    dataDir, port: 0, adminPort: null, frontends: 3, credentials: [ALICE, BOB, CAROL], clock, prefetch: false,
    prefetchBudgetPerSecond: options.budget,
  });
  try {
    const frontend = (nodeId: string) => service.frontends.find((f) => f.nodeId === nodeId)!;
    const h: Harness = {
      service, clock, queueId: '', deliveries: [], events: [], fetches: [], backlogReads: 0, frontend,
      call: (node, action, input, who = ALICE) =>
        service.frontends[node]!.node.handle(action, input, { principal: who.accessKeyId, baseUrl: 'http://localhost', accountId: who.accountId }),
      async send(node, who, count) {
        for (let i = 0; i < count; i++) await h.call(node, 'SendMessage', { QueueUrl: QUEUE, MessageBody: `${who.accessKeyId} #${i}` }, who);
      },
      async receive(node, max) {
        const out = await h.call(node, 'ReceiveMessage', { QueueUrl: QUEUE, MaxNumberOfMessages: max, WaitTimeSeconds: 0, VisibilityTimeout: 600 });
        return (out.Messages as { Body: string }[]).map((m) => m.Body);
      },
    };
    // Spies, white-box: every delivery, every bus event, every demand fetch, every backlog read.
    service.metadata.setDelivery({
      deliver: (delivery) => {
        h.deliveries.push(delivery);
        frontend(delivery.nodeId)?.keyring.deliver(delivery);
      },
    });
    service.bus.subscribe((event) => h.events.push(event));
    const metadata = service.metadata;
    const fetchEncryptKey = metadata.fetchEncryptKey.bind(metadata);
    const fetchDecryptKey = metadata.fetchDecryptKey.bind(metadata);
    metadata.fetchEncryptKey = (nodeId, ...rest) => (h.fetches.push({ use: 'encrypt', nodeId }), fetchEncryptKey(nodeId, ...rest));
    metadata.fetchDecryptKey = (nodeId, ...rest) => (h.fetches.push({ use: 'decrypt', nodeId }), fetchDecryptKey(nodeId, ...rest));
    const backlogDeks = service.store.backlogDeks.bind(service.store);
    service.store.backlogDeks = (...args) => (h.backlogReads++, backlogDeks(...args));

    await h.call(0, 'CreateQueue', { QueueName: QUEUE, Attributes: options.queueAttributes });
    h.queueId = (await service.store.getQueueByName(QUEUE))!.queueId;
    await body(h);
  } finally {
    await service.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const decryptFetches = (h: Harness, nodeId: string) => h.fetches.filter((f) => f.use === 'decrypt' && f.nodeId === nodeId).length;
const nodeKeyEvents = (h: Harness, nodeId: string) =>
  h.events.filter((e): e is Extract<PkpEvent, { type: 'key' }> => e.type === 'key' && e.nodeId === nodeId && e.use === 'decrypt');

test('a receive after prefetchDecrypt is a decrypt-key cache hit: no fetch, no KMS call', async () => {
  await withHarness({}, async (h) => {
    const { service, queueId } = h;
    await h.send(0, ALICE, 4);
    await h.send(0, BOB, 4);
    const aliceKey = h.frontend('fe-1').cache.peekEncrypt(queueId, ALICE.accessKeyId)!.key;
    const bobKey = h.frontend('fe-1').cache.peekEncrypt(queueId, BOB.accessKeyId)!.key;
    const fe2 = h.frontend('fe-2').cache;
    assert.equal(fe2.size, 0);
    const kmsBefore = service.kms.counts();
    assert.equal(kmsBefore.byOperation.GenerateDataKey, 2);

    const outcome = await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-2', 'fe-99', 'fe-2'], score: 0.8 });
    // Unknown fe-99 skipped, the duplicate fe-2 served once; the prefetcher learns counts only.
    assert.deepEqual(outcome, { delivered: 2, keys: 2, failed: 0, skipped: 0 });
    // The tier generated both DEKs and still holds them: no KMS call at all.
    assert.deepEqual(service.kms.counts(), kmsBefore);
    assert.deepEqual(h.deliveries.map((d) => [d.nodeId, d.use, d.prefetched, d.score]), [['fe-2', 'decrypt', true, 0.8], ['fe-2', 'decrypt', true, 0.8]]);
    assert.equal(h.frontend('fe-3').cache.size, 0, 'a node not named got keys');
    // Delivered keys keep the DEK's own expiry (issue + reuse period), never a new one.
    assert.equal(fe2.peekDecrypt(aliceKey.dekId)?.expiresAt, aliceKey.expiresAt);
    assert.equal(fe2.peekDecrypt(bobKey.dekId)?.expiresAt, bobKey.expiresAt);

    const stats = { ...fe2.stats };
    const bodies = await h.receive(1, 10);
    assert.deepEqual(bodies.sort(), [0, 1, 2, 3].flatMap((i) => [`${ALICE.accessKeyId} #${i}`, `${BOB.accessKeyId} #${i}`]).sort());
    // Every message opened from fe-2's cache: hits only, the two first uses were prefetched keys.
    assert.equal(fe2.stats.misses, stats.misses);
    assert.equal(fe2.stats.hits - stats.hits, 8);
    assert.equal(fe2.stats.prefetchedUsed - stats.prefetchedUsed, 2);
    assert.equal(decryptFetches(h, 'fe-2'), 0, 'fe-2 asked the metadata service for a decrypt key');
    assert.deepEqual(service.kms.counts(), kmsBefore);
    const kinds = nodeKeyEvents(h, 'fe-2').map((e) => e.kind);
    assert.deepEqual(kinds.filter((k) => k === 'miss'), []);
    assert.equal(kinds.filter((k) => k === 'hit').length, 8);
  });
});

test('without the prefetch the same receive misses and fetches on demand (the control)', async () => {
  await withHarness({}, async (h) => {
    await h.send(0, ALICE, 2);
    const misses = h.frontend('fe-2').cache.stats.misses;
    assert.equal((await h.receive(1, 10)).length, 2);
    assert.ok(h.frontend('fe-2').cache.stats.misses > misses);
    assert.equal(decryptFetches(h, 'fe-2'), 1);
  });
});

test('after the tier lost the key: one background Decrypt per DEK, counted as prefetch, then hits', async () => {
  await withHarness({}, async (h) => {
    const { service, clock, queueId } = h;
    await h.send(0, ALICE, 2);
    await h.send(0, BOB, 2);
    // Past the reuse period every cache (tier and nodes) has dropped the keys; the messages remain.
    await clock.advance(REUSE_MS + 1_000);
    assert.equal(h.frontend('fe-2').cache.size, 0);
    const before = service.kms.counts();
    const prefetchedAt = clock.now();
    const outcome = await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-2'] });
    assert.deepEqual(outcome, { delivered: 2, keys: 2, failed: 0, skipped: 0 });
    const after = service.kms.counts();
    assert.equal(after.byOperation.Decrypt - before.byOperation.Decrypt, 2);
    assert.equal(after.byReason.prefetch - before.byReason.prefetch, 2);
    assert.equal(after.byReason.demand, before.byReason.demand);
    // A fresh decrypt's life starts when it was made, like a demand decrypt's.
    for (const d of h.deliveries) assert.equal(d.expiresAt, prefetchedAt + REUSE_MS);
    assert.equal((await h.receive(1, 10)).length, 4);
    assert.equal(decryptFetches(h, 'fe-2'), 0);
    assert.equal(service.kms.counts().byReason.demand, before.byReason.demand);
  });
});

test('a KMS failure for one DEK does not stop the others', async () => {
  await withHarness({}, async (h) => {
    const { service, clock, queueId } = h;
    const keyA = (await service.kms.createKey('A')).keyId;
    const keyB = (await service.kms.createKey('B')).keyId;
    await h.call(0, 'SetQueueAttributes', { QueueUrl: QUEUE, Attributes: { KmsMasterKeyId: keyA } });
    await h.send(0, ALICE, 2);
    await h.call(0, 'SetQueueAttributes', { QueueUrl: QUEUE, Attributes: { KmsMasterKeyId: keyB } });
    await h.send(0, BOB, 2);
    const aliceDek = h.frontend('fe-1').cache.peekEncrypt(queueId, ALICE.accessKeyId)!.key.dekId;
    const bobDek = h.frontend('fe-1').cache.peekEncrypt(queueId, BOB.accessKeyId)!.key.dekId;
    await clock.advance(REUSE_MS + 1_000);
    await service.kms.disableKey(keyA);
    const outcome = await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-2', 'fe-3'] });
    assert.deepEqual(outcome, { delivered: 2, keys: 1, failed: 1, skipped: 0 });
    assert.deepEqual(h.deliveries.map((d) => [d.nodeId, d.dekId]).sort(), [['fe-2', bobDek], ['fe-3', bobDek]]);
    assert.equal(h.frontend('fe-2').cache.peekDecrypt(aliceDek), undefined);
    assert.ok(h.frontend('fe-2').cache.peekDecrypt(bobDek));
  });
});

test('background Decrypts stay within the prefetch budget', async () => {
  await withHarness({ budget: 1 }, async (h) => {
    const { service, clock, queueId } = h;
    for (const who of [ALICE, BOB, CAROL]) await h.send(0, who, 1);
    await clock.advance(REUSE_MS + 1_000);
    const before = service.kms.counts().byReason.prefetch;
    const pending = service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-2'] });
    // A budget of 1 per second: a burst of one, then one more per second.
    await clock.advance(10);
    assert.equal(service.kms.counts().byReason.prefetch - before, 1);
    await clock.advance(1_000);
    assert.equal(service.kms.counts().byReason.prefetch - before, 2);
    await clock.advance(1_000);
    assert.deepEqual(await pending, { delivered: 3, keys: 3, failed: 0, skipped: 0 });
    assert.equal(service.kms.counts().byReason.prefetch - before, 3);
  });
});

test('prefetching again never extends a key: the node still drops it at the DEK expiry', async () => {
  await withHarness({}, async (h) => {
    const { service, clock, queueId } = h;
    await h.send(0, ALICE, 1);
    const key = h.frontend('fe-1').cache.peekEncrypt(queueId, ALICE.accessKeyId)!.key;
    await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-2'] });
    await clock.advance(REUSE_MS / 2);
    assert.deepEqual(await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-2'] }), { delivered: 1, keys: 1, failed: 0, skipped: 0 });
    assert.deepEqual(h.deliveries.map((d) => d.expiresAt), [key.expiresAt, key.expiresAt]);
    assert.equal(h.frontend('fe-2').cache.peekDecrypt(key.dekId)?.expiresAt, key.expiresAt);
    await clock.advanceTo(key.expiresAt);
    assert.equal(h.frontend('fe-2').cache.peekDecrypt(key.dekId), undefined);
  });
});

test('dekIds narrows the prefetch to those DEKs, and only while the backlog still uses them', async () => {
  await withHarness({}, async (h) => {
    const { service, queueId } = h;
    await h.send(0, ALICE, 1);
    await h.send(0, BOB, 1);
    const bobDek = h.frontend('fe-1').cache.peekEncrypt(queueId, BOB.accessKeyId)!.key.dekId;
    const unknown = 'f'.repeat(32);
    assert.deepEqual(await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-2'], dekIds: [bobDek, unknown] }), { delivered: 1, keys: 1, failed: 0, skipped: 0 });
    assert.deepEqual(h.deliveries.map((d) => d.dekId), [bobDek]);
  });
});

test('only unknown nodes, or an empty backlog: nothing is fetched or delivered', async () => {
  await withHarness({}, async (h) => {
    const { service, queueId } = h;
    assert.deepEqual(await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-2'] }), { delivered: 0, keys: 0, failed: 0, skipped: 0 });
    await h.send(0, ALICE, 2);
    const kms = service.kms.counts();
    const reads = h.backlogReads;
    assert.deepEqual(await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-99', 'no such node'] }), { delivered: 0, keys: 0, failed: 0, skipped: 0 });
    assert.deepEqual(await service.metadata.prefetchDecrypt({ queueId, nodeIds: [] }), { delivered: 0, keys: 0, failed: 0, skipped: 0 });
    assert.equal(h.backlogReads, reads, 'the store was read for no node');
    assert.deepEqual(service.kms.counts(), kms);
    assert.deepEqual(h.deliveries, []);
  });
});

test('bad input is refused with a clear error and changes nothing', async () => {
  await withHarness({}, async (h) => {
    const { service, queueId } = h;
    await h.send(0, ALICE, 2);
    await h.call(0, 'SendMessage', { QueueUrl: QUEUE, MessageBody: 'delayed', DelaySeconds: 900 });
    const kms = service.kms.counts();
    const sizes = service.frontends.map((f) => f.cache.size);
    const ok = { queueId, nodeIds: ['fe-2'] };
    const bad: [unknown, RegExp][] = [
      [undefined, /instruction must be an object/],
      [null, /instruction must be an object/],
      [{ ...ok, queueId: '' }, /queueId must be a non-empty string/],
      [{ ...ok, queueId: 42 }, /queueId must be a non-empty string/],
      [{ queueId }, /nodeIds must be an array/],
      [{ ...ok, nodeIds: 'fe-2' }, /nodeIds must be an array/],
      [{ ...ok, nodeIds: ['fe-2', 7] }, /nodeIds must be strings/],
      [{ ...ok, nodeIds: Array.from({ length: 1_001 }, () => 'fe-2') }, /at most 1000 nodes/],
      [{ ...ok, score: 1.5 }, /score must be a number in 0..1/],
      [{ ...ok, score: Number.NaN }, /score must be a number in 0..1/],
      [{ ...ok, deadline: Infinity }, /deadline must be a finite clock time/],
      [{ ...ok, withinMs: -1 }, /withinMs must be a finite number >= 0/],
      [{ ...ok, dekIds: 'abc' }, /dekIds must be an array/],
      [{ ...ok, dekIds: ['not-a-dek-id'] }, /dekIds must be 32 lower-case hex/],
    ];
    for (const [instruction, message] of bad) {
      await assert.rejects(service.metadata.prefetchDecrypt(instruction as DecryptPrefetchInstruction), (error: unknown) =>
        isCode('InvalidArgument')(error) && message.test((error as Error).message), String(message));
    }
    assert.equal(h.backlogReads, 0);
    assert.deepEqual(service.kms.counts(), kms);
    assert.deepEqual(h.deliveries, []);
    assert.deepEqual(service.frontends.map((f) => f.cache.size), sizes);
    // A valid call still works afterwards.
    assert.deepEqual(await service.metadata.prefetchDecrypt(ok), { delivered: 1, keys: 1, failed: 0, skipped: 0 });
  });
});

test('no delivery and no bus event carries key material, except sealed to its node', async () => {
  await withHarness({}, async (h) => {
    const { service, clock, queueId } = h;
    await h.send(0, ALICE, 3);
    await h.send(0, BOB, 3);
    const plaintexts = [ALICE, BOB].map((who) => Buffer.from(h.frontend('fe-1').cache.peekEncrypt(queueId, who.accessKeyId)!.key.material));
    await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-2', 'fe-3'] });
    await h.receive(1, 4);
    await clock.advance(REUSE_MS + 1_000); // the path through a KMS Decrypt too
    await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-2'] });
    await h.receive(1, 10);
    // 2 DEKs × 2 nodes, then Bob's DEK alone (Alice's messages are all in flight by then).
    assert.equal(h.deliveries.length, 5);
    assert.ok(h.events.length > 0);
    const needles = plaintexts.flatMap((key) => [key, Buffer.from(key.toString('hex')), Buffer.from(key.toString('base64'))]);
    const scan = (value: unknown, where: string): void => {
      if (Buffer.isBuffer(value)) {
        for (const needle of needles) assert.equal(value.indexOf(needle), -1, `${where} holds key material`);
      } else if (typeof value === 'string') {
        scan(Buffer.from(value), where);
      } else if (value !== null && typeof value === 'object') {
        for (const [field, inner] of Object.entries(value)) scan(inner, `${where}.${field}`);
      }
    };
    h.deliveries.forEach((d, i) => scan(d, `delivery[${i}]`));
    h.events.forEach((e, i) => scan(e, `event[${i}]`));
    // The sealed material opens on its own node only: fe-3 refuses fe-2's delivery.
    const fe3 = h.frontend('fe-3').keyring;
    const rejected = fe3.deliveriesRejected;
    fe3.deliver({ ...h.deliveries.find((d) => d.nodeId === 'fe-2')!, nodeId: 'fe-3' });
    assert.equal(fe3.deliveriesRejected, rejected + 1);
  });
});

test('buyMessages: DEKs beyond the messages consumers will reach are delivered only while the tier holds them, never bought', async () => {
  await withHarness({}, async (h) => {
    const { service, clock, queueId } = h;
    await h.send(0, ALICE, 2);
    await h.send(0, BOB, 2);
    // Past the reuse period the tier has dropped both DEKs; four messages wait, Alice's first.
    await clock.advance(REUSE_MS + 1_000);
    const before = service.kms.counts().byOperation.Decrypt;
    const outcome = await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-2'], buyMessages: 2 });
    // Alice's two messages are what the consumers reach: her DEK is bought; Bob's is not.
    assert.deepEqual(outcome, { delivered: 1, keys: 1, failed: 0, skipped: 1 });
    assert.equal(service.kms.counts().byOperation.Decrypt - before, 1);
    // A DEK the tier holds (Alice's, bought above) is delivered even when nothing may be bought.
    const none = await service.metadata.prefetchDecrypt({ queueId, nodeIds: ['fe-3'], buyMessages: 0 });
    assert.deepEqual(none, { delivered: 1, keys: 1, failed: 0, skipped: 1 }, 'Alice\'s DEK, held, goes; Bob\'s is still not bought');
    assert.equal(service.kms.counts().byOperation.Decrypt - before, 1);
  });
});
