// Invariants of the yardstick on the real traces (Azure Functions 2019, 8-hour sample).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { replay, POLICY_NAMES } from '../src/sim/replay.ts';
import { openTrace } from '../src/sim/traces/open.ts';

const TRACES = join(import.meta.dirname, 'fixtures');
const AZURE = join(TRACES, 'azure2019-250fn-8h.csv');

for (const trigger of ['queue', undefined]) {
  test(`8-hour Azure sample${trigger ? ' (queue triggers)' : ''}: oracle bounds every policy; nothing serves an expired key`, async () => {
    const reader = openTrace(AZURE, { seed: 1, trigger });
    const result = await replay(() => reader.batches(), [...POLICY_NAMES], { frontends: 4, reuseSeconds: 300, warmupMs: 3_600_000 });
    const { reactive, oracle } = result.policies;
    assert.ok(reactive && oracle);
    assert.ok(reactive.requests > 400_000);
    // Unlimited capacity, shared metadata tier: the oracle misses nothing and pays exactly reactive's KMS calls.
    assert.equal(oracle.demandMisses, 0);
    assert.equal(oracle.kmsCalls, reactive.kmsCalls);
    assert.ok(reactive.demandMisses > 0);
    for (const p of Object.values(result.policies)) {
      assert.equal(p.requests, reactive.requests, `${p.policy} saw another number of requests`);
      assert.ok(p.kmsCalls >= oracle.kmsCalls, `${p.policy} made fewer KMS calls (${p.kmsCalls}) than the oracle (${oracle.kmsCalls})`);
      assert.equal(p.expiredKeysServed, 0, `${p.policy} served an expired key`);
      assert.ok(p.demandMisses >= 0 && p.demandMisses <= p.requests);
    }
  });
}

test('same seed, same result; another seed, other arrival instants', async () => {
  const run = async (seed: number) => {
    const reader = openTrace(AZURE, { seed, trigger: 'queue' });
    const r = await replay(() => reader.batches(), ['reactive', 'refresh-ahead', 'histogram'], { frontends: 4, seed });
    // Wall-clock figures differ run to run; everything else must not.
    return JSON.stringify(r, (key, value) => (key === 'wallMs' || key === 'eventsPerSecond' ? undefined : value));
  };
  const a = await run(1);
  assert.equal(await run(1), a);
  assert.notEqual(await run(2), a);
});

test('the generic events file with sticky balancing: one node per queue, so one delivery per DEK', async () => {
  const reader = openTrace(join(TRACES, 'example-events.csv'));
  const result = await replay(() => reader.batches(), ['reactive', 'oracle'], { frontends: 4, warmupMs: 0, balancer: 'sticky' });
  assert.equal(result.policies.reactive!.requests, 2_000);
  assert.equal(result.policies.oracle!.kmsCalls, result.policies.reactive!.kmsCalls);
  assert.equal(result.policies.oracle!.prefetches, result.policies.oracle!.kmsCalls);
  // Every new DEK starts with a demand miss on the queue's one node (more if requests arrive while it is fetched).
  assert.equal(result.policies.reactive!.kmsCallsByReason.demand, result.policies.reactive!.kmsCalls);
  assert.ok(result.policies.reactive!.demandMisses >= result.policies.reactive!.kmsCalls);
});
