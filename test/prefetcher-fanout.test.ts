// Full fan-out: a key one node fetched, or the prefetcher obtained, reaches every node the
// balancer may send the stream's next request to, so pkp's misses do not grow with the nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { syntheticTrace } from '../src/sim/generator.ts';
import { PkpPolicy } from '../src/sim/policies/pkp.ts';
import { simulate } from '../src/sim/simulator.ts';
import type { TraceEvent } from '../src/sim/traces/types.ts';

const LIMIT = { timeout: 120_000 };

test('a busy stream spread over 16 nodes misses once per key, as on one node', LIMIT, async () => {
  // A request every 2 s for an hour: each reactive key would cost one miss per node.
  const trace: TraceEvent[] = Array.from({ length: 1800 }, (_, i) => ({ t: i * 2000, queue: 'q', op: 'send' }));
  const run = (frontends: number) => simulate([trace], new PkpPolicy(), { frontends, balancer: 'round-robin', warmupMs: 0, reuseSeconds: 300 });
  const one = await run(1);
  const sixteen = await run(16);
  // Round robin puts the first 16 requests on 16 different nodes: only the first waits.
  assert.ok(sixteen.demandMisses <= one.demandMisses + 2, `16 nodes: ${sixteen.demandMisses} misses, 1 node: ${one.demandMisses}`);
  assert.equal(sixteen.kmsCalls, one.kmsCalls);
  assert.equal(sixteen.expiredKeysServed, 0);
});

test('generated trace: pkp at 16 front-ends has the send misses and KMS calls it has at 4, receive misses within 15% (random balancing)', LIMIT, async () => {
  const source = syntheticTrace({ seed: 3, days: 1, queues: 20, meanRatePerSecond: 0.2, principals: 3 });
  const run = (frontends: number) => simulate(source.batches(), new PkpPolicy(), { frontends, warmupMs: 3_600_000, reuseSeconds: 300 });
  const four = await run(4);
  const sixteen = await run(16);
  // Full fan-out covers the sends' encrypt keys and the backlog's decrypt keys alike (see
  // Prefetcher.prefetchBacklogKeys). Receive misses: 594 at 4 nodes, 776 at 16 when only nodes that
  // had served a receive got the keys; about 560 and 612 now. What is left grows a little: after a
  // demand Decrypt (a message older than its key) the other nodes miss on that DEK until the next
  // delivery, as the live service reports no key outcome for receives.
  const sends = (r: typeof four): number => r.demandMisses - (r.decryptMisses ?? 0);
  const receives = (r: typeof four): number => r.decryptMisses ?? 0;
  assert.ok(sends(four) > 0 && receives(four) > 0 && (four.keyedReceives ?? 0) > 0);
  // A key's exposure is priced per key, not per node holding it (CostModel.residentKeySecondCost),
  // so the sends' decisions are the same at 16 nodes as at 4. Priced per copy, 16 nodes bought fewer keys.
  assert.equal(sends(sixteen), sends(four), `send misses 4: ${sends(four)}, 16: ${sends(sixteen)}`);
  assert.ok(receives(sixteen) <= 1.15 * receives(four) + 2, `receive misses 4: ${receives(four)}, 16: ${receives(sixteen)}`);
  // The decrypt keys the backlog prefetch delivered reach the extra nodes: far more deliveries, no more KMS Decrypt calls.
  assert.ok((sixteen.backlogKeysDelivered ?? 0) > 2 * (four.backlogKeysDelivered ?? 0));
  assert.ok((sixteen.kmsDecryptCalls ?? 0) <= 1.02 * (four.kmsDecryptCalls ?? 0) + 2, `Decrypt calls 4: ${four.kmsDecryptCalls}, 16: ${sixteen.kmsDecryptCalls}`);
  // Exposure grows with the nodes (the price of full fan-out), KMS calls do not.
  assert.ok(sixteen.keyResidentSeconds > 2 * four.keyResidentSeconds);
  assert.equal(sixteen.kmsCalls, four.kmsCalls);
});
