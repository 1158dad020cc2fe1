import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../core/config.ts';
import { collect, configFlags, configOf } from './options.ts';

/**
 * The processes of distributed mode, each its own command so `ps` tells them apart:
 * `pkp init` (the cluster authority and credentials), `pkp metadata`, `pkp frontend`, `pkp prefetcher`
 * (`pkp kms` is in kms.ts). Each reads the one configuration schema (file, PKP_* env, flags).
 */

const ROLE_DEFAULTS = {
  host: '127.0.0.1', dataDir: 'pkp-data', logLevel: 'info', nats: 'nats://127.0.0.1:4222', natsStream: 'PKP_EVENTS', cluster: 'pkp',
  partitions: 8, kmsRegion: 'us-east-1', prefetchBudget: 50, cacheEntries: 10_000, durability: 'normal',
};

/** Where the given SQS credentials reach front-end processes (not on their command line, where ps would show them). */
export const SQS_CREDENTIALS_ENV = 'PKP_SQS_CREDENTIALS';

function need<T>(value: T | undefined, flag: string): T {
  if (value === undefined) throw new Error(`--${flag} is required`);
  return value;
}

async function common(options: Config & typeof ROLE_DEFAULTS) {
  const [{ createLogger }, { ClusterIdentity, readCredential }, { openMessageStore }] = await Promise.all([
    import('../core/log.ts'), import('../cluster/identity.ts'), import('../store/open-store.ts'),
  ]);
  const logger = createLogger({ level: options.logLevel, destination: process.stderr });
  const identity = new ClusterIdentity(readCredential(resolve(need(options.credential, 'credential'))));
  const store = () => openMessageStore({ dataDir: resolve(options.dataDir), postgres: options.postgres, durability: options.durability as 'normal' | 'full' });
  return { logger, identity, store };
}

function onSignals(logger: { info(o: object, m: string): void }, close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void close().finally(() => process.exit(0));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

export function registerRoles(program: Command): void {
  program
    .command('init')
    .description('make the cluster authority in the data directory, and issue credentials for distributed-mode processes')
    .option('--data-dir <dir>', 'where the authority is kept (cluster/authority.json, 0600)', 'pkp-data')
    .option('--issue <role:id>', 'issue a credential (role metadata, frontend or prefetcher; repeatable), written to cluster/<id>.json', collect)
    .action(async (options: { dataDir: string; issue?: string[] }) => {
      const { ClusterAuthority, writeCredential } = await import('../cluster/identity.ts');
      const { join } = await import('node:path');
      const dataDir = resolve(options.dataDir);
      const authority = ClusterAuthority.openOrCreate(dataDir);
      process.stdout.write(`Cluster authority: ${join(dataDir, 'cluster', 'authority.json')}\n`);
      for (const spec of options.issue ?? []) {
        const [role, id] = spec.split(':');
        const file = join(dataDir, 'cluster', `${id}.json`);
        writeCredential(file, authority.issue(id ?? '', role as 'metadata'));
        process.stdout.write(`Credential: ${file} (${role} ${id})\n`);
      }
    });

  const metadata = program.command('metadata').description('distributed mode: the metadata service (key tier; the only process that talks to the KMS)');
  configFlags(metadata, ['host', 'port', 'dataDir', 'logLevel', 'nats', 'cluster', 'credential', 'postgres', 'durability', 'kmsEndpoint', 'kmsRegion', 'kmsCredentials', 'reuseSeconds', 'prefetchBudget']);
  metadata.action(async () => {
    const options = configOf(metadata, 'up', { ...ROLE_DEFAULTS, port: 9330 });
    const { logger, identity, store } = await common(options);
    const [{ startMetadataRole }, { openKms }] = await Promise.all([import('../roles/metadata-role.ts'), import('../roles/open-kms.ts')]);
    const role = await startMetadataRole({
      identity, cluster: options.cluster, nats: options.nats, store: await store(), logger, host: options.host, port: options.port,
      kms: await openKms({ dataDir: resolve(options.dataDir), endpoint: options.kmsEndpoint, region: options.kmsRegion, credentials: options.kmsCredentials }),
      defaultReuseSeconds: options.reuseSeconds, prefetchBudgetPerSecond: options.prefetchBudget,
    });
    process.stdout.write(`Metadata service: ${role.url}\n`);
    onSignals(logger, role.close);
  });

  const frontend = program.command('frontend').description('distributed mode: one front-end node serving the SQS API');
  configFlags(frontend, ['host', 'port', 'dataDir', 'logLevel', 'nats', 'natsStream', 'partitions', 'cluster', 'credential', 'metadataUrl', 'postgres', 'durability', 'cacheEntries', 'aggregateMs']);
  frontend.action(async () => {
    const options = configOf(frontend, 'up', { ...ROLE_DEFAULTS, port: 9324 });
    const { logger, identity, store } = await common(options);
    const [{ startFrontendRole }, { accountOf, loadOrCreateCredentials, parseCredential }] = await Promise.all([import('../roles/frontend-role.ts'), import('../service.ts')]);
    const given = process.env[SQS_CREDENTIALS_ENV];
    const credentials = given ? given.split(',').map(parseCredential) : loadOrCreateCredentials(resolve(options.dataDir));
    const role = await startFrontendRole({
      identity, cluster: options.cluster, metadataUrl: need(options.metadataUrl, 'metadata-url'), nats: options.nats, stream: options.natsStream,
      partitions: options.partitions, store: await store(), logger, host: options.host, port: options.port, cacheEntries: options.cacheEntries, aggregateMs: options.aggregateMs,
      credentials: new Map(credentials.map((c) => [c.accessKeyId, { secretAccessKey: c.secretAccessKey, accountId: accountOf(c) }])),
    });
    const address = role.server.server.address();
    process.stdout.write(`Front-end ${role.nodeId}: http://${options.host}:${typeof address === 'object' && address ? address.port : options.port}\n`);
    onSignals(logger, role.close);
  });

  const prefetcher = program.command('prefetcher').description('distributed mode: a prefetcher process (owns a fair share of the event partitions)');
  configFlags(prefetcher, ['logLevel', 'nats', 'natsStream', 'partitions', 'cluster', 'credential', 'metadataUrl', 'postgres', 'nodes', 'maxKmsOverhead']);
  prefetcher.action(async () => {
    const options = configOf(prefetcher, 'up', ROLE_DEFAULTS);
    const { logger, identity } = await common(options);
    const { startPrefetcherRole } = await import('../roles/prefetcher-role.ts');
    const role = await startPrefetcherRole({
      identity, cluster: options.cluster, metadataUrl: need(options.metadataUrl, 'metadata-url'), nats: options.nats, stream: options.natsStream,
      partitions: options.partitions, postgres: need(options.postgres, 'postgres'), nodeIds: need(options.nodes, 'nodes'), logger,
      prefetcherOptions: options.maxKmsOverhead === undefined ? undefined : { maxKmsOverhead: options.maxKmsOverhead },
    });
    process.stdout.write(`Prefetcher ${identity.id}: partitions of ${options.partitions}, owned by lock in PostgreSQL\n`);
    onSignals(logger, role.close);
  });
}
