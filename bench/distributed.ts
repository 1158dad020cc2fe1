/**
 * Distributed mode: SendMessage throughput of `pkp up --distributed` with 1, 2 and 3 front-end
 * processes (the scaling ratio), beside the one-process `pkp up --postgres` on the same PostgreSQL,
 * in one run with alternating rounds; then the prefetcher failover time (kill -9 one of three
 * prefetchers: until every partition is owned again), three times. Each cluster gets a database and
 * a JetStream stream of its own. Nothing is pinned: the processes share the machine's cores with the
 * load generator, so the ratio says what this machine can give, not what more machines would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { clusterKey } from '../src/cluster/partition-owner.ts';
import { createQueues, run, sign, type Measured, type Server } from './sqs-peers.ts';
import { median } from './stats.ts';

const ROOT = join(import.meta.dirname, '..');
const CREDENTIALS = 'AKPKBENCH:bench-secret-0123456789';
const POSTGRES = process.env.PKP_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const NATS = process.env.PKP_BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const ROUNDS = 3;
const SECONDS = Number(process.env.PKP_BENCH_SECONDS ?? 6);
const BODY = 'x'.repeat(1024);

interface Cluster extends Server {
  database: string;
  stream: string;
  cluster: string;
  prefetcherPids: number[];
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>, url = POSTGRES): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

function urlOf(database: string): string {
  const url = new URL(POSTGRES);
  url.pathname = `/${database}`;
  return url.toString();
}

async function startCluster(name: string, args: string[], dirs: string[]): Promise<Cluster> {
  const id = randomBytes(4).toString('hex');
  const database = `pkp_bench_${id}`;
  await admin((c) => c.query(`CREATE DATABASE ${database}`));
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-bench-dist-'));
  dirs.push(dataDir);
  const stream = `PKP_BENCH_${id}`;
  const cluster = `pkp_bench_${id}`;
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, 'bin/pkp.js'), 'up', '--port', '0', '--admin-port', '0', '--data-dir', dataDir,
    '--credentials', CREDENTIALS, '--log-level', 'error', '--postgres', urlOf(database), '--nats', NATS, '--nats-stream', stream, '--cluster', cluster, ...args],
  { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PKP_BENCH_'))) });
  let endpoint = '';
  const prefetcherPids: number[] = [];
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      endpoint ||= /SQS endpoint: (http:\/\/[0-9.:]+)/.exec(out)?.[1] ?? '';
      const processes = /Processes: (.*)\n/.exec(out);
      if (endpoint && (processes || !args.includes('--distributed'))) {
        for (const m of (processes?.[1] ?? '').matchAll(/prefetcher [\w-]+ \(pid (\d+)\)/g)) prefetcherPids.push(Number(m[1]));
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited early (${code})`)));
  });
  return { name, endpoint, child, database, stream, cluster, prefetcherPids };
}

async function stopCluster(c: Cluster): Promise<void> {
  if (c.child.exitCode === null) {
    const exited = new Promise((resolve) => c.child.once('exit', resolve));
    c.child.kill('SIGINT');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
    c.child.kill('SIGKILL');
  }
  await admin((db) => db.query(`DROP DATABASE IF EXISTS ${c.database} WITH (FORCE)`)).catch(() => undefined);
  const nc = await connect({ servers: NATS });
  await (await jetstreamManager(nc)).streams.delete(c.stream).catch(() => undefined);
  await nc.close();
}

/** Kills one prefetcher and times until every partition is locked again. */
async function failover(c: Cluster, victim: number): Promise<number> {
  return admin(async (db) => {
    const owned = async () => Number((await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND objsubid = 2`, [clusterKey(c.cluster)])).rows[0]!.n);
    for (let t = Date.now(); (await owned()) < 8; ) if (Date.now() - t > 30_000) throw new Error('partitions never all owned');
    const killedAt = Date.now();
    process.kill(victim, 'SIGKILL');
    // The dead session's locks go as soon as the server notices; then the survivors take them.
    while (Date.now() - killedAt < 3_000 && (await owned()) === 8) await new Promise((r) => setTimeout(r, 10));
    while ((await owned()) < 8) {
      if (Date.now() - killedAt > 30_000) throw new Error('partitions not owned again within 30 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    return Date.now() - killedAt;
  }, urlOf(c.database));
}

export async function benchDistributed(): Promise<Record<string, unknown>> {
  const dirs: string[] = [];
  const clusters: Cluster[] = [];
  try {
    clusters.push(await startCluster('one-process', [], dirs));
    for (const n of [1, 2, 3]) clusters.push(await startCluster(`distributed-${n}fe`, ['--distributed', '--frontends', String(n), '--prefetchers', '2'], dirs));
    const requests = new Map<Server, { headers: Record<string, string>; body: string }[]>();
    for (const c of clusters) {
      const [url] = await createQueues(c.endpoint, ['bench']);
      const body = JSON.stringify({ QueueUrl: url, MessageBody: BODY });
      requests.set(c, [{ headers: await sign(c.endpoint, 'SendMessage', body), body }]);
      await run(c, requests.get(c)!); // warm-up
    }
    const rounds: Record<string, Measured[]> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of round % 2 === 0 ? clusters : [...clusters].reverse()) (rounds[c.name] ??= []).push(await run(c, requests.get(c)!));
    }
    const rps = (name: string) => median(rounds[name]!.map((m) => m.rps));
    const sendMessage = Object.fromEntries(clusters.map((c) => [c.name, {
      rps: rps(c.name), p50Ms: median(rounds[c.name]!.map((m) => m.p50)), p99Ms: median(rounds[c.name]!.map((m) => m.p99)),
      failures: rounds[c.name]!.reduce((n, m) => n + m.failures, 0),
    }]));
    // Bus traffic: events stored per request served (aggregation makes it grow with active queues, not requests).
    const nc = await connect({ servers: NATS });
    const busTraffic: Record<string, { requests: number; natsMessages: number }> = {};
    try {
      const jsm = await jetstreamManager(nc);
      for (const c of clusters.filter((x) => x.name.startsWith('distributed'))) {
        const requests = Math.round(rounds[c.name]!.reduce((n, m) => n + m.rps, 0) * SECONDS);
        busTraffic[c.name] = { requests, natsMessages: (await jsm.streams.info(c.stream)).state.messages };
      }
    } finally {
      await nc.close();
    }
    // PostgreSQL's connection limit: the throughput clusters go before the failover ones start.
    for (const c of clusters.splice(0)) await stopCluster(c);
    // Failover: a cluster of three prefetchers; kill one, time, start over (a fresh cluster each time).
    const failoverMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await startCluster(`failover-${i}`, ['--distributed', '--frontends', '1', '--prefetchers', '3'], dirs);
      try {
        failoverMs.push(await failover(c, c.prefetcherPids[0]!));
      } finally {
        await stopCluster(c);
      }
    }
    return {
      secondsPerRound: SECONDS, rounds: ROUNDS, cores: cpus().length, busTraffic,
      sendMessage,
      scaling: { twoVsOne: rps('distributed-2fe') / rps('distributed-1fe'), threeVsOne: rps('distributed-3fe') / rps('distributed-1fe'), oneFrontendVsOneProcess: rps('distributed-1fe') / rps('one-process') },
      prefetcherFailoverMs: { runs: failoverMs, median: median(failoverMs) },
      raw: rounds,
    };
  } finally {
    for (const c of clusters) await stopCluster(c);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
