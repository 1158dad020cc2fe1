import type { QueueKeySettings } from '../metadata/types.ts';
import type { QueueRecord, QueueStore } from '../store/types.ts';
import { keySettingsOf } from './queue-attributes.ts';

/**
 * The key settings of queues (master key, data-key reuse) as the key tier and the prefetcher need
 * them: read through the queue registry, or, for a reader that cannot wait (the prefetcher's
 * reuseMsOf), from the record the store last saw.
 */
export class QueueKeySettingsSource {
  /** `defaultReuseSeconds`: the reuse period of queues that do not set KmsDataKeyReusePeriodSeconds. */
  constructor(private readonly queues: Pick<QueueStore, 'getQueueById' | 'knownQueue'>, private readonly defaultReuseSeconds?: number) {}

  /** The queue's settings now, or undefined when it does not exist. */
  async settingsOf(queueId: string): Promise<QueueKeySettings | undefined> {
    const queue = await this.queues.getQueueById(queueId);
    return queue && this.of(queue);
  }

  /** Without I/O: the settings of the queue as the store last saw it; undefined when it has not. */
  knownSettingsOf(queueId: string): QueueKeySettings | undefined {
    const queue = this.queues.knownQueue(queueId);
    return queue && this.of(queue);
  }

  private of(queue: QueueRecord): QueueKeySettings {
    const settings = keySettingsOf(queue);
    if (this.defaultReuseSeconds !== undefined && queue.attributes.KmsDataKeyReusePeriodSeconds === undefined) settings.reuseMs = this.defaultReuseSeconds * 1000;
    return settings;
  }
}
