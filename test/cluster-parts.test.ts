// The parts of distributed mode in one process, against the real NATS and PostgreSQL: the metadata
// service over signed HTTP with keys pushed on NATS, partition ownership by advisory locks,
// snapshots, and the front-end's access aggregation.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { AccessAggregator } from '../src/bus/access-aggregator.ts';
import { InProcessBus } from '../src/bus/in-process.ts';
import { LateBus } from '../src/bus/late-bus.ts';
import type { PkpEvent } from '../src/bus/types.ts';
import { ClusterAuthority, ClusterIdentity } from '../src/cluster/identity.ts';
import { metadataRpc, RemoteMetadata, RemotePrefetchApi } from '../src/cluster/metadata-remote.ts';
import { DialingNatsLink, natsLinkOf } from '../src/cluster/nats-link.ts';
import { checkDecryptPrefetch } from '../src/cluster/wire.ts';
import { PartitionOwner } from '../src/cluster/partition-owner.ts';
import { RecentHistory, SnapshotStore } from '../src/cluster/prefetch-snapshots.ts';
import { createKeyTier } from '../src/compose.ts';
import { freePort } from '../src/roles/local-cluster.ts';
import { SystemClock, VirtualClock } from '../src/core/clock.ts';
import { LocalKms } from '../src/kms/local-kms.ts';
import type { SealedKeyDelivery } from '../src/metadata/types.ts';
import { NATS_SERVER, NATS_URL, natsServerMissing, POSTGRES_URL, skipUnless } from './services.ts';
import { until } from './helpers/until.ts';
import { createTestDatabase, type TestDatabase } from './helpers/pg-database.ts';


describe('access aggregation', () => {
  test('hits are counted per (queue, node, principal, op) per interval; misses and other events go at once', async () => {
    const clock = new VirtualClock(1_000);
    const inner = new InProcessBus();
    const seen: PkpEvent[] = [];
    inner.subscribe((e) => seen.push(e));
    const bus = new AccessAggregator(inner, clock, 1_000);
    const access = (at: number, keyHit: boolean | undefined, principal = 'p') =>
      bus.publish({ type: 'access', at, queueId: 'q', nodeId: 'fe-1', principal, op: 'send', bytes: 10, keyHit });
    access(1_000, true);
    access(1_200, true);
    access(1_300, false);
    access(1_400, undefined, 'other');
    bus.publish({ type: 'queue-stats', at: 1_500, queueId: 'q', nodeId: 'fe-1', backlog: 3 });
    assert.deepEqual(seen.map((e) => e.type), ['access', 'queue-stats'], 'the miss and the stats at once');
    assert.equal(seen[0]!.type === 'access' && seen[0]!.keyHit, false);
    await clock.advance(1_000);
    const counted = seen.slice(2) as Extract<PkpEvent, { type: 'access' }>[];
    assert.deepEqual(counted.map((e) => [e.principal, e.count, e.firstAt, e.at, e.bytes]), [['p', 2, 1_000, 1_200, 20], ['other', 1, 1_400, 1_400, 10]]);
    await bus.close();
  });
});

test('a decrypt prefetch crosses the wire whole: what may be bought from the KMS is not lost on the way', () => {
  const sent = { queueId: 'q1', nodeIds: ['fe-1'], score: 0.5, withinMs: 1_000, buyMessages: 3 };
  assert.deepEqual(checkDecryptPrefetch(JSON.parse(JSON.stringify(sent))), sent);
});

describe('a bus that answers late', () => {
  test('events published before it opens are held (bounded, counted) and handed over; subscribers made before are attached', async () => {
    const clock = new VirtualClock(0);
    const inner = new InProcessBus();
    let attempts = 0;
    const failures: unknown[] = [];
    const bus = await LateBus.start(async () => {
      if (++attempts < 3) throw new Error('connection refused');
      return inner;
    }, { clock, partitions: inner.partitions, retryMs: 1_000, maxHeld: 2, onUnreachable: (e) => failures.push(e) });
    const seen: PkpEvent[] = [];
    bus.subscribe((e) => seen.push(e));
    const stats = (at: number) => bus.publish({ type: 'queue-stats', at, queueId: 'q', nodeId: 'fe-1', backlog: at });
    stats(1);
    stats(2);
    stats(3);
    assert.equal(bus.isOpen, false);
    assert.deepEqual(bus.stats(), { published: 3, dropped: 1, delivered: 0, rejected: 0, handlerErrors: 0 });
    await clock.advance(1_000);
    assert.equal(bus.isOpen, false, 'the second attempt fails too');
    await clock.advance(1_000);
    assert.equal(bus.isOpen, true);
    assert.equal(attempts, 3);
    assert.equal(failures.length, 1, 'told of the first failure only');
    stats(4);
    assert.deepEqual(seen.map((e) => e.type === 'queue-stats' && e.backlog), [1, 2, 4], 'held in order, the overflow dropped');
    assert.deepEqual(bus.stats(), { published: 4, dropped: 1, delivered: 3, rejected: 0, handlerErrors: 0 });
    await bus.close();
  });

  test('closed before it ever opens: no more attempts, what it held is counted dropped', async () => {
    const clock = new VirtualClock(0);
    let attempts = 0;
    const bus = await LateBus.start(async () => {
      attempts++;
      throw new Error('connection refused');
    }, { clock, partitions: 8, onUnreachable: () => undefined });
    bus.publish({ type: 'queue-stats', at: 1, queueId: 'q', nodeId: 'fe-1', backlog: 1 });
    await bus.close();
    await clock.advance(10_000);
    assert.equal(attempts, 1);
    assert.equal(bus.stats().dropped, 1);
  });
});

describe('NATS that starts after the metadata service and the front-end', async () => {
  const skip = natsServerMissing();
  const authority = ClusterAuthority.generate();
  const prefix = `pkp_test_late_${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'pkp-late-nats-'));
  const opened: { close(): unknown }[] = [];
  let nats: ChildProcess | undefined;

  after(async () => {
    for (const o of opened.reverse()) await o.close();
    nats?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  test('prefetched keys reach the node once NATS answers, with no restart', { skip }, async () => {
    const port = await freePort();
    const servers = `nats://127.0.0.1:${port}`;
    const clock = new SystemClock();
    const dial = (name: string) => DialingNatsLink.open({ servers, name, clock, retryMs: 50, timeoutMs: 500, onUnreachable: () => undefined });
    const kms = await LocalKms.open({ clock });
    const tier = createKeyTier({ kms, clock, settingsOf: (queueId) => ({ queueId, kmsMasterKeyId: 'alias/aws/sqs', reuseMs: 300_000 }) });
    const metadataNats = await dial('metadata');
    const server = metadataRpc({
      nats: metadataNats, identity: new ClusterIdentity(authority.issue('meta-1', 'metadata')), prefix, metadata: tier.metadata, reuseMsOf: () => 300_000, onError: () => undefined,
    }).httpServer();
    opened.push(kms, { close: () => tier.metadata.close() }, metadataNats, server);
    await server.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(server.server.address() as { port: number }).port}`;
    const nodeNats = await dial('fe-1');
    const got: SealedKeyDelivery[] = [];
    const remote = await RemoteMetadata.join({ url, nats: nodeNats, identity: new ClusterIdentity(authority.issue('fe-1', 'frontend')), prefix }, (d) => got.push(d));
    opened.push(nodeNats, remote);
    assert.equal(nodeNats.current(), undefined, 'no NATS yet');
    assert.ok(nodeNats.failedAttempts >= 1);
    const prefetcher = new RemotePrefetchApi(url, new ClusterIdentity(authority.issue('pf-1', 'prefetcher')));
    // Without NATS the node still gets keys on demand.
    const demand = await remote.fetchEncryptKey('fe-1', 'q0', 'alice');
    assert.equal(remote.channel.open(demand.sealedMaterial, demand).length, 32);

    nats = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-sd', join(dir, 'nats')], { stdio: 'ignore' });
    await until(() => metadataNats.current() !== undefined && nodeNats.current() !== undefined, 'both processes connected to NATS');
    // The node's subscription is made as its link connects; a prefetch pushed after that arrives.
    await nodeNats.current()!.flush();
    await prefetcher.prefetch({ queueId: 'q1', principal: 'bob', nodeIds: ['fe-1'], reason: 'prefetch' });
    await until(() => got.some((d) => d.queueId === 'q1'), 'the pushed key');
    const pushed = got.find((d) => d.queueId === 'q1')!;
    assert.equal(remote.channel.open(pushed.sealedMaterial, pushed).length, 32);
  });
});

describe('metadata service across the network', async () => {
  const skip = await skipUnless('nats', NATS_URL);
  const authority = ClusterAuthority.generate();
  const prefix = `pkp_test_${process.pid}`;
  let nc: NatsConnection;
  let url = '';
  let close: () => Promise<void> = async () => undefined;
  const nodes: { remote: RemoteMetadata; got: SealedKeyDelivery[] }[] = [];

  before(async () => {
    if (skip) return;
    const clock = new SystemClock();
    const kms = await LocalKms.open({ clock });
    const tier = createKeyTier({ kms, clock, settingsOf: (queueId) => ({ queueId, kmsMasterKeyId: 'alias/aws/sqs', reuseMs: 300_000 }) });
    nc = await connect({ servers: NATS_URL });
    const server = metadataRpc({
      nats: natsLinkOf(nc), identity: new ClusterIdentity(authority.issue('meta-1', 'metadata')), prefix, metadata: tier.metadata, reuseMsOf: () => 300_000, onError: () => undefined,
    }).httpServer();
    await server.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(server.server.address() as { port: number }).port}`;
    for (const id of ['fe-1', 'fe-2']) {
      const got: SealedKeyDelivery[] = [];
      const remote = await RemoteMetadata.join({ url, nats: natsLinkOf(nc), identity: new ClusterIdentity(authority.issue(id, 'frontend')), prefix }, (d) => got.push(d));
      nodes.push({ remote, got });
    }
    close = async () => {
      for (const n of nodes) n.remote.close();
      await server.close();
      tier.metadata.close();
      await kms.close();
      await nc.close();
    };
  });

  after(() => close());

  test('a node fetches its own keys; a key sealed to it does not open at another node, nor altered', { skip }, async () => {
    const [fe1, fe2] = nodes;
    const delivery = await fe1!.remote.fetchEncryptKey('fe-1', 'q1', 'alice');
    assert.equal(fe1!.remote.channel.open(delivery.sealedMaterial, delivery).length, 32);
    assert.throws(() => fe2!.remote.channel.open(delivery.sealedMaterial, { ...delivery, nodeId: 'fe-2' }));
    assert.throws(() => fe1!.remote.channel.open(delivery.sealedMaterial, { ...delivery, expiresAt: delivery.expiresAt + 1 }));
    assert.throws(() => fe1!.remote.channel.open(delivery.sealedMaterial, { ...delivery, queueId: 'q2' }));
  });

  test('a node may not ask for another node\'s keys', { skip }, async () => {
    await assert.rejects(nodes[0]!.remote.fetchEncryptKey('fe-2', 'q1', 'alice'), /may not act for node fe-2/);
  });

  test('a prefetch reaches the named nodes sealed on NATS; the prefetcher gets counts and times, never a key', { skip }, async () => {
    const prefetcher = new RemotePrefetchApi(url, new ClusterIdentity(authority.issue('pf-1', 'prefetcher')));
    const answer = await prefetcher.prefetch({ queueId: 'q3', principal: 'bob', nodeIds: ['fe-1', 'fe-2'], reason: 'prefetch' });
    assert.deepEqual(Object.keys(answer).sort(), ['delivered', 'expiresAt']);
    assert.equal(answer.delivered, 2);
    await until(() => nodes.every((n) => n.got.some((d) => d.queueId === 'q3')), 'both deliveries');
    for (const [i, n] of nodes.entries()) {
      const d = n.got.find((x) => x.queueId === 'q3')!;
      assert.equal(d.nodeId, `fe-${i + 1}`);
      assert.equal(n.remote.channel.open(d.sealedMaterial, d).length, 32);
    }
  });

  test('nothing on NATS carries a key in clear', { skip }, async () => {
    const seen: Buffer[] = [];
    const tap = nc.subscribe('>', { callback: (_e, m) => void seen.push(Buffer.from(m.data)) });
    try {
      const prefetcher = new RemotePrefetchApi(url, new ClusterIdentity(authority.issue('pf-1', 'prefetcher')));
      await prefetcher.prefetch({ queueId: 'q4', principal: 'carol', nodeIds: ['fe-1', 'fe-2'], reason: 'prefetch' });
      await until(() => nodes.every((n) => n.got.some((d) => d.queueId === 'q4')), 'both deliveries');
      const d = nodes[0]!.got.find((x) => x.queueId === 'q4')!;
      const material = nodes[0]!.remote.channel.open(d.sealedMaterial, d);
      assert.ok(seen.length >= 2, 'the deliveries were seen on the wire');
      for (const form of [material, Buffer.from(material.toString('base64')), Buffer.from(material.toString('hex'))]) {
        assert.ok(seen.every((m) => !m.includes(form)), 'no message holds the key');
      }
    } finally {
      tap.unsubscribe();
    }
  });

  test('a front-end may not instruct prefetches, and a stranger may not fetch', { skip }, async () => {
    const asFrontend = new RemotePrefetchApi(url, new ClusterIdentity(authority.issue('fe-1', 'frontend')));
    await assert.rejects(asFrontend.prefetch({ queueId: 'q', principal: 'p', nodeIds: ['fe-1'], reason: 'prefetch' }), /a frontend may not send this/);
    const stranger = await RemoteMetadata.join({ url, nats: natsLinkOf(undefined), identity: new ClusterIdentity(ClusterAuthority.generate().issue('fe-1', 'frontend')), prefix }, () => undefined);
    try {
      await assert.rejects(stranger.fetchEncryptKey('fe-1', 'q1', 'alice'), /not the cluster's/);
    } finally {
      stranger.close();
    }
  });
});

describe('partition ownership and snapshots on PostgreSQL', async () => {
  const skip = await skipUnless('postgres', POSTGRES_URL);
  const cluster = `pkp_test_owner_${process.pid}`;
  let db: pg.Client | undefined;
  let database: TestDatabase | undefined;
  let PG_URL = '';

  before(async () => {
    if (skip) return;
    database = await createTestDatabase();
    PG_URL = database.url;
    db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
  });

  after(async () => {
    await db?.end();
    await database?.drop();
  });

  test('three members share 8 partitions fairly, never two owners at once; a member that goes leaves its share to the others', { skip }, async () => {
    const owned = new Map<number, string>();
    let conflicts = 0;
    const member = (name: string) => new PartitionOwner({
      url: PG_URL, cluster, partitions: 8, roundMs: 100,
      onAcquire: async (p) => {
        if (owned.has(p)) conflicts++;
        owned.set(p, name);
      },
      onRelease: async (p) => void owned.delete(p),
    });
    const members = [member('a'), member('b'), member('c')];
    try {
      for (const m of members) m.start();
      await until(() => owned.size === 8 && members.every((m) => m.members === 3 && m.partitions.length <= 3), 'fair shares of three');
      assert.deepEqual(members.map((m) => m.partitions.length).sort(), [2, 3, 3]);
      await members[0]!.stop();
      await until(() => owned.size === 8 && members.slice(1).every((m) => m.partitions.length === 4), 'fair shares of two');
      assert.equal(conflicts, 0);
    } finally {
      for (const m of members) await m.stop();
    }
  });

  test('a snapshot keeps each stream\'s recent requests, and the next owner reads it back', { skip }, async () => {
    const store = new SnapshotStore(PG_URL, cluster);
    try {
      const history = new RecentHistory();
      for (let i = 0; i < 40; i++) history.add({ t: 1_000 + i, queue: 'q1', principal: 'p', node: 'fe-1', op: 'send' });
      history.add({ t: 5_000, queue: 'q2', op: 'receive' });
      await store.save(3, { takenAt: 9_000, events: history.events() });
      const back = await store.load(3);
      assert.equal(back?.takenAt, 9_000);
      assert.equal(back?.events.filter((e) => e.queue === 'q1').length, 32, 'the last 32 of a stream');
      assert.deepEqual(back?.events.at(-1), { t: 5_000, queue: 'q2', principal: undefined, node: undefined, op: 'receive' });
      assert.equal(await store.load(4), undefined);
    } finally {
      await store.close();
    }
  });
});
