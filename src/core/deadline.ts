import type { Clock } from './clock.ts';
import { DeadlineError } from './errors.ts';

/**
 * Waits for `promise` until the absolute clock time `deadline`. Only this waiter gives up: the
 * underlying work goes on for anyone else who waits on it.
 */
export function waitUntil<T>(promise: Promise<T>, clock: Clock, deadline: number | undefined, what = 'request'): Promise<T> {
  // No deadline, or one that never comes (the simulator's): no timer.
  if (deadline === undefined || deadline === Infinity) return promise;
  const remaining = deadline - clock.now();
  if (remaining <= 0) return Promise.reject(new DeadlineError(`${what} deadline passed`));
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimer(remaining, () => reject(new DeadlineError(`${what} deadline passed`)));
    promise.then(
      (value) => {
        timer.cancel();
        resolve(value);
      },
      (error: unknown) => {
        timer.cancel();
        reject(error);
      },
    );
  });
}
