import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueueStatsSchedule } from '../src/frontend/queue-stats-schedule.ts';

describe('QueueStatsSchedule', () => {
  it('counts a queue at most once per period', () => {
    const s = new QueueStatsSchedule(5_000, 100);
    assert.equal(s.due('a', 0), true);
    assert.equal(s.due('a', 4_999), false);
    assert.equal(s.due('a', 5_000), true);
    s.forget('a');
    assert.equal(s.due('a', 5_001), true, 'a deleted queue starts afresh');
  });

  it('bounds the counts a second over all queues, and a refused queue is counted when there is room', () => {
    const s = new QueueStatsSchedule(5_000, 10);
    let granted = 0;
    for (let q = 0; q < 1_000; q++) if (s.due(`q${q}`, 0)) granted++;
    assert.equal(granted, 10, 'one second of counts at once, no more');
    assert.equal(s.due('q999', 50), false, 'half a count has come back in 50 ms');
    assert.equal(s.due('q999', 100), true, 'refused before, so due now');
    // Over a minute of steady requests from every queue, about 10 a second are counted.
    granted = 0;
    for (let t = 1_000; t < 61_000; t += 10) if (s.due(`q${(t / 10) % 1_000}`, t)) granted++;
    assert.ok(granted >= 590 && granted <= 611, `granted ${granted}`);
  });
});
