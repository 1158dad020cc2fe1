import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { InProcessBus } from './bus/in-process.ts';
import { NatsEventBus, type NatsBusOptions } from './bus/nats-bus.ts';
import type { EventBus } from './bus/types.ts';
import { SystemClock, type Clock } from './core/clock.ts';
import { describeError, silentLogger, type Logger } from './core/log.ts';
import { createMetrics, type Metrics } from './core/metrics.ts';
import { VERSION } from './core/version.ts';
import { FrontendNode } from './frontend/node.ts';
import { QueueKeySettingsSource } from './frontend/queue-key-settings.ts';
import { createSqsServer, type ConnectionLimits } from './frontend/server.ts';
import { addHealthRoutes } from './health.ts';
import { createAdminServer, generateAdminToken, type AdminOptions } from './admin/server.ts';
import { ServiceStats } from './admin/stats.ts';
import { TraceRecorder, type RecorderOptions } from './record/recorder.ts';
import { ReceiveWaiters } from './frontend/waiters.ts';
import type { KeyCache } from './keycache/key-cache.ts';
import { joinMetadataService, type NodeKeyring } from './keycache/node-keyring.ts';
import { createKeyTier, createServiceNodeKeys } from './compose.ts';
import { parseLatency } from './kms/latency.ts';
import { LocalKms } from './kms/local-kms.ts';
import { ModeledKms } from './kms/modeled-kms.ts';
import { AwsKms, type AwsKmsOptions } from './kms/aws-kms.ts';
import type { KeyReason, Kms, KmsOperation, ManagedKms } from './kms/types.ts';
import type { KeyService } from './metadata/key-service.ts';
import type { MetadataService } from './metadata/metadata-service.ts';
import { openMessageStore } from './store/open-store.ts';
import { everyQueueCounts } from './store/queue-counts.ts';
import type { MessageStore } from './store/types.ts';
import { Random } from './core/random.ts';
import { defaultAccountId } from './frontend/accounts.ts';
import { QueueStatsSchedule } from './frontend/queue-stats-schedule.ts';
import { startLivePrefetcher, type HistorySource, type LivePrefetcher } from './prefetcher/live.ts';
import type { Prefetcher, PrefetcherOptions } from './prefetcher/prefetcher.ts';

export interface Credential {
  accessKeyId: string;
  secretAccessKey: string;
  /** 12 digits. Default: the credential's own account, derived from the access key id (accountOf). */
  accountId?: string;
}

export interface ServiceOptions {
  dataDir: string;
  /** SQS endpoint port; 0 picks a free one. Default 9324. */
  port?: number;
  host?: string;
  /** Admin (Prometheus) port; 0 picks a free one; null turns it off. Default port + 1. */
  adminPort?: number | null;
  frontends?: number;
  /** Without any, one principal is generated and kept in the data directory. */
  credentials?: Credential[];
  clock?: Clock;
  logger?: Logger;
  /**
   * Carry the events (access, key use, queue stats) over NATS JetStream instead of in-process. If
   * NATS cannot be reached at start, the service starts on the in-process bus (prefetching fails open).
   */
  nats?: Pick<NatsBusOptions, 'servers' | 'stream' | 'partitions' | 'user' | 'pass'>;
  /** A KMS that speaks the AWS KMS API (`pkp kms`, or AWS KMS). Default: the embedded KMS, master keys in dataDir. */
  kms?: Omit<AwsKmsOptions, 'onCall'>;
  /** Modelled KMS latency (see parseLatency) and request quota, to show real KMS behaviour. */
  kmsLatency?: string;
  kmsRatePerSecond?: number;
  /** KMS calls per second allowed for prefetches. */
  prefetchBudgetPerSecond?: number;
  /**
   * When an acknowledged send is safe: 'normal' (default) once it survives a crash of the process
   * (kill -9), 'full' once it survives a crash of the machine (an fsync per group commit).
   */
  durability?: 'normal' | 'full';
  /** Keep queues and messages in this PostgreSQL database (postgres://…) instead of SQLite in dataDir. */
  postgres?: string;
  /** Long polls parked at once (default 10,000); beyond it a receive answers empty at once. */
  maxLongPolls?: number;
  /** Idle, keep-alive and header timeouts and the connection cap of the SQS endpoint. */
  connections?: ConnectionLimits;
  /** Per-node key cache capacity. */
  cacheEntries?: number;
  /** Data-key reuse period of queues that do not set KmsDataKeyReusePeriodSeconds (default 300). */
  defaultReuseSeconds?: number;
  /** Run the Predictive Key Prefetcher (default true). Off, keys are fetched on demand only. */
  prefetch?: boolean;
  prefetcherOptions?: PrefetcherOptions;
  /**
   * History (e.g. a trace file opened with openTrace) the prefetcher learns from before it follows
   * the live requests. Queues are matched by name to existing queues; events naming no principal
   * are taken as the first credential's.
   */
  prefetchBootstrap?: HistorySource;
  /** Per-queue depth gauges for at most this many (the deepest) queues; 0: none. Default 10. */
  queueMetrics?: number;
  /** Record the access trace (see TraceRecorder). */
  record?: Pick<RecorderOptions, 'path' | 'names' | 'maxBytes' | 'keep'>;
  /** Admin port options (its credential). */
  admin?: AdminOptions;
}

export interface FrontendParts {
  nodeId: string;
  node: FrontendNode;
  keyring: NodeKeyring;
  cache: KeyCache;
}

export interface RunningService {
  endpoint: string;
  adminEndpoint: string | undefined;
  /** The admin port's credential, and whether this start generated it (only then is it printed). */
  adminToken: string;
  adminTokenGenerated: boolean;
  /** Windowed figures (dashboard, demo line). */
  stats: ServiceStats;
  /** Whether the credentials were generated (now or at an earlier start), not given. */
  credentialsGenerated: boolean;
  credentials: Credential[];
  kms: ManagedKms;
  store: MessageStore;
  keys: KeyService;
  metadata: MetadataService;
  frontends: FrontendParts[];
  bus: EventBus;
  metrics: Metrics;
  /** The running prefetcher; undefined when prefetching is off. Stopping it leaves the service reactive. */
  prefetcher: Prefetcher | undefined;
  /** Its live adapter (bus subscription, host); undefined when prefetching is off. */
  livePrefetcher: LivePrefetcher | undefined;
  close(): Promise<void>;
}

/**
 * Starts the whole embedded service in this process: KMS, metadata service, N front-end nodes and
 * one SQS endpoint that spreads requests over them round-robin.
 */
export async function startService(options: ServiceOptions): Promise<RunningService> {
  const clock = options.clock ?? new SystemClock();
  const logger = options.logger ?? silentLogger;
  const host = options.host ?? '127.0.0.1';
  const frontendCount = options.frontends ?? 3;
  if (!Number.isInteger(frontendCount) || frontendCount < 1 || frontendCount > 64) throw new RangeError('frontends must be an integer in 1..64');
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const credentials = options.credentials?.length ? options.credentials : loadOrCreateCredentials(options.dataDir);
  const metrics = createMetrics({ defaultMetrics: true, queueMetrics: options.queueMetrics });
  metrics.buildInfo.set({ version: VERSION, node_version: process.version }, 1);

  const onCall = (op: KmsOperation, reason: KeyReason): void => void metrics.kmsCalls.inc({ operation: op, reason });
  // A KMS across the network when one is named (`pkp kms`, AWS KMS); else the embedded one.
  const kmsCore: ManagedKms = options.kms !== undefined
    ? new AwsKms({ ...options.kms, onCall })
    : await LocalKms.open({ dataDir: options.dataDir, clock, onCall });
  let kms: Kms = kmsCore;
  if (options.kmsLatency !== undefined || options.kmsRatePerSecond !== undefined) {
    kms = new ModeledKms(kmsCore, clock, {
      latency: options.kmsLatency !== undefined ? parseLatency(options.kmsLatency, new Random(1)) : undefined,
      ratePerSecond: options.kmsRatePerSecond,
      onThrottle: () => metrics.kmsThrottled.inc(),
    });
  }

  let store: MessageStore;
  try {
    store = await openMessageStore({
      dataDir: options.dataDir, postgres: options.postgres, durability: options.durability, onOp: (op) => metrics.countStoreOp(op).inc(),
    });
  } catch (error) {
    await kmsCore.close();
    throw error;
  }
  metrics.setQueueSource({
    depths: async () => (await everyQueueCounts(store, clock.now())).map(({ queue, counts }) => ({ queue: queue.name, ...counts })),
  });
  /** A queue's SSE settings, read by the key tier and the prefetcher alike. */
  const queueKeySettings = new QueueKeySettingsSource(store, options.defaultReuseSeconds);
  // The store is read by the tier for two things only: queue key settings, and which DEKs a
  // queue's waiting messages need (prefetchDecrypt).
  const { keys, metadata } = createKeyTier({
    kms,
    clock,
    settingsOf: (queueId) => queueKeySettings.settingsOf(queueId),
    scheduler: { backgroundPerSecond: options.prefetchBudgetPerSecond ?? 50, onDropped: () => metrics.prefetchDropped.inc() },
    backlog: { store, clock },
  });
  const bus = await openBus(options.nats, logger);
  const waiters = new ReceiveWaiters(clock, { maxWaiters: options.maxLongPolls, onRefused: () => metrics.longPollsRefused.inc() });
  // A store shared with other processes wakes this one's long polls when they send.
  store.subscribeWakeups?.((queueId) => waiters.notify(queueId));

  const prefetchOn = options.prefetch ?? true;
  const frontends: FrontendParts[] = [];
  const queueStats = prefetchOn ? new QueueStatsSchedule() : undefined;
  for (let i = 0; i < frontendCount; i++) {
    const nodeId = `fe-${i + 1}`;
    const { cache, keyring } = createServiceNodeKeys({
      nodeId, clock, metadata, channel: joinMetadataService(metadata, nodeId), bus, metrics, cacheEntries: options.cacheEntries,
    });
    const node = new FrontendNode({
      nodeId, store, keyring, bus, clock, waiters, logger: logger.child({ node: nodeId }),
      keyCache: cache, queueStats,
    });
    frontends.push({ nodeId, node, keyring, cache });
  }
  const byNode = new Map(frontends.map((f) => [f.nodeId, f.keyring]));
  metadata.setDelivery({ deliver: (delivery) => byNode.get(delivery.nodeId)?.deliver(delivery) });

  // After the front-ends, before the endpoint opens: it sees every request. Fails open.
  let live: LivePrefetcher | undefined;
  if (prefetchOn) {
    try {
      live = await startLivePrefetcher({
        bus,
        metadata,
        clock,
        nodeIds: frontends.map((f) => f.nodeId),
        reuseMsOf: (queueId) => queueKeySettings.knownSettingsOf(queueId)?.reuseMs,
        expectedFetchMs: expectedFetchMs(options.kmsLatency),
        options: options.prefetcherOptions,
        logger: logger.child({ component: 'prefetcher' }),
        metrics,
        bootstrap: options.prefetchBootstrap && {
          source: options.prefetchBootstrap,
          resolveQueue: async (queue) => (await store.getQueueByName(queue))?.queueId ?? (await store.getQueueById(queue))?.queueId,
          defaultPrincipal: credentials[0]?.accessKeyId,
        },
      });
    } catch (error) {
      // Fail open: without a prefetcher every key is fetched on demand.
      logger.error({ error: describeError(error) }, 'prefetcher not started; serving reactively');
    }
  }

  const server = createSqsServer({
    nodes: frontends.map((f) => f.node),
    credentials: new Map(credentials.map((c) => [c.accessKeyId, { secretAccessKey: c.secretAccessKey, accountId: accountOf(c) }])),
    clock,
    logger,
    metrics,
    connections: options.connections,
  });
  let closingStarted = false;
  const health = { store, kms, keys, clock, isClosing: () => closingStarted };
  addHealthRoutes(server, health);

  let recorder: TraceRecorder | undefined;
  const stats = new ServiceStats({ clock, store, kms: kmsCore, metrics, bus, frontends, prefetcher: live?.prefetcher }).start();
  const adminToken = options.admin?.token ?? generateAdminToken();
  let admin: FastifyInstance | undefined;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closingStarted = true;
    closing ??= (async () => {
      // The prefetcher first (nothing new is prefetched); long polls return empty at once;
      // in-flight requests finish; then the store is flushed.
      live?.stop();
      stats.stop();
      waiters.closeAll();
      await server.close();
      await admin?.close();
      recorder?.close();
      await store.close();
      for (const f of frontends) f.cache.clear();
      metadata.close();
      await kmsCore.close();
      await bus.close();
    })();
    return closing;
  };

  // Either port failing to bind (or the recording failing to open) stops the whole start: nothing is left listening or open.
  const port = options.port ?? 9324;
  let endpoint: string;
  let adminEndpoint: string | undefined;
  try {
    if (options.record) {
      try {
        recorder = new TraceRecorder({ ...options.record, dataDir: options.dataDir, bus, queueName: (id) => store.knownQueue(id)?.name });
      } catch (error) {
        throw new Error(`cannot record to ${options.record.path}: ${(error as Error).message}`);
      }
    }
    endpoint = `http://${hostInUrl(host)}:${await listen(server, host, port, 'SQS')}`;
    if (options.adminPort !== null) {
      admin = createAdminServer({ frontends, metrics, health, stats, token: adminToken });
      const adminPort = options.adminPort ?? (port ? port + 1 : 0);
      adminEndpoint = `http://${hostInUrl(host)}:${await listen(admin, host, adminPort, 'admin')}`;
    }
  } catch (error) {
    await close();
    throw error;
  }

  return {
    endpoint, adminEndpoint, adminToken, adminTokenGenerated: options.admin?.token === undefined, stats,
    credentialsGenerated: !options.credentials?.length, credentials, kms: kmsCore, store, keys, metadata, frontends, bus, metrics,
    prefetcher: live?.prefetcher, livePrefetcher: live, close,
  };
}


/** Typical time from a prefetch to the key in a node's cache: the modelled KMS median plus in-process work. */
function expectedFetchMs(kmsLatency: string | undefined): number {
  const workMs = 5;
  if (kmsLatency === undefined) return workMs;
  const sample = parseLatency(kmsLatency, new Random(7));
  const values = Array.from({ length: 501 }, sample).sort((a, b) => a - b);
  return workMs + values[250]!;
}

/** Binds, or throws an error naming the port and why (e.g. EADDRINUSE). */
async function listen(server: FastifyInstance, host: string, port: number, what: string): Promise<number> {
  try {
    await server.listen({ port, host });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new Error(`cannot listen on ${host}:${port} (${what} port): ${typeof code === 'string' ? code : (error as Error).message}`);
  }
  return portOf(server);
}

const hostInUrl = (host: string): string => (host.includes(':') ? `[${host}]` : host);

function portOf(server: FastifyInstance): number {
  const address = server.server.address();
  if (address === null || typeof address === 'string') throw new Error('server has no TCP address');
  return address.port;
}

/** The generated principal is kept (mode 0600) so a restart accepts the same credentials. */
async function openBus(nats: ServiceOptions['nats'], logger: Logger): Promise<EventBus> {
  const onError = (error: unknown): void => logger.warn({ error: describeError(error) }, 'event bus: delivery or subscriber failed');
  if (nats === undefined) return new InProcessBus(onError);
  try {
    return await NatsEventBus.open({ ...nats, name: 'pkp up', onError });
  } catch (error) {
    logger.error({ error: describeError(error) }, 'NATS not reachable: events stay in this process');
    return new InProcessBus(onError);
  }
}

/** The credentials kept in a data directory; on first use one is generated and kept there (0600). */
export function loadOrCreateCredentials(dataDir: string): Credential[] {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, 'credentials.json');
  if (existsSync(file)) {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Credential[];
    if (Array.isArray(parsed) && parsed.every((c) => typeof c.accessKeyId === 'string' && typeof c.secretAccessKey === 'string')) return parsed;
    throw new Error(`${file} is not a list of credentials`);
  }
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const id = 'AKPK' + Array.from(randomBytes(16), (b) => alphabet[b % 32]).join('');
  const created = [{ accessKeyId: id, secretAccessKey: randomBytes(30).toString('base64') }];
  writeFileSync(file, JSON.stringify(created, null, 2), { mode: 0o600 });
  chmodSync(file, 0o600);
  return created;
}

/** A credential's account: the configured one, else its own derived from the access key id. */
export function accountOf(credential: Credential): string {
  return credential.accountId ?? defaultAccountId(credential.accessKeyId);
}

/** Parses `ID:SECRET` or `ID:SECRET:ACCOUNT` (a trailing `:` and 12 digits is taken as the account). */
export function parseCredential(text: string): Credential {
  const colon = text.indexOf(':');
  const accessKeyId = colon > 0 ? text.slice(0, colon) : '';
  let secretAccessKey = colon > 0 ? text.slice(colon + 1) : '';
  let accountId: string | undefined;
  const account = /:(\d{12})$/.exec(secretAccessKey);
  if (account) {
    accountId = account[1];
    secretAccessKey = secretAccessKey.slice(0, -account[0].length);
  }
  if (!/^[A-Za-z0-9]{4,128}$/.test(accessKeyId) || secretAccessKey.length < 8) {
    throw new Error('credentials must look like ID:SECRET or ID:SECRET:ACCOUNT (ID 4-128 letters or digits, SECRET at least 8 characters, ACCOUNT 12 digits)');
  }
  return accountId === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, accountId };
}
