import { spawn, type ChildProcess } from 'node:child_process';
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ClusterAuthority, writeCredential, type ClusterRole } from '../cluster/identity.ts';
import type { Logger } from '../core/log.ts';
import type { Credential } from '../service.ts';

export interface LocalClusterOptions {
  dataDir: string;
  host: string;
  port: number;
  nats: string;
  /** The JetStream stream of the events. */
  stream: string;
  postgres: string;
  credentials: Credential[];
  frontends: number;
  prefetchers: number;
  partitions: number;
  cluster: string;
  logger: Logger;
  logLevel: string;
}

export interface LocalCluster {
  endpoint: string;
  metadataUrl: string;
  /** Every process by its role and id (for tests and `ps`). */
  processes(): { role: string; id: string; pid: number | undefined }[];
  close(): Promise<void>;
}

/**
 * `pkp up --distributed`: a cluster on this machine, each role its own OS process — `pkp kms`,
 * `pkp metadata`, N × `pkp frontend` (node:cluster workers: this process is the primary, which
 * spreads the SQS port's connections over them and replaces one that dies) and M × `pkp prefetcher`;
 * any of them that dies is started again.
 * Each process gets its own credential from the cluster authority kept in the data directory.
 */
export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  const { logger } = options;
  const bin = process.argv[1]!;
  const authority = ClusterAuthority.openOrCreate(options.dataDir);
  const credentialFile = (role: ClusterRole, id: string): string => {
    const file = join(options.dataDir, 'cluster', `${id}.json`);
    writeCredential(file, authority.issue(id, role));
    return file;
  };
  const children: { role: string; id: string; child: ChildProcess }[] = [];
  let closing = false;
  const common = ['--log-level', options.logLevel, '--cluster', options.cluster, '--nats', options.nats];

  /**
   * Starts `pkp <role> …` and waits for the line that says it is serving. One that dies later is
   * started again with the same arguments (its port is fixed, so the others find it again).
   */
  const start = (role: string, id: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<RegExpExecArray> => {
    const entry = { role, id, child: undefined as unknown as ChildProcess };
    children.push(entry);
    const spawnOnce = (): Promise<RegExpExecArray> => {
      const child = spawn(process.execPath, [...process.execArgv, bin, role, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
      entry.child = child;
      let isReady = false;
      return new Promise((resolve, reject) => {
        const lines = createInterface({ input: child.stdout! });
        lines.on('line', (line) => {
          const match = ready.exec(line);
          if (match && !isReady) {
            isReady = true;
            resolve(match);
          }
        });
        child.once('exit', (code, signal) => {
          if (closing) return reject(new Error(`pkp ${role} ${id} stopped`));
          logger.error({ role, id, code, signal }, 'cluster process exited');
          if (!isReady) return reject(new Error(`pkp ${role} ${id} exited (${signal ?? code}) before it was ready`));
          // Running before: start it again after a pause (a crash loop costs a process a second).
          setTimeout(() => {
            if (!closing) void spawnOnce().then(() => logger.warn({ role, id }, 'cluster process started again'), () => undefined);
          }, 1_000).unref();
        });
      });
    };
    return spawnOnce();
  };

  try {
    // The metadata service's KMS credential: made here, passed in the environment (not on a command line).
    const kmsCredential = `AKPKKMS${randomBytes(6).toString('hex').toUpperCase()}:${randomBytes(24).toString('base64url')}`;
    const [, kmsUrl] = await start('kms', 'kms', ['--port', String(await freePort(options.host)), '--data-dir', join(options.dataDir, 'kms'), '--credentials', kmsCredential, '--log-level', options.logLevel],
      /^KMS endpoint: (\S+)/);
    const [, metadataUrl] = await start('metadata', 'meta-1', [
      ...common, '--port', String(await freePort(options.host)), '--data-dir', options.dataDir, '--postgres', options.postgres,
      '--credential', credentialFile('metadata', 'meta-1'), '--kms-endpoint', kmsUrl!,
    ], /^Metadata service: (\S+)/, { PKP_KMS_CREDENTIALS: kmsCredential });

    const nodeIds = Array.from({ length: options.frontends }, (_, i) => `fe-${i + 1}`);
    await Promise.all(Array.from({ length: options.prefetchers }, (_, i) => start('prefetcher', `pf-${i + 1}`, [
      ...common, '--nats-stream', options.stream, '--metadata-url', metadataUrl!, '--postgres', options.postgres, '--partitions', String(options.partitions),
      '--nodes', nodeIds.join(','), '--credential', credentialFile('prefetcher', `pf-${i + 1}`),
    ], /^Prefetcher /)));

    // Front-ends: workers of this process, all on one port. A worker that dies is replaced under its own id.
    // They accept from the shared socket themselves. With round-robin, this process accepts and hands
    // each connection to a worker, and a connection handed to one that was just killed stays open here,
    // unanswered, until the client gives up; from the shared socket a worker that is killed loses only
    // the connections it already had, and the others accept the rest.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({
      exec: bin,
      args: ['frontend', ...common, '--nats-stream', options.stream, '--host', options.host, '--port', String(options.port), '--data-dir', options.dataDir, '--postgres', options.postgres,
        '--metadata-url', metadataUrl!, '--partitions', String(options.partitions)],
      // Their stdout is theirs (this process prints the endpoint line); their logs go to stderr.
      silent: true,
    });
    const workers = new Map<string, Worker>();
    const sqsCredentials = options.credentials.map((c) => `${c.accessKeyId}:${c.secretAccessKey}${c.accountId ? `:${c.accountId}` : ''}`).join(',');
    const fork = (id: string): Promise<number> => {
      const worker = cluster.fork({ PKP_CREDENTIAL: credentialFile('frontend', id), PKP_SQS_CREDENTIALS: sqsCredentials });
      workers.set(id, worker);
      worker.process.stderr?.pipe(process.stderr);
      worker.process.stdout?.resume();
      worker.once('exit', (code, signal) => {
        if (closing) return;
        logger.warn({ id, code, signal }, 'front-end died; starting it again');
        void fork(id).catch((error: unknown) => logger.error({ id, error: String(error) }, 'front-end did not restart'));
      });
      return new Promise((resolve, reject) => {
        worker.once('listening', (address) => resolve(address.port));
        worker.once('exit', () => reject(new Error(`front-end ${id} exited before it was listening`)));
      });
    };
    const ports = await Promise.all(nodeIds.map(fork));
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    return {
      endpoint: `http://${host}:${ports[0]}`,
      metadataUrl: metadataUrl!,
      processes: () => [
        ...children.map((c) => ({ role: c.role, id: c.id, pid: c.child.pid })),
        ...[...workers].map(([id, w]) => ({ role: 'frontend', id, pid: w.process.pid })),
      ],
      close: async () => {
        closing = true;
        await Promise.all([...workers.values()].map((w) => stopProcess(w.process)));
        await Promise.all(children.filter((c) => c.role !== 'kms').map((c) => stopProcess(c.child)));
        await Promise.all(children.map((c) => stopProcess(c.child)));
      },
    };
  } catch (error) {
    closing = true;
    for (const c of children) c.child.kill('SIGKILL');
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
    throw error;
  }
}

/** A port free now, so that a process started again later listens where the others look for it. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** SIGTERM, then SIGKILL if it has not exited within 10 s. */
function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
