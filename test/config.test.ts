// One configuration for `pkp up` and `pkp replay`: precedence, clear errors, and a file read by both commands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, readConfigEnv, resolveConfig } from '../src/core/config.ts';

const ROOT = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'pkp-config-'));
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PKP_') || k === 'PKP_FROM_SOURCE'));
const pkp = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['bin/pkp.js', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...cleanEnv, ...env } });

test('flags > env > file > defaults; settings of the other command are ignored', () => {
  const file = join(dir, 'layers.json');
  writeFileSync(file, JSON.stringify({ missCost: 2, kmsCallCost: 5, frontends: 6, port: 7000 }));
  const c = resolveConfig({ file, env: { PKP_KMS_CALL_COST: '4', PKP_FRONTENDS: '7' }, flags: { frontends: 8 }, defaults: { missCost: 1, kmsCallCost: 2, frontends: 1 }, scope: 'replay' });
  assert.equal(c.missCost, 2); // file over default
  assert.equal(c.kmsCallCost, 4); // env over file
  assert.equal(c.frontends, 8); // flag over env
  assert.equal(c.port, undefined); // an `up` setting: not replay's
});

test('unknown keys, unknown PKP_ variables and bad values are clear errors', () => {
  const file = join(dir, 'typo.json');
  writeFileSync(file, JSON.stringify({ missCosts: 1 }));
  assert.throws(() => resolveConfig({ file, env: {}, flags: {}, defaults: {}, scope: 'up' }), /unknown setting 'missCosts'/);
  writeFileSync(file, JSON.stringify({ frontends: 2.5 }));
  assert.throws(() => resolveConfig({ file, env: {}, flags: {}, defaults: {}, scope: 'up' }), /frontends must be an integer in 1\.\.1024/);
  writeFileSync(file, '{ not json');
  assert.throws(() => resolveConfig({ file, env: {}, flags: {}, defaults: {}, scope: 'up' }), ConfigError);
  assert.throws(() => readConfigEnv({ PKP_MISSCOST: '1' }), /unknown environment variable PKP_MISSCOST/);
  assert.throws(() => readConfigEnv({ PKP_LOG_LEVEL: 'loud' }), /PKP_LOG_LEVEL: value must be one of fatal/);
  assert.deepEqual(readConfigEnv({ PKP_MAX_KMS_OVERHEAD: 'inf', PKP_KMS_ROOT_KEY: 'x' }), { maxKmsOverhead: Infinity });

  const run = pkp(['replay', '--trace', 'nothing.csv', '--miss-cost', '-1']);
  assert.equal(run.status, 1);
  assert.match(run.stderr, /--miss-cost: value must be in 1e-9\.\.inf/);
  const env = pkp(['up', '--port', '0'], { PKP_FRONTENDS: 'many' });
  assert.equal(env.status, 1);
  assert.match(env.stderr, /PKP_FRONTENDS: value must be an integer/);
});

test('a setting written in a config file reaches both replay and up', async () => {
  const file = join(dir, 'tuned.json');
  // θ = kms/(miss+kms) = 0.75 with these costs; the defaults give 2/3.
  writeFileSync(file, JSON.stringify({ missCost: 1, kmsCallCost: 3, maxKmsOverhead: 'inf', frontends: 2, cacheEntries: 123, pkpModels: ['hot', 'idle-time'] }));
  const trace = join(dir, 't.csv');
  writeFileSync(trace, 'ts_ms,queue,op\n0,a,send\n1000,a,send\n400000,a,receive\n');
  const json = join(dir, 'out.json');
  const replay = pkp(['replay', '--config', file, '--trace', trace, '--policies', 'reactive,pkp', '--warmup', '0', '--json', json]);
  assert.equal(replay.status, 0, replay.stderr);
  const result = JSON.parse(readFileSync(json, 'utf8')) as { config: Record<string, unknown>; options: { frontends: number; capacity: number } };
  assert.equal(result.config.kmsCallCost, 3);
  assert.deepEqual(result.config.pkpModels, ['hot', 'idle-time']);
  assert.equal(result.options.frontends, 2);
  assert.equal(result.options.capacity, 123);

  const dataDir = join(dir, 'data');
  const up = spawn(process.execPath, ['bin/pkp.js', 'up', '--config', file, '--port', '0', '--admin-port', '0', '--data-dir', dataDir], { cwd: ROOT, env: cleanEnv });
  try {
    let out = '';
    let err = '';
    up.stderr.on('data', (d: Buffer) => (err += d));
    const started = new Promise<void>((resolve, reject) => {
      up.stdout.on('data', (d: Buffer) => {
        out += d;
        if (/^Try:/m.test(out)) resolve();
      });
      up.once('exit', (code) => reject(new Error(`pkp up exited ${code}: ${err}`)));
    });
    await started;
    const nodes = /^Front-end nodes: (.*);/m.exec(out)![1]!;
    assert.equal(nodes, 'fe-1, fe-2');
    const settings = err.split('\n').filter((l) => l.includes('settings in force')).map((l) => JSON.parse(l) as { config: Record<string, unknown> })[0]!;
    assert.equal(settings.config.kmsCallCost, 3);
    assert.equal(settings.config.cacheEntries, 123);
    const metricsUrl = /^Metrics: (\S+)/m.exec(out)![1]!;
    const token = /^Admin token: (\S+)/m.exec(out)?.[1];
    const metrics = await (await fetch(metricsUrl, { headers: token ? { authorization: `Bearer ${token}` } : {} })).text();
    assert.match(metrics, /^pkp_prefetch_threshold 0\.75$/m);
    assert.match(metrics, /^pkp_build_info\{version="\d+\.\d+\.\d+",node_version="v\d+/m);
  } finally {
    up.kill('SIGTERM');
    await new Promise((resolve) => (up.exitCode !== null ? resolve(null) : up.once('exit', resolve)));
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('docs/operations.md documents every setting with its flag and variable', async () => {
  const { SCHEMA, envName, flagName } = await import('../src/core/config.ts');
  const doc = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');
  for (const key of Object.keys(SCHEMA) as (keyof typeof SCHEMA)[]) {
    const flag = SCHEMA[key].kind === 'boolean' ? `--no-${flagName(key)}` : `--${flagName(key)}`;
    assert.ok(doc.includes(`| \`${key}\` | \`${flag}\` | \`${envName(key)}\` |`), `${key} documented`);
  }
});
