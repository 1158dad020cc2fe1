// The Predictive Key Prefetcher running live in the service: fed by the front-ends' bus events,
// prefetching through the metadata service, exported to Prometheus, and failing open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateQueueCommand, ReceiveMessageCommand, SendMessageBatchCommand, SendMessageCommand, SQSClient,
} from '@aws-sdk/client-sqs';
import type { AccessEvent, PkpEvent, QueueStatsEvent } from '../src/bus/types.ts';
import { VirtualClock } from '../src/core/clock.ts';
import { startService, type Credential, type RunningService, type ServiceOptions } from '../src/service.ts';

const ALICE: Credential = { accessKeyId: 'AKPKALICE', secretAccessKey: 'alice-secret-0123456789', accountId: '000000000000' }; // one account: they share queues

function client(service: { endpoint: string }): SQSClient {
  return new SQSClient({
    endpoint: service.endpoint, region: 'us-east-1', credentials: ALICE, maxAttempts: 1,
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 10 }) },
  });
}

async function withService(
  options: Partial<ServiceOptions>,
  body: (s: RunningService, sqs: SQSClient, clock: VirtualClock) => Promise<void>,
): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-prefetch-live-'));
  const clock = new VirtualClock(Date.now()); // SigV4 dates come from the real clock: start near it
  const service = await startService({ dataDir, port: 0, adminPort: null, frontends: 3, credentials: [ALICE], clock, ...options });
  const sqs = client(service);
  try {
    await body(service, sqs, clock);
  } finally {
    sqs.destroy();
    await service.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Sends single and batched messages, receives them all, and checks the bodies came back. */
async function sendAndReceive(sqs: SQSClient, queueName: string): Promise<void> {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: queueName }));
  const bodies = ['one', 'two', 'three', 'four', 'five'];
  for (const b of bodies.slice(0, 3)) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: b }));
  const batch = await sqs.send(new SendMessageBatchCommand({
    QueueUrl, Entries: bodies.slice(3).map((b, i) => ({ Id: `e${i}`, MessageBody: b })),
  }));
  assert.equal(batch.Successful?.length, 2);
  const got: string[] = [];
  for (let i = 0; i < 10 && got.length < bodies.length; i++) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
    for (const m of out.Messages ?? []) got.push(m.Body!);
  }
  assert.deepEqual(got.sort(), [...bodies].sort());
}

async function queueIdOf(service: RunningService, name: string): Promise<string> {
  const queue = await service.store.getQueueByName(name);
  assert.ok(queue, `queue ${name} exists`);
  return queue.queueId;
}

test('fail-open: with the prefetcher stopped, sends and receives are served reactively', async () => {
  await withService({}, async (service, sqs) => {
    assert.ok(service.prefetcher, 'the prefetcher is on by default');
    service.prefetcher.stop();
    await sendAndReceive(sqs, 'stopped');
    const issued = service.prefetcher.stats.issued + service.prefetcher.stats.fanOuts;
    assert.equal(issued, 0, 'a stopped prefetcher prefetches nothing');
  });
});

test('fail-open: with prefetch: false there is no prefetcher and requests are served', async () => {
  await withService({ prefetch: false }, async (service, sqs) => {
    assert.equal(service.prefetcher, undefined);
    assert.equal(service.livePrefetcher, undefined);
    const events: PkpEvent[] = [];
    const unsubscribe = service.bus.subscribe((e) => events.push(e));
    await sendAndReceive(sqs, 'off');
    unsubscribe();
    assert.equal(service.kms.counts().byReason.prefetch + service.kms.counts().byReason.refresh, 0);
    assert.ok(!events.some((e) => e.type === 'queue-stats'), 'no queue stats without a prefetcher');
  });
});

test('fail-open: a prefetcher that throws is stopped and requests go on', async () => {
  await withService({}, async (service, sqs) => {
    const live = service.livePrefetcher!;
    live.prefetcher.observe = () => {
      throw new Error('prefetcher bug');
    };
    await sendAndReceive(sqs, 'throws');
    assert.equal(live.stopped, true);
  });
});

test('access events reach the prefetcher: observations, a stream, key hits and queue stats', async () => {
  await withService({}, async (service, sqs, clock) => {
    const prefetcher = service.prefetcher!;
    const events: PkpEvent[] = [];
    const unsubscribe = service.bus.subscribe((e) => events.push(e));
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'observed' }));
    const queueId = await queueIdOf(service, 'observed');
    const before = prefetcher.stats.observed;
    for (let i = 0; i < 6; i++) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `m${i}` }));
    unsubscribe();

    assert.ok(prefetcher.stats.observed >= before + 6, `observed ${prefetcher.stats.observed - before} of 6 sends`);
    const stream = prefetcher.stream(queueId, ALICE.accessKeyId);
    assert.ok(stream, 'the (queue, principal) stream exists');
    assert.equal(stream.requests, 6);

    const sends = events.filter((e): e is AccessEvent => e.type === 'access' && e.op === 'send');
    assert.equal(sends.length, 6);
    assert.ok(sends.every((e) => typeof e.keyHit === 'boolean'), 'every send says whether its key was cached');
    assert.equal(sends[0]!.keyHit, false, 'the first send on a cold queue misses');
    // Round robin over 3 nodes: each node's second send at least finds the key.
    const hits = sends.filter((e) => e.keyHit === true);
    assert.ok(hits.length >= 3);
    for (const e of hits) {
      assert.equal(typeof e.keyExpiresAt, 'number');
      assert.ok(e.keyExpiresAt! > clock.now());
      assert.equal(typeof e.prefetchedFirstUse, 'boolean');
    }
    assert.equal(prefetcher.stats.demandMisses, sends.filter((e) => e.keyHit === false).length);
    // A key a fan-out delivered and a send then used is a miss avoided.
    assert.equal(prefetcher.stats.missesAvoided, sends.filter((e) => e.prefetchedFirstUse === true).length);

    const stats = events.filter((e): e is QueueStatsEvent => e.type === 'queue-stats' && e.queueId === queueId);
    assert.equal(stats.length, 1, 'queue stats once per queue in a few seconds, whichever of the three nodes served (they share one store)');
    assert.ok(stats.every((e) => Number.isInteger(e.backlog) && e.backlog >= 0));
    assert.equal(stream.queue.consumersSeen, true, 'a reported backlog reached the prefetcher');
  });
});

test('the metrics endpoint exposes the prefetcher series', async () => {
  await withService({ adminPort: 0 }, async (service, sqs) => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'metered' }));
    for (let i = 0; i < 4; i++) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `m${i}` }));
    const scrape = async (): Promise<string> => {
      const response = await fetch(`${service.adminEndpoint}/metrics`, { headers: { authorization: `Bearer ${service.adminToken}` } });
      assert.equal(response.status, 200);
      return response.text();
    };
    const value = (text: string, series: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      assert.ok(line, `series ${series} exported`);
      return Number(line.slice(series.length + 1));
    };
    const stats = service.prefetcher!.stats;
    for (const text of [await scrape(), await scrape()]) { // twice: counters must not double count
      assert.equal(value(text, 'pkp_prefetches_issued_total'), stats.issued);
      assert.equal(value(text, 'pkp_prefetch_outcomes_total{outcome="used"}'), stats.used);
      assert.equal(value(text, 'pkp_prefetch_outcomes_total{outcome="wasted"}'), stats.wasted);
      assert.equal(value(text, 'pkp_prefetch_outcomes_total{outcome="failed"}'), stats.failed);
      assert.equal(value(text, 'pkp_prefetch_fanouts_total'), stats.fanOuts);
      assert.equal(value(text, 'pkp_prefetch_backlog_keys_total'), stats.backlogKeys);
      // Ratios are PromQL's: no precision or recall gauge that would read 0 before any prefetch.
      assert.doesNotMatch(text, /pkp_prefetch_(precision|recall)/);
      assert.doesNotMatch(text, /outcome="issued"/);
      assert.ok(Math.abs(value(text, 'pkp_prefetch_threshold') - service.prefetcher!.threshold) < 1e-9);
      assert.equal(value(text, 'pkp_prefetcher_streams'), stats.streams);
      assert.ok(stats.streams >= 1);
      assert.match(text, /# TYPE pkp_prefetches_issued_total counter/);
      assert.match(text, /# TYPE pkp_prefetch_outcomes_total counter/);
      assert.match(text, /^pkp_sqs_requests_total\{action="SendMessage",code="200"\} 4$/m);
      assert.match(text, /^pkp_queue_messages\{queue="metered",state="visible"\} 4$/m);
    }
  });
});

test('the prefetcher host exposes no key material: prefetch answers with an expiry, events carry ids only', async () => {
  await withService({}, async (service, sqs, clock) => {
    const host = service.livePrefetcher!.host;
    assert.deepEqual(Object.keys(host).sort(), ['clock', 'expectedFetchMs', 'nodeIds', 'nodesFor', 'prefetch', 'prefetchDecrypt', 'reuseMsOf']);

    const events: PkpEvent[] = [];
    const unsubscribe = service.bus.subscribe((e) => events.push(e));
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'secrets' }));
    const queueId = await queueIdOf(service, 'secrets');

    // Every function of the host answers with ids, numbers or nothing: never a Buffer.
    const expiresAt = await host.prefetch({ queueId, principal: ALICE.accessKeyId, nodeIds: ['fe-2', 'fe-3'], reason: 'prefetch' });
    assert.equal(typeof expiresAt, 'number');
    assert.ok(expiresAt! > clock.now());
    assert.equal(await host.prefetch({ queueId: 'no-such-queue', principal: ALICE.accessKeyId, nodeIds: ['fe-1'], reason: 'prefetch' }), undefined);
    assert.equal(await host.prefetch({ queueId, principal: ALICE.accessKeyId, nodeIds: ['fe-unknown'], reason: 'prefetch' }), undefined);
    assert.deepEqual([...host.nodesFor(queueId)], ['fe-1', 'fe-2', 'fe-3']);
    assert.deepEqual([...host.nodeIds], ['fe-1', 'fe-2', 'fe-3']);
    assert.equal(host.reuseMsOf(queueId), 300_000);
    assert.equal(typeof host.clock.now(), 'number');
    assert.equal(typeof host.expectedFetchMs, 'number');
    assert.equal(await host.prefetchDecrypt!({ queueId, nodeIds: ['fe-2'], score: 1 }), 0, 'an empty backlog: no decrypt keys, a count');
    const timer = host.clock.setTimer(1_000, () => {});
    assert.ok(!Buffer.isBuffer(timer));
    timer.cancel();

    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'a secret body' }));
    // The plaintext DEK, read while it is still cached (the cache zeroes it when it leaves).
    const cached = service.frontends.map((f) => f.cache.peekEncrypt(queueId, ALICE.accessKeyId)).find((v) => v !== undefined);
    assert.ok(cached, 'the key is cached on some node');
    const secrets = [cached.key.material, cached.key.encryptedDek].flatMap((b) => [b.toString('base64'), b.toString('base64url'), b.toString('hex')]);
    const received = await sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 0 }));
    assert.equal(received.Messages?.[0]?.Body, 'a secret body');
    unsubscribe();

    assert.ok(events.length > 0);
    const text = JSON.stringify(events);
    for (const s of secrets) assert.ok(!text.includes(s), 'no key bytes on the bus');
    assert.ok(!text.includes('a secret body'));
    const allowed: Record<string, readonly string[]> = {
      access: ['type', 'at', 'queueId', 'nodeId', 'principal', 'op', 'bytes', 'keyHit', 'keyExpiresAt', 'prefetchedFirstUse'],
      key: ['type', 'at', 'nodeId', 'kind', 'use', 'queueId', 'principal', 'dekId', 'prefetched'],
      'queue-stats': ['type', 'at', 'queueId', 'nodeId', 'backlog'],
    };
    for (const e of events) {
      const fields = allowed[e.type];
      assert.ok(fields, `known event type ${e.type}`);
      for (const [name, v] of Object.entries(e)) {
        assert.ok(fields.includes(name), `${e.type} event field ${name} is allowed`);
        assert.ok(v === undefined || ['string', 'number', 'boolean'].includes(typeof v), `${e.type}.${name} is a plain value`);
      }
    }
    assert.ok(events.some((e) => e.type === 'key' && e.use === 'decrypt'), 'the receive used a decrypt key');
  });
});

test('backlog decrypt prefetch, live: a queue-stats event has the backlog keys delivered to every node (full fan-out), and the next receive hits', async () => {
  // Routing: the endpoint spreads requests round-robin over the nodes, so the SQS client cannot
  // pick one. Requests meant for one node go to that node's FrontendNode.handle (as a request the
  // endpoint routed there would), with the principal the endpoint would have authenticated.
  await withService({}, async (service, sqs, clock) => {
    const prefetcher = service.prefetcher!;
    assert.ok(prefetcher, 'the prefetcher is on by default');
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'backlog-live' }));
    const queueId = await queueIdOf(service, 'backlog-live');
    const [A, B, C] = ['fe-1', 'fe-2', 'fe-3'].map((id) => service.frontends.find((f) => f.nodeId === id)!);
    const call = (f: typeof A, action: string, input: Record<string, unknown>) =>
      f!.node.handle(action, { QueueUrl, ...input }, { principal: ALICE.accessKeyId, baseUrl: 'http://localhost', accountId: ALICE.accountId });
    const REUSE_MS = 300_000; // the queue's default KmsDataKeyReusePeriodSeconds

    // Spies: every bus event, every key the metadata service delivers (passed on to the node), and
    // every backlog decrypt prefetch the live prefetcher asks the metadata service for.
    const events: PkpEvent[] = [];
    const unsubscribe = service.bus.subscribe((e) => events.push(e));
    const deliveries: { nodeId: string; use: string; dekId: string }[] = [];
    service.metadata.setDelivery({
      deliver: (d) => {
        deliveries.push({ nodeId: d.nodeId, use: d.use, dekId: d.dekId });
        service.frontends.find((f) => f.nodeId === d.nodeId)?.keyring.deliver(d);
      },
    });
    const asked: { nodeIds: string[]; at: number; outcome: Promise<unknown> }[] = [];
    const prefetchDecrypt = service.metadata.prefetchDecrypt.bind(service.metadata);
    service.metadata.prefetchDecrypt = (instruction) => {
      const outcome = prefetchDecrypt(instruction);
      asked.push({ nodeIds: [...instruction.nodeIds], at: clock.now(), outcome: outcome.catch(() => {}) });
      return outcome;
    };

    try {
      // 1. The queue's receives are served by B: one message sent through A, received and deleted on B.
      await call(A, 'SendMessage', { MessageBody: 'warm-up' });
      const warm = await call(B, 'ReceiveMessage', { MaxNumberOfMessages: 1, WaitTimeSeconds: 0 });
      const [warmMessage] = warm.Messages as { Body: string; ReceiptHandle: string }[];
      assert.equal(warmMessage?.Body, 'warm-up');
      await call(B, 'DeleteMessage', { ReceiptHandle: warmMessage.ReceiptHandle });
      const oldDek = A!.cache.peekEncrypt(queueId, ALICE.accessKeyId)!.key.dekId;

      // 2. Past the key's life every cache has dropped it (and the stats interval has passed): the
      // next sends through A use a new DEK. The first of them, once stored, brings the queue's
      // stats event, whose backlog counts its message.
      await clock.advance(REUSE_MS + 1_000);
      asked.length = 0; // from here on: the backlog under the new DEK
      const stats = events.length;
      const backlogPrefetches = prefetcher.stats.backlogPrefetches;
      const N = 4;
      for (let i = 0; i < N; i++) await call(A, 'SendMessage', { MessageBody: `m${i}` });
      const newDek = A!.cache.peekEncrypt(queueId, ALICE.accessKeyId)!.key.dekId;
      assert.notEqual(newDek, oldDek, 'the backlog is under a new DEK');
      const reported = events.slice(stats).filter((e): e is QueueStatsEvent => e.type === 'queue-stats' && e.queueId === queueId);
      assert.deepEqual(reported.map((e) => [e.nodeId, e.backlog]), [['fe-1', 1]], 'one stats event, from A, right after the first send was stored');
      assert.equal(asked.length, 1, 'the stats event made the prefetcher ask for the backlog decrypt keys');
      assert.deepEqual(asked[0]!.nodeIds, ['fe-1', 'fe-2', 'fe-3'], 'for every node the endpoint may send the next receive to');
      assert.equal(prefetcher.stats.backlogPrefetches, backlogPrefetches + 1);
      await Promise.all(asked.map((a) => a.outcome));
      await clock.advance(0); // lets the prefetcher count the keys delivered
      assert.ok(prefetcher.stats.backlogPrefetches >= 1);
      assert.ok(prefetcher.stats.backlogKeys >= 1, `backlogKeys ${prefetcher.stats.backlogKeys}`);
      assert.ok(B!.cache.peekDecrypt(newDek), 'the new DEK\'s decrypt key is on B');

      // 3. B's next receive opens every message from its cache: hits only, no decrypt miss.
      const before = { ...B!.cache.stats };
      const keyEvents = events.length;
      const out = await call(B, 'ReceiveMessage', { MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 600 });
      const bodies = (out.Messages as { Body: string }[]).map((m) => m.Body).sort();
      assert.deepEqual(bodies, Array.from({ length: N }, (_, i) => `m${i}`));
      assert.equal(B!.cache.stats.misses, before.misses, 'B missed a key');
      assert.equal(B!.cache.stats.hits - before.hits, N);
      assert.equal(B!.cache.stats.prefetchedUsed - before.prefetchedUsed, 1, 'the first use was of the prefetched key');
      const bKeys = events.slice(keyEvents).filter((e) => e.type === 'key' && e.nodeId === 'fe-2' && e.use === 'decrypt');
      assert.deepEqual(bKeys.filter((e) => e.type === 'key' && e.kind === 'miss'), [], 'no decrypt miss on B');
      assert.equal(bKeys.filter((e) => e.type === 'key' && e.kind === 'hit').length, N);
      assert.equal(asked.length, 1, 'B\'s own stats event right after asked for nothing more (at most once per tenth of a key life)');

      // 4. Nodes that never served a receive got the decrypt key too (A sent, C did nothing): their
      // first receive of the queue would otherwise miss.
      for (const id of ['fe-1', 'fe-2', 'fe-3']) assert.ok(deliveries.some((d) => d.use === 'decrypt' && d.nodeId === id && d.dekId === newDek), id);
      for (const f of [A, C]) assert.ok(f!.cache.peekDecrypt(newDek), `${f!.nodeId} lacks the decrypt key`);
    } finally {
      unsubscribe();
    }
  });
});
