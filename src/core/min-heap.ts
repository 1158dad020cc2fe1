/** A binary min-heap ordered by `less`. Used for timers (virtual clock) and key expiries (caches). */
export class MinHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  // Both sifts move a hole instead of swapping pairs: no temporary arrays, half the writes, and
  // the same layout as swapping (ties go the same way).
  push(item: T): void {
    const h = this.items;
    let i = h.length;
    h.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = h[parent]!;
      if (!this.less(item, above)) break;
      h[i] = above;
      i = parent;
    }
    h[i] = item;
  }

  pop(): T | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    const n = h.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && this.less(h[r]!, h[l]!) ? r : l;
        const child = h[c]!;
        if (!this.less(child, last)) break;
        h[i] = child;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }

  /** Replaces the contents with `items` (re-heapified). */
  reset(items: T[]): void {
    this.items.length = 0;
    for (const item of items) this.push(item);
  }

  values(): readonly T[] {
    return this.items;
  }
}
