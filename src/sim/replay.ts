import { InputError } from '../core/errors.ts';
import { noCache } from './no-cache.ts';
import { oracle } from './oracle.ts';
import { HistogramPolicy } from './policies/histogram.ts';
import { IdlePricePolicy, idlePriceLambda } from './policies/idle-price.ts';
import { ReactivePolicy } from './policies/reactive.ts';
import { PkpPolicy, type PkpPolicyOptions } from './policies/pkp.ts';
import { RefreshAheadPolicy } from './policies/refresh-ahead.ts';
import type { Policy } from './policy.ts';
import { simulate, type BatchSource, type PolicyResult, type SimulationOptions } from './simulator.ts';

export const POLICY_NAMES = ['reactive', 'refresh-ahead', 'histogram', 'idle-price', 'pkp', 'oracle', 'none'] as const;
/** A named policy, or the idle-price baseline at a price of its own (`idle-price@0.75`). */
export type PolicyName = (typeof POLICY_NAMES)[number] | `idle-price@${number}`;

export function parsePolicies(text: string): PolicyName[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new InputError('--policies names no policy');
  for (const name of names) {
    if (idlePriceLambda(name) !== undefined) continue;
    if (!(POLICY_NAMES as readonly string[]).includes(name)) {
      throw new InputError(`unknown policy '${name}' (known: ${POLICY_NAMES.join(', ')}, idle-price@<lambda>)`);
    }
  }
  return [...new Set(names)] as PolicyName[];
}

export function createPolicy(name: Exclude<PolicyName, 'oracle' | 'none'>, prefetcher: PkpPolicyOptions = {}): Policy {
  const lambda = name === 'idle-price' ? undefined : idlePriceLambda(name);
  if (lambda !== undefined) return new IdlePricePolicy({ lambda });
  switch (name) {
    case 'reactive':
      return new ReactivePolicy();
    case 'refresh-ahead':
      return new RefreshAheadPolicy();
    case 'histogram':
      return new HistogramPolicy();
    case 'idle-price':
      return new IdlePricePolicy();
    case 'pkp':
      return new PkpPolicy(prefetcher);
    default:
      throw new InputError(`unknown policy '${name}'`);
  }
}

export interface SweepPoint {
  /** The budget, --max-kms-overhead. */
  maxKmsOverhead: number;
  result: PolicyResult;
}

export interface ReplayResult {
  options: Required<Pick<SimulationOptions, 'frontends' | 'balancer' | 'reuseSeconds' | 'warmupMs' | 'kmsLatency' | 'hopMs' | 'seed'>> & { capacity: number | null };
  policies: Record<string, PolicyResult>;
  /** pkp at each budget of a sweep (`--sweep max-kms-overhead=…`), when one was asked for: its trade-off curve. */
  sweep?: SweepPoint[];
  /** What makes the figures unreliable (a warm-up as long as the trace, a nearly empty window). */
  warnings: string[];
}

/** Warnings about the measured window, from one policy's run (every run sees the same requests). */
export function windowWarnings(r: PolicyResult, warmupMs: number): string[] {
  const out: string[] = [];
  const h = (ms: number): string => `${(ms / 3_600_000).toPrecision(3)} h`;
  if (r.spanMs !== undefined && r.events > 0 && warmupMs >= r.spanMs) {
    out.push(`the warm-up (${h(warmupMs)}) is not shorter than the trace (${h(r.spanMs)}): ${r.requests} requests measured; lower --warmup`);
  } else if (r.events > 0 && (r.requests < 100 || r.requests < 0.01 * r.events)) {
    out.push(`the measured window is nearly empty: ${r.requests} of ${r.events} requests after the warm-up (${h(warmupMs)}); the figures say little`);
  }
  return out;
}

/** Parses `max-kms-overhead=0,0.02,0.1` (the one parameter a sweep moves); values in increasing order, unique. */
export function parseSweep(text: string): number[] {
  const match = /^max-kms-overhead=(.+)$/.exec(text.trim());
  if (!match) throw new InputError(`--sweep must be max-kms-overhead=<x>,<y>,… (got '${text}')`);
  const values = match[1]!.split(',').map((v) => v.trim()).filter((v) => v !== '').map((v) => (v === 'inf' ? Infinity : Number(v)));
  if (values.length === 0 || values.some((v) => Number.isNaN(v) || v < 0 || v > 100 && v !== Infinity)) {
    throw new InputError(`--sweep values must be numbers in 0..100 or 'inf' (got '${match[1]}')`);
  }
  return [...new Set(values)].sort((a, b) => a - b);
}

/**
 * Replays one trace under each policy (the trace is read afresh for each), then relates them:
 * KMS calls against the oracle's, and recall as the share of reactive's misses avoided.
 */
export async function replay(
  openSource: () => BatchSource,
  names: PolicyName[],
  options: SimulationOptions = {},
  onPolicyDone?: (result: PolicyResult) => void,
  /** Settings of the `pkp` policy (cost model, KMS budget). */
  prefetcher: PkpPolicyOptions = {},
  /** Budgets to run pkp at, instead of its one run (the trade-off curve); needs 'pkp' among the names. */
  sweep?: readonly number[],
): Promise<ReplayResult> {
  const resolved = {
    frontends: options.frontends ?? 4,
    balancer: options.balancer ?? 'random',
    reuseSeconds: options.reuseSeconds ?? 300,
    warmupMs: options.warmupMs ?? 3_600_000,
    kmsLatency: options.kmsLatency ?? '10',
    hopMs: options.hopMs ?? 1,
    seed: options.seed ?? 1,
  } as const;
  const policies: Record<string, PolicyResult> = {};
  // Reactive runs whenever recall is wanted, since recall is measured against it.
  const order: PolicyName[] = [...names];
  const needReactive = names.some((n) => n !== 'reactive' && n !== 'oracle' && n !== 'none') && !names.includes('reactive');
  if (needReactive) order.unshift('reactive');
  const points: SweepPoint[] = [];
  for (const name of order) {
    if (name === 'pkp' && sweep && sweep.length > 0) {
      for (const maxKmsOverhead of sweep) {
        const result = await simulate(openSource(), createPolicy('pkp', { ...prefetcher, maxKmsOverhead }), { ...options, ...resolved });
        points.push({ maxKmsOverhead, result });
        onPolicyDone?.(result);
      }
      continue;
    }
    let result: PolicyResult;
    if (name === 'oracle') result = await oracle(openSource(), { ...options, ...resolved });
    else if (name === 'none') result = await noCache(openSource(), { ...options, ...resolved });
    else result = await simulate(openSource(), createPolicy(name, prefetcher), { ...options, ...resolved });
    policies[name] = result;
    onPolicyDone?.(result);
  }
  const reactive = policies.reactive;
  const best = policies.oracle;
  const related: [string, PolicyResult][] = [...Object.entries(policies), ...points.map((p) => ['pkp', p.result] as [string, PolicyResult])];
  for (const [name, result] of related) {
    if (best && best.kmsCalls > 0) result.kmsCallsVsOracle = result.kmsCalls / best.kmsCalls;
    if (reactive && name !== 'oracle' && name !== 'none') {
      result.recall = reactive.demandMisses > 0 ? (reactive.demandMisses - result.demandMisses) / reactive.demandMisses : null;
    }
  }
  if (needReactive) delete policies.reactive;
  const simulated = related.find(([, r]) => r.spanMs !== undefined)?.[1];
  const warnings = simulated ? windowWarnings(simulated, resolved.warmupMs) : [];
  return { options: { ...resolved, capacity: options.capacity ?? null }, policies, ...(points.length > 0 ? { sweep: points } : {}), warnings };
}
