import { resolve } from 'node:path';
import type { Command } from 'commander';
import { createLogger } from '../core/log.ts';
import { accountOf, parseCredential, startService } from '../service.ts';
import { openTrace } from '../sim/traces/open.ts';
import { runDemo } from './demo.ts';
import { collect, intOption, numberOption } from './options.ts';

interface UpOptions {
  port: number;
  adminPort?: number;
  frontends: number;
  dataDir: string;
  credentials?: string[];
  demo?: boolean;
  duration?: number;
  kmsLatency?: string;
  kmsRate?: number;
  prefetchBudget: number;
  /** false with --no-prefetch. */
  prefetch: boolean;
  bootstrap?: string;
  logLevel: string;
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('run the KMS, the metadata service, N front-end nodes and one SQS endpoint in this process')
    .option('--port <port>', 'SQS endpoint port', intOption(0, 65535), 9324)
    .option('--admin-port <port>', 'Prometheus metrics port (default: port + 1)', intOption(0, 65535))
    .option('--frontends <n>', 'front-end nodes', intOption(1, 64), 3)
    .option('--data-dir <dir>', 'where messages, master keys and credentials live', 'pkp-data')
    .option('--credentials <id:secret[:account]>', 'accepted credentials (repeatable), each in its own account unless one is given; default: one generated principal', collect)
    .option('--demo', 'also drive a built-in workload through the SQS endpoint and show a live summary')
    .option('--duration <seconds>', 'with --demo: stop after this long (default: until Ctrl-C)', numberOption(1))
    .option('--kms-latency <spec>', "modelled KMS latency, e.g. '20' or 'lognormal:20:0.5' (ms)")
    .option('--kms-rate <calls/s>', 'modelled KMS request quota (ThrottlingException beyond it)', numberOption(1))
    .option('--prefetch-budget <calls/s>', 'KMS calls per second allowed for prefetches', numberOption(0), 50)
    .option('--no-prefetch', 'turn the Predictive Key Prefetcher off: keys are fetched on demand only')
    .option('--bootstrap <trace>', 'let the prefetcher learn from a trace file (events CSV or Azure) before serving')
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (options: UpOptions) => {
      const logger = createLogger({ level: options.logLevel, destination: process.stderr });
      if (options.bootstrap !== undefined && !options.prefetch) throw new Error('--bootstrap needs the prefetcher: drop --no-prefetch');
      // Opened here so a missing or unreadable file fails before anything starts.
      const history = options.bootstrap !== undefined ? openTrace(resolve(options.bootstrap)) : undefined;
      const service = await startService({
        dataDir: resolve(options.dataDir),
        port: options.port,
        adminPort: options.adminPort,
        frontends: options.frontends,
        credentials: options.credentials?.map(parseCredential),
        logger,
        kmsLatency: options.kmsLatency,
        kmsRatePerSecond: options.kmsRate,
        prefetchBudgetPerSecond: options.prefetchBudget,
        prefetch: options.prefetch,
        prefetchBootstrap: history,
      });
      const print = (line: string): void => void process.stdout.write(`${line}\n`);
      print(`SQS endpoint: ${service.endpoint}`);
      if (service.adminEndpoint) print(`Metrics: ${service.adminEndpoint}/metrics`);
      for (const c of service.credentials) print(`Credentials: AWS_ACCESS_KEY_ID=${c.accessKeyId} AWS_SECRET_ACCESS_KEY=${c.secretAccessKey} (account ${accountOf(c)})`);
      print(`Front-end nodes: ${service.frontends.map((f) => f.nodeId).join(', ')}; data: ${resolve(options.dataDir)}`);
      const live = service.livePrefetcher;
      if (live) {
        const learned = history ? `; learned ${live.bootstrapped} events (${live.prefetcher.stats.streams} streams) from ${options.bootstrap}` : '';
        print(`Prefetcher: on${learned}`);
      } else {
        print(`Prefetcher: off${options.prefetch ? ' (failed to start: see the log)' : ''}`);
      }
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
      const demo = options.demo ? runDemo(service, { durationSeconds: options.duration, out: process.stderr }) : undefined;
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
      if (demo && options.duration !== undefined) {
        await demo.finished;
        await stop('duration');
      }
    });
}
