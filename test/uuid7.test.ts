import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uuidv7 } from '../src/core/uuid7.ts';

test('uuidv7: RFC 9562 layout, time-ordered, unique', () => {
  const shape = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const t = Date.UTC(2026, 10, 24, 12, 0, 0);
  const id = uuidv7(t);
  assert.match(id, shape);
  // The first 48 bits are the milliseconds.
  assert.equal(parseInt(id.slice(0, 8) + id.slice(9, 13), 16), t);
  const ids = Array.from({ length: 100_000 }, (_, i) => uuidv7(t + i));
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual([...ids].sort(), ids);
  assert.ok(ids.every((x) => shape.test(x)));
});
