import type { MessageStore, QueueCounts, QueueRecord } from './types.ts';

/** The counts of a queue that holds no message (countsByQueue leaves it out). */
const NO_MESSAGES: QueueCounts = { visible: 0, inFlight: 0, delayed: 0 };

/** Every queue with its counts, in two store reads however many queues there are (operators' views). */
export async function everyQueueCounts(store: MessageStore, now: number): Promise<{ queue: QueueRecord; counts: QueueCounts }[]> {
  const [queues, counts] = await Promise.all([store.listAllQueues(), store.countsByQueue(now)]);
  return queues.map((queue) => ({ queue, counts: counts.get(queue.queueId) ?? NO_MESSAGES }));
}
