import { randomBytes } from 'node:crypto';
import { Bench } from 'tinybench';
import { aeadEncrypt } from '../src/crypto/aead.ts';
import { median } from './stats.ts';

/** AES-256-GCM encryption of a 1 KiB body: the raw limit of the per-message work. */
export async function benchAead(): Promise<Record<string, unknown>> {
  const key = randomBytes(32);
  const body = randomBytes(1024);
  const aad = Buffer.from('queue\u0000message');
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    const bench = new Bench({ time: 400, warmupTime: 100 });
    bench.add('aes-256-gcm 1KiB', () => {
      aeadEncrypt(key, body, aad);
    });
    await bench.run();
    const task = bench.getTask('aes-256-gcm 1KiB')!;
    const latency = task.result && 'latency' in task.result ? task.result.latency : undefined;
    rounds.push(1e3 / (latency?.p50 ?? NaN));
  }
  return { encryptOpsPerSecond: median(rounds), rounds };
}
