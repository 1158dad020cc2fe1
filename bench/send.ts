import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { CreateQueueCommand, SQSClient } from '@aws-sdk/client-sqs';
import { SignatureV4 } from '@smithy/signature-v4';
import { median } from './stats.ts';

const ROOT = join(import.meta.dirname, '..');
const CREDENTIALS = { accessKeyId: 'AKPKBENCH', secretAccessKey: 'bench-secret-0123456789' };

/** SHA-256 for the SigV4 signer, from node:crypto. */
class NodeSha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
}

function toBytes(data: string | ArrayBuffer | ArrayBufferView): string | Buffer {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function startChild(args: string[], readyPattern: RegExp): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = out.match(readyPattern);
      if (match) resolve({ child, match });
    });
    child.once('exit', (code) => reject(new Error(`child exited early (${code}): ${args.join(' ')}`)));
  });
}

async function load(url: string, headers: Record<string, string>, body: string, seconds: number): Promise<{ rps: number; p99: number; errors: number; non2xx: number }> {
  const result = await autocannon({ url, method: 'POST', headers, body, connections: 32, duration: seconds });
  return { rps: result.requests.average, p99: result.latency.p99, errors: result.errors, non2xx: result.non2xx };
}

/**
 * SendMessage with a 1 KiB body through the SQS endpoint (`pkp up`, 3 front-ends, SigV4, AES-GCM,
 * SQLite group commit) beside a bare fastify route echoing the same body, alternating rounds in
 * one run. The load generator runs in this process; each server in its own.
 */
export async function benchSend(): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-bench-'));
  const { child: service, match } = await startChild(
    ['bin/pkp.js', 'up', '--port', '0', '--admin-port', '0', '--data-dir', dataDir, '--credentials', `${CREDENTIALS.accessKeyId}:${CREDENTIALS.secretAccessKey}`, '--log-level', 'warn'],
    /SQS endpoint: (http:\/\/[0-9.:]+)/,
  );
  const { child: echo, match: echoMatch } = await startChild(['--import', 'tsx', 'bench/echo-server.ts'], /ECHO (\d+)/);
  try {
    const endpoint = match[1]!;
    const client = new SQSClient({ endpoint, region: 'us-east-1', credentials: CREDENTIALS });
    const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: 'bench' }));
    client.destroy();
    const body = JSON.stringify({ QueueUrl, MessageBody: 'x'.repeat(1024) });
    const url = new URL(endpoint);
    // One signature, valid for 15 minutes: every request of the run reuses it.
    const signer = new SignatureV4({ credentials: CREDENTIALS, region: 'us-east-1', service: 'sqs', sha256: NodeSha256 });
    const signed = await signer.sign({
      method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: '/',
      headers: { host: url.host, 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.SendMessage' },
      body,
    });
    const headers = signed.headers as Record<string, string>;
    const echoUrl = `http://127.0.0.1:${echoMatch[1]}/`;
    await load(echoUrl, headers, body, 2); // warm-up
    await load(`${endpoint}/`, headers, body, 2);
    const rounds: { echo: Awaited<ReturnType<typeof load>>; send: Awaited<ReturnType<typeof load>> }[] = [];
    for (let round = 0; round < 3; round++) {
      rounds.push({ echo: await load(echoUrl, headers, body, 8), send: await load(`${endpoint}/`, headers, body, 8) });
    }
    const sendRps = median(rounds.map((r) => r.send.rps));
    const echoRps = median(rounds.map((r) => r.echo.rps));
    const failed = rounds.reduce((n, r) => n + r.send.errors + r.send.non2xx, 0);
    return {
      sendMessageReqPerSec: sendRps,
      sendMessageP99Ms: median(rounds.map((r) => r.send.p99)),
      echoReqPerSec: echoRps,
      echoP99Ms: median(rounds.map((r) => r.echo.p99)),
      ratioToEcho: sendRps / echoRps,
      target: 0.5,
      meetsTarget: sendRps / echoRps >= 0.5,
      sendFailures: failed,
      rounds,
    };
  } finally {
    service.kill('SIGTERM');
    echo.kill('SIGTERM');
    await new Promise((resolve) => service.once('exit', resolve));
    rmSync(dataDir, { recursive: true, force: true });
  }
}
