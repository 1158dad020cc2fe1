/**
 * One process at a time per SQLite database. The store keeps part of it in memory (queue records,
 * each queue's fresh messages), so a second process writing the same file would make its sends
 * invisible to the first until a restart. The lock is a file beside the database holding the
 * owner's pid; one naming a process that is gone (kill -9, a crash) is taken over. The file stays
 * (its pid cleared on close), so a restart on a full disk needs no new space. It guards against a
 * second start by mistake: two processes starting in the same instant could both take it.
 */
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { PkpError } from '../core/errors.ts';

/** Paths this process holds: a second store on one file in one process is refused too. */
const held = new Set<string>();

/** The pid, padded to a fixed width and written in place: no write ever needs more room than the first. */
const WIDTH = 20;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

function readPid(fd: number): number {
  const buffer = Buffer.alloc(WIDTH);
  const n = readSync(fd, buffer, 0, WIDTH, 0);
  const pid = Number.parseInt(buffer.subarray(0, n).toString('latin1'), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

function writePid(fd: number, pid: number): void {
  writeSync(fd, String(pid).padStart(WIDTH - 1, ' ') + '\n', 0, 'latin1');
}

export class OwnerLock {
  private released = false;

  private constructor(private readonly path: string) {}

  /** Takes the lock of the database at `database`, or throws StoreInUse. */
  static acquire(database: string): OwnerLock {
    const path = `${resolve(database)}-owner`;
    if (held.has(path)) throw inUse(database, process.pid);
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      const owner = readPid(fd);
      // Our own pid there is a stale file too: a restarted container often gets the same pid.
      if (owner !== 0 && owner !== process.pid && isAlive(owner)) throw inUse(database, owner);
      try {
        writePid(fd, process.pid);
      } catch (error) {
        // A new lock file on a full disk: the store still opens (to drain it), unguarded.
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      }
    } finally {
      closeSync(fd);
    }
    held.add(path);
    return new OwnerLock(path);
  }

  /** Clears the pid (in place: the file stays). */
  release(): void {
    if (this.released) return;
    this.released = true;
    held.delete(this.path);
    try {
      const fd = openSync(this.path, constants.O_RDWR);
      try {
        writePid(fd, 0);
      } finally {
        closeSync(fd);
      }
    } catch {
      // removed meanwhile: nothing to clear
    }
  }
}

function inUse(database: string, pid: number): PkpError {
  return new PkpError('StoreInUse', `the database ${database} is in use by process ${pid}: stop it first (one process per data directory)`);
}
