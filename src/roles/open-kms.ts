import { SystemClock } from '../core/clock.ts';
import { AwsKms } from '../kms/aws-kms.ts';
import { LocalKms } from '../kms/local-kms.ts';
import type { ManagedKms } from '../kms/types.ts';
import { parseCredential } from '../service.ts';

/** A KMS across the network when an endpoint is named (`pkp kms`, AWS KMS); else the embedded one in dataDir. */
export async function openKms(options: { dataDir: string; endpoint?: string; region: string; credentials?: string }): Promise<ManagedKms> {
  if (options.endpoint === undefined) return LocalKms.open({ dataDir: options.dataDir, clock: new SystemClock() });
  return new AwsKms({
    endpoint: options.endpoint, region: options.region,
    credentials: options.credentials === undefined ? undefined : parseCredential(options.credentials),
  });
}
