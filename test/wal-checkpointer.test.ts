import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { WalCheckpointer } from '../src/store/wal-checkpointer.ts';
import { SqliteMessageStore } from '../src/store/sqlite-store.ts';

/** Rows the database file holds by itself: a copy of it without its WAL. */
function rowsInDatabaseFile(dir: string, path: string, name: string): number {
  const copy = join(dir, name);
  copyFileSync(path, copy);
  const db = new Database(copy, { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('WalCheckpointer', () => {
  let dir: string;
  let path: string;
  let writer: Database.Database;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pkp-wal-'));
    path = join(dir, 'db.sqlite');
    writer = new Database(path);
    writer.pragma('journal_mode = WAL');
    writer.pragma('wal_autocheckpoint = 0'); // only the worker moves the WAL in
    writer.exec('CREATE TABLE t (v BLOB)');
    writer.pragma('wal_checkpoint(TRUNCATE)'); // the table is in the file; its rows will not be
  });
  after(() => {
    writer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('moves committed frames into the database file from its worker, and stops when closed', async () => {
    const checkpointer = WalCheckpointer.start(path, 60_000); // ticks too rare to run within the test
    try {
      const insert = writer.prepare('INSERT INTO t (v) VALUES (?)');
      writer.transaction(() => { for (let i = 0; i < 200; i++) insert.run(Buffer.alloc(1024, i)); })();
      assert.equal(rowsInDatabaseFile(dir, path, 'before.sqlite'), 0, 'the rows are only in the WAL so far');
      const result = await checkpointer.checkpointNow();
      assert.ok(result.walFrames > 0, `frames ${result.walFrames}`);
      assert.equal(result.copiedFrames, result.walFrames, 'a PASSIVE checkpoint with an idle writer copies every frame');
      assert.equal(rowsInDatabaseFile(dir, path, 'after.sqlite'), 200);
    } finally {
      await checkpointer.close();
    }
    await assert.rejects(checkpointer.checkpointNow(), /stopped/);
    await checkpointer.close(); // twice is harmless
  });

  it('ends, and says so, when it cannot open the database', async () => {
    const bogus = join(dir, 'not-there.sqlite');
    const checkpointer = WalCheckpointer.start(bogus);
    await assert.rejects(checkpointer.checkpointNow(), /stopped/, 'the worker cannot open it and ends');
    await checkpointer.close();
  });

  it('runs beside a file store and ends with it: no WAL is left after close, and the store reopens', async () => {
    const storePath = join(dir, 'messages.db');
    const store = SqliteMessageStore.open({ path: storePath });
    await store.createQueue('q', {}, 0);
    assert.ok(existsSync(`${storePath}-wal`), 'open: the WAL is in use');
    await store.close();
    // The last connection to close moves the WAL into the database and removes it.
    assert.equal(existsSync(`${storePath}-wal`), false, 'closed: no WAL left');
    const reopened = SqliteMessageStore.open({ path: storePath });
    try {
      assert.ok(await reopened.getQueueByName('q'));
    } finally {
      await reopened.close();
    }
  });
});
