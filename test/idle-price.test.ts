// The idle-price baseline (the simple policy issue 14 measures pkp against): full fan-out, and at
// each key's expiry the next key placed by the stream's own gaps, or not bought at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Random } from '../src/core/random.ts';
import { IdlePricePolicy } from '../src/sim/policies/idle-price.ts';
import { ReactivePolicy } from '../src/sim/policies/reactive.ts';
import { parsePolicies } from '../src/sim/replay.ts';
import { simulate } from '../src/sim/simulator.ts';
import type { TraceEvent } from '../src/sim/traces/types.ts';

const LIMIT = { timeout: 60_000 };
const options = { frontends: 4, warmupMs: 3_600_000, reuseSeconds: 300 };

test('a stream every 10 min (±20 s): after the warm-up its keys are ready before its requests', LIMIT, async () => {
  const rng = new Random(7);
  const random = (): number => rng.next();
  const trace: TraceEvent[] = Array.from({ length: 60 }, (_, i) => ({ t: i * 600_000 + Math.round((random() - 0.5) * 40_000) + 20_000, queue: 'q', op: 'send' }));
  const reactive = await simulate([trace], new ReactivePolicy(), options);
  const priced = await simulate([trace], new IdlePricePolicy({ lambda: 2 }), options);
  assert.ok(reactive.demandMisses >= 50, `reactive misses every request after the warm-up: ${reactive.demandMisses}`);
  assert.ok(priced.demandMisses <= 3, `idle-price: ${priced.demandMisses} misses`);
  // One key per request, as the oracle would: nothing wasted on a stream this regular.
  assert.ok(priced.kmsCalls <= reactive.kmsCalls + 2, `KMS ${priced.kmsCalls} vs reactive ${reactive.kmsCalls}`);
});

test('requests at random (no pattern): a high price buys nothing, a low price buys keys that may be wasted', LIMIT, async () => {
  const rng = new Random(11);
  const random = (): number => rng.next();
  let t = 0;
  const trace: TraceEvent[] = [];
  // Exponential gaps with a 40-min mean: the idle time so far says nothing about the next request.
  while (t < 24 * 3_600_000) trace.push({ t: (t += Math.round(-Math.log(1 - random()) * 2_400_000)), queue: 'q', op: 'send' });
  const reactive = await simulate([trace], new ReactivePolicy(), options);
  const dear = await simulate([trace], new IdlePricePolicy({ lambda: 1000 }), options);
  const cheap = await simulate([trace], new IdlePricePolicy({ lambda: 0.01 }), options);
  assert.ok(dear.kmsCalls <= reactive.kmsCalls * 1.02 + 1, `at λ=1000: ${dear.kmsCalls} KMS calls vs reactive ${reactive.kmsCalls}`);
  assert.ok(cheap.kmsCalls > reactive.kmsCalls * 1.2, `at λ=0.01: ${cheap.kmsCalls} KMS calls vs reactive ${reactive.kmsCalls}`);
  assert.ok(cheap.demandMisses < reactive.demandMisses, `at λ=0.01: ${cheap.demandMisses} misses vs reactive ${reactive.demandMisses}`);
});

test('a busy stream (a request every 90 s ±30 s): the life a renewal at expiry loses is priced at λ', LIMIT, async () => {
  const rng = new Random(5);
  const random = (): number => rng.next();
  let t = 0;
  const trace: TraceEvent[] = [];
  while (t < 12 * 3_600_000) trace.push({ t: (t += 60_000 + Math.round(random() * 60_000)), queue: 'q', op: 'send' });
  const reactive = await simulate([trace], new ReactivePolicy(), options);
  const dear = await simulate([trace], new IdlePricePolicy({ lambda: 32 }), options);
  const cheap = await simulate([trace], new IdlePricePolicy({ lambda: 0.25 }), options);
  // Renewed at expiry, a key waits 45 s on average for its first request: 15 % of its life, which at
  // λ = 32 costs more than the miss it avoids (the next key is then needed that much earlier).
  assert.ok(dear.kmsCalls <= reactive.kmsCalls * 1.02 + 1, `at λ=32: ${dear.kmsCalls} KMS calls vs reactive ${reactive.kmsCalls}`);
  assert.ok(cheap.demandMisses * 4 < reactive.demandMisses, `at λ=0.25: ${cheap.demandMisses} misses vs reactive ${reactive.demandMisses}`);
  assert.ok(cheap.kmsCalls > reactive.kmsCalls * 1.05, `at λ=0.25: ${cheap.kmsCalls} KMS calls vs reactive ${reactive.kmsCalls}`);
});

test('replay names it with a price of its own; a price must be a positive number', () => {
  assert.deepEqual(parsePolicies('idle-price,idle-price@0.75,idle-price@8'), ['idle-price', 'idle-price@0.75', 'idle-price@8']);
  assert.throws(() => parsePolicies('idle-price@0'), /unknown policy/);
  assert.throws(() => parsePolicies('idle-price@-1'), /unknown policy/);
  assert.throws(() => parsePolicies('idle-price@x'), /unknown policy/);
});
