/**
 * One configuration for `pkp up` and `pkp replay`: a typed schema, read from a JSON file
 * (`--config F`), environment variables (`PKP_*`) and flags. Precedence: flags > env > file > defaults.
 * Every setting is checked here, so a bad value or an unknown key fails before anything starts.
 */
import { readFileSync } from 'node:fs';

type Kind = 'int' | 'number' | 'string' | 'boolean' | 'list';

interface Setting {
  kind: Kind;
  /** Used by: both commands, or one. */
  scope: 'shared' | 'up' | 'replay';
  help: string;
  min?: number;
  max?: number;
  /** Allowed string values. */
  oneOf?: readonly string[];
  /** 'inf' and 'Infinity' are accepted (numbers only). */
  infinity?: boolean;
  /** The flag's name when it is not the key in kebab-case. */
  flag?: string;
}

/** The schema: config-file key → setting. Env var: PKP_ + the key in SNAKE_CASE; flag: --kebab-case. */
export const SCHEMA = {
  frontends: { kind: 'int', scope: 'shared', min: 1, max: 1024, help: 'front-end nodes' },
  cacheEntries: { kind: 'int', scope: 'shared', flag: 'capacity', min: 1, max: 1e9, help: 'key-cache entries per node' },
  reuseSeconds: { kind: 'int', scope: 'shared', flag: 'reuse', min: 60, max: 86_400, help: 'data-key reuse period of queues that do not set KmsDataKeyReusePeriodSeconds' },
  kmsLatency: { kind: 'string', scope: 'shared', help: "KMS latency model in ms: '10', 'uniform:5:15', 'lognormal:10:0.5', 'exp:10', 'pareto:5:2.5'" },
  kmsRate: { kind: 'number', scope: 'shared', min: 1, help: 'KMS request quota, calls/s' },
  missCost: { kind: 'number', scope: 'shared', min: 1e-9, help: 'prefetcher cost model: a demand miss' },
  kmsCallCost: { kind: 'number', scope: 'shared', min: 0, help: 'prefetcher cost model: a KMS call that serves no request' },
  maxKmsOverhead: { kind: 'number', scope: 'shared', min: 0, max: 100, infinity: true, help: "prefetcher KMS budget: keys generated may exceed the fewest needed by this share ('inf': off)" },
  pkpModels: { kind: 'list', scope: 'shared', help: 'prefetcher models to mix (default all)' },
  aggregateMs: { kind: 'int', scope: 'shared', min: 1, max: 60_000, help: 'access events counted per (queue, node, principal, op) over this many ms before the prefetcher sees them: pkp frontend (default 1000), and pkp replay to measure its effect (default: none)' },
  host: { kind: 'string', scope: 'up', help: 'address to listen on' },
  port: { kind: 'int', scope: 'up', min: 0, max: 65535, help: 'SQS endpoint port' },
  adminPort: { kind: 'int', scope: 'up', min: 0, max: 65535, help: 'admin port (dashboard, metrics, health; default port + 1)' },
  dataDir: { kind: 'string', scope: 'up', help: 'where messages, master keys and credentials live' },
  logLevel: { kind: 'string', scope: 'up', oneOf: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], help: 'log level' },
  prefetch: { kind: 'boolean', scope: 'up', help: 'run the Predictive Key Prefetcher' },
  prefetchBudget: { kind: 'number', scope: 'up', min: 0, help: 'KMS calls per second allowed for prefetches' },
  metricsQueues: { kind: 'int', scope: 'up', min: 0, max: 1000, help: 'per-queue depth gauges (pkp_queue_messages) for this many of the deepest queues; 0: none (default 10)' },
  record: { kind: 'string', scope: 'up', help: 'record the access trace (ts_ms,queue,op,node,principal) to this file, for pkp replay --trace' },
  recordNames: { kind: 'string', scope: 'up', oneOf: ['pseudonyms', 'names'], help: 'queues and principals in the recording: pseudonyms (stable, keyed by data-dir/record-key) or names' },
  recordMaxBytes: { kind: 'int', scope: 'up', min: 1024, max: 2 ** 40, help: 'rotate the recording past this size (bytes; default 64 MiB)' },
  recordKeep: { kind: 'int', scope: 'up', min: 0, max: 1000, help: 'rotated recordings kept (FILE.1 … FILE.n; default 5)' },
  durability: { kind: 'string', scope: 'up', oneOf: ['normal', 'full'], help: "when a send is acknowledged: 'normal' (survives kill -9) or 'full' (survives power loss: an fsync per group commit)" },
  postgres: { kind: 'string', scope: 'up', help: 'keep queues and messages in this PostgreSQL database (postgres://user[:password]@host:5432/db) instead of SQLite in data-dir; better in PKP_POSTGRES when it holds a password' },
  nats: { kind: 'string', scope: 'up', help: 'carry events over NATS JetStream at this URL (nats://host:4222) instead of in-process' },
  natsStream: { kind: 'string', scope: 'up', help: 'JetStream stream for the events (default PKP_EVENTS)' },
  kmsEndpoint: { kind: 'string', scope: 'up', help: 'a KMS that speaks the AWS KMS API (`pkp kms`, or AWS KMS) instead of the embedded one' },
  kmsRegion: { kind: 'string', scope: 'up', help: 'region of the KMS at kms-endpoint (default us-east-1)' },
  kmsCredentials: { kind: 'string', scope: 'up', help: 'ID:SECRET for kms-endpoint (default: the AWS SDK chain); better in PKP_KMS_CREDENTIALS than in a file' },
  cluster: { kind: 'string', scope: 'up', help: 'distributed mode: the cluster name (prefixes NATS subjects, names the locks; default pkp)' },
  credential: { kind: 'string', scope: 'up', help: "distributed mode: this process's cluster credential file (made by pkp init)" },
  metadataUrl: { kind: 'string', scope: 'up', help: 'distributed mode: the metadata service (http://host:port) front-ends and prefetchers call' },
  partitions: { kind: 'int', scope: 'up', min: 1, max: 1024, help: 'event partitions (NATS subjects, prefetcher shares; default 8)' },
  prefetchers: { kind: 'int', scope: 'up', min: 0, max: 64, help: 'pkp up --distributed: prefetcher processes (default 2)' },
  nodes: { kind: 'list', scope: 'up', help: 'pkp prefetcher: the front-end node ids a queue\'s requests may reach' },
} as const satisfies Record<string, Setting>;

export type ConfigKey = keyof typeof SCHEMA;
type ValueOf<K extends Kind> = K extends 'int' | 'number' ? number : K extends 'boolean' ? boolean : K extends 'list' ? string[] : string;
export type Config = { [K in ConfigKey]?: ValueOf<(typeof SCHEMA)[K]['kind']> };

export const envName = (key: string): string => 'PKP_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
export const flagName = (key: ConfigKey): string => (SCHEMA[key] as Setting).flag ?? key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
/** Where commander puts a flag's value. */
const attributeOf = (key: ConfigKey): string => flagName(key).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Checks one value from `where` (a file, an env var, a flag) against its setting. */
export function parseSetting(key: ConfigKey, raw: unknown, where: string): Config[ConfigKey] {
  const s: Setting = SCHEMA[key];
  const bad = (expected: string): never => {
    throw new ConfigError(`${where}: ${where.startsWith('--') || where.startsWith('PKP_') ? 'value' : key} must be ${expected}, not ${JSON.stringify(raw)}`);
  };
  switch (s.kind) {
    case 'int':
    case 'number': {
      if (s.infinity && (raw === 'inf' || raw === 'Infinity')) return Infinity;
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      const range = `${s.min ?? '-inf'}..${s.max ?? 'inf'}`;
      if (!Number.isFinite(n) || (s.kind === 'int' && !Number.isInteger(n))) bad(`${s.kind === 'int' ? 'an integer' : 'a number'} in ${range}`);
      if ((s.min !== undefined && n < s.min) || (s.max !== undefined && n > s.max)) bad(`in ${range}`);
      return n;
    }
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      return bad('true or false');
    case 'list': {
      const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : bad('a list');
      const names = items.map((x) => (typeof x === 'string' ? x.trim() : bad('a list of names'))).filter((x) => x !== '');
      return names.length > 0 ? names : bad('a non-empty list');
    }
    case 'string':
      if (typeof raw !== 'string' || raw === '') return bad('a non-empty string');
      if (s.oneOf && !s.oneOf.includes(raw)) bad(`one of ${s.oneOf.join(', ')}`);
      return raw;
  }
}

const isKey = (key: string): key is ConfigKey => Object.hasOwn(SCHEMA, key);

/** Reads a JSON configuration file: an object of schema keys. */
export function readConfigFile(path: string): Config {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`cannot read configuration ${path}: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`${path}: expected a JSON object of settings`);
  const config: Config = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!isKey(key)) throw new ConfigError(`${path}: unknown setting '${key}' (known: ${Object.keys(SCHEMA).join(', ')})`);
    (config as Record<string, unknown>)[key] = parseSetting(key, value, path);
  }
  return config;
}

/** Settings from PKP_* variables; an unknown PKP_ name is an error (a typo would be silently ignored otherwise). */
export function readConfigEnv(env: NodeJS.ProcessEnv): Config {
  const byEnv = new Map(Object.keys(SCHEMA).map((k) => [envName(k), k as ConfigKey]));
  const config: Config = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('PKP_') || value === undefined) continue;
    if (ENV_NOT_SETTINGS.has(name) || name.startsWith('PKP_TEST_')) continue;
    const key = byEnv.get(name);
    if (key === undefined) throw new ConfigError(`unknown environment variable ${name} (known: ${[...byEnv.keys(), ...ENV_NOT_SETTINGS].join(', ')})`);
    (config as Record<string, unknown>)[key] = parseSetting(key, value, name);
  }
  return config;
}

/**
 * PKP_ variables that are not settings: secrets (kept out of files and flags), the development switch
 * of bin/pkp.js, and the test and bench harness's own (PKP_REQUIRE_SERVICES, PKP_BENCH_SECONDS, PKP_TEST_*).
 */
const ENV_NOT_SETTINGS = new Set(['PKP_KMS_ROOT_KEY', 'PKP_SQS_CREDENTIALS', 'PKP_ADMIN_TOKEN', 'PKP_FROM_SOURCE', 'PKP_REQUIRE_SERVICES', 'PKP_BENCH_SECONDS']);

/**
 * The settings in force: flags > env > file > defaults. `flags` holds only what was given on the
 * command line (already parsed); settings outside `scope` are ignored, so one file serves both commands.
 */
export function resolveConfig<D extends Config>(input: { file?: string; env?: NodeJS.ProcessEnv; flags: Config; defaults: D; scope: 'up' | 'replay' }): D & Config {
  const file = input.file !== undefined ? readConfigFile(input.file) : {};
  const env = readConfigEnv(input.env ?? process.env);
  const merged: Record<string, unknown> = { ...input.defaults };
  for (const layer of [file, env, input.flags]) {
    for (const [key, value] of Object.entries(layer)) {
      const s: Setting = SCHEMA[key as ConfigKey];
      if (value !== undefined && (s.scope === 'shared' || s.scope === input.scope)) merged[key] = value;
    }
  }
  return merged as D & Config;
}

/** Commander parser for a schema flag: the same checks as the file and the env. */
export function flagParser(key: ConfigKey) {
  return (value: string) => parseSetting(key, value, `--${flagName(key)}`);
}

/** The flags that were given on the command line, by schema key. */
export function flagsGiven(options: Record<string, unknown>, source: (name: string) => string | undefined): Config {
  const flags: Config = {};
  for (const key of Object.keys(SCHEMA) as ConfigKey[]) {
    const attribute = attributeOf(key);
    if (options[attribute] !== undefined && source(attribute) === 'cli') (flags as Record<string, unknown>)[key] = options[attribute];
  }
  return flags;
}
