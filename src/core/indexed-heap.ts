/** An item that knows its place in an IndexedMinHeap (−1: not in one). */
export interface HeapSlot {
  heapIndex: number;
}

/**
 * A binary min-heap whose items know their place, so one can be removed or re-sifted after its
 * key changed in O(log n), with no stale entries left behind and nothing allocated per change.
 * (MinHeap is the plain kind, for items that only ever leave from the top.) An item is in at most
 * one IndexedMinHeap at a time.
 */
export class IndexedMinHeap<T extends HeapSlot> {
  private readonly items: T[] = [];

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    if (item.heapIndex >= 0) throw new Error('item is already in a heap');
    item.heapIndex = this.items.length;
    this.items.push(item);
    this.up(item.heapIndex);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  /** Takes the item out, wherever it is; does nothing if it is not in the heap. */
  remove(item: T): void {
    const i = item.heapIndex;
    if (i < 0) return;
    const h = this.items;
    const last = h.pop()!;
    item.heapIndex = -1;
    if (last === item) return;
    h[i] = last;
    last.heapIndex = i;
    this.down(i);
    this.up(last.heapIndex);
  }

  /** Restores the order after the item's key changed (either way). */
  update(item: T): void {
    if (item.heapIndex < 0) return;
    this.up(item.heapIndex);
    this.down(item.heapIndex);
  }

  clear(): void {
    for (const item of this.items) item.heapIndex = -1;
    this.items.length = 0;
  }

  private up(i: number): void {
    const h = this.items;
    const item = h[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent]!;
      if (!this.less(item, p)) break;
      h[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    h[i] = item;
    item.heapIndex = i;
  }

  private down(i: number): void {
    const h = this.items;
    const n = h.length;
    const item = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.less(h[r]!, h[l]!) ? r : l;
      if (!this.less(h[c]!, item)) break;
      h[i] = h[c]!;
      h[i]!.heapIndex = i;
      i = c;
    }
    h[i] = item;
    item.heapIndex = i;
  }
}
