// A service on a virtual clock with one SDK client, for suites that share them across their tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SQSClient } from '@aws-sdk/client-sqs';
import { VirtualClock } from '../../src/core/clock.ts';
import { startService, type Credential, type RunningService } from '../../src/service.ts';
import { openTestStore } from './test-store.ts';

export interface SdkService {
  clock: VirtualClock;
  service: RunningService;
  sqs: SQSClient;
  close(): Promise<void>;
}

export async function openSdkService(credentials: Credential, dirPrefix: string, frontends: number): Promise<SdkService> {
  const clock = new VirtualClock(Date.now());
  const dataDir = mkdtempSync(join(tmpdir(), dirPrefix));
  const store = await openTestStore();
  let service: RunningService;
  try {
    service = await startService({ dataDir, port: 0, adminPort: null, frontends, credentials: [credentials], clock, postgres: store.postgres });
  } catch (error) {
    await store.drop();
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const sqs = new SQSClient({ endpoint: service.endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
  return {
    clock, service, sqs,
    close: async () => {
      sqs.destroy();
      await service.close();
      await store.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
