import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseModelList } from '../prefetcher/models/index.ts';
import { DEFAULT_COSTS } from '../prefetcher/cost.ts';
import { DEFAULT_MAX_KMS_OVERHEAD } from '../prefetcher/prefetcher.ts';
import { collect, configFlags, configOf, numberOption } from './options.ts';

const UP_DEFAULTS = {
  host: '127.0.0.1', port: 9324, dataDir: 'pkp-data', logLevel: 'info', frontends: 3, cacheEntries: 10_000, reuseSeconds: 300,
  prefetch: true, prefetchBudget: 50, durability: 'normal', natsStream: 'PKP_EVENTS', kmsRegion: 'us-east-1',
  missCost: DEFAULT_COSTS.missCost, kmsCallCost: DEFAULT_COSTS.kmsCallCost, maxKmsOverhead: DEFAULT_MAX_KMS_OVERHEAD,
};

interface UpCliOptions {
  credentials?: string[];
  demo?: boolean;
  duration?: number;
  bootstrap?: string;
  distributed?: boolean;
}

/** A database URL fit to print: any password replaced. */
function withoutPassword(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

export function registerUp(program: Command): void {
  const command = program
    .command('up')
    .description('run the KMS, the metadata service, N front-end nodes and one SQS endpoint in this process')
    .option('--credentials <id:secret[:account]>', 'accepted credentials (repeatable), each in its own account unless one is given; default: one generated principal', collect)
    .option('--demo', 'also drive a built-in workload through the SQS endpoint and show a live summary')
    .option('--duration <seconds>', 'with --demo: stop after this long (default: until Ctrl-C)', numberOption(1))
    .option('--bootstrap <trace>', 'let the prefetcher learn from a trace file (events CSV or Azure) before serving')
    .option('--distributed', 'run each role as its own process on NATS and PostgreSQL: pkp kms, pkp metadata, --frontends × pkp frontend, --prefetchers × pkp prefetcher');
  configFlags(command, ['host', 'port', 'adminPort', 'dataDir', 'logLevel', 'frontends', 'cacheEntries', 'reuseSeconds', 'kmsLatency', 'kmsRate',
    'prefetch', 'prefetchBudget', 'missCost', 'kmsCallCost', 'maxKmsOverhead', 'pkpModels', 'metricsQueues', 'record', 'recordNames', 'recordMaxBytes', 'recordKeep',
    'durability', 'nats', 'natsStream', 'kmsEndpoint', 'kmsRegion', 'kmsCredentials', 'postgres', 'cluster', 'partitions', 'prefetchers'], {
    prefetch: 'turn the Predictive Key Prefetcher off: keys are fetched on demand only',
    kmsLatency: "modelled KMS latency, e.g. '20' or 'lognormal:20:0.5' (ms; default none)",
    kmsRate: 'modelled KMS request quota, calls/s (ThrottlingException beyond it)',
  });
  command.action(async (cli: UpCliOptions) => {
      const options = configOf(command, 'up', UP_DEFAULTS);
      if (cli.distributed) return runDistributed(options, cli);
      // Loaded here, not at the top: `pkp --help` should not pay for the service and the SDK.
      const [{ createLogger }, { accountOf, parseCredential, startService }, { openTrace }, { runDemo }] = await Promise.all([
        import('../core/log.ts'), import('../service.ts'), import('../sim/traces/open.ts'), import('./demo.ts'),
      ]);
      const logger = createLogger({ level: options.logLevel, destination: process.stderr });
      if (cli.bootstrap !== undefined && !options.prefetch) throw new Error('--bootstrap needs the prefetcher: drop --no-prefetch');
      const models = options.pkpModels === undefined ? undefined : parseModelList(options.pkpModels.join(','));
      // Opened here so a missing or unreadable file fails before anything starts.
      const history = cli.bootstrap !== undefined ? openTrace(resolve(cli.bootstrap)) : undefined;
      const service = await startService({
        dataDir: resolve(options.dataDir),
        host: options.host,
        port: options.port,
        adminPort: options.adminPort,
        frontends: options.frontends,
        credentials: cli.credentials?.map(parseCredential),
        logger,
        durability: options.durability as 'normal' | 'full',
        postgres: options.postgres,
        nats: options.nats === undefined ? undefined : { servers: options.nats, stream: options.natsStream },
        kms: options.kmsEndpoint === undefined ? undefined : {
          endpoint: options.kmsEndpoint,
          region: options.kmsRegion,
          credentials: options.kmsCredentials === undefined ? undefined : parseCredential(options.kmsCredentials),
        },
        kmsLatency: options.kmsLatency,
        kmsRatePerSecond: options.kmsRate,
        cacheEntries: options.cacheEntries,
        defaultReuseSeconds: options.reuseSeconds,
        prefetchBudgetPerSecond: options.prefetchBudget,
        prefetch: options.prefetch,
        prefetcherOptions: {
          costs: { missCost: options.missCost, kmsCallCost: options.kmsCallCost },
          maxKmsOverhead: options.maxKmsOverhead,
          modelOptions: { only: models },
        },
        prefetchBootstrap: history,
        queueMetrics: options.metricsQueues,
        record: options.record === undefined ? undefined : {
          path: resolve(options.record), names: options.recordNames as 'names' | 'pseudonyms' | undefined, maxBytes: options.recordMaxBytes, keep: options.recordKeep,
        },
        admin: { token: process.env.PKP_ADMIN_TOKEN || undefined },
      });
      logger.info({ config: { ...options } }, 'settings in force');
      const print = (line: string): void => void process.stdout.write(`${line}\n`);
      print(`SQS endpoint: ${service.endpoint}`);
      if (service.adminEndpoint) {
        print(`Dashboard: ${service.adminEndpoint}/${service.adminTokenGenerated ? `?token=${service.adminToken}` : ' (token: PKP_ADMIN_TOKEN)'}`);
        print(`Metrics: ${service.adminEndpoint}/metrics`);
        if (service.adminTokenGenerated) print(`Admin token: ${service.adminToken}`);
        print(`Health: ${service.endpoint}/readyz and ${service.adminEndpoint}/readyz (no token)`);
      }
      // Secrets are printed only when this service made them; given ones are the caller's to keep.
      for (const c of service.credentials) {
        print(service.credentialsGenerated
          ? `Credentials: AWS_ACCESS_KEY_ID=${c.accessKeyId} AWS_SECRET_ACCESS_KEY=${c.secretAccessKey} (account ${accountOf(c)})`
          : `Credentials: AWS_ACCESS_KEY_ID=${c.accessKeyId} (secret as given; account ${accountOf(c)})`);
      }
      print(`Front-end nodes: ${service.frontends.map((f) => f.nodeId).join(', ')}; data: ${resolve(options.dataDir)}`);
      if (options.postgres !== undefined) print(`Messages: PostgreSQL ${withoutPassword(options.postgres)}`);
      const live = service.livePrefetcher;
      if (live) {
        const learned = history ? `; learned ${live.bootstrapped} events (${live.prefetcher.stats.streams} streams) from ${cli.bootstrap}` : '';
        print(`Prefetcher: on${learned}`);
      } else {
        print(`Prefetcher: off${options.prefetch ? ' (failed to start: see the log)' : ''}`);
      }
      if (options.record !== undefined) print(`Recording: ${resolve(options.record)} (${options.recordNames ?? 'pseudonyms'}; replay with pkp replay --trace ${options.record} --warmup 0)`);
      print(`Try: aws --endpoint-url ${service.endpoint} --region us-east-1 sqs create-queue --queue-name demo`);

      let stopping = false;
      const stop = async (signal: string): Promise<void> => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'draining and shutting down');
        await demo?.stop();
        await service.close();
        print('stopped: every acknowledged message is stored');
      };
      const demo = cli.demo ? runDemo(service, { durationSeconds: cli.duration, out: process.stderr }) : undefined;
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
      if (demo && cli.duration !== undefined) {
        await demo.finished;
        await stop('duration');
      }
    });
}

/** `pkp up --distributed`: the roles as separate processes; prints the SQS endpoint line as `pkp up` does. */
async function runDistributed(options: ReturnType<typeof configOf<typeof UP_DEFAULTS>>, cli: UpCliOptions): Promise<void> {
  if (options.postgres === undefined) throw new Error('--distributed needs --postgres URL (partition ownership, snapshots and the message store)');
  const [{ createLogger }, { loadOrCreateCredentials, parseCredential, accountOf }, { startLocalCluster }] = await Promise.all([
    import('../core/log.ts'), import('../service.ts'), import('../roles/local-cluster.ts'),
  ]);
  const logger = createLogger({ level: options.logLevel, destination: process.stderr });
  const dataDir = resolve(options.dataDir);
  const credentials = cli.credentials?.map(parseCredential) ?? loadOrCreateCredentials(dataDir);
  const local = await startLocalCluster({
    dataDir, host: options.host, port: options.port, nats: options.nats ?? 'nats://127.0.0.1:4222', stream: options.natsStream, postgres: options.postgres, credentials,
    frontends: options.frontends, prefetchers: options.prefetchers ?? 2, partitions: options.partitions ?? 8, cluster: options.cluster ?? 'pkp',
    logger, logLevel: options.logLevel,
  });
  const print = (line: string): void => void process.stdout.write(`${line}\n`);
  print(`SQS endpoint: ${local.endpoint}`);
  for (const c of credentials) print(cli.credentials ? `Credentials: AWS_ACCESS_KEY_ID=${c.accessKeyId} (secret as given; account ${accountOf(c)})` : `Credentials: AWS_ACCESS_KEY_ID=${c.accessKeyId} AWS_SECRET_ACCESS_KEY=${c.secretAccessKey} (account ${accountOf(c)})`);
  print(`Metadata service: ${local.metadataUrl}`);
  print(`Processes: ${local.processes().map((p) => `${p.role} ${p.id} (pid ${p.pid})`).join(', ')}`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping the cluster');
    void local.close().then(() => {
      print('stopped: every acknowledged message is stored');
      process.exit(0);
    });
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}
