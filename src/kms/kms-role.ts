import type { FastifyInstance } from 'fastify';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { Random } from '../core/random.ts';
import { createKmsApiServer } from './kms-api-server.ts';
import { parseLatency } from './latency.ts';
import { ACCOUNT_ID, LocalKms } from './local-kms.ts';
import { ModeledKms } from './modeled-kms.ts';

export interface KmsRoleOptions {
  dataDir: string;
  host?: string;
  /** 0 picks a free port. */
  port: number;
  region?: string;
  /** accessKeyId → secretAccessKey of the callers allowed in (the metadata services, an operator). */
  credentials: Map<string, string>;
  clock: Clock;
  logger: Logger;
  /** GenerateDataKey and Decrypt per second; beyond it ThrottlingException, as AWS KMS's request quota. */
  ratePerSecond?: number;
  /** Added latency of GenerateDataKey and Decrypt (see parseLatency), to behave like a remote KMS. */
  latency?: string;
}

export interface RunningKmsRole {
  endpoint: string;
  kms: LocalKms;
  close(): Promise<void>;
}

/** The KMS role: the embedded KMS's master keys behind the AWS KMS API. */
export async function startKmsRole(options: KmsRoleOptions): Promise<RunningKmsRole> {
  const region = options.region ?? 'us-east-1';
  const kms = await LocalKms.open({ dataDir: options.dataDir, clock: options.clock, region });
  let server: FastifyInstance | undefined;
  try {
    const limited = options.ratePerSecond !== undefined || options.latency !== undefined
      ? new ModeledKms(kms, options.clock, {
        ratePerSecond: options.ratePerSecond,
        latency: options.latency !== undefined ? parseLatency(options.latency, new Random(1)) : undefined,
      })
      : undefined;
    server = createKmsApiServer({
      kms, crypto: limited, credentials: options.credentials, clock: options.clock, logger: options.logger, accountId: ACCOUNT_ID, region,
    });
    const host = options.host ?? '127.0.0.1';
    await server.listen({ port: options.port, host });
    const address = server.server.address();
    const port = typeof address === 'object' && address ? address.port : options.port;
    const running = server;
    return {
      endpoint: `http://${host}:${port}`,
      kms,
      close: async () => {
        await running.close();
        await kms.close();
      },
    };
  } catch (error) {
    await server?.close();
    await kms.close();
    throw error;
  }
}
