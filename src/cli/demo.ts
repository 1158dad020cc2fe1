import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateQueueCommand, DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageBatchCommand, SQSClient,
} from '@aws-sdk/client-sqs';
import type { RunningService } from '../service.ts';

/** One queue of the demo and the shape of its traffic. */
interface DemoQueue {
  name: string;
  /** Messages per second while on. */
  rate: number;
  /** On/off cycle in seconds; undefined = always on. */
  onSeconds?: number;
  offSeconds?: number;
}

const QUEUES: DemoQueue[] = [
  { name: 'demo-orders', rate: 40 },
  { name: 'demo-emails', rate: 25, onSeconds: 5, offSeconds: 10 },
  { name: 'demo-reports', rate: 60, onSeconds: 2, offSeconds: 20 },
  { name: 'demo-audit', rate: 5 },
];

export interface DemoHandle {
  finished: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Drives a small workload of several queues through the real SQS endpoint with the AWS SDK and
 * prints a live one-line summary, then a final one.
 */
export function runDemo(service: RunningService, options: { durationSeconds?: number; out: NodeJS.WritableStream }): DemoHandle {
  const credential = service.credentials[0]!;
  // The SDK is pinned to a release that supports Node 20; its notice about later releases is noise here.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const client = new SQSClient({
    endpoint: service.endpoint, region: 'us-east-1',
    credentials: { accessKeyId: credential.accessKeyId, secretAccessKey: credential.secretAccessKey },
  });
  const counters = { requests: 0, sent: 0, received: 0, errors: 0 };
  let running = true;
  const started = Date.now();
  const deadline = options.durationSeconds !== undefined ? started + options.durationSeconds * 1000 : Infinity;
  const live = (): boolean => running && Date.now() < deadline;

  const summary = (): string => {
    const seconds = Math.max(1, (Date.now() - started) / 1000);
    const nodes = service.frontends.map((f) => {
      const { hits, misses } = f.cache.stats;
      return `${f.nodeId} ${hits + misses > 0 ? ((100 * hits) / (hits + misses)).toFixed(1) : '-'}%`;
    });
    let hits = 0;
    let lookups = 0;
    for (const f of service.frontends) {
      hits += f.cache.stats.hits;
      lookups += f.cache.stats.hits + f.cache.stats.misses;
    }
    const ratio = lookups > 0 ? `${((100 * hits) / lookups).toFixed(1)}%` : '-';
    const p = service.prefetcher?.stats;
    const prefetches = p ? `prefetches issued ${p.issued} used ${p.used} wasted ${p.wasted}` : 'prefetch off';
    const kms = service.kms.counts();
    return `t=${seconds.toFixed(0)}s req/s ${(counters.requests / seconds).toFixed(0)} | key-cache hit ratio ${ratio} (${nodes.join(' ')}) | ${prefetches} | KMS calls ${kms.total} ` +
      `(demand ${kms.byReason.demand}, prefetch ${kms.byReason.prefetch + kms.byReason.refresh}) | sent ${counters.sent} received ${counters.received} errors ${counters.errors}`;
  };

  const worker = async (queue: DemoQueue): Promise<void> => {
    const created = await client.send(new CreateQueueCommand({ QueueName: queue.name, Attributes: { KmsDataKeyReusePeriodSeconds: '60' } }));
    counters.requests++;
    const url = created.QueueUrl!;
    let n = 0;
    while (live()) {
      const cycle = (queue.onSeconds ?? 1) + (queue.offSeconds ?? 0);
      const phase = ((Date.now() - started) / 1000) % cycle;
      if (queue.onSeconds !== undefined && phase >= queue.onSeconds) {
        await sleep(200);
        continue;
      }
      try {
        const entries = Array.from({ length: Math.max(1, Math.round(queue.rate / 5)) }, () => ({ Id: `m${n}`, MessageBody: `demo message ${n++} for ${queue.name}` }));
        await client.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries.slice(0, 10) }));
        counters.requests++;
        counters.sent += Math.min(10, entries.length);
        const received = await client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
        counters.requests++;
        const messages = received.Messages ?? [];
        counters.received += messages.length;
        if (messages.length > 0) {
          await client.send(new DeleteMessageBatchCommand({ QueueUrl: url, Entries: messages.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle! })) }));
          counters.requests++;
        }
      } catch {
        counters.errors++;
      }
      await sleep(200);
    }
  };

  const ticker = setInterval(() => options.out.write(`\r${summary()}   `), 1000);
  const finished = Promise.allSettled(QUEUES.map(worker)).then(() => {
    clearInterval(ticker);
    options.out.write(`\nfinal: ${summary()}\n`);
    client.destroy();
  });
  return {
    finished,
    async stop() {
      running = false;
      await finished;
    },
  };
}
