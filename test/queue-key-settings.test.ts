import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueueKeySettingsSource } from '../src/frontend/queue-key-settings.ts';
import { SqliteMessageStore } from '../src/store/sqlite-store.ts';
import { DEFAULT_KEY_ALIAS } from '../src/kms/types.ts';

test('queue key settings: read through the store, the default reuse for queues that set none, known without I/O once read', async () => {
  const store = SqliteMessageStore.open({ path: ':memory:' });
  try {
    const own = (await store.createQueue('own', { KmsMasterKeyId: 'alias/k', KmsDataKeyReusePeriodSeconds: '120' }, 0)).queue.queueId;
    const plain = (await store.createQueue('plain', {}, 0)).queue.queueId;
    const source = new QueueKeySettingsSource(store, 60);
    assert.deepEqual(await source.settingsOf(own), { queueId: own, kmsMasterKeyId: 'alias/k', reuseMs: 120_000 });
    assert.deepEqual(await source.settingsOf(plain), { queueId: plain, kmsMasterKeyId: DEFAULT_KEY_ALIAS, reuseMs: 60_000 });
    assert.equal(await source.settingsOf('f'.repeat(32)), undefined);

    await store.setQueueAttributes(own, { KmsDataKeyReusePeriodSeconds: '300' }, 1);
    assert.equal(source.knownSettingsOf(own)?.reuseMs, 300_000, 'a change made through the store is known at once');
    await store.deleteQueue(plain, 2);
    assert.equal(source.knownSettingsOf(plain), undefined, 'a deleted queue is not known');
    assert.equal(await source.settingsOf(plain), undefined);
  } finally {
    await store.close();
  }
});
