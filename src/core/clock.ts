/**
 * Time is injected: core logic reads a Clock and never calls Date.now() or sets its own timers.
 * SystemClock is wall time; VirtualClock is driven by tests and the simulator.
 */

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch (virtual or real). */
  now(): number;
  /** Runs fn once after ms milliseconds of this clock's time. */
  setTimer(ms: number, fn: () => void): Timer;
}

export class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }

  setTimer(ms: number, fn: () => void): Timer {
    const handle = setTimeout(fn, Math.max(0, ms));
    // A pending timer never keeps the process alive on its own; servers hold it open.
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  }
}

/** A virtual timer is its own handle: no closure per timer (the simulator sets several per miss). */
class PendingTimer implements Timer {
  cancelled = false;

  constructor(readonly at: number, readonly seq: number, readonly fn: () => void) {}

  cancel(): void {
    this.cancelled = true;
  }
}

import { MinHeap } from './min-heap.ts';

/** Lets pending I/O callbacks, every queued microtask and promise continuation run. */
const settleMacrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Lets every queued microtask and promise continuation run, without an event-loop turn: a tick
 * queued from inside a microtask runs only once the microtask queue is empty. Enough where the
 * work between timers is pure promise chains (the simulator), not I/O.
 */
const settleMicrotasks = (): Promise<void> => new Promise(resolveOnNextTick);
const resolveOnNextTick = (resolve: () => void): void => process.nextTick(resolve);

/**
 * A clock that moves only when told to. Timers fire in (time, creation) order; between two timers
 * the promise continuations they started are allowed to run, so async code behaves as in real time.
 */
export class VirtualClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly settle: () => Promise<void>;
  private readonly heap = new MinHeap<PendingTimer>((a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq));

  /** `settle: 'microtasks'` suits code whose async work is promises only (see settleMicrotasks). */
  constructor(startMs = 0, options: { settle?: 'io' | 'microtasks' } = {}) {
    this.current = startMs;
    this.settle = options.settle === 'microtasks' ? settleMicrotasks : settleMacrotask;
  }

  now(): number {
    return this.current;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const timer = new PendingTimer(this.current + Math.max(0, ms), this.seq++, fn);
    this.heap.push(timer);
    return timer;
  }

  /** Time of the earliest pending timer, or Infinity. */
  nextTimerAt(): number {
    this.dropCancelled();
    return this.heap.peek()?.at ?? Infinity;
  }

  /** Moves to `t` without firing anything; only valid when no timer is due before `t`. */
  jumpTo(t: number): void {
    if (t < this.current) return;
    if (this.nextTimerAt() <= t) throw new Error('VirtualClock.jumpTo would skip a due timer; use advanceTo');
    this.current = t;
  }

  /**
   * Fires every timer due at or before `t` in order, letting async work settle after each.
   * `alreadySettled` skips the first settle when the caller knows nothing is pending (the simulator).
   */
  async advanceTo(t: number, alreadySettled = false): Promise<void> {
    if (!alreadySettled) await this.settle();
    for (;;) {
      const next = this.nextTimerAt();
      if (next > t) break;
      const timer = this.heap.pop()!;
      if (timer.at > this.current) this.current = timer.at;
      timer.fn();
      await this.settle();
    }
    if (t > this.current) this.current = t;
  }

  advance(ms: number): Promise<void> {
    return this.advanceTo(this.current + ms);
  }

  private dropCancelled(): void {
    while (this.heap.peek()?.cancelled) this.heap.pop();
  }
}
