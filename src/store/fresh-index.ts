/**
 * Per queue, the stored messages that were never received and are not delayed ("fresh"), in
 * receive order (visibleAt, then seq): what the SQLite store keeps in memory instead of in its
 * per-queue visibility index.
 *
 * Why: that index put every send into its own queue's page of it, and with many active queues each
 * such page was one more WAL frame per send (a bare insert: 8 µs at one queue, 19 at 10,000). The
 * index is now partial and leaves fresh messages out; SQLite keeps them in an index ordered by seq
 * (a send writes only its last page), from which this one is rebuilt at start. A message leaves
 * when it is received, leased, deleted or dropped, and never comes back: its receipt nonce stays set.
 *
 * Removals happen inside SQLite transactions, so each is recorded until `commit()`; `rollback()`
 * puts them back in place. Additions are made only after the insert's commit, with no removal pending.
 */

/**
 * One queue's list: parallel arrays from `head` to `tail`, sorted by (visibleAt, seq). A removed
 * entry keeps its place, its seq negated, until the list is compacted.
 */
class FreshList {
  seqs = new Float64Array(8);
  visible = new Float64Array(8);
  deks: string[] = [];
  head = 0;
  tail = 0;
  live = 0;

  /** The first place whose (visibleAt, seq) is not before the given one. */
  private lowerBound(visibleAt: number, seq: number): number {
    let lo = this.head;
    let hi = this.tail;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.visible[mid]!;
      if (v < visibleAt || (v === visibleAt && Math.abs(this.seqs[mid]!) < seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Where the entry is, or -1. */
  find(visibleAt: number, seq: number): number {
    const at = this.lowerBound(visibleAt, seq);
    return at < this.tail && this.visible[at] === visibleAt && Math.abs(this.seqs[at]!) === seq ? at : -1;
  }

  /** Adds an entry in its place: at the end as a rule (sends come in time order), else shifting the later ones. */
  insert(seq: number, visibleAt: number, dekId: string): void {
    if (this.tail === this.seqs.length) this.grow();
    const last = this.tail - 1;
    const at = last < this.head || this.visible[last]! < visibleAt || (this.visible[last] === visibleAt && Math.abs(this.seqs[last]!) < seq)
      ? this.tail
      : this.lowerBound(visibleAt, seq);
    if (at < this.tail) {
      if (this.visible[at] === visibleAt && Math.abs(this.seqs[at]!) === seq) return; // already here
      this.seqs.copyWithin(at + 1, at, this.tail);
      this.visible.copyWithin(at + 1, at, this.tail);
      this.deks.splice(at, 0, dekId);
    } else {
      this.deks[at] = dekId;
    }
    this.seqs[at] = seq;
    this.visible[at] = visibleAt;
    this.tail++;
    this.live++;
  }

  private grow(): void {
    const seqs = new Float64Array(2 * this.seqs.length);
    const visible = new Float64Array(seqs.length);
    seqs.set(this.seqs);
    visible.set(this.visible);
    this.seqs = seqs;
    this.visible = visible;
  }

  /** Moves the live entries to the start of arrays with room for `capacity`. */
  private compact(capacity: number): void {
    const seqs = new Float64Array(Math.max(capacity, this.live + 1));
    const visible = new Float64Array(seqs.length);
    const deks: string[] = [];
    let n = 0;
    for (let i = this.head; i < this.tail; i++) {
      if (this.seqs[i]! < 0) continue;
      seqs[n] = this.seqs[i]!;
      visible[n] = this.visible[i]!;
      deks[n] = this.deks[i]!;
      n++;
    }
    this.seqs = seqs;
    this.visible = visible;
    this.deks = deks;
    this.head = 0;
    this.tail = n;
  }

  /** After a commit: skips removed entries at the front; compacts when they outnumber the live ones. */
  settle(): void {
    while (this.head < this.tail && this.seqs[this.head]! < 0) this.head++;
    if (this.head === this.tail) {
      if (this.seqs.length > 1024) this.compact(8);
      this.head = this.tail = 0;
      this.deks.length = 0;
    } else if (this.tail - this.live > this.live + 64) {
      this.compact(2 * this.live + 8);
    }
  }
}

export class FreshIndex {
  private readonly lists = new Map<string, FreshList>();
  /** Removals not yet committed: the list, the place, the seq to put back. */
  private undo: { list: FreshList; at: number; seq: number }[] = [];

  /** A committed fresh message. */
  add(queueId: string, seq: number, visibleAt: number, dekId: string): void {
    if (this.undo.length > 0) throw new Error('FreshIndex: an add while removals are pending');
    let list = this.lists.get(queueId);
    if (!list) this.lists.set(queueId, (list = new FreshList()));
    list.insert(seq, visibleAt, dekId);
  }

  /** Takes a message out (it was received, leased, deleted or dropped); false if it was not here. */
  remove(queueId: string, seq: number, visibleAt: number): boolean {
    const list = this.lists.get(queueId);
    if (!list) return false;
    const at = list.find(visibleAt, seq);
    if (at < 0 || list.seqs[at]! < 0) return false;
    this.undo.push({ list, at, seq });
    list.seqs[at] = -seq;
    list.live--;
    return true;
  }

  /** How many removals are pending: a savepoint's mark to roll back to. */
  mark(): number {
    return this.undo.length;
  }

  /** Puts back the removals made since `mark` (the transaction or savepoint was rolled back). */
  rollback(mark = 0): void {
    while (this.undo.length > mark) {
      const { list, at, seq } = this.undo.pop()!;
      list.seqs[at] = seq;
      list.live++;
    }
  }

  /** The removals are committed. */
  commit(): void {
    if (this.undo.length === 0) return;
    const lists = new Set(this.undo.map((u) => u.list));
    this.undo = [];
    for (const list of lists) list.settle();
  }

  /** The queue and all its messages are gone (committed). */
  dropQueue(queueId: string): void {
    if (this.undo.length > 0) throw new Error('FreshIndex: a queue dropped while removals are pending');
    this.lists.delete(queueId);
  }

  size(queueId: string): number {
    return this.lists.get(queueId)?.live ?? 0;
  }

  /** How many of the queue's fresh messages are visible at `until`. */
  countUntil(queueId: string, until: number): number {
    const list = this.lists.get(queueId);
    if (!list) return 0;
    if (list.tail === list.head || list.visible[list.tail - 1]! <= until) return list.live; // all of them: the rule
    let n = 0;
    for (let i = list.head; i < list.tail && list.visible[i]! <= until; i++) if (list.seqs[i]! > 0) n++;
    return n;
  }

  /** The queues with fresh messages. */
  *queues(): IterableIterator<string> {
    for (const [queueId, list] of this.lists) if (list.live > 0) yield queueId;
  }

  /** The earliest visibleAt of the queue's fresh messages, if any. */
  firstVisibleAt(queueId: string): number | undefined {
    const list = this.lists.get(queueId);
    if (!list) return undefined;
    for (let i = list.head; i < list.tail; i++) if (list.seqs[i]! > 0) return list.visible[i];
    return undefined;
  }

  /**
   * Calls `visit` for the queue's first `max` fresh messages in receive order that are visible at
   * `until` (strictly before it when `strictly`). The places are chosen first, so `visit` may remove
   * what it is given.
   */
  each(queueId: string, max: number, until: number, visit: (seq: number, visibleAt: number, dekId: string) => void, strictly = false): void {
    const list = this.lists.get(queueId);
    if (!list || list.live === 0) return;
    const picked: number[] = [];
    for (let i = list.head; i < list.tail && picked.length < max; i++) {
      const v = list.visible[i]!;
      if (v > until || (strictly && v === until)) break;
      if (list.seqs[i]! > 0) picked.push(i);
    }
    // Places stay valid while `visit` runs: removals only mark entries, and nothing is added meanwhile.
    for (const i of picked) if (list.seqs[i]! > 0) visit(list.seqs[i]!, list.visible[i]!, list.deks[i]!);
  }
}
