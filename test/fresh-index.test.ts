import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { FreshIndex } from '../src/store/fresh-index.ts';
import { encodeReceiptHandle } from '../src/store/receipt-handle.ts';
import { SqliteMessageStore } from '../src/store/sqlite-store.ts';
import type { NewMessage, ReceivedMessage } from '../src/store/types.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** What `each` visits, as [seq, visibleAt] pairs. */
function listed(index: FreshIndex, queueId: string, max = Infinity, until = Infinity, strictly = false): [number, number][] {
  const out: [number, number][] = [];
  index.each(queueId, max, until, (seq, visibleAt) => void out.push([seq, visibleAt]), strictly);
  return out;
}

describe('FreshIndex', () => {
  it('keeps each queue in receive order (visibleAt, then seq), whatever order the adds come in', () => {
    const index = new FreshIndex();
    index.add('q', 1, 10, 'a');
    index.add('q', 2, 20, 'b');
    index.add('q', 3, 5, 'c'); // a clock that went back
    index.add('q', 4, 20, 'd');
    index.add('q', 2, 20, 'b'); // twice: kept once
    index.add('other', 9, 1, 'x');
    assert.deepEqual(listed(index, 'q'), [[3, 5], [1, 10], [2, 20], [4, 20]]);
    assert.equal(index.size('q'), 4);
    assert.deepEqual(listed(index, 'q', 2), [[3, 5], [1, 10]]);
    assert.deepEqual(listed(index, 'q', Infinity, 10), [[3, 5], [1, 10]]);
    assert.deepEqual(listed(index, 'q', Infinity, 10, true), [[3, 5]]);
    assert.equal(index.countUntil('q', 19), 2);
    assert.equal(index.firstVisibleAt('q'), 5);
    assert.deepEqual([...index.queues()].sort(), ['other', 'q']);
    const deks: string[] = [];
    index.each('q', Infinity, Infinity, (_s, _v, dek) => void deks.push(dek));
    assert.deepEqual(deks, ['c', 'a', 'b', 'd']);
  });

  it('a removal is undone by a rollback to its mark, in place, and kept by a commit', () => {
    const index = new FreshIndex();
    for (let seq = 1; seq <= 5; seq++) index.add('q', seq, seq * 10, `d${seq}`);
    assert.equal(index.remove('q', 1, 10), true);
    const mark = index.mark();
    assert.equal(index.remove('q', 3, 30), true);
    assert.equal(index.remove('q', 3, 30), false, 'already out');
    assert.equal(index.remove('q', 4, 999), false, 'another visibleAt: not this entry');
    assert.equal(index.remove('nope', 1, 10), false);
    assert.deepEqual(listed(index, 'q'), [[2, 20], [4, 40], [5, 50]]);
    assert.throws(() => index.add('q', 6, 60, 'd6'), /pending/);
    index.rollback(mark);
    assert.deepEqual(listed(index, 'q'), [[2, 20], [3, 30], [4, 40], [5, 50]]);
    assert.equal(index.size('q'), 4);
    index.rollback();
    assert.deepEqual(listed(index, 'q').map(([s]) => s), [1, 2, 3, 4, 5]);
    index.remove('q', 1, 10);
    index.remove('q', 2, 20);
    index.commit();
    index.rollback(); // nothing left to undo
    assert.deepEqual(listed(index, 'q').map(([s]) => s), [3, 4, 5]);
    assert.equal(index.firstVisibleAt('q'), 30);
    index.add('q', 6, 60, 'd6');
    assert.deepEqual(listed(index, 'q').map(([s]) => s), [3, 4, 5, 6]);
  });

  it('each lets its visitor remove what it is given; a drained queue is listed no more', () => {
    const index = new FreshIndex();
    for (let seq = 1; seq <= 300; seq++) index.add('q', seq, seq, 'd');
    let visited = 0;
    index.each('q', Infinity, Infinity, (seq, visibleAt) => {
      visited++;
      index.remove('q', seq, visibleAt);
    });
    assert.equal(visited, 300);
    assert.equal(index.size('q'), 0);
    index.commit();
    assert.deepEqual([...index.queues()], []);
    assert.equal(index.firstVisibleAt('q'), undefined);
    index.add('q', 301, 301, 'd');
    assert.deepEqual(listed(index, 'q'), [[301, 301]]);
    index.dropQueue('q');
    assert.equal(index.size('q'), 0);
  });

  it('agrees with a plain sorted list through thousands of random adds, removals, rollbacks and commits', () => {
    let seed = 42;
    const random = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const index = new FreshIndex();
    let model: [number, number][] = [];
    let pending: [number, number][][] = [];
    let nextSeq = 1;
    let clock = 0;
    for (let step = 0; step < 20_000; step++) {
      const r = random();
      if (r < 0.45 && pending.length === 0) {
        clock += random() < 0.05 ? -Math.floor(random() * 50) : Math.floor(random() * 3);
        index.add('q', nextSeq, clock, 'd');
        model.push([nextSeq++, clock]);
        model.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
      } else if (r < 0.8 && model.length > 0) {
        const [seq, visibleAt] = model[Math.floor(random() * model.length)]!;
        assert.equal(index.remove('q', seq, visibleAt), true);
        model = model.filter(([s]) => s !== seq);
        pending.push([[seq, visibleAt]]);
      } else if (r < 0.9) {
        // Roll back the last half of the pending removals.
        const keep = Math.floor(pending.length / 2);
        let mark = 0;
        for (let i = 0; i < keep; i++) mark += pending[i]!.length;
        index.rollback(mark);
        for (const back of pending.slice(keep)) model.push(...back);
        model.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
        pending = pending.slice(0, keep);
      } else {
        index.commit();
        pending = [];
      }
      if (step % 97 === 0) assert.deepEqual(listed(index, 'q'), model, `step ${step}`);
    }
    assert.deepEqual(listed(index, 'q'), model);
    assert.equal(index.size('q'), model.length);
  });
});

describe('SQLite store with fresh messages kept in memory', () => {
  function newMessage(queueId: string, sentAt: number, delayMs = 0): NewMessage {
    return {
      messageId: randomUUID(), queueId, bodyCiphertext: randomBytes(16), attributesCiphertext: null, encryptedDek: randomBytes(8),
      dekId: `dek-${sentAt % 3}`, kmsKeyId: 'k', senderPrincipal: 'p', sentAt, visibleAt: sentAt + delayMs, bodyBytes: 16,
    };
  }

  it('counts, receives and restarts agree with the table itself through random sends, receives, deletes, purges and expiry', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pkp-fresh-'));
    dirs.push(dir);
    const path = join(dir, 'messages.db');
    let store = SqliteMessageStore.open({ path });
    const truth = new Database(path, { readonly: true });
    try {
      const queues: string[] = [];
      for (let i = 0; i < 4; i++) queues.push((await store.createQueue(`q${i}`, {}, 0)).queue.queueId);
      let seed = 7;
      const random = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
      const held: ReceivedMessage[] = [];
      const sent: NewMessage[] = [];
      let now = 1_000;
      const check = async (): Promise<void> => {
        for (const q of queues) {
          const row = truth.prepare(`SELECT sum(visible_at <= @now) AS visible, sum(visible_at > @now AND receive_count > 0) AS inFlight,
            sum(visible_at > @now AND receive_count = 0) AS delayed FROM messages NOT INDEXED WHERE queue_id = @q`).get({ now, q }) as Record<string, number | null>;
          const expected = { visible: row.visible ?? 0, inFlight: row.inFlight ?? 0, delayed: row.delayed ?? 0 };
          assert.deepEqual(await store.counts(q, now), expected, `queue ${q} at ${now}`);
          assert.deepEqual((await store.countsByQueue(now)).get(q) ?? { visible: 0, inFlight: 0, delayed: 0 }, expected);
          const total = expected.visible + expected.inFlight + expected.delayed;
          assert.equal(await store.backlog(q, 1_000), total);
        }
      };
      for (let step = 0; step < 600; step++) {
        now += Math.floor(random() * 400);
        const q = queues[Math.floor(random() * queues.length)]!;
        const r = random();
        if (r < 0.4) {
          const batch = Array.from({ length: 1 + Math.floor(random() * 5) }, () => newMessage(q, now, random() < 0.2 ? 2_000 : 0));
          sent.push(...batch);
          await Promise.all(batch.map((m) => store.putMessages([m])));
        } else if (r < 0.65) {
          held.push(...await store.receiveMessages(q, 1 + Math.floor(random() * 4), random() < 0.5 ? 500 : 60_000, now));
        } else if (r < 0.85 && held.length > 0) {
          const m = held.splice(Math.floor(random() * held.length), 1)[0]!;
          await store.deleteMessage(m.queueId, m.receiptHandle);
        } else if (r < 0.87 && sent.length > 0) {
          // Any handle naming a message deletes it, even one made up for a message never received.
          const m = sent[Math.floor(random() * sent.length)]!;
          await store.deleteMessage(m.queueId, encodeReceiptHandle({ queueId: m.queueId, messageId: m.messageId, nonce: '00'.repeat(16) }));
        } else if (r < 0.89) {
          await store.purgeQueue(q);
        } else if (r < 0.92) {
          await store.dropExpired(q, 20_000, now);
        } else if (r < 0.95) {
          await store.close();
          store = SqliteMessageStore.open({ path });
        } else {
          const next = await store.nextVisibleAt(q);
          const min: number | null = (truth.prepare('SELECT min(visible_at) AS t FROM messages NOT INDEXED WHERE queue_id = ?').get(q) as { t: number | null }).t;
          assert.equal(next, min ?? undefined);
        }
        if (step % 20 === 0) await check();
      }
      await check();
      // Everything the table holds comes out, once, in receive order.
      now += 1_000_000;
      for (const q of queues) {
        const ids = (truth.prepare('SELECT message_id FROM messages NOT INDEXED WHERE queue_id = ? ORDER BY visible_at, seq').all(q) as { message_id: string }[])
          .map((m) => m.message_id);
        const got: string[] = [];
        for (;;) {
          const batch = await store.receiveMessages(q, 10, 60_000, now);
          if (batch.length === 0) break;
          got.push(...batch.map((m) => m.messageId));
        }
        assert.deepEqual(got, ids);
      }
    } finally {
      truth.close();
      await store.close();
    }
  });
});
