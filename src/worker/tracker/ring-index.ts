import { RING_BITS, RING_SLOTS, ringPoint } from "../../shared/p2p/web-seed-ring.js";

/**
 * The live leechers' places on the web-seed ring (see shared/p2p/web-seed-ring.ts): slot numbers
 * handed out smallest-free-first (so the live slots stay dense and their points spread evenly),
 * and a Fenwick tree over ring points, so "the first occupied point at or after p" costs
 * O(RING_BITS) whatever the swarm size. Joining, leaving and finding a slice are all logarithmic.
 */
export class RingIndex {
  private readonly tree = new Int32Array(RING_SLOTS + 1);
  /** Slots given back, as a binary min-heap; slots never used start at `nextSlot`. */
  private readonly free: number[] = [];
  private nextSlot = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** A slot for a new leecher, or undefined when the ring is full. */
  take(): number | undefined {
    let slot: number | undefined;
    if (this.free.length > 0) slot = this.popFree();
    else if (this.nextSlot < RING_SLOTS) slot = this.nextSlot++;
    if (slot === undefined) return undefined;
    this.add(ringPoint(slot), 1);
    this.count++;
    return slot;
  }

  /** Gives a slot back (its leecher left or completed). */
  release(slot: number): void {
    this.add(ringPoint(slot), -1);
    this.count--;
    this.pushFree(slot);
  }

  /** The first occupied ring point ≥ `point`, or undefined. */
  firstAtOrAfter(point: number): number | undefined {
    if (point >= RING_SLOTS) return undefined;
    const before = point > 0 ? this.prefix(point - 1) : 0;
    if (before >= this.count) return undefined;
    return this.kth(before + 1);
  }

  /** The first occupied ring point, or undefined. */
  first(): number | undefined {
    return this.count > 0 ? this.kth(1) : undefined;
  }

  /** Occupied points in [0, point]. */
  private prefix(point: number): number {
    let sum = 0;
    for (let i = point + 1; i > 0; i -= i & -i) sum += this.tree[i]!;
    return sum;
  }

  /** The k-th occupied point (1-based), by descending the tree. */
  private kth(k: number): number {
    let position = 0;
    let remaining = k;
    for (let step = 1 << RING_BITS; step > 0; step >>= 1) {
      const next = position + step;
      if (next <= RING_SLOTS && this.tree[next]! < remaining) {
        position = next;
        remaining -= this.tree[next]!;
      }
    }
    return position; // the point is position (0-based: tree index position + 1)
  }

  private add(point: number, delta: number): void {
    for (let i = point + 1; i <= RING_SLOTS; i += i & -i) this.tree[i]! += delta;
  }

  private pushFree(slot: number): void {
    const heap = this.free;
    heap.push(slot);
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (heap[parent]! <= heap[i]!) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  private popFree(): number {
    const heap = this.free;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let smallest = i;
        if (l < heap.length && heap[l]! < heap[smallest]!) smallest = l;
        if (r < heap.length && heap[r]! < heap[smallest]!) smallest = r;
        if (smallest === i) break;
        [heap[smallest], heap[i]] = [heap[i]!, heap[smallest]!];
        i = smallest;
      }
    }
    return top;
  }
}
