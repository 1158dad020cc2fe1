// The `pkp` command as a user runs it: bad input gets a clear error and a non-zero exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const pkp = (...args: string[]) => spawnSync(process.execPath, ['bin/pkp.js', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
const dir = mkdtempSync(join(tmpdir(), 'pkp-cli-'));

test('replay writes a table and JSON with the documented fields per policy', () => {
  const trace = join(dir, 'small.csv');
  writeFileSync(trace, 'ts_ms,queue,op\n0,a,send\n1000,a,send\n2000,b,send\n400000,a,receive\n');
  const json = join(dir, 'out.json');
  const html = join(dir, 'out.html');
  const run = pkp('replay', '--trace', trace, '--policies', 'reactive,oracle', '--frontends', '2', '--warmup', '0', '--json', json, '--html', html);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^policy\s+requests\s+demand misses/m);
  const result = JSON.parse(readFileSync(json, 'utf8')) as { policies: Record<string, Record<string, unknown>> };
  for (const name of ['reactive', 'oracle']) {
    const p = result.policies[name]!;
    for (const field of ['requests', 'demandMisses', 'demandMissRatio', 'kmsCalls', 'kmsCallsVsOracle', 'prefetches', 'wastedPrefetches', 'precision', 'recall', 'keyResidentSeconds', 'eventsPerSecond']) {
      assert.ok(field in p, `${name}.${field} missing`);
    }
    assert.ok('p50' in (p.perQueueMissRatio as object) && 'p90' in (p.perQueueMissRatio as object));
    assert.ok('p99' in (p.addedLatencyMs as object));
    assert.equal(p.requests, 4);
  }
  // Two keys generated (a, b); the receive needs the decrypt key of a's oldest message, not a new key.
  assert.equal(result.policies.reactive!.kmsCalls, 2);
  assert.equal(result.policies.reactive!.keyedReceives, 1);
  assert.equal(result.policies.oracle!.kmsCalls, 2);
  assert.match(readFileSync(html, 'utf8'), /<svg/);
});

test('a malformed trace fails with the line and the problem; --lenient skips and reports it', () => {
  const trace = join(dir, 'bad.csv');
  writeFileSync(trace, 'ts_ms,queue,op\n0,a,send\n10,a,fly\n20,a,send\n');
  const strict = pkp('replay', '--trace', trace, '--policies', 'reactive', '--warmup', '0');
  assert.equal(strict.status, 1);
  assert.match(strict.stderr, /line 3/);
  assert.match(strict.stderr, /fly/);
  const lenient = pkp('replay', '--trace', trace, '--policies', 'reactive', '--warmup', '0', '--lenient');
  assert.equal(lenient.status, 0, lenient.stderr);
  assert.match(lenient.stderr, /skipped 1 bad row/);
});

test('bad options get clear errors', () => {
  const unknownPolicy = pkp('replay', '--trace', join(dir, 'small.csv'), '--policies', 'psychic');
  assert.equal(unknownPolicy.status, 1);
  assert.match(unknownPolicy.stderr, /unknown policy 'psychic'/);
  const badReuse = pkp('replay', '--trace', join(dir, 'small.csv'), '--reuse', '10');
  assert.notEqual(badReuse.status, 0);
  assert.match(badReuse.stderr, /--reuse/);
  const missing = pkp('replay', '--trace', join(dir, 'does-not-exist.csv'));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /does-not-exist\.csv/);
  const badCredentials = pkp('up', '--port', '0', '--data-dir', join(dir, 'data'), '--credentials', 'nocolon');
  assert.equal(badCredentials.status, 1);
  assert.match(badCredentials.stderr, /ID:SECRET/);
});

test('replay --sweep runs pkp at each budget beside the baselines; bad sweeps are refused', () => {
  const trace = join(dir, 'sweep.csv');
  const rows = ['ts_ms,queue,op'];
  for (let i = 0; i < 200; i++) rows.push(`${i * 37_000},q${i % 3},send`);
  writeFileSync(trace, rows.join('\n') + '\n');
  const out = join(dir, 'sweep.json');
  const r = pkp('replay', '--trace', trace, '--policies', 'reactive,pkp,oracle', '--warmup', '0', '--sweep', 'max-kms-overhead=0.4,0,0.1', '--json', out);
  assert.equal(r.status, 0, r.stderr);
  for (const x of ['0', '0.1', '0.4']) assert.match(r.stdout, new RegExp(`^pkp @${x.replace('.', '\\.')} `, 'm'));
  const json = JSON.parse(readFileSync(out, 'utf8'));
  assert.deepEqual(json.sweep.map((p: { maxKmsOverhead: number }) => p.maxKmsOverhead), [0, 0.1, 0.4]);
  for (const p of json.sweep) assert.ok(p.result.kmsCallsVsOracle >= 1);
  const bad = pkp('replay', '--trace', trace, '--sweep', 'kms=1,2');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--sweep must be max-kms-overhead=/);
});

test('replay warns when the warm-up outlasts the trace, and counts no prefetch of the warm-up as wasted', () => {
  const trace = join(dir, 'tiny.csv');
  const rows = ['ts_ms,queue,op'];
  for (let i = 0; i < 40; i++) rows.push(`${i * 400_000},q,send`);
  writeFileSync(trace, rows.join('\n') + '\n');
  const out = join(dir, 'tiny.json');
  const long = pkp('replay', '--trace', trace, '--policies', 'pkp,oracle', '--warmup', '36000', '--json', out);
  assert.equal(long.status, 0, long.stderr);
  assert.match(long.stderr, /warning: the warm-up \(10\.0 h\) is not shorter than the trace \(4\.33 h\)/);
  assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')).warnings.length, 1);
  const short = pkp('replay', '--trace', trace, '--policies', 'pkp,oracle', '--warmup', '14400', '--json', out);
  assert.match(short.stderr, /warning: the measured window is nearly empty: 4 of 40 requests/);
  const pkpResult = JSON.parse(readFileSync(out, 'utf8')).policies.pkp;
  assert.ok(pkpResult.wastedPrefetches + pkpResult.prefetchesUsed <= pkpResult.prefetches, JSON.stringify(pkpResult));
});
