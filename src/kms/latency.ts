import { InputError } from '../core/errors.ts';
import type { Random } from '../core/random.ts';

/** Draws one modelled latency in milliseconds (never negative). */
export type LatencySampler = () => number;

const FORMS = "'10', 'const:10', 'uniform:5:15', 'exp:10', 'lognormal:10:0.5' or 'pareto:5:2.5'";
const NUMBER = /^\+?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Parses a latency distribution: `N` or `const:N` (constant), `uniform:MIN:MAX`, `exp:MEAN`,
 * `lognormal:MEDIAN:SIGMA`, `pareto:SCALE:SHAPE`. All in milliseconds; `rng` drives the draws.
 */
export function parseLatency(spec: string, rng: Random): LatencySampler {
  if (typeof spec !== 'string' || spec.trim() === '') throw new InputError(`empty KMS latency spec; expected ${FORMS}`);
  const parts = spec.trim().split(':');
  if (parts.length === 1) return constant(num(spec, 'latency', parts[0]!));
  const kind = parts[0]!.toLowerCase();
  const args = parts.slice(1);
  const want = (names: string[]): number[] => {
    if (args.length !== names.length) {
      throw new InputError(`KMS latency '${spec}': ${kind} takes ${names.length} argument(s) (${kind}:${names.join(':')}), got ${args.length}`);
    }
    return args.map((a, i) => num(spec, names[i]!, a));
  };
  switch (kind) {
    case 'const':
      return constant(want(['MS'])[0]!);
    case 'uniform': {
      const [min, max] = want(['MIN', 'MAX']) as [number, number];
      if (min > max) throw new InputError(`KMS latency '${spec}': MIN must not exceed MAX`);
      return () => min + (max - min) * rng.next();
    }
    case 'exp': {
      const [mean] = want(['MEAN']) as [number];
      positive(spec, 'MEAN', mean);
      return () => rng.exponential(mean);
    }
    case 'lognormal': {
      const [median, sigma] = want(['MEDIAN', 'SIGMA']) as [number, number];
      positive(spec, 'MEDIAN', median);
      return () => median * Math.exp(sigma * rng.normal());
    }
    case 'pareto': {
      const [scale, shape] = want(['SCALE', 'SHAPE']) as [number, number];
      positive(spec, 'SCALE', scale);
      positive(spec, 'SHAPE', shape);
      // Inverse CDF; 1 - next() is in (0, 1], so the draw is finite and at least `scale`.
      return () => scale / Math.pow(1 - rng.next(), 1 / shape);
    }
    default:
      throw new InputError(`KMS latency '${spec}': unknown distribution '${parts[0]}'; expected ${FORMS}`);
  }
}

function constant(ms: number): LatencySampler {
  return () => ms;
}

/** A finite, non-negative decimal number; anything else names the argument that is wrong. */
function num(spec: string, name: string, text: string): number {
  const t = text.trim();
  const value = NUMBER.test(t) ? Number(t) : NaN;
  if (!Number.isFinite(value)) throw new InputError(`KMS latency '${spec}': ${name} '${text}' is not a non-negative number`);
  return value;
}

function positive(spec: string, name: string, value: number): void {
  if (!(value > 0)) throw new InputError(`KMS latency '${spec}': ${name} must be greater than 0`);
}
