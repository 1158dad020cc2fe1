/**
 * What one SendMessage cannot do without, each part measured alone (CPU µs per operation, on the
 * load generator's core): the SigV4 check of a signed request, AES-GCM of a 1 KiB body, its MD5, and
 * the SQLite insert of its row in a group commit of 42 (the commit size the endpoint reaches under
 * 64 connections). Added to the HTTP layer's own cost (the bare node:http echo's server CPU per
 * request), they give the floor a durable, encrypted, authenticated send stands on. A batch's floor
 * is one request's HTTP and SigV4 (over ten bodies) and ten messages' AES-GCM, MD5 and insert.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uuidv7 } from '../src/core/uuid7.ts';
import { aeadEncrypt } from '../src/crypto/aead.ts';
import { md5OfBody } from '../src/frontend/md5.ts';
import { verifySigV4 } from '../src/frontend/sigv4.ts';
import { SqliteMessageStore } from '../src/store/sqlite-store.ts';
import type { NewMessage } from '../src/store/types.ts';
import { median } from './stats.ts';

function cpuMicros(run: () => void, iterations: number): number {
  for (let i = 0; i < Math.min(1000, iterations); i++) run(); // warm-up
  const before = process.cpuUsage();
  for (let i = 0; i < iterations; i++) run();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / iterations;
}

export interface SignedRequest {
  headers: Record<string, string>;
  body: string;
}

/** CPU µs of the SigV4 check of one signed request (its body hashed, its signature compared). */
function sigv4Micros(signed: SignedRequest, secretAccessKey: string): number {
  const headers = Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const bodyBytes = Buffer.from(signed.body);
  const now = Date.parse(headers['x-amz-date']!.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
  return cpuMicros(() => {
    verifySigV4({ method: 'POST', path: '/', query: '', headers, body: bodyBytes }, () => secretAccessKey, now, { region: 'us-east-1', mustSign: ['content-type', 'x-amz-target'] });
  }, 20_000);
}

/** `signed` is a SendMessage, `signedBatch` a SendMessageBatch of ten (its SigV4 hashes ten bodies). */
export async function measureFloors(signed: SignedRequest, signedBatch: SignedRequest, secretAccessKey: string, body: string): Promise<Record<string, number>> {
  const sigv4 = sigv4Micros(signed, secretAccessKey);
  const sigv4Batch10 = sigv4Micros(signedBatch, secretAccessKey);
  const key = randomBytes(32);
  const plaintext = Buffer.from(body);
  const aad = Buffer.from(`queue\u0000${randomUUID()}`);
  const aesGcm = cpuMicros(() => void aeadEncrypt(key, plaintext, aad), 20_000);
  const md5 = cpuMicros(() => void md5OfBody(body), 20_000);

  return {
    sigv4, sigv4Batch10, aesGcm1KiB: aesGcm, md5,
    sqliteInsertIn42RowCommit: await sqliteInsert(1, plaintext.length),
    // The same rows spread over 10,000 queues: each dirties its own pages of the per-queue indexes.
    sqliteInsertIn42RowCommit10kQueues: await sqliteInsert(10_000, plaintext.length),
  };
}

/** CPU µs per message of group-committed puts (42 a commit) over `queues` queues, round-robin. */
async function sqliteInsert(queues: number, bodyBytes: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'pkp-bench-floor-'));
  const store = SqliteMessageStore.open({ path: join(dir, 'messages.db') });
  try {
    const queueIds: string[] = [];
    for (let i = 0; i < queues; i++) queueIds.push((await store.createQueue(`floor-${i}`, {}, 0)).queue.queueId);
    const dek = randomBytes(180);
    // Ids and times as the service makes them (UUIDv7, rising): a random id lands on a random page
    // of the id index, which a send never does, and read 30 µs where the service pays 13.
    let at = 0;
    const row = (i: number): NewMessage => ({
      messageId: uuidv7(++at), queueId: queueIds[i % queues]!, bodyCiphertext: randomBytes(bodyBytes + 28), attributesCiphertext: null, encryptedDek: dek,
      dekId: 'dek', kmsKeyId: 'key', senderPrincipal: 'bench', sentAt: at, visibleAt: at, bodyBytes,
    });
    const put = async (rows: NewMessage[]) => {
      for (let i = 0; i < rows.length; i += 42) await Promise.all(rows.slice(i, i + 42).map((m) => store.putMessages([m])));
    };
    await put(Array.from({ length: 42 * 250 }, (_, i) => row(i))); // a backlog first: the indexes have depth
    // The median of five timed runs: one run read anywhere from 4 to 23 µs more at 10,000 queues.
    const runs: number[] = [];
    for (let r = 0; r < 5; r++) {
      const rows = Array.from({ length: 42 * 250 }, (_, i) => row(i));
      const before = process.cpuUsage();
      await put(rows);
      const used = process.cpuUsage(before);
      runs.push((used.user + used.system) / rows.length);
    }
    return median(runs);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
