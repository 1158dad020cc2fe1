// Health and readiness on both ports; a port that cannot bind stops the whole start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startService } from '../src/service.ts';

const ROOT = join(import.meta.dirname, '..');
const CRED = { accessKeyId: 'HEALTHKEY', secretAccessKey: 'health-secret-1' };

const occupy = async (): Promise<Server> => {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return s;
};
const portOf = (s: Server): number => (s.address() as { port: number }).port;
const freePort = async (): Promise<number> => {
  const s = await occupy();
  const port = portOf(s);
  await new Promise((resolve) => s.close(resolve));
  return port;
};
/** Whether something accepts connections on the port. */
const listening = (port: number): Promise<boolean> => new Promise((resolve) => {
  const s = createServer();
  s.once('error', () => resolve(true));
  s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
});

test('/healthz and /readyz answer on the SQS port and the admin port, without a credential; the rest of the admin port needs the token', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-health-'));
  const service = await startService({ dataDir, port: 0, adminPort: 0, credentials: [CRED], prefetch: false });
  try {
    for (const base of [service.endpoint, service.adminEndpoint!]) {
      const alive = await fetch(`${base}/healthz`);
      assert.equal(alive.status, 200);
      const ready = await fetch(`${base}/readyz`);
      const body = (await ready.json()) as { ready: boolean; checks: Record<string, { ok: boolean }> };
      assert.equal(ready.status, 200, JSON.stringify(body));
      assert.equal(body.ready, true);
      assert.deepEqual(Object.keys(body.checks).sort(), ['keyTier', 'kms', 'store']);
    }
    assert.equal((await fetch(`${service.adminEndpoint}/metrics`)).status, 401);
    assert.equal((await fetch(`${service.adminEndpoint}/api/stats`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    const ok = await fetch(`${service.adminEndpoint}/metrics`, { headers: { authorization: `Bearer ${service.adminToken}` } });
    assert.equal(ok.status, 200);
    // The query form sets an HttpOnly cookie and drops the token from the address.
    const login = await fetch(`${service.adminEndpoint}/?token=${service.adminToken}`, { redirect: 'manual' });
    assert.equal(login.status, 303);
    assert.equal(login.headers.get('location'), '/');
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    assert.match(login.headers.get('set-cookie')!, /HttpOnly/);
    assert.equal((await fetch(`${service.adminEndpoint}/`, { headers: { cookie } })).status, 200);
  } finally {
    await service.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('readiness fails (503) when the key tier stops serving, naming the check', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-health-'));
  const service = await startService({ dataDir, port: 0, adminPort: null, credentials: [CRED], prefetch: false });
  try {
    service.keys.close();
    const ready = await fetch(`${service.endpoint}/readyz`);
    assert.equal(ready.status, 503);
    const body = (await ready.json()) as { checks: Record<string, { ok: boolean }> };
    assert.equal(body.checks.keyTier!.ok, false);
    assert.equal(body.checks.store!.ok, true);
  } finally {
    await service.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a taken admin port stops the start with a clear error and leaves the SQS port closed', async () => {
  const taken = await occupy();
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-health-'));
  try {
    const sqsPort = await freePort();
    await assert.rejects(
      startService({ dataDir, port: sqsPort, adminPort: portOf(taken), credentials: [CRED], prefetch: false }),
      new RegExp(`cannot listen on 127\\.0\\.0\\.1:${portOf(taken)} \\(admin port\\): EADDRINUSE`),
    );
    assert.equal(await listening(sqsPort), false, 'the SQS port was released');
    // The store was closed too: the same data directory starts again.
    const again = await startService({ dataDir, port: sqsPort, adminPort: null, credentials: [CRED], prefetch: false });
    await again.close();

    // The command: non-zero exit, the reason on stderr, and it does not hang half-started.
    const run = spawnSync(process.execPath, ['bin/pkp.js', 'up', '--port', String(sqsPort), '--admin-port', String(portOf(taken)), '--data-dir', dataDir], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /cannot listen on 127\.0\.0\.1:\d+ \(admin port\): EADDRINUSE/);
    const sqsTaken = spawnSync(process.execPath, ['bin/pkp.js', 'up', '--port', String(portOf(taken)), '--admin-port', '0', '--data-dir', dataDir], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(sqsTaken.status, 1);
    assert.match(sqsTaken.stderr, /\(SQS port\): EADDRINUSE/);
  } finally {
    await new Promise((resolve) => taken.close(resolve));
    rmSync(dataDir, { recursive: true, force: true });
  }
});
