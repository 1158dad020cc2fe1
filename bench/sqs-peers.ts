/**
 * The request path against its limit and a peer, in one run: PKP (`pkp up`), fauxqs (in memory, no
 * encryption, no durability), a bare fastify echo route and a bare node:http one. Each server runs
 * pinned to core 0, the load generator to core 1; A/B rounds alternate the servers and the medians
 * are reported. Requests are really signed (SigV4). Server CPU per request comes from the server
 * process's own CPU time. The floors (bench/floors.ts) are what a send cannot do without.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { CreateQueueCommand, SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { measureFloors } from './floors.ts';
import { median, quantile } from './stats.ts';

const ROOT = join(import.meta.dirname, '..');
const CREDENTIALS = { accessKeyId: 'AKPKBENCH', secretAccessKey: 'bench-secret-0123456789' };
const CONNECTIONS = 64;
const SECONDS = Number(process.env.PKP_BENCH_SECONDS ?? 6);
const ROUNDS = 3;
const BODY = 'x'.repeat(1024);
/** Messages a second no server here drains (the fastest measured: about 8,600). */
const MAX_DRAIN_PER_SECOND = 20_000;
/**
 * Key-cache entries per node: the 10,000-queue run needs an encrypt key per queue on every node,
 * and an LRU cache at its capacity under a cyclic access misses on every request.
 */
const CACHE_ENTRIES = 30_000;

export interface Server {
  name: string;
  endpoint: string;
  child: ChildProcess;
}

function pinned(args: string[]): string[] {
  return process.platform === 'linux' ? ['taskset', '-c', '0', process.execPath, ...args] : [process.execPath, ...args];
}

/** The bench's own PKP_BENCH_* variables stay out of the servers (a server of an older commit may not know them). */
function serverEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PKP_BENCH_')));
}

export async function start(name: string, args: string[], ready: RegExp, toEndpoint: (m: RegExpMatchArray) => string): Promise<Server> {
  const [command, ...rest] = pinned(args);
  const child = spawn(command!, rest, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: serverEnv() });
  const match = await new Promise<RegExpMatchArray>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = out.match(ready);
      if (m) resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`${name} exited early (${code})`)));
  });
  return { name, endpoint: toEndpoint(match), child };
}

/** User + system CPU seconds the process has used (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const signer = new SignatureV4({ credentials: CREDENTIALS, region: 'us-east-1', service: 'sqs', sha256: Sha256 });

export async function sign(endpoint: string, action: string, body: string): Promise<Record<string, string>> {
  const url = new URL(endpoint);
  const signed = await signer.sign({
    method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: '/',
    headers: { host: url.host, 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `AmazonSQS.${action}` },
    body,
  });
  return signed.headers as Record<string, string>;
}

export interface Measured {
  rps: number;
  /** Latency percentiles in ms, from each response's own time (autocannon's are whole milliseconds). */
  p50: number;
  p99: number;
  cpuUsPerRequest: number;
  failures: number;
}

/** One load run of presigned requests, cycling through `requests`. */
export async function run(server: Server, requests: { headers: Record<string, string>; body: string }[]): Promise<Measured> {
  let next = 0;
  const before = cpuSeconds(server.child.pid!);
  // autocannon's histogram keeps whole milliseconds (a p50 of 6.9 ms reads 6): its responses carry the exact time.
  const latencies: number[] = [];
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url: `${server.endpoint}/`, method: 'POST', connections: CONNECTIONS, duration: SECONDS,
      requests: [{
        setupRequest: (req) => {
          const r = requests[next++ % requests.length]!;
          return { ...req, headers: r.headers, body: r.body };
        },
      }],
    }, (error, done) => (error ? reject(error) : resolve(done)));
    instance.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
  const cpu = cpuSeconds(server.child.pid!) - before;
  return {
    rps: result.requests.average, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99),
    cpuUsPerRequest: (cpu * 1e6) / Math.max(1, result.requests.total), failures: result.errors + result.non2xx,
  };
}

export async function createQueues(endpoint: string, names: string[]): Promise<string[]> {
  const sqs = new SQSClient({ endpoint, region: 'us-east-1', credentials: CREDENTIALS });
  try {
    const urls: string[] = [];
    for (const name of names) urls.push((await sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl!);
    return urls;
  } finally {
    sqs.destroy();
  }
}

async function prefill(endpoint: string, queueUrl: string, messages: number): Promise<void> {
  const sqs = new SQSClient({ endpoint, region: 'us-east-1', credentials: CREDENTIALS });
  try {
    const batches = Math.ceil(messages / 10);
    const workers = Array.from({ length: 16 }, async (_, w) => {
      for (let b = w; b < batches; b += 16) {
        await sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: Array.from({ length: 10 }, (_, i) => ({ Id: `m${i}`, MessageBody: BODY })) }));
      }
    });
    await Promise.all(workers);
  } finally {
    sqs.destroy();
  }
}

/**
 * Receive 10 + DeleteMessageBatch pairs from `workers` concurrent loops with real SDK clients
 * (each request signed as it is sent); messages per second and server CPU per message.
 */
async function receiveDelete(server: Server, queueUrl: string): Promise<Measured & { messagesPerSecond: number; emptyReceives: number }> {
  const { ReceiveMessageCommand, DeleteMessageBatchCommand } = await import('@aws-sdk/client-sqs');
  const sqs = new SQSClient({ endpoint: server.endpoint, region: 'us-east-1', credentials: CREDENTIALS });
  const latencies: number[] = [];
  let messages = 0;
  let failures = 0;
  let empty = 0;
  const before = cpuSeconds(server.child.pid!);
  const started = performance.now();
  const until = started + SECONDS * 1000;
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (performance.now() < until) {
      const t0 = performance.now();
      try {
        const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
        const list = got.Messages ?? [];
        if (list.length === 0) empty++;
        if (list.length > 0) {
          await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: list.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle! })) }));
        }
        messages += list.length;
      } catch {
        failures++;
      }
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(server.child.pid!) - before;
  sqs.destroy();
  return {
    rps: latencies.length / seconds, messagesPerSecond: messages / seconds,
    p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99),
    cpuUsPerRequest: (cpu * 1e6) / Math.max(1, messages), failures, emptyReceives: empty,
  };
}

export async function benchSqsPeers(): Promise<Record<string, unknown>> {
  if (process.platform === 'linux') execFileSync('taskset', ['-pc', '1', String(process.pid)], { stdio: 'ignore' });
  const dataDirs: string[] = [];
  const servers: Server[] = [];
  const pkp = async (name: string, extra: string[]) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pkp-bench-peers-'));
    dataDirs.push(dataDir);
    const s = await start(name, ['bin/pkp.js', 'up', '--port', '0', '--admin-port', '0', '--data-dir', dataDir, '--credentials', `${CREDENTIALS.accessKeyId}:${CREDENTIALS.secretAccessKey}`, '--log-level', 'warn', '--capacity', String(CACHE_ENTRIES), ...extra],
      /SQS endpoint: (http:\/\/[0-9.:]+)/, (m) => m[1]!);
    servers.push(s);
    return s;
  };
  try {
    const normal = await pkp('pkp', []);
    const full = await pkp('pkp-durability-full', ['--durability', 'full']);
    const fauxqs = await start('fauxqs', ['--import', 'tsx', 'bench/fauxqs-server.ts'], /FAUXQS (\d+)/, (m) => `http://127.0.0.1:${m[1]}`);
    servers.push(fauxqs);
    const echo = await start('echo', ['--import', 'tsx', 'bench/echo-server.ts'], /ECHO (\d+)/, (m) => `http://127.0.0.1:${m[1]}`);
    servers.push(echo);
    const httpEcho = await start('http-echo', ['--import', 'tsx', 'bench/http-echo-server.ts'], /ECHO (\d+)/, (m) => `http://127.0.0.1:${m[1]}`);
    servers.push(httpEcho);
    const queueServers = [normal, full, fauxqs];

    // Presigned requests per server (each names that server's queue URL).
    const sendReqs = new Map<Server, { headers: Record<string, string>; body: string }[]>();
    const batchReqs = new Map<Server, { headers: Record<string, string>; body: string }[]>();
    for (const s of queueServers) {
      const [url] = await createQueues(s.endpoint, ['bench']);
      const send = JSON.stringify({ QueueUrl: url, MessageBody: BODY });
      sendReqs.set(s, [{ headers: await sign(s.endpoint, 'SendMessage', send), body: send }]);
      const batch = JSON.stringify({ QueueUrl: url, Entries: Array.from({ length: 10 }, (_, i) => ({ Id: `m${i}`, MessageBody: BODY })) });
      batchReqs.set(s, [{ headers: await sign(s.endpoint, 'SendMessageBatch', batch), body: batch }]);
    }
    sendReqs.set(echo, sendReqs.get(normal)!);
    sendReqs.set(httpEcho, sendReqs.get(normal)!);
    batchReqs.set(echo, batchReqs.get(normal)!);
    batchReqs.set(httpEcho, batchReqs.get(normal)!);
    // 10,000 active queues on PKP: one presigned SendMessage per queue, cycled.
    const many = await createQueues(normal.endpoint, Array.from({ length: 10_000 }, (_, i) => `q${i}`));
    const manyReqs = await Promise.all(many.map(async (url) => {
      const body = JSON.stringify({ QueueUrl: url, MessageBody: BODY });
      return { headers: await sign(normal.endpoint, 'SendMessage', body), body };
    }));

    const rounds: Record<string, Measured[]> = {};
    const record = (key: string, m: Measured) => (rounds[key] ??= []).push(m);
    for (const s of [...queueServers, echo, httpEcho]) await run(s, sendReqs.get(s)!); // warm-up
    await run(normal, manyReqs); // every one of the 10,000 queues active (its keys fetched) before it is measured
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of [echo, httpEcho, normal, fauxqs, full]) record(`send/${s.name}`, await run(s, sendReqs.get(s)!));
      for (const s of [echo, httpEcho, normal, fauxqs]) record(`batch/${s.name}`, await run(s, batchReqs.get(s)!));
      record('send-10k-queues/pkp', await run(normal, manyReqs));
    }
    // Receive + delete, A/B rounds. Each round gets its own backlog, more than it can drain: a queue
    // run dry mid-round answers empty receives fast, and the round would measure those (with 60,000
    // for all rounds, the third round of a 4-s run once found the queue empty).
    const rdRounds: Record<string, (Measured & { messagesPerSecond: number; emptyReceives: number })[]> = {};
    const rdUrls = new Map<Server, string>();
    for (const s of [normal, fauxqs]) rdUrls.set(s, (await createQueues(s.endpoint, ['bench-rd']))[0]!);
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of [normal, fauxqs]) {
        await prefill(s.endpoint, rdUrls.get(s)!, SECONDS * MAX_DRAIN_PER_SECOND);
        (rdRounds[s.name] ??= []).push(await receiveDelete(s, rdUrls.get(s)!));
      }
    }

    const floors = await measureFloors(sendReqs.get(normal)![0]!, batchReqs.get(normal)![0]!, CREDENTIALS.secretAccessKey, BODY);
    const perMessage = floors.aesGcm1KiB! + floors.md5! + floors.sqliteInsertIn42RowCommit!;
    const med = (key: string, field: keyof Measured) => median(rounds[key]!.map((m) => m[field]));
    const rdMed = (name: string, field: keyof (Measured & { messagesPerSecond: number; emptyReceives: number })) => median(rdRounds[name]!.map((m) => m[field]));
    const summary = {
      sendMessage: {
        pkp: med('send/pkp', 'rps'), fauxqs: med('send/fauxqs', 'rps'), echo: med('send/echo', 'rps'),
        pkpDurabilityFull: med('send/pkp-durability-full', 'rps'),
        pkpVsFauxqs: med('send/pkp', 'rps') / med('send/fauxqs', 'rps'), pkpVsEcho: med('send/pkp', 'rps') / med('send/echo', 'rps'),
        pkpCpuUsPerRequest: med('send/pkp', 'cpuUsPerRequest'), pkpP50Ms: med('send/pkp', 'p50'), pkpP99Ms: med('send/pkp', 'p99'),
        pkpDurabilityFullCpuUsPerRequest: med('send/pkp-durability-full', 'cpuUsPerRequest'),
        httpEcho: med('send/http-echo', 'rps'), pkpVsHttpEcho: med('send/pkp', 'rps') / med('send/http-echo', 'rps'),
        echoCpuUsPerRequest: med('send/echo', 'cpuUsPerRequest'), httpEchoCpuUsPerRequest: med('send/http-echo', 'cpuUsPerRequest'),
        fauxqsCpuUsPerRequest: med('send/fauxqs', 'cpuUsPerRequest'),
      },
      // CPU µs each part of a send needs alone; their sum with the bare HTTP echo is a send's floor.
      floors: {
        ...floors,
        sendFloorCpuUs: med('send/http-echo', 'cpuUsPerRequest') + floors.sigv4! + perMessage,
        // A batch of ten: one HTTP request and one signature over the ten bodies, ten messages' work.
        batch10FloorCpuUs: med('batch/http-echo', 'cpuUsPerRequest') + floors.sigv4Batch10! + 10 * perMessage,
        tenThousandQueuesSqliteExtraCpuUs: floors.sqliteInsertIn42RowCommit10kQueues! - floors.sqliteInsertIn42RowCommit!,
      },
      sendMessageBatch10: {
        pkpMessagesPerSecond: 10 * med('batch/pkp', 'rps'), fauxqsMessagesPerSecond: 10 * med('batch/fauxqs', 'rps'), echoReqPerSec: med('batch/echo', 'rps'),
        pkpVsFauxqs: med('batch/pkp', 'rps') / med('batch/fauxqs', 'rps'), pkpCpuUsPerRequest: med('batch/pkp', 'cpuUsPerRequest'),
        fauxqsCpuUsPerRequest: med('batch/fauxqs', 'cpuUsPerRequest'), httpEchoCpuUsPerRequest: med('batch/http-echo', 'cpuUsPerRequest'),
      },
      receiveDelete10: {
        pkpMessagesPerSecond: rdMed('pkp', 'messagesPerSecond'), fauxqsMessagesPerSecond: rdMed('fauxqs', 'messagesPerSecond'),
        pkpVsFauxqs: rdMed('pkp', 'messagesPerSecond') / rdMed('fauxqs', 'messagesPerSecond'),
        pkpCpuUsPerMessage: rdMed('pkp', 'cpuUsPerRequest'),
        cpuPerMessageVsSend: rdMed('pkp', 'cpuUsPerRequest') / med('send/pkp', 'cpuUsPerRequest'),
        // Receives that found the queue empty in any round (0: every round measured a backlog).
        emptyReceives: Object.values(rdRounds).flat().reduce((n, m) => n + m.emptyReceives, 0),
      },
      // The extra CPU a send needs with 10,000 active queues, beside the store's own extra (floors:
      // each send's entry in the per-queue index dirties a page of its own).
      tenThousandQueues: {
        pkpReqPerSec: med('send-10k-queues/pkp', 'rps'), vsOneQueue: med('send-10k-queues/pkp', 'rps') / med('send/pkp', 'rps'),
        pkpCpuUsPerRequest: med('send-10k-queues/pkp', 'cpuUsPerRequest'),
        extraCpuUsPerRequest: med('send-10k-queues/pkp', 'cpuUsPerRequest') - med('send/pkp', 'cpuUsPerRequest'),
        extraCpuUsBeyondSqliteFloor: med('send-10k-queues/pkp', 'cpuUsPerRequest') - med('send/pkp', 'cpuUsPerRequest')
          - (floors.sqliteInsertIn42RowCommit10kQueues! - floors.sqliteInsertIn42RowCommit!),
      },
      // Per round, then the median: each round's own tail against its own middle. The bare echo's is
      // the machine's own (the load generator's and the scheduler's stalls are in every server's tail).
      p99OverP50At64Connections: median(rounds['send/pkp']!.map((m) => m.p99 / m.p50)),
      p99OverP50At64ConnectionsHttpEcho: median(rounds['send/http-echo']!.map((m) => m.p99 / m.p50)),
      p99OverP50At64ConnectionsFauxqs: median(rounds['send/fauxqs']!.map((m) => m.p99 / m.p50)),
    };
    return { connections: CONNECTIONS, secondsPerRound: SECONDS, rounds: ROUNDS, cacheEntries: CACHE_ENTRIES, summary, raw: { rounds, receiveDelete: rdRounds } };
  } finally {
    for (const s of servers) s.child.kill('SIGTERM');
    await Promise.all(servers.map((s) => new Promise((resolve) => (s.child.exitCode !== null ? resolve(null) : s.child.once('exit', resolve)))));
    for (const d of dataDirs) rmSync(d, { recursive: true, force: true });
  }
}
