import type { StreamState } from './state.ts';

/**
 * Streams ordered by when the planner should look at them next (`dueAt`). Each stream knows its
 * place (`heapIndex`), so moving its time re-sifts it in place: no stale entries pile up and
 * nothing is allocated per change, which matters on the ingest path.
 */
export class DueHeap {
  private readonly items: StreamState[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): StreamState | undefined {
    return this.items[0];
  }

  /** Sets the stream's due time (Infinity removes it) and restores the order. */
  set(s: StreamState, at: number): void {
    if (at === Infinity) {
      this.remove(s);
      s.dueAt = Infinity;
      return;
    }
    const earlier = at < s.dueAt;
    s.dueAt = at;
    if (s.heapIndex < 0) {
      s.heapIndex = this.items.length;
      this.items.push(s);
      this.up(s.heapIndex);
    } else if (earlier) this.up(s.heapIndex);
    else this.down(s.heapIndex);
  }

  remove(s: StreamState): void {
    const i = s.heapIndex;
    if (i < 0) return;
    const h = this.items;
    const last = h.pop()!;
    s.heapIndex = -1;
    if (last === s) return;
    h[i] = last;
    last.heapIndex = i;
    this.down(i);
    this.up(last.heapIndex);
  }

  private up(i: number): void {
    const h = this.items;
    const s = h[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent]!;
      if (p.dueAt <= s.dueAt) break;
      h[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    h[i] = s;
    s.heapIndex = i;
  }

  private down(i: number): void {
    const h = this.items;
    const n = h.length;
    const s = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]!.dueAt < h[l]!.dueAt ? r : l;
      if (h[c]!.dueAt >= s.dueAt) break;
      h[i] = h[c]!;
      h[i]!.heapIndex = i;
      i = c;
    }
    h[i] = s;
    s.heapIndex = i;
  }
}
