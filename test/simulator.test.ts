import { test } from 'node:test';
import assert from 'node:assert/strict';
import { oracle } from '../src/sim/oracle.ts';
import { HistogramPolicy } from '../src/sim/policies/histogram.ts';
import { ReactivePolicy } from '../src/sim/policies/reactive.ts';
import { RefreshAheadPolicy } from '../src/sim/policies/refresh-ahead.ts';
import { simulate, type PolicyResult, type SimulationOptions } from '../src/sim/simulator.ts';
import { PkpPolicy } from '../src/sim/policies/pkp.ts';
import { syntheticTrace } from '../src/sim/generator.ts';
import { CopyChannel } from '../src/sim/copy-channel.ts';
import type { SealedHeader } from '../src/crypto/seal.ts';
import type { TraceEvent } from '../src/sim/traces/types.ts';

const ev = (t: number, queue = 'q', principal?: string): TraceEvent => ({ t, queue, op: 'send', principal });
const base: SimulationOptions = { frontends: 1, balancer: 'round-robin', warmupMs: 0, kmsLatency: '10', hopMs: 1, reuseSeconds: 300 };

test('reactive on one node: a miss at the start and after expiry; waits are hop + KMS + hop', async () => {
  const trace = [ev(0), ev(100), ev(200), ev(400_000)];
  const r = await simulate([trace], new ReactivePolicy(), base);
  assert.equal(r.requests, 4);
  assert.equal(r.demandMisses, 2);
  assert.equal(r.kmsCalls, 2);
  assert.equal(r.kmsCallsByReason.demand, 2);
  assert.equal(r.addedLatencyMs.max, 12);
  assert.equal(r.expiredKeysServed, 0);
});

test('a request while the fetch is in flight also waits, without a second KMS call', async () => {
  const r = await simulate([[ev(0), ev(5), ev(20)]], new ReactivePolicy(), base);
  assert.equal(r.demandMisses, 2);
  assert.equal(r.kmsCalls, 1);
  assert.equal(r.addedLatencyMs.max, 12);
});

test('the key expires exactly one reuse period after the request that fetched it', async () => {
  const r = await simulate([[ev(0), ev(299_999), ev(300_000)]], new ReactivePolicy(), base);
  assert.equal(r.demandMisses, 2); // 0 and 300,000
  assert.equal(r.kmsCalls, 2);
});

test('round-robin over 4 nodes: each node misses once, the shared tier makes one KMS call', async () => {
  const trace = [0, 1000, 2000, 3000, 4000, 5000].map((t) => ev(t));
  const r = await simulate([trace], new ReactivePolicy(), { ...base, frontends: 4 });
  assert.equal(r.demandMisses, 4);
  assert.equal(r.kmsCalls, 1);
  const o = await oracle([trace], { ...base, frontends: 4 });
  assert.equal(o.demandMisses, 0);
  assert.equal(o.kmsCalls, 1);
  assert.equal(o.prefetches, 4);
});

test('principals never share a DEK: two principals, two KMS calls', async () => {
  const r = await simulate([[ev(0, 'q', 'alice'), ev(1000, 'q', 'bob'), ev(2000, 'q', 'alice')]], new ReactivePolicy(), base);
  assert.equal(r.kmsCalls, 2);
  assert.equal(r.demandMisses, 2);
});

test('refresh-ahead refreshes inside the grace period and avoids the expiry miss', async () => {
  // A request every second for 120 s with a 60 s reuse period.
  const trace = Array.from({ length: 120 }, (_, i) => ev(i * 1000));
  const opts = { ...base, reuseSeconds: 60 };
  const reactive = await simulate([trace], new ReactivePolicy(), opts);
  assert.equal(reactive.demandMisses, 2); // t = 0 and t = 60 s
  assert.equal(reactive.kmsCalls, 2);
  const refresh = await simulate([trace], new RefreshAheadPolicy(), opts);
  assert.equal(refresh.demandMisses, 1); // only the cold start
  // Refreshed at 50 s (10 s left) and at 101 s (9 s left of the key issued at 50.001 s).
  assert.equal(refresh.kmsCallsByReason.refresh, 2);
  assert.equal(refresh.kmsCallsByReason.demand, 1);
  assert.equal(refresh.prefetches, 2);
  assert.equal(refresh.prefetchesUsed, 2);
  assert.equal(refresh.expiredKeysServed, 0);
});

test('histogram pre-warms a periodic queue that reactive always misses', async () => {
  // Every 10 minutes for 6 hours; keys live 5 minutes, so every reactive request misses.
  const trace = Array.from({ length: 36 }, (_, i) => ev(i * 600_000));
  const opts = { ...base, warmupMs: 2 * 3_600_000 };
  const reactive = await simulate([trace], new ReactivePolicy(), opts);
  assert.equal(reactive.requests, 24);
  assert.equal(reactive.demandMisses, 24);
  const histogram = await simulate([trace], new HistogramPolicy(), opts);
  assert.equal(histogram.requests, 24);
  assert.equal(histogram.demandMisses, 0);
  // One key per request, as reactive: fetched ahead instead of on demand.
  assert.equal(histogram.kmsCalls, 24);
  assert.equal(histogram.kmsCallsByReason.prefetch, 24);
  assert.equal(histogram.precision, 1);
  const best = await oracle([trace], opts);
  assert.equal(best.kmsCalls, 24);
});

test('the warm-up is replayed but not measured', async () => {
  const trace = [ev(0), ev(10_000), ev(3_600_000), ev(3_600_500)];
  const r = await simulate([trace], new ReactivePolicy(), { ...base, warmupMs: 3_600_000 });
  assert.equal(r.requests, 2);
  assert.equal(r.demandMisses, 1);
  assert.equal(r.kmsCalls, 1);
});

test('capacity bounds each node cache and costs misses', async () => {
  const trace: TraceEvent[] = [];
  for (let i = 0; i < 30; i++) trace.push(ev(i * 1000, `q${i % 3}`));
  const roomy = await simulate([trace], new ReactivePolicy(), base);
  const tight = await simulate([trace], new ReactivePolicy(), { ...base, capacity: 2 });
  assert.equal(roomy.demandMisses, 3);
  assert.equal(tight.demandMisses, 30); // cyclic access over 3 keys with room for 2: LRU always misses
  assert.equal(tight.kmsCalls, 3); // the tier still has them
  assert.ok(tight.peakCacheEntries !== null && tight.peakCacheEntries <= 2);
});

const op = (t: number, kind: TraceEvent['op'], principal = 'p0', queue = 'q'): TraceEvent => ({ t, queue, op: kind, principal });

test('receives: a send uses the encrypt key; a receive needs its message\'s decrypt key; a delete and an empty receive none', async () => {
  // Round-robin over 2 nodes: the send on fe-1, the receive on fe-2 (a decrypt miss, the tier's DEK:
  // no KMS call), the delete on fe-1, an empty receive on fe-2, then a second message received on fe-2 (hit).
  const trace = [op(0, 'send'), op(1000, 'receive', 'c'), op(2000, 'delete', 'c'), op(3000, 'receive', 'c'), op(4000, 'send'), op(5000, 'receive', 'c')];
  const r = await simulate([trace], new ReactivePolicy(), { ...base, frontends: 2 });
  assert.equal(r.requests, 6);
  assert.equal(r.keyedReceives, 2);
  assert.equal(r.decryptMisses, 1);
  // The first send's miss, the first receive's; the second send (fe-1) hits, its receive on fe-2 holds the DEK's key.
  assert.equal(r.demandMisses, 2);
  assert.equal(r.kmsCalls, 1);
  assert.equal(r.kmsDecryptCalls, 0);
  // The oracle needs only the send's key: the receiver principal has no encrypt stream.
  assert.equal((await oracle([trace], { ...base, frontends: 2 })).kmsCalls, 1);
});

test('per-queue reuse periods: a queue named with 60 s renews after 60 s, the others after the default', async () => {
  const trace = [op(0, 'send', 'p0', 'fast'), op(0, 'send', 'p0', 'slow'), op(90_000, 'send', 'p0', 'fast'), op(90_000, 'send', 'p0', 'slow')];
  const options = { ...base, queueReuseSeconds: { fast: 60 } };
  const r = await simulate([trace], new ReactivePolicy(), options);
  assert.equal(r.kmsCalls, 3);
  assert.equal(r.demandMisses, 3);
  assert.equal((await oracle([trace], options)).kmsCalls, 3);
});

test('the simulator\'s copy channel gives the very figures of the service\'s X25519 sealing (reactive and pkp, with receives)', async () => {
  const trace = syntheticTrace({ seed: 3, days: 0.25, queues: 12, meanRatePerSecond: 0.5, principals: 3 });
  const opts: SimulationOptions = { frontends: 4, warmupMs: 0, reuseSeconds: 300 };
  const figures = ({ wallMs: _w, eventsPerSecond: _e, ...rest }: PolicyResult): Omit<PolicyResult, 'wallMs' | 'eventsPerSecond'> => rest;
  for (const policy of [() => new ReactivePolicy(), () => new PkpPolicy()]) {
    const copied = await simulate(trace.batches(), policy(), { ...opts, sealing: 'copy' });
    const sealed = await simulate(trace.batches(), policy(), { ...opts, sealing: 'x25519' });
    assert.ok(copied.demandMisses > 0 && copied.kmsCalls > 0 && (copied.keyedReceives ?? 0) > 0, copied.policy);
    assert.deepEqual(figures(copied), figures(sealed), copied.policy);
  }
  // pkp's deliveries went through the channel: prefetched encrypt keys and backlog decrypt keys.
  const pkp = await simulate(trace.batches(), new PkpPolicy(), opts);
  assert.ok(pkp.prefetches > 0 && (pkp.backlogKeysDelivered ?? 0) > 0);
});

test('the copy channel keeps the sealed channel\'s addressing: a delivery for another node is refused; the copy in transit is zeroed once opened', () => {
  const channel = new CopyChannel('fe-1');
  const header: SealedHeader = {
    nodeId: 'fe-1', dekId: 'd', queueId: 'q', principal: 'p', kmsKeyId: 'k', use: 'encrypt', encryptedDek: Buffer.alloc(4), issuedAt: 0, expiresAt: 1, prefetched: false, score: 0,
  };
  const material = Buffer.alloc(32, 7);
  assert.throws(() => channel.seal(material, { ...header, nodeId: 'fe-2' }), /node of its channel/);
  const inTransit = channel.seal(material, header);
  assert.notEqual(inTransit, material, 'a copy: the tier zeroes its own key when it drops it');
  assert.throws(() => channel.open(inTransit, { ...header, nodeId: 'fe-2' }), /another node/);
  const opened = channel.open(inTransit, header);
  assert.deepEqual(opened, material);
  assert.deepEqual(inTransit, Buffer.alloc(32));
});
