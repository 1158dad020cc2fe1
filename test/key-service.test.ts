import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../src/core/clock.ts';
import { DeadlineError, KmsError } from '../src/core/errors.ts';
import { KeyCache } from '../src/keycache/key-cache.ts';
import { NodeKeyring, joinMetadataService } from '../src/keycache/node-keyring.ts';
import { LocalKms } from '../src/kms/local-kms.ts';
import { ModeledKms } from '../src/kms/modeled-kms.ts';
import type { Kms } from '../src/kms/types.ts';
import { KeyService } from '../src/metadata/key-service.ts';
import { MetadataService } from '../src/metadata/metadata-service.ts';
import type { SealedKeyDelivery } from '../src/metadata/types.ts';

const REUSE_MS = 300_000;

async function setup(options: { latencyMs?: number; backgroundPerSecond?: number; kms?: (inner: Kms, clock: VirtualClock) => Kms } = {}) {
  const clock = new VirtualClock(1_000_000);
  const local = await LocalKms.open({ clock });
  const kms = options.kms ? options.kms(local, clock) : new ModeledKms(local, clock, { latency: () => options.latencyMs ?? 10 });
  const keys = new KeyService({
    kms, clock,
    settingsOf: (queueId) => (queueId.startsWith('missing') ? undefined : { queueId, kmsMasterKeyId: 'alias/aws/sqs', reuseMs: REUSE_MS }),
    scheduler: { backgroundPerSecond: options.backgroundPerSecond ?? 1000 },
  });
  const metadata = new MetadataService(keys);
  const node = (nodeId: string, maxEncryptionsPerDek?: number) => {
    const cache = new KeyCache({ clock });
    const keyring = new NodeKeyring({ nodeId, clock, cache, metadata, channel: joinMetadataService(metadata, nodeId), maxEncryptionsPerDek });
    return { cache, keyring };
  };
  return { clock, local, keys, metadata, node };
}

test('3,000 concurrent misses on a cold queue make exactly one GenerateDataKey', async () => {
  const { clock, local, node } = await setup();
  const { keyring } = node('fe-1');
  const sends = Array.from({ length: 3000 }, (_, i) =>
    keyring.sealMessages('q1', 'alice', [{ messageId: `m${i}`, body: Buffer.from(`hello ${i}`), attributes: null }]));
  await clock.advance(50);
  const sealed = await Promise.all(sends);
  assert.equal(local.counts().byOperation.GenerateDataKey, 1);
  assert.equal(new Set(sealed.map((s) => s[0]!.dekId)).size, 1);
});

test('concurrent misses from several nodes share the tier: one KMS call', async () => {
  const { clock, local, node } = await setup();
  const nodes = [node('fe-1'), node('fe-2'), node('fe-3')];
  const all = nodes.flatMap((n) => Array.from({ length: 100 }, () => n.keyring.withEncryptKey('q1', 'alice', (k) => k.dekId)));
  await clock.advance(50);
  assert.equal(new Set(await Promise.all(all)).size, 1);
  assert.equal(local.counts().byOperation.GenerateDataKey, 1);
});

test('two principals on one queue get two different DEKs', async () => {
  const { clock, local, node } = await setup();
  const { keyring } = node('fe-1');
  const a = keyring.withEncryptKey('q1', 'alice', (k) => k.dekId);
  const b = keyring.withEncryptKey('q1', 'bob', (k) => k.dekId);
  await clock.advance(50);
  assert.notEqual(await a, await b);
  assert.equal(local.counts().byOperation.GenerateDataKey, 2);
});

test('rotation: after the reuse period a new DEK encrypts and old messages still decrypt', async () => {
  const { clock, node } = await setup();
  const { keyring } = node('fe-1');
  const first = keyring.sealMessages('q1', 'alice', [{ messageId: 'm1', body: Buffer.from('first'), attributes: Buffer.from('{"a":1}') }]);
  await clock.advance(50);
  const [old] = await first;
  await clock.advance(REUSE_MS);
  const second = keyring.sealMessages('q1', 'alice', [{ messageId: 'm2', body: Buffer.from('second'), attributes: null }]);
  await clock.advance(50);
  const [fresh] = await second;
  assert.notEqual(old!.dekId, fresh!.dekId);
  const stored = (s: typeof old, messageId: string) => ({
    ...s!, messageId, queueId: 'q1', md5OfBody: '', md5OfMessageAttributes: null, senderPrincipal: 'alice', sentAt: 0, visibleAt: 0, bodyBytes: 0, receiveCount: 0, firstReceivedAt: null,
  });
  const opening = keyring.openMessage(stored(old, 'm1'));
  await clock.advance(50);
  const opened = await opening;
  assert.equal(opened.body.toString(), 'first');
  assert.equal(opened.attributes?.toString(), '{"a":1}');
  // Moving a ciphertext to another message id fails authentication.
  await assert.rejects(keyring.openMessage(stored(old, 'm2')), /authentication failed/);
});

test('a waiter with a short deadline gives up alone; the others get the key', async () => {
  const { clock, keys } = await setup({ latencyMs: 100 });
  const impatient = keys.withEncryptKey('q1', 'alice', { deadline: clock.now() + 20 }, (k) => k.dekId);
  const patient = keys.withEncryptKey('q1', 'alice', { deadline: clock.now() + 1000 }, (k) => k.dekId);
  const rejected = assert.rejects(impatient, DeadlineError);
  await clock.advance(200);
  await rejected;
  assert.match(await patient, /^[0-9a-f]{32}$/);
});

test('a KMS failure is remembered only for a short, jittered back-off', async () => {
  const { clock, local, keys } = await setup();
  await local.disableKey('alias/aws/sqs');
  const first = keys.withEncryptKey('q1', 'alice', {}, () => 1);
  const failed = assert.rejects(first, (e: unknown) => e instanceof KmsError && e.code === 'DisabledException');
  await clock.advance(20);
  await failed;
  const callsAfterFirst = local.counts().byOperation.GenerateDataKey;
  // Inside the back-off the failure is served without another KMS call.
  await assert.rejects(keys.withEncryptKey('q1', 'alice', {}, () => 1), (e: unknown) => e instanceof KmsError);
  assert.equal(local.counts().byOperation.GenerateDataKey, callsAfterFirst);
  await local.enableKey('alias/aws/sqs');
  await clock.advance(400); // > 1.5 × the 250 ms back-off
  const later = keys.withEncryptKey('q1', 'alice', {}, () => 'ok');
  await clock.advance(20);
  assert.equal(await later, 'ok');
});

test('prefetch calls wait for demand calls and stay within their budget', async () => {
  const { clock, local, metadata, node } = await setup({ backgroundPerSecond: 2 });
  const { cache, keyring } = node('fe-1');
  metadata.setDelivery({ deliver: (d) => keyring.deliver(d) });
  // Burst of 2 allowed at once; the 3rd and 4th prefetch wait for tokens.
  const prefetches = ['a', 'b', 'c', 'd'].map((q) => metadata.prefetch({ queueId: q, principal: 'alice', nodeIds: ['fe-1'], reason: 'prefetch' }));
  await clock.advance(20);
  assert.equal(local.counts().byReason.prefetch, 2);
  assert.ok(cache.hasEncrypt('a', 'alice') && cache.hasEncrypt('b', 'alice'));
  assert.equal(cache.hasEncrypt('c', 'alice'), false);
  // A demand request for 'c' does not wait behind the queued prefetch of 'c'.
  const demand = keyring.withEncryptKey('c', 'alice', (k) => k.dekId);
  await clock.advance(20);
  assert.match(await demand, /^[0-9a-f]{32}$/);
  assert.equal(local.counts().byReason.demand, 1);
  await clock.advance(1000);
  await Promise.all(prefetches);
  // The prefetch of 'c' found the demand's key in the tier: no extra call.
  assert.equal(local.counts().byReason.prefetch, 3);
  assert.ok(cache.hasEncrypt('d', 'alice'));
  assert.equal(cache.peekEncrypt('d', 'alice')?.prefetched, true);
});

test('a prefetched key expires at its issue time plus the reuse period, like any other', async () => {
  const { clock, metadata, node } = await setup();
  const { cache, keyring } = node('fe-1');
  metadata.setDelivery({ deliver: (d) => keyring.deliver(d) });
  const issued = clock.now();
  const done = metadata.prefetch({ queueId: 'q1', principal: 'alice', nodeIds: ['fe-1'], reason: 'prefetch' });
  await clock.advance(20);
  const outcome = await done;
  assert.equal(outcome.delivered, 1);
  assert.equal(outcome.expiresAt, issued + REUSE_MS);
  await clock.advanceTo(issued + REUSE_MS);
  assert.equal(cache.hasEncrypt('q1', 'alice'), false);
});

test('a delivery sealed to another node is rejected', async () => {
  const { clock, metadata, node } = await setup();
  const one = node('fe-1');
  const two = node('fe-2');
  // Route fe-2's deliveries to fe-1: fe-1 must refuse them.
  metadata.setDelivery({ deliver: (d) => one.keyring.deliver({ ...d, nodeId: 'fe-1' }) });
  const done = metadata.prefetch({ queueId: 'q1', principal: 'alice', nodeIds: ['fe-2'], reason: 'prefetch' });
  await clock.advance(20);
  await done;
  assert.equal(one.keyring.deliveriesRejected, 1);
  assert.equal(one.cache.size, 0);
  assert.equal(two.cache.size, 0);
});

/** A copy with one byte changed. */
function flipByte(bytes: Buffer, at: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[at] = copy[at]! ^ 0xff;
  return copy;
}

test('a delivery altered in transit does not open: every field the node acts on is authenticated', async () => {
  const { clock, metadata, node } = await setup();
  const fe = node('fe-1');
  const captured: SealedKeyDelivery[] = [];
  metadata.setDelivery({ deliver: (d) => captured.push(d) });
  const done = metadata.prefetch({ queueId: 'q1', principal: 'alice', nodeIds: ['fe-1'], reason: 'prefetch', score: 0.5 });
  await clock.advance(20);
  await done;
  assert.equal(captured.length, 1);
  const original = captured[0]!;
  const tampered: SealedKeyDelivery[] = [
    { ...original, expiresAt: original.expiresAt + 3_600_000 },
    { ...original, issuedAt: original.issuedAt + 1 },
    { ...original, queueId: 'q2' },
    { ...original, principal: 'mallory' },
    { ...original, use: 'decrypt' },
    { ...original, dekId: 'f'.repeat(32) },
    { ...original, kmsKeyId: 'another-key' },
    { ...original, encryptedDek: flipByte(original.encryptedDek, 5) },
    { ...original, prefetched: false },
    { ...original, score: 1 },
    { ...original, sealedMaterial: flipByte(original.sealedMaterial, 20) },
  ];
  for (const [i, d] of tampered.entries()) {
    fe.keyring.deliver(d);
    assert.equal(fe.keyring.deliveriesRejected, i + 1, `tampered delivery #${i} was accepted`);
  }
  assert.equal(fe.cache.size, 0);
  // The untouched delivery opens.
  fe.keyring.deliver(original);
  assert.equal(fe.keyring.deliveriesRejected, tampered.length);
  assert.equal(fe.cache.size, 1);
});

test('a queue that does not exist gets a clear error and no KMS call', async () => {
  const { local, keys } = await setup();
  await assert.rejects(keys.withEncryptKey('missing-q', 'alice', {}, () => 1), /queue does not exist/);
  assert.equal(local.counts().total, 0);
});

test('a DEK encrypts at most its cap on a node; then the node and the tier move to a successor, and old messages still open', async () => {
  const { clock, local, node } = await setup({ latencyMs: 0 });
  const a = node('fe-1', 20);
  const b = node('fe-2', 20);
  const seal = async (n: { keyring: NodeKeyring }, i: number) => {
    const pending = n.keyring.sealMessages('q1', 'alice', [{ messageId: `m${i}`, body: Buffer.from(`body ${i}`), attributes: Buffer.from('attrs') }]);
    await clock.advance(0);
    return (await pending)[0]!;
  };
  const sealed = [];
  // Two encryptions a message (body and attributes): 10 messages reach fe-1's cap of 20.
  for (let i = 0; i < 10; i++) sealed.push(await seal(a, i));
  assert.equal(new Set(sealed.map((m) => m.dekId)).size, 1);
  assert.equal(local.counts().byOperation.GenerateDataKey, 1);
  const first = sealed[0]!.dekId;
  const next = await seal(a, 10);
  assert.notEqual(next.dekId, first, 'fe-1 kept encrypting with a DEK past its cap');
  assert.equal(a.keyring.deksRetired, 1);
  assert.equal(local.counts().byOperation.GenerateDataKey, 2);
  // The tier no longer hands the retired DEK to anyone: fe-2 starts on the successor.
  assert.equal((await seal(b, 11)).dekId, next.dekId);
  // Every message, under either DEK, still opens.
  for (const [i, m] of [...sealed, next].entries()) {
    const opened = b.keyring.openMessage({ ...m, queueId: 'q1', messageId: `m${i}` } as never);
    await clock.advance(0);
    assert.equal((await opened).body.toString(), `body ${i}`);
  }
});

test('a decrypt key cached for one queue is never used for another queue\'s message', async () => {
  const { clock, node } = await setup({ latencyMs: 0 });
  const { keyring, cache } = node('fe-1');
  const pending = keyring.sealMessages('qa', 'alice', [{ messageId: 'm1', body: Buffer.from('secret of qa'), attributes: null }]);
  await clock.advance(0);
  const [sealed] = await pending;
  const openA = keyring.openMessage({ ...sealed!, queueId: 'qa', messageId: 'm1' } as never);
  await clock.advance(0);
  assert.equal((await openA).body.toString(), 'secret of qa');
  assert.ok(cache.peekDecrypt(sealed!.dekId, 'qa'));
  // The same DEK id named by a message of queue qb: a miss here, and the KMS refuses the context.
  assert.equal(cache.getDecrypt(sealed!.dekId, 'qb'), undefined);
  const openB = keyring.openMessage({ ...sealed!, queueId: 'qb', messageId: 'm1' } as never);
  openB.catch(() => undefined);
  await clock.advance(0);
  await assert.rejects(openB, (e: unknown) => e instanceof KmsError && e.code === 'InvalidCiphertextException');
});
