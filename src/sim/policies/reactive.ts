import type { Policy } from '../policy.ts';

/** SQS's behaviour: fetch on a miss, keep the key until it expires. Nothing ahead of time. */
export class ReactivePolicy implements Policy {
  readonly name = 'reactive';
  start(): void {}
  onRequest(): void {}
}
