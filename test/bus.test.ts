import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InProcessBus } from '../src/bus/in-process.ts';
import type { PkpEvent } from '../src/bus/types.ts';

const event: PkpEvent = { type: 'access', at: 1, queueId: 'q', nodeId: 'fe-1', principal: 'p', op: 'send', bytes: 3 };

test('a throwing subscriber is reported and skipped; the others and the publisher go on', async () => {
  const errors: unknown[] = [];
  const bus = new InProcessBus((error) => errors.push(error));
  const seen: PkpEvent[] = [];
  bus.subscribe(() => {
    throw new Error('broken subscriber');
  });
  const unsubscribe = bus.subscribe((e) => seen.push(e));
  bus.publish(event);
  assert.deepEqual(seen, [event]);
  assert.equal(errors.length, 1);
  unsubscribe();
  bus.publish(event);
  assert.equal(seen.length, 1);
  await bus.close();
});
