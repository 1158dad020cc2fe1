// The SQS endpoint under overload: long polls beyond the waiter cap, idle and surplus connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { VirtualClock } from '../src/core/clock.ts';
import { startService, type RunningService, type ServiceOptions } from '../src/service.ts';

const ALICE = { accessKeyId: 'AKPKOVERLOAD', secretAccessKey: 'overload-secret-0123' };

async function withService(options: Partial<ServiceOptions>, body: (s: RunningService, clock: VirtualClock, sqs: SQSClient) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-overload-'));
  const clock = new VirtualClock(Date.now());
  let service: RunningService | undefined;
  let sqs: SQSClient | undefined;
  try {
    service = await startService({ dataDir, port: 0, adminPort: null, frontends: 2, credentials: [ALICE], clock, prefetch: false, ...options });
    sqs = new SQSClient({
      endpoint: service.endpoint, region: 'us-east-1', credentials: ALICE, maxAttempts: 1,
      requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 16 }) },
    });
    await body(service, clock, sqs);
  } finally {
    sqs?.destroy();
    await service?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Resolves when the socket is closed by the server; rejects if that takes longer than `limitMs` of real time. */
function closedWithin(socket: Socket, limitMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => reject(new Error(`socket still open after ${limitMs} ms`)), limitMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function open(endpoint: string): Promise<Socket> {
  const url = new URL(endpoint);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => resolve(socket));
    socket.once('error', reject);
  });
}

test('a long poll beyond the waiter cap answers empty at once instead of spinning', async () => {
  await withService({ maxLongPolls: 2 }, async (service, clock, sqs) => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'parked' }));
    const parked = [1, 2].map(() => sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 20 })));
    for (const p of parked) p.catch(() => undefined); // awaited below; a failure before that must not go unhandled
    // Wait (for I/O, not for time) until both are parked.
    const frontendsParked = () => service.frontends.reduce((n, f) => n + f.node.activeLongPolls, 0);
    while (frontendsParked() < 2) await new Promise((resolve) => setImmediate(resolve));
    // The clock does not move: a receive that looped until its deadline would never come back.
    const third = await sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 20 }));
    assert.deepEqual(third.Messages ?? [], []);
    assert.equal(await service.metrics.longPollsRefused.get().then((m) => m.values[0]?.value), 1);
    // The parked ones are still served normally: a send wakes them.
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'wake up' }));
    await clock.advance(20_000);
    const answers = await Promise.all(parked);
    assert.equal(answers.flatMap((a) => a.Messages ?? []).length, 1);
  });
});

test('idle connections are closed, and connections beyond the cap are refused and counted', async () => {
  await withService({ connections: { idleMs: 300, keepAliveMs: 300, headersMs: 300, maxConnections: 3 } }, async (service) => {
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) sockets.push(await open(service.endpoint));
      // A fourth connection is accepted by the kernel and closed by the server at once.
      const surplus = await open(service.endpoint);
      sockets.push(surplus);
      await closedWithin(surplus, 5_000);
      assert.equal(await service.metrics.connectionsRefused.get().then((m) => m.values[0]?.value), 1);
      // The three that never sent a byte are reaped by the idle timeout (300 ms here; 60 s by default).
      await Promise.all(sockets.slice(0, 3).map((s) => closedWithin(s, 10_000)));
      // Once they are gone, new connections are served again.
      const response = await fetch(`${service.endpoint}/`, { method: 'POST', body: '{}' });
      assert.equal(response.status, 403);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
