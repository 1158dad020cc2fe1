/**
 * Liveness and readiness, served on both ports. /healthz: the process answers. /readyz: the store
 * takes a write, the KMS answers, and the key tier serves; 503 with the failing checks otherwise.
 */
import type { FastifyInstance } from 'fastify';
import type { Clock } from './core/clock.ts';
import { DEFAULT_KEY_ALIAS, type Kms } from './kms/types.ts';
import type { KeyService } from './metadata/key-service.ts';
import type { MessageStore } from './store/types.ts';

export interface ReadinessParts {
  store: MessageStore;
  kms: Kms;
  keys: KeyService;
  clock: Clock;
  /** Set while draining: not ready, so a load balancer stops sending. */
  isClosing: () => boolean;
}

export type CheckResult = { ok: true } | { ok: false; error: string };

const KMS_PROBE_TIMEOUT_MS = 2_000;

export async function readiness(parts: ReadinessParts): Promise<{ ready: boolean; checks: Record<string, CheckResult> }> {
  const checks: Record<string, CheckResult> = {};
  const fail = (error: unknown): CheckResult => ({ ok: false, error: error instanceof Error ? error.name : 'failed' });
  try {
    await parts.store.probeWritable(parts.clock.now());
    checks.store = { ok: true };
  } catch (error) {
    checks.store = fail(error);
  }
  try {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      // Any answer shows the KMS is reachable: the default key may not exist before the first message.
      parts.kms.describeKey(DEFAULT_KEY_ALIAS).catch((error: unknown) => {
        if ((error as { code?: unknown }).code !== 'NotFoundException') throw error;
      }),
      new Promise((_resolve, reject) => (timer = setTimeout(() => reject(new Error('timeout')), KMS_PROBE_TIMEOUT_MS))),
    ]).finally(() => clearTimeout(timer));
    checks.kms = { ok: true };
  } catch (error) {
    checks.kms = error instanceof Error && error.message === 'timeout' ? { ok: false, error: 'Timeout' } : fail(error);
  }
  const tier = parts.keys.health();
  checks.keyTier = tier.serving ? { ok: true } : { ok: false, error: `not serving (${tier.waiting} calls waiting)` };
  if (parts.isClosing()) checks.draining = { ok: false, error: 'shutting down' };
  return { ready: Object.values(checks).every((c) => c.ok), checks };
}

/** Adds GET /healthz and GET /readyz to a server (no credential: probes carry none). */
export function addHealthRoutes(app: FastifyInstance, parts: ReadinessParts): void {
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_request, reply) => {
    const result = await readiness(parts);
    return reply.code(result.ready ? 200 : 503).send(result);
  });
}
