// The demo line when stdout is not a terminal: windowed figures, the learning note, no `\r`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');

test('pkp up --demo into a pipe: full lines over the last 10 s, a learning note, no carriage returns', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pkp-demo-'));
  try {
    const run = spawnSync(process.execPath, ['bin/pkp.js', 'up', '--demo', '--duration', '3', '--port', '0', '--admin-port', '0', '--data-dir', dataDir, '--log-level', 'warn'],
      { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.ok(!run.stderr.includes('\r'), 'no \\r rewriting into a pipe');
    assert.match(run.stderr, /^prefetcher: learning — /m);
    const lines = run.stderr.split('\n').filter((l) => / last \d+s: req\/s \d+/.test(l));
    assert.ok(lines.length >= 2, run.stderr);
    const final = lines.at(-1)!;
    assert.match(final, /^final: t=\d+s last \d+s: req\/s [1-9]\d* \| key-cache hit ratio \d+\.\d%/);
    // --log-level warn took effect: no info line on stderr.
    assert.ok(!run.stderr.includes('"level":30'), 'info logs suppressed');
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
