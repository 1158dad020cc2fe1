import { resolve } from 'node:path';
import type { Command } from 'commander';
import { collect, intOption, numberOption } from './options.ts';

interface KmsOptions {
  host: string;
  port: number;
  dataDir: string;
  region: string;
  credentials?: string[];
  rate?: number;
  latency?: string;
  logLevel: string;
}

export function registerKms(program: Command): void {
  program
    .command('kms')
    .description('serve the KMS (master keys, data keys) over the AWS KMS API, for metadata services on other hosts')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'KMS endpoint port (0 picks a free one)', intOption(0, 65535), 9400)
    .option('--data-dir <dir>', 'where the wrapped master keys and the root key live', 'pkp-kms-data')
    .option('--region <region>', 'region named in key ARNs and expected in signatures', 'us-east-1')
    .option('--credentials <id:secret>', 'accepted credentials (repeatable); default: one generated, kept in the data directory', collect)
    .option('--rate <calls/s>', 'GenerateDataKey + Decrypt quota (ThrottlingException beyond it)', numberOption(1))
    .option('--latency <spec>', "added latency of GenerateDataKey and Decrypt, e.g. '20' or 'lognormal:20:0.5' (ms)")
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (options: KmsOptions) => {
      // Loaded here, not at the top: `pkp --help` should not pay for the server.
      const [{ SystemClock }, { createLogger }, { startKmsRole }, { loadOrCreateCredentials, parseCredential }] = await Promise.all([
        import('../core/clock.ts'), import('../core/log.ts'), import('../kms/kms-role.ts'), import('../service.ts'),
      ]);
      const logger = createLogger({ level: options.logLevel, destination: process.stderr });
      const dataDir = resolve(options.dataDir);
      const given = options.credentials?.map(parseCredential);
      const credentials = given ?? loadOrCreateCredentials(dataDir);
      const role = await startKmsRole({
        dataDir, host: options.host, port: options.port, region: options.region, clock: new SystemClock(), logger,
        credentials: new Map(credentials.map((c) => [c.accessKeyId, c.secretAccessKey])),
        ratePerSecond: options.rate, latency: options.latency,
      });
      const print = (line: string): void => void process.stdout.write(`${line}\n`);
      print(`KMS endpoint: ${role.endpoint}`);
      // Secrets are printed only when this command made them up.
      if (given === undefined) for (const c of credentials) print(`Credentials: AWS_ACCESS_KEY_ID=${c.accessKeyId} AWS_SECRET_ACCESS_KEY=${c.secretAccessKey}`);
      else print(`Credentials: ${credentials.map((c) => c.accessKeyId).join(', ')}`);
      print(`Try: aws --endpoint-url ${role.endpoint} --region ${options.region} kms list-keys`);
      let stopping = false;
      const stop = async (signal: string): Promise<void> => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down');
        await role.close();
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
    });
}
