import { closeSync, openSync, statfsSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * A ballast file beside the database. When the disk fills up, the store deletes it, so that reading
 * (whose receives write a few bytes) and deleting go on while new messages are refused; it is laid
 * down again, and sends resume, once the volume has room for it twice over.
 */
export class DiskReserve {
  constructor(private readonly path: string | undefined, private readonly bytes: number) {}

  /** Whether the reserve is in place (always, when disabled); tries to lay it down when it is not. */
  ensure(): boolean {
    if (this.path === undefined || this.bytes === 0) return true;
    try {
      if (statSync(this.path).size === this.bytes) return true;
    } catch {
      // missing: laid down below
    }
    try {
      const { bavail, bsize } = statfsSync(dirname(this.path));
      if (bavail * bsize < 2 * this.bytes) return false;
      const fd = openSync(this.path, 'w', 0o600);
      try {
        // Real zeros, not a sparse file: the blocks must be allocated to be worth freeing.
        const chunk = Buffer.alloc(Math.min(this.bytes, 1024 * 1024));
        for (let written = 0; written < this.bytes; ) written += writeSync(fd, chunk, 0, Math.min(chunk.length, this.bytes - written));
      } finally {
        closeSync(fd);
      }
      return true;
    } catch {
      this.release();
      return false;
    }
  }

  /** Deletes the reserve; whether there was one to free. */
  release(): boolean {
    if (this.path === undefined) return false;
    try {
      unlinkSync(this.path);
      return true;
    } catch {
      return false;
    }
  }
}

export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL' || code === 'ENOSPC';
}
