/**
 * SendMessage (1 KiB, 64 connections, SigV4) on each message store, beside the bare echo route, in
 * one run with alternating rounds: `pkp up` on SQLite from this tree, on SQLite from a baseline
 * commit (PKP_BENCH_BASELINE=<git ref>: the "before" of a store change; skipped when unset), and
 * `pkp up --postgres` on a fresh database of the PostgreSQL at PKP_BENCH_POSTGRES_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres; skipped, saying so, when it does not answer).
 * Each server runs pinned to core 0, the load generator to core 1 (see sqs-peers.ts).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createQueues, run, sign, start, type Measured, type Server } from './sqs-peers.ts';
import { median } from './stats.ts';

const ROOT = join(import.meta.dirname, '..');
const CREDENTIALS = 'AKPKBENCH:bench-secret-0123456789';
/** Alternating rounds; more of them steady the medians on a busy machine. */
const ROUNDS = Number(process.env.PKP_BENCH_ROUNDS ?? 3);
const BODY = 'x'.repeat(1024);
const POSTGRES_URL = process.env.PKP_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A new database on the bench's PostgreSQL, or undefined (with why) when it does not answer. */
async function benchDatabase(): Promise<{ url: string; drop: () => Promise<void> } | string> {
  const name = `pkp_bench_${randomBytes(6).toString('hex')}`;
  const admin = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2_000 });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  try {
    await admin(`CREATE DATABASE ${name}`);
  } catch (error) {
    return `PostgreSQL not measured: ${(error as Error).message} (PKP_BENCH_POSTGRES_URL)`;
  }
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** The tracked files of `ref` in a temporary directory, sharing this tree's node_modules. */
function exportTree(ref: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'pkp-bench-baseline-'));
  const archive = execFileSync('git', ['-C', ROOT, 'archive', '--format=tar', ref], { maxBuffer: 512 * 1024 * 1024 });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

export async function benchStores(): Promise<Record<string, unknown>> {
  if (process.platform === 'linux') execFileSync('taskset', ['-pc', '1', String(process.pid)], { stdio: 'ignore' });
  const dirs: string[] = [];
  const servers: Server[] = [];
  const notes: string[] = [];
  let database: { url: string; drop: () => Promise<void> } | undefined;
  const pkp = async (name: string, tree: string, extra: string[] = []): Promise<Server> => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pkp-bench-stores-'));
    dirs.push(dataDir);
    const s = await start(name, [join(tree, 'bin/pkp.js'), 'up', '--port', '0', '--admin-port', '0', '--data-dir', dataDir, '--credentials', CREDENTIALS, '--log-level', 'warn', ...extra],
      /SQS endpoint: (http:\/\/[0-9.:]+)/, (m) => m[1]!);
    servers.push(s);
    return s;
  };
  try {
    const echo = await start('echo', ['--import', 'tsx', 'bench/echo-server.ts'], /ECHO (\d+)/, (m) => `http://127.0.0.1:${m[1]}`);
    servers.push(echo);
    const stores: Server[] = [await pkp('sqlite', ROOT)];
    const baseline = process.env.PKP_BENCH_BASELINE;
    if (baseline) {
      const tree = exportTree(baseline);
      dirs.push(tree);
      stores.push(await pkp(`sqlite-baseline`, tree));
    } else {
      notes.push('no baseline: set PKP_BENCH_BASELINE=<git ref> to measure SQLite before a change');
    }
    const pgDatabase = await benchDatabase();
    if (typeof pgDatabase === 'string') notes.push(pgDatabase);
    else {
      database = pgDatabase;
      stores.push(await pkp('postgres', ROOT, ['--postgres', database.url]));
    }

    const requests = new Map<Server, { headers: Record<string, string>; body: string }[]>();
    for (const s of stores) {
      const [url] = await createQueues(s.endpoint, ['bench']);
      const body = JSON.stringify({ QueueUrl: url, MessageBody: BODY });
      requests.set(s, [{ headers: await sign(s.endpoint, 'SendMessage', body), body }]);
    }
    requests.set(echo, requests.get(stores[0]!)!);
    const all = [echo, ...stores];
    for (const s of all) await run(s, requests.get(s)!); // warm-up
    const rounds: Record<string, Measured[]> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of round % 2 === 0 ? all : [...all].reverse()) (rounds[s.name] ??= []).push(await run(s, requests.get(s)!));
    }
    const med = (name: string, field: keyof Measured) => median(rounds[name]!.map((m) => m[field]));
    const echoRps = med('echo', 'rps');
    const sendMessage = Object.fromEntries(all.map((s) => [s.name, {
      rps: med(s.name, 'rps'), vsEcho: med(s.name, 'rps') / echoRps, p50Ms: med(s.name, 'p50'), p99Ms: med(s.name, 'p99'),
      cpuUsPerRequest: med(s.name, 'cpuUsPerRequest'), failures: rounds[s.name]!.reduce((n, m) => n + m.failures, 0),
    }]));
    const ratio = (a: string, b: string) => (rounds[a] && rounds[b] ? med(a, 'rps') / med(b, 'rps') : null);
    return {
      secondsPerRound: Number(process.env.PKP_BENCH_SECONDS ?? 6), rounds: ROUNDS, baseline: baseline ?? null, notes,
      sendMessage, sqliteVsBaseline: ratio('sqlite', 'sqlite-baseline'), postgresVsSqlite: ratio('postgres', 'sqlite'), raw: rounds,
    };
  } finally {
    for (const s of servers) s.child.kill('SIGTERM');
    await Promise.all(servers.map((s) => new Promise((resolve) => (s.child.exitCode !== null ? resolve(null) : s.child.once('exit', resolve)))));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await database?.drop();
  }
}
