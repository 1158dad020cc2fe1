import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualClock } from '../src/core/clock.ts';
import { InputError, KmsError, PkpError } from '../src/core/errors.ts';
import { Random } from '../src/core/random.ts';
import { aeadDecrypt } from '../src/crypto/aead.ts';
import { encodeContext } from '../src/kms/context.ts';
import { parseLatency } from '../src/kms/latency.ts';
import { LocalKms } from '../src/kms/local-kms.ts';
import { ModeledKms } from '../src/kms/modeled-kms.ts';
import { SimulatedKms } from '../src/kms/simulated-kms.ts';
import { DEFAULT_KEY_ALIAS, type EncryptionContext, type KeyReason, type KmsOperation } from '../src/kms/types.ts';

const ctx = { tenant: 't1', queue: 'q1' };

function kmsCode(code: string): (err: unknown) => boolean {
  return (err) => err instanceof KmsError && err.code === code;
}

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pkp-kms-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** True when `haystack` contains the key in raw, hex or base64 form. */
function leaks(haystack: Buffer, key: Buffer): boolean {
  const text = haystack.toString('latin1');
  return haystack.includes(key) || text.includes(key.toString('hex')) || text.includes(key.toString('hex').toUpperCase()) ||
    text.includes(key.toString('base64')) || text.includes(key.toString('base64url'));
}

test('generateDataKey gives a fresh 32-byte DEK that decrypt recovers under the same context', async () => {
  const kms = await LocalKms.open({ clock: new VirtualClock() });
  const key = await kms.createKey('test');
  const a = await kms.generateDataKey(key.keyId, ctx, 'demand');
  const b = await kms.generateDataKey(key.keyId, ctx, 'demand');
  assert.equal(a.plaintext.length, 32);
  assert.equal(a.keyId, key.keyId);
  assert.notDeepEqual(a.plaintext, b.plaintext);
  assert.ok(!a.ciphertextBlob.includes(a.plaintext), 'the blob must not carry the DEK in clear');
  // Context key order does not matter: the AAD is canonical.
  const back = await kms.decrypt(a.ciphertextBlob, { queue: 'q1', tenant: 't1' }, 'demand');
  assert.deepEqual(back.plaintext, a.plaintext);
  assert.equal(back.keyId, key.keyId);
  await kms.close();
});

test('decrypt under any other encryption context fails', async () => {
  const kms = await LocalKms.open({ clock: new VirtualClock() });
  const { ciphertextBlob } = await kms.generateDataKey(DEFAULT_KEY_ALIAS, ctx, 'demand');
  const others: EncryptionContext[] = [{ tenant: 't1', queue: 'q2' }, { tenant: 't1' }, {}, { ...ctx, extra: '' }];
  for (const other of others) {
    await assert.rejects(kms.decrypt(ciphertextBlob, other, 'demand'), kmsCode('InvalidCiphertextException'));
  }
  await kms.close();
});

test('the context encoding is unambiguous', () => {
  assert.notDeepEqual(encodeContext({ a: 'b=c' }), encodeContext({ 'a=b': 'c' }));
  assert.notDeepEqual(encodeContext({ ab: 'c' }), encodeContext({ a: 'bc' }));
  assert.deepEqual(encodeContext({ x: '1', y: '2' }), encodeContext({ y: '2', x: '1' }));
});

test('tampered, short, empty or wrong-version blobs are InvalidCiphertextException', async () => {
  const kms = await LocalKms.open({ clock: new VirtualClock() });
  const { ciphertextBlob } = await kms.generateDataKey(DEFAULT_KEY_ALIAS, ctx, 'demand');
  const flipped = Buffer.from(ciphertextBlob);
  flipped[flipped.length - 1]! ^= 1;
  const wrongVersion = Buffer.from(ciphertextBlob);
  wrongVersion[0] = 9;
  for (const bad of [flipped, wrongVersion, ciphertextBlob.subarray(0, 40), Buffer.alloc(0), Buffer.concat([ciphertextBlob, Buffer.alloc(1)])]) {
    await assert.rejects(kms.decrypt(bad, ctx, 'demand'), kmsCode('InvalidCiphertextException'));
  }
  // A well-formed blob naming a key that does not exist.
  const otherKey = Buffer.from(ciphertextBlob);
  randomBytes(16).copy(otherKey, 1);
  await assert.rejects(kms.decrypt(otherKey, ctx, 'demand'), kmsCode('NotFoundException'));
  await kms.close();
});

test('a disabled key refuses generate and decrypt, and works again once enabled', async () => {
  const kms = await LocalKms.open({ clock: new VirtualClock() });
  const key = await kms.createKey();
  const { ciphertextBlob, plaintext } = await kms.generateDataKey(key.keyId, ctx, 'demand');
  await kms.disableKey(key.keyId);
  assert.equal((await kms.describeKey(key.keyId)).enabled, false);
  await assert.rejects(kms.generateDataKey(key.keyId, ctx, 'demand'), kmsCode('DisabledException'));
  await assert.rejects(kms.decrypt(ciphertextBlob, ctx, 'demand'), kmsCode('DisabledException'));
  await kms.enableKey(key.arn);
  assert.deepEqual((await kms.decrypt(ciphertextBlob, ctx, 'demand')).plaintext, plaintext);
  assert.equal((await kms.generateDataKey(key.keyId, ctx, 'demand')).keyId, key.keyId);
  await assert.rejects(kms.generateDataKey('00000000-0000-0000-0000-000000000000', ctx, 'demand'), kmsCode('NotFoundException'));
  await kms.close();
});

test('aliases: create, resolve by name and ARN, duplicates and bad names rejected', async () => {
  const kms = await LocalKms.open({ clock: new VirtualClock(), region: 'eu-west-1' });
  const key = await kms.createKey('orders');
  assert.equal(key.arn, `arn:aws:kms:eu-west-1:000000000000:key/${key.keyId}`);
  await kms.createAlias('alias/orders', key.keyId);
  for (const ref of [key.keyId, key.arn, 'alias/orders', 'arn:aws:kms:eu-west-1:000000000000:alias/orders']) {
    const described = await kms.describeKey(ref);
    assert.equal(described.keyId, key.keyId, ref);
    assert.deepEqual(described.aliases, ['alias/orders']);
    assert.equal((await kms.generateDataKey(ref, ctx, 'demand')).keyId, key.keyId, ref);
  }
  // Another region's ARN is not this KMS's key.
  await assert.rejects(kms.describeKey(`arn:aws:kms:us-east-1:000000000000:key/${key.keyId}`), kmsCode('NotFoundException'));
  await assert.rejects(kms.describeKey('alias/missing'), kmsCode('NotFoundException'));
  await assert.rejects(kms.createAlias('alias/orders', DEFAULT_KEY_ALIAS), kmsCode('AlreadyExistsException'));
  for (const bad of ['orders', 'alias/', 'alias/has space', 'alias/aws/mine', 'alias/ok:no', `alias/${'x'.repeat(300)}`]) {
    await assert.rejects(kms.createAlias(bad, key.keyId), kmsCode('ValidationException'), bad);
  }
  await assert.rejects(kms.createAlias('alias/to-nothing', 'alias/missing'), kmsCode('NotFoundException'));
  // An alias may also point at a key named by another alias.
  await kms.createAlias('alias/nested/name_2', 'alias/orders');
  assert.equal((await kms.describeKey('alias/nested/name_2')).keyId, key.keyId);
  await kms.close();
});

test('the default alias names a key from the start', async () => {
  const kms = await LocalKms.open({ clock: new VirtualClock(42) });
  const meta = await kms.describeKey(DEFAULT_KEY_ALIAS);
  assert.deepEqual(meta.aliases, [DEFAULT_KEY_ALIAS]);
  assert.equal(meta.enabled, true);
  assert.equal(meta.createdAt, 42);
  assert.deepEqual((await kms.listKeys()).map((k) => k.keyId), [meta.keyId]);
  await kms.close();
});

test('close zeroizes the master keys and the root key, and refuses further calls', async (t) => {
  const kms = await LocalKms.open({ dataDir: tempDir(t), rootKey: randomBytes(32), clock: new VirtualClock() });
  await kms.createKey();
  // White-box: keep references to the in-memory secrets to see them wiped.
  const inside = kms as unknown as { keys: Map<string, { material: Buffer }>; rootKey: Buffer };
  const secrets = [inside.rootKey, ...[...inside.keys.values()].map((k) => k.material)];
  assert.equal(secrets.length, 3);
  assert.ok(secrets.every((s) => s.length === 32 && s.some((b) => b !== 0)));
  await kms.close();
  assert.ok(secrets.every((s) => s.every((b) => b === 0)));
  await assert.rejects(kms.generateDataKey(DEFAULT_KEY_ALIAS, ctx, 'demand'), kmsCode('KMSInternalException'));
});

test('persistence: keys survive a restart under the same root key, wrapped and 0600 on disk', async (t) => {
  const dir = tempDir(t);
  const rootKey = randomBytes(32);
  const clock = new VirtualClock(1000);
  const kms = await LocalKms.open({ dataDir: dir, rootKey, clock });
  const key = await kms.createKey('persisted');
  await kms.createAlias('alias/kept', key.keyId);
  await kms.disableKey(DEFAULT_KEY_ALIAS);
  const dek = await kms.generateDataKey('alias/kept', ctx, 'demand');
  const defaultId = (await kms.describeKey(DEFAULT_KEY_ALIAS)).keyId;
  await kms.close();
  assert.ok(rootKey.some((b) => b !== 0), 'the caller\'s root key buffer is not the one zeroized');

  const file = join(dir, 'kms-keys.json');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const raw = readFileSync(file);
  const doc = JSON.parse(raw.toString('utf8')) as { keys: { keyId: string; wrappedKey: string }[] };
  assert.equal(doc.keys.length, 2);
  // Unwrap with the root key to learn the real master keys, then make sure none is on disk in clear.
  for (const stored of doc.keys) {
    const master = aeadDecrypt(rootKey, Buffer.from(stored.wrappedKey, 'base64'), Buffer.from(stored.keyId));
    assert.equal(master.length, 32);
    assert.ok(!leaks(raw, master), `master key ${stored.keyId} is on disk in clear`);
    if (stored.keyId === key.keyId) {
      // The unwrapped key really is the one that sealed the DEK.
      assert.deepEqual(aeadDecrypt(master, dek.ciphertextBlob.subarray(17), encodeContext(ctx)), dek.plaintext);
    }
  }
  assert.ok(!leaks(raw, dek.plaintext));
  assert.ok(!leaks(raw, rootKey));

  const again = await LocalKms.open({ dataDir: dir, rootKey, clock });
  assert.deepEqual((await again.decrypt(dek.ciphertextBlob, ctx, 'demand')).plaintext, dek.plaintext);
  assert.equal((await again.describeKey('alias/kept')).keyId, key.keyId);
  assert.equal((await again.describeKey(DEFAULT_KEY_ALIAS)).keyId, defaultId, 'the default key is not recreated');
  assert.equal((await again.describeKey(DEFAULT_KEY_ALIAS)).enabled, false);
  assert.equal((await again.describeKey(key.keyId)).createdAt, 1000);
  await again.close();
});

test('persistence: a wrong root key on reopen is a clear error', async (t) => {
  const dir = tempDir(t);
  const kms = await LocalKms.open({ dataDir: dir, rootKey: randomBytes(32), clock: new VirtualClock() });
  await kms.close();
  await assert.rejects(
    LocalKms.open({ dataDir: dir, rootKey: randomBytes(32), clock: new VirtualClock() }),
    (err: unknown) => err instanceof PkpError && err.code === 'KmsRootKeyMismatch' && /root key is not the one/.test(err.message),
  );
  await assert.rejects(LocalKms.open({ dataDir: dir, rootKey: randomBytes(16), clock: new VirtualClock() }), /exactly 32 bytes/);
});

test('persistence: without a given root key, kms-root.key is created 0600 and reused', async (t) => {
  const dir = tempDir(t);
  const saved = process.env.PKP_KMS_ROOT_KEY;
  delete process.env.PKP_KMS_ROOT_KEY;
  t.after(() => {
    if (saved !== undefined) process.env.PKP_KMS_ROOT_KEY = saved;
  });
  const kms = await LocalKms.open({ dataDir: dir, clock: new VirtualClock() });
  const dek = await kms.generateDataKey(DEFAULT_KEY_ALIAS, ctx, 'demand');
  await kms.close();
  const rootFile = join(dir, 'kms-root.key');
  assert.equal(statSync(rootFile).mode & 0o777, 0o600);
  assert.equal(readFileSync(rootFile).length, 32);
  assert.ok(!leaks(readFileSync(join(dir, 'kms-keys.json')), readFileSync(rootFile)));
  const again = await LocalKms.open({ dataDir: dir, clock: new VirtualClock() });
  assert.deepEqual((await again.decrypt(dek.ciphertextBlob, ctx, 'demand')).plaintext, dek.plaintext);
  await again.close();
  // A root key file others can read is refused rather than used.
  chmodSync(rootFile, 0o644);
  await assert.rejects(LocalKms.open({ dataDir: dir, clock: new VirtualClock() }), /chmod 600/);
  // Losing the root key file while keys exist is named, not papered over with a new key.
  rmSync(rootFile);
  await assert.rejects(LocalKms.open({ dataDir: dir, clock: new VirtualClock() }), (err: unknown) => err instanceof PkpError && err.code === 'KmsRootKeyMissing');
});

test('PKP_KMS_ROOT_KEY: a good value is used, a malformed one is a clear error that does not echo it', async (t) => {
  const saved = process.env.PKP_KMS_ROOT_KEY;
  t.after(() => {
    if (saved === undefined) delete process.env.PKP_KMS_ROOT_KEY;
    else process.env.PKP_KMS_ROOT_KEY = saved;
  });
  const dir = tempDir(t);
  const root = randomBytes(32);
  process.env.PKP_KMS_ROOT_KEY = root.toString('base64');
  const kms = await LocalKms.open({ dataDir: dir, clock: new VirtualClock() });
  const dek = await kms.generateDataKey(DEFAULT_KEY_ALIAS, ctx, 'demand');
  await kms.close();
  // The env key is what wraps the keys: with it passed directly the store opens.
  const direct = await LocalKms.open({ dataDir: dir, rootKey: root, clock: new VirtualClock() });
  assert.deepEqual((await direct.decrypt(dek.ciphertextBlob, ctx, 'demand')).plaintext, dek.plaintext);
  await direct.close();

  const short = randomBytes(16).toString('base64');
  for (const bad of ['', 'not base64 at all!', short, `${root.toString('base64')}AAAA`, root.toString('hex')]) {
    process.env.PKP_KMS_ROOT_KEY = bad;
    await assert.rejects(LocalKms.open({ dataDir: tempDir(t), clock: new VirtualClock() }), (err: unknown) => {
      assert.ok(err instanceof PkpError && err.code === 'InvalidRootKey', String(err));
      assert.match(err.message, /PKP_KMS_ROOT_KEY must be the base64 encoding of exactly 32/);
      if (bad !== '') assert.ok(!err.message.includes(bad), 'the message must not echo the value');
      return true;
    });
  }
});

test('LocalKms counts every call by operation and reason, and tells onCall', async () => {
  const seen: [KmsOperation, KeyReason][] = [];
  const kms = await LocalKms.open({ clock: new VirtualClock(), onCall: (op, reason) => seen.push([op, reason]) });
  const a = await kms.generateDataKey(DEFAULT_KEY_ALIAS, ctx, 'demand');
  await kms.generateDataKey(DEFAULT_KEY_ALIAS, ctx, 'prefetch');
  await kms.decrypt(a.ciphertextBlob, ctx, 'refresh');
  await assert.rejects(kms.decrypt(Buffer.alloc(3), ctx, 'demand'));
  assert.deepEqual(kms.counts(), {
    total: 4, byOperation: { GenerateDataKey: 2, Decrypt: 2 }, byReason: { demand: 2, prefetch: 1, refresh: 1 }, throttled: 0,
  });
  assert.deepEqual(seen, [['GenerateDataKey', 'demand'], ['GenerateDataKey', 'prefetch'], ['Decrypt', 'refresh'], ['Decrypt', 'demand']]);
  await kms.close();
});

test('ModeledKms holds each result until the modelled latency has passed', async () => {
  const clock = new VirtualClock(0);
  const inner = await LocalKms.open({ clock });
  const kms = new ModeledKms(inner, clock, { latency: parseLatency('25', new Random(1)) });
  let done = false;
  const pending = kms.generateDataKey(DEFAULT_KEY_ALIAS, ctx, 'demand').then((r) => {
    done = true;
    return r;
  });
  await clock.advance(24);
  assert.equal(done, false);
  await clock.advance(1);
  assert.equal(done, true);
  const generated = await pending;
  // Failures are delayed the same way.
  let failed = false;
  kms.decrypt(Buffer.alloc(5), ctx, 'demand').catch(() => (failed = true));
  await clock.advance(24);
  assert.equal(failed, false);
  await clock.advance(1);
  assert.equal(failed, true);
  const decrypting = kms.decrypt(generated.ciphertextBlob, ctx, 'demand');
  await clock.advance(25);
  assert.deepEqual((await decrypting).plaintext, generated.plaintext);
  await inner.close();
});

test('ModeledKms quota: ThrottlingException at once beyond the burst, recovery as time passes', async () => {
  const clock = new VirtualClock(0);
  const throttled: [KmsOperation, KeyReason][] = [];
  const kms = new ModeledKms(new SimulatedKms(), clock, { ratePerSecond: 10, burst: 3, onThrottle: (op, reason) => throttled.push([op, reason]) });
  for (let i = 0; i < 3; i++) await kms.generateDataKey('k', ctx, 'demand');
  await assert.rejects(kms.generateDataKey('k', ctx, 'prefetch'), kmsCode('ThrottlingException'));
  await clock.advance(99);
  await assert.rejects(kms.generateDataKey('k', ctx, 'demand'), kmsCode('ThrottlingException'));
  await clock.advance(1); // 100 ms at 10/s: one token
  await kms.generateDataKey('k', ctx, 'demand');
  await assert.rejects(kms.generateDataKey('k', ctx, 'demand'), kmsCode('ThrottlingException'));
  await clock.advance(10_000); // refills only up to the burst
  for (let i = 0; i < 3; i++) await kms.generateDataKey('k', ctx, 'refresh');
  await assert.rejects(kms.generateDataKey('k', ctx, 'demand'), kmsCode('ThrottlingException'));
  assert.deepEqual(throttled, [['GenerateDataKey', 'prefetch'], ['GenerateDataKey', 'demand'], ['GenerateDataKey', 'demand'], ['GenerateDataKey', 'demand']]);
  const counts = kms.counts();
  assert.equal(counts.throttled, 4);
  assert.equal(counts.total, 7);
  assert.deepEqual(counts.byReason, { demand: 4, prefetch: 0, refresh: 3 });
});

test('ModeledKms counts accepted calls by operation and reason', async () => {
  const clock = new VirtualClock(0);
  const calls: string[] = [];
  const inner = new SimulatedKms({ seed: 3 });
  const kms = new ModeledKms(inner, clock, { onCall: (op, reason) => calls.push(`${op}/${reason}`) });
  const g = await kms.generateDataKey('k', ctx, 'prefetch');
  await kms.decrypt(g.ciphertextBlob, ctx, 'demand');
  await kms.decrypt(g.ciphertextBlob, ctx, 'refresh');
  assert.deepEqual(kms.counts(), {
    total: 3, byOperation: { GenerateDataKey: 1, Decrypt: 2 }, byReason: { demand: 1, prefetch: 1, refresh: 1 }, throttled: 0,
  });
  assert.deepEqual(calls, ['GenerateDataKey/prefetch', 'Decrypt/demand', 'Decrypt/refresh']);
  assert.equal(inner.counts().total, 3);
  assert.throws(() => new ModeledKms(inner, clock, { ratePerSecond: 0 }), RangeError);
});

test('parseLatency: every form draws within its distribution', () => {
  const rng = new Random(7);
  const draw = (spec: string, n = 2000): number[] => Array.from({ length: n }, parseLatency(spec, rng));
  assert.deepEqual(draw('10', 3), [10, 10, 10]);
  assert.deepEqual(draw('const:2.5', 2), [2.5, 2.5]);
  const uniform = draw('uniform:5:15');
  assert.ok(uniform.every((v) => v >= 5 && v < 15));
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  assert.ok(Math.abs(mean(uniform) - 10) < 0.5);
  const exp = draw('exp:10', 20_000);
  assert.ok(exp.every((v) => v >= 0) && Math.abs(mean(exp) - 10) < 0.5);
  const logn = draw('lognormal:10:0.5', 20_000);
  assert.ok(logn.every((v) => v > 0) && Math.abs(median(logn) - 10) < 0.5);
  const pareto = draw('pareto:5:2.5', 20_000);
  // Pareto: never below the scale; median = scale * 2^(1/shape).
  assert.ok(pareto.every((v) => v >= 5) && Math.abs(median(pareto) - 5 * 2 ** (1 / 2.5)) < 0.2);
  // Same seed, same draws.
  assert.deepEqual(Array.from({ length: 5 }, parseLatency('exp:3', new Random(9))), Array.from({ length: 5 }, parseLatency('exp:3', new Random(9))));
});

test('parseLatency: bad specs are InputErrors that name the problem', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['fast', /latency 'fast' is not a non-negative number/],
    ['-5', /is not a non-negative number/],
    ['gauss:1', /unknown distribution 'gauss'/],
    ['uniform:5', /takes 2 argument/],
    ['uniform:15:5', /MIN must not exceed MAX/],
    ['exp:0', /MEAN must be greater than 0/],
    ['lognormal:10:x', /SIGMA 'x'/],
    ['pareto:5:0', /SHAPE must be greater than 0/],
    ['const:1e999', /MS '1e999'/],
  ];
  for (const [spec, message] of cases) {
    assert.throws(() => parseLatency(spec, new Random(1)), (err: unknown) => err instanceof InputError && message.test(err.message), spec);
  }
});

test('SimulatedKms: round trip, context binding, and the same seed gives the same keys', async () => {
  const a = new SimulatedKms({ seed: 11 });
  const b = new SimulatedKms({ seed: 11 });
  const c = new SimulatedKms({ seed: 12 });
  const ga = await a.generateDataKey('anything', ctx, 'demand');
  const ga2 = await a.generateDataKey('alias/other', ctx, 'prefetch');
  const gb = await b.generateDataKey('x', ctx, 'demand');
  const gc = await c.generateDataKey('x', ctx, 'demand');
  assert.equal(ga.keyId, 'sim-key');
  assert.equal(ga.plaintext.length, 32);
  assert.notDeepEqual(ga.plaintext, ga2.plaintext);
  assert.deepEqual([gb.plaintext, gb.ciphertextBlob], [ga.plaintext, ga.ciphertextBlob]);
  assert.notDeepEqual(gc.plaintext, ga.plaintext);
  // Any instance with the seed can decrypt: nothing is kept per key.
  assert.deepEqual((await b.decrypt(ga2.ciphertextBlob, ctx, 'demand')).plaintext, ga2.plaintext);
  await assert.rejects(a.decrypt(ga.ciphertextBlob, { tenant: 't1', queue: 'q2' }, 'demand'), kmsCode('InvalidCiphertextException'));
  await assert.rejects(c.decrypt(ga.ciphertextBlob, ctx, 'demand'), kmsCode('InvalidCiphertextException'));
  await assert.rejects(a.decrypt(ga.ciphertextBlob.subarray(1), ctx, 'demand'), kmsCode('InvalidCiphertextException'));
  assert.deepEqual(a.counts().byOperation, { GenerateDataKey: 2, Decrypt: 2 });
  assert.deepEqual(a.counts().byReason, { demand: 3, prefetch: 1, refresh: 0 });
});

