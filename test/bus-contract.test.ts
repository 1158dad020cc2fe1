// One contract for every EventBus: the in-process bus and the bus on NATS JetStream (a real server).
import { after, describe, it } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { InProcessBus } from '../src/bus/in-process.ts';
import { NatsEventBus } from '../src/bus/nats-bus.ts';
import { partitionOf } from '../src/bus/partition.ts';
import type { AccessEvent, EventBus, PkpEvent } from '../src/bus/types.ts';
import { NATS_SERVER, NATS_URL, natsServerMissing, skipUnless } from './services.ts';
import { freePort } from '../src/roles/local-cluster.ts';
import { ClusterAuthority, ClusterIdentity } from '../src/cluster/identity.ts';
import { until } from './helpers/until.ts';

const PARTITIONS = 4;

const access = (queueId: string, i: number): AccessEvent => ({ type: 'access', at: 1_000 + i, queueId, nodeId: 'fe-1', principal: 'AKPKALICE', op: 'send', bytes: i });

interface Implementation {
  name: string;
  skip: Promise<false | string>;
  open(options?: { maxBuffered?: number }): Promise<EventBus>;
}

const opened: { bus: EventBus; remove?: () => Promise<void> }[] = [];
/**
 * Closes every bus opened so far and removes its stream. Called from each suite's own `after`: a
 * file-level hook would run only once the event loop is empty, which open connections prevent.
 */
async function closeOpened(): Promise<void> {
  for (const { bus, remove } of opened.splice(0)) {
    await bus.close();
    await remove?.();
  }
}

const implementations: Implementation[] = [
  {
    name: 'in-process',
    skip: Promise.resolve(false),
    async open() {
      const bus = new InProcessBus(() => {}, { partitions: PARTITIONS });
      opened.push({ bus });
      return bus;
    },
  },
  {
    name: 'NATS JetStream',
    skip: skipUnless('nats', NATS_URL),
    async open(options = {}) {
      const stream = `PKP_TEST_${randomBytes(6).toString('hex')}`;
      return openNats(stream, options);
    },
  },
  {
    name: 'NATS JetStream, batches signed by a cluster front-end',
    skip: skipUnless('nats', NATS_URL),
    async open(options = {}) {
      return openNats(`PKP_TEST_${randomBytes(6).toString('hex')}`, options, FRONTEND);
    },
  },
];

const AUTHORITY = ClusterAuthority.generate();
const FRONTEND = new ClusterIdentity(AUTHORITY.issue('fe-1', 'frontend'));

async function openNats(stream: string, options: { maxBuffered?: number }, identity?: ClusterIdentity): Promise<NatsEventBus> {
  const bus = await NatsEventBus.open({ servers: NATS_URL, stream, partitions: PARTITIONS, maxBuffered: options.maxBuffered, retentionMs: 600_000, maxBytes: 8 * 1024 * 1024, identity });
  // Removed through a connection of its own: the bus under test may have been closed already.
  opened.push({ bus, remove: async () => {
    const nc = await connect({ servers: NATS_URL });
    try {
      await (await jetstreamManager(nc)).streams.delete(stream);
    } finally {
      await nc.close();
    }
  } });
  return bus;
}

// Every skip is known before the first suite is declared: with --test-force-exit, a suite declared
// after an await that follows a running suite would never run.
const skips = await Promise.all(implementations.map((impl) => impl.skip));

for (const [index, impl] of implementations.entries()) {
  describe(`EventBus contract: ${impl.name}`, { skip: skips[index] }, () => {
    after(closeOpened);
    it('delivers every event to every subscriber, in publish order per queue', async () => {
      const bus = await impl.open();
      const a: PkpEvent[] = [];
      const b: PkpEvent[] = [];
      bus.subscribe((e) => a.push(e));
      bus.subscribe((e) => b.push(e));
      await bus.flush();
      const events = Array.from({ length: 300 }, (_, i) => access(`q${i % 3}`, i));
      for (const e of events) bus.publish(e);
      await bus.flush();
      await until(() => a.length === 300 && b.length === 300, 'both subscribers to get 300 events');
      for (const seen of [a, b]) {
        for (const q of ['q0', 'q1', 'q2']) {
          assert.deepEqual(seen.filter((e) => e.queueId === q), events.filter((e) => e.queueId === q));
        }
      }
      const stats = bus.stats();
      assert.equal(stats.published, 300);
      assert.equal(stats.dropped, 0);
      assert.equal(stats.delivered, 600);
    });

    it('a partition subscriber sees exactly the queues of its partitions', async () => {
      const bus = await impl.open();
      const seen: PkpEvent[] = [];
      bus.subscribe((e) => seen.push(e), { partitions: [1, 3] });
      await bus.flush();
      const queues = Array.from({ length: 40 }, (_, i) => `queue-${i}`);
      for (const [i, q] of queues.entries()) bus.publish(access(q, i));
      await bus.flush();
      const expected = queues.filter((q) => [1, 3].includes(partitionOf(q, PARTITIONS)));
      assert.ok(expected.length > 0 && expected.length < queues.length);
      await until(() => seen.length >= expected.length, `${expected.length} events`);
      assert.deepEqual(seen.map((e) => e.queueId).sort(), [...expected].sort());
    });

    it('a throwing subscriber is counted and skipped; the others and the publisher go on', async () => {
      const bus = await impl.open();
      const seen: PkpEvent[] = [];
      bus.subscribe(() => {
        throw new Error('broken subscriber');
      });
      bus.subscribe((e) => seen.push(e));
      await bus.flush();
      for (let i = 0; i < 5; i++) bus.publish(access('q', i));
      await bus.flush();
      await until(() => seen.length === 5 && bus.stats().handlerErrors === 5, 'five deliveries and five subscriber errors');
    });

    it('after unsubscribe nothing more arrives; after close, publish is a counted drop', async () => {
      const bus = await impl.open();
      const seen: PkpEvent[] = [];
      const marker: PkpEvent[] = [];
      const unsubscribe = bus.subscribe((e) => seen.push(e));
      bus.subscribe((e) => marker.push(e));
      await bus.flush();
      bus.publish(access('q', 1));
      await bus.flush();
      await until(() => seen.length === 1 && marker.length === 1, 'the first event');
      unsubscribe();
      bus.publish(access('q', 2));
      await bus.flush();
      // The other subscriber got the second event, so the first would have too.
      await until(() => marker.length === 2, 'the second event');
      assert.equal(seen.length, 1);
      await bus.close();
      assert.doesNotThrow(() => bus.publish(access('q', 3)));
      assert.equal(bus.stats().dropped, 1);
    });
  });
}

describe('NATS JetStream bus: what only a durable, networked bus has', { skip: skips[1] }, () => {
  const nats = implementations[1]!;
  after(closeOpened);

  it('a subscriber that starts late reads the retained history', async () => {
    const bus = await nats.open();
    for (let i = 0; i < 20; i++) bus.publish(access('history', i));
    await bus.flush();
    const seen: PkpEvent[] = [];
    bus.subscribe((e) => seen.push(e), { from: 'retained' });
    await until(() => seen.length === 20, 'the 20 retained events');
    assert.deepEqual(seen.map((e) => e.at), Array.from({ length: 20 }, (_, i) => 1_000 + i));
  });

  it('messages that are not valid events are counted and skipped, the valid ones delivered', async () => {
    const bus = await nats.open();
    const seen: PkpEvent[] = [];
    bus.subscribe((e) => seen.push(e), { partitions: [0] });
    await bus.flush();
    const stream = (bus as unknown as { options: { stream: string } }).options.stream;
    const nc = await connect({ servers: NATS_URL });
    try {
      const forged = [
        'not json',
        JSON.stringify({ v: 2, events: [] }),
        JSON.stringify({ v: 1, events: [{ type: 'access', at: 'soon', queueId: 'q', nodeId: 'n', principal: 'p', op: 'send', bytes: 1 }] }),
        JSON.stringify({ v: 1, events: [{ ...access('q', 1), op: 'explode' }, access('valid', 7)] }),
      ];
      for (const text of forged) nc.publish(`${stream}.0`, text);
      await nc.flush();
    } finally {
      await nc.close();
    }
    await until(() => seen.length === 1 && bus.stats().rejected === 4, 'one valid event and four rejections');
    assert.deepEqual(seen, [access('valid', 7)]);
  });

  it('publish never waits: beyond the buffer bound, events are dropped and counted', async () => {
    const bus = await nats.open({ maxBuffered: 10 });
    for (let i = 0; i < 100; i++) bus.publish(access('burst', i));
    assert.equal(bus.stats().dropped, 90);
    await bus.flush();
    assert.equal(bus.stats().published, 100);
  });
});

describe('NATS JetStream bus of a cluster: signed batches, a partition\'s history', { skip: skips[2] }, () => {
  after(closeOpened);

  it('an unsigned batch, one signed by another role, or by a stranger is rejected; a front-end\'s is delivered', async () => {
    const stream = `PKP_TEST_${randomBytes(6).toString('hex')}`;
    const bus = await openNats(stream, {}, FRONTEND);
    const seen: PkpEvent[] = [];
    bus.subscribe((e) => seen.push(e), { partitions: [0] });
    await bus.flush();
    const nc = await connect({ servers: NATS_URL });
    try {
      const batch = { v: 1, events: [access('q', 1)] };
      const prefetcher = new ClusterIdentity(AUTHORITY.issue('pf-1', 'prefetcher'));
      const stranger = new ClusterIdentity(ClusterAuthority.generate().issue('fe-1', 'frontend'));
      nc.publish(`${stream}.0`, JSON.stringify(batch));
      nc.publish(`${stream}.0`, prefetcher.sign(`${stream}.0`, batch));
      nc.publish(`${stream}.0`, stranger.sign(`${stream}.0`, batch));
      nc.publish(`${stream}.0`, FRONTEND.sign(`${stream}.1`, batch));
      nc.publish(`${stream}.0`, FRONTEND.sign(`${stream}.0`, { v: 1, events: [access('signed', 2)] }));
      await nc.flush();
    } finally {
      await nc.close();
    }
    await until(() => seen.length === 1 && bus.stats().rejected === 4, 'one delivered, four rejected');
    assert.equal(seen[0]!.queueId, 'signed');
  });

  it('history(partition, since) gives what the stream retained of that partition from then on, then ends', async () => {
    const bus = await openNats(`PKP_TEST_${randomBytes(6).toString('hex')}`, {}, FRONTEND);
    const queues = Array.from({ length: 8 }, (_, i) => `h${i}`);
    const early = queues.map((q, i) => access(q, i));
    for (const e of early) bus.publish(e);
    await bus.flush();
    const since = Date.now() + 5;
    await new Promise((resolve) => setTimeout(resolve, 20));
    const late = queues.map((q, i) => access(q, 100 + i));
    for (const e of late) bus.publish(e);
    await bus.flush();
    for (let p = 0; p < PARTITIONS; p++) {
      const read: PkpEvent[] = [];
      for await (const batch of bus.history(p, since)) read.push(...batch);
      assert.deepEqual(read, late.filter((e) => partitionOf(e.queueId, PARTITIONS) === p), `partition ${p}`);
      const all: PkpEvent[] = [];
      for await (const batch of bus.history(p)) all.push(...batch);
      assert.equal(all.length, [...early, ...late].filter((e) => partitionOf(e.queueId, PARTITIONS) === p).length);
    }
  });
});

// A private server, so it can be killed and started again on the same port and store.
describe('NATS JetStream bus across a server restart', { skip: natsServerMissing() }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pkp-bus-restart-'));
  let server: ChildProcess | undefined;
  let bus: NatsEventBus | undefined;
  const start = (port: number): ChildProcess => spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
  const stop = async (): Promise<void> => {
    if (!server || server.exitCode !== null || server.signalCode !== null) return;
    const exited = new Promise((resolve) => server!.once('exit', resolve));
    server.kill('SIGKILL');
    await exited;
  };
  after(async () => {
    await bus?.close().catch(() => undefined);
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('kill -9 the server and start it again: the subscriber gets every event published after it is back', { timeout: 60_000 }, async () => {
    const port = await freePort();
    server = start(port);
    const url = `nats://127.0.0.1:${port}`;
    await until(async () => {
      bus = await NatsEventBus.open({ servers: url, stream: 'PKP_TEST_RESTART', partitions: PARTITIONS }).catch(() => undefined);
      return bus !== undefined;
    }, 'the private server up', 10_000, 50);
    assert.ok(bus);
    const seen: PkpEvent[] = [];
    bus.subscribe((e) => seen.push(e));
    await bus.flush();
    bus.publish(access('before', 0));
    await until(() => seen.length === 1, 'the event before the restart');

    await stop();
    server = start(port);
    // Published until one arrives (those sent while the connection is still down are dropped and
    // counted, and some may still arrive late); then ten more, every one of which must arrive.
    let i = 1;
    await until(async () => {
      bus!.publish(access('after', i++));
      await bus!.flush();
      return seen.length > 1;
    }, 'an event after the restart', 30_000, 100);
    const queues = Array.from({ length: 10 }, (_, k) => `q${k}`);
    for (const [k, q] of queues.entries()) bus!.publish(access(q, 1_000 + k));
    await bus!.flush();
    const arrived = (): string[] => seen.map((e) => e.queueId).filter((q) => q.startsWith('q')).sort();
    await until(() => arrived().length >= queues.length, 'ten events after the restart', 10_000);
    assert.deepEqual(arrived(), [...queues].sort());
  });
});
