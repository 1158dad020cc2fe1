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

/** The demo line's window. */
const WINDOW_MS = 10_000;

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

  /** The last 10 s (counters since start say nothing about what the prefetcher does now). */
  const summary = (): string => {
    const seconds = Math.max(1, (Date.now() - started) / 1000);
    const w = service.stats.windowed(WINDOW_MS);
    const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);
    const nodes = (w?.nodes ?? []).map((n) => `${n.node} ${pct(n.hitRatio)}`);
    const p = service.prefetcher;
    const prefetches = p && w
      ? `prefetches issued ${w.prefetch.issued} used ${w.prefetch.used} wasted ${w.prefetch.wasted}`
      : 'prefetch off';
    const kms = w ? `KMS calls demand ${w.kms.demand}, prefetch ${w.kms.prefetch + w.kms.refresh}` : 'KMS calls -';
    return `t=${seconds.toFixed(0)}s last ${Math.round(w?.seconds ?? 0)}s: req/s ${(w?.requestsPerSecond ?? 0).toFixed(0)} | key-cache hit ratio ${pct(w?.hitRatio)} (${nodes.join(' ')}) | ${prefetches} | ${kms} | ` +
      `total sent ${counters.sent} received ${counters.received} errors ${counters.errors}`;
  };
  /** One line while the prefetcher has nothing to show yet, so an empty prefetch count is not read as broken. */
  const learningNote = (): string | undefined => {
    const p = service.prefetcher;
    if (!p || p.stats.issued > 0) return undefined;
    return 'prefetcher: learning — it prefetches once a queue has shown its pattern over a few key reuse periods (60 s here); until then keys are fetched on demand';
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

  // On a terminal one line is rewritten in place; elsewhere (a log, a pipe) a full line every 10 s.
  const tty = (options.out as NodeJS.WriteStream).isTTY === true;
  let noted = false;
  let lineOpen = false;
  const tick = (): void => {
    const note = learningNote();
    const learning = note !== undefined;
    if (learning !== noted) {
      options.out.write(`${lineOpen ? '\n' : ''}${note ?? 'prefetcher: prefetching now'}\n`);
      lineOpen = false;
      noted = learning;
    }
    if (tty) {
      options.out.write(`\r\x1b[2K${summary()}`);
      lineOpen = true;
    } else {
      options.out.write(`${summary()}\n`);
    }
  };
  let ticker: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    tick();
    ticker = setInterval(tick, tty ? 1000 : WINDOW_MS);
  }, 1000);
  const finished = Promise.allSettled(QUEUES.map(worker)).then(async () => {
    clearTimeout(first);
    clearInterval(ticker);
    await service.stats.sample();
    options.out.write(`${lineOpen ? '\n' : ''}final: ${summary()}\n`);
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
