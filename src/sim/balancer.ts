import { hashString, Random } from '../core/random.ts';
import type { TraceEvent } from './traces/types.ts';

export type BalancerKind = 'random' | 'round-robin' | 'sticky' | 'trace';

export const BALANCERS: readonly BalancerKind[] = ['random', 'round-robin', 'sticky', 'trace'];

/** Picks the front-end node of each request, as the load balancer in front of the nodes would. */
export interface Balancer {
  pick(event: TraceEvent): number;
  /** Node indexes a queue's next request may go to. */
  nodesFor(queueId: string): readonly number[];
}

export function createBalancer(kind: BalancerKind, nodeCount: number, seed: number): Balancer {
  const all = Array.from({ length: nodeCount }, (_, i) => i);
  switch (kind) {
    case 'random': {
      const rng = new Random(seed).fork('balancer');
      return { pick: () => rng.int(nodeCount), nodesFor: () => all };
    }
    case 'round-robin': {
      let next = 0;
      return {
        pick: () => {
          const i = next;
          next = next + 1 === nodeCount ? 0 : next + 1;
          return i;
        },
        nodesFor: () => all,
      };
    }
    case 'sticky': {
      const homes = new Map<string, readonly number[]>();
      const home = (queue: string): readonly number[] => {
        let h = homes.get(queue);
        if (!h) homes.set(queue, (h = [hashString(queue) % nodeCount]));
        return h;
      };
      return { pick: (e) => home(e.queue)[0]!, nodesFor: home };
    }
    case 'trace': {
      // Trace node names map onto the simulated nodes in order of first appearance.
      const byName = new Map<string, number>();
      const seen = new Map<string, Set<number>>();
      return {
        pick: (e) => {
          const name = e.node ?? '';
          let i = byName.get(name);
          if (i === undefined) byName.set(name, (i = byName.size % nodeCount));
          let s = seen.get(e.queue);
          if (!s) seen.set(e.queue, (s = new Set()));
          s.add(i);
          return i;
        },
        nodesFor: (queue) => [...(seen.get(queue) ?? all)],
      };
    }
  }
}
