/**
 * Deadlines bucketed by the second: setting or moving an item's deadline is O(1), and `expire`
 * costs the seconds that passed plus the items it returns, never a scan of everything held. An
 * item is returned within a second after its deadline.
 */
export class ExpiryWheel<T> {
  private readonly buckets = new Map<number, Set<T>>();
  private readonly bucketOf = new Map<T, number>();
  /** Every bucket up to and including this second has been emptied. */
  private cursor: number;

  constructor(now: number) {
    this.cursor = Math.floor(now / 1000);
  }

  get size(): number {
    return this.bucketOf.size;
  }

  set(item: T, deadline: number): void {
    const second = Math.max(this.cursor + 1, Math.ceil(deadline / 1000));
    const current = this.bucketOf.get(item);
    if (current === second) return;
    if (current !== undefined) this.buckets.get(current)?.delete(item);
    let bucket = this.buckets.get(second);
    if (!bucket) this.buckets.set(second, (bucket = new Set()));
    bucket.add(item);
    this.bucketOf.set(item, second);
  }

  delete(item: T): void {
    const current = this.bucketOf.get(item);
    if (current === undefined) return;
    this.buckets.get(current)?.delete(item);
    this.bucketOf.delete(item);
  }

  /** Removes and returns the items whose deadline (rounded up to the second) is ≤ now. */
  expire(now: number): T[] {
    const until = Math.floor(now / 1000);
    const out: T[] = [];
    if (until <= this.cursor) return out;
    // After a long sleep, walk the buckets held rather than every second that passed.
    const seconds = until - this.cursor > this.buckets.size ? [...this.buckets.keys()].filter((s) => s <= until) : range(this.cursor + 1, until);
    for (const second of seconds) {
      const bucket = this.buckets.get(second);
      if (!bucket) continue;
      this.buckets.delete(second);
      for (const item of bucket) {
        this.bucketOf.delete(item);
        out.push(item);
      }
    }
    this.cursor = until;
    return out;
  }

  /** When the next item falls due (ms), or undefined when none is held. */
  next(): number | undefined {
    if (this.bucketOf.size === 0) return undefined;
    let earliest = Number.POSITIVE_INFINITY;
    for (const [second, bucket] of this.buckets) if (bucket.size > 0 && second < earliest) earliest = second;
    return Number.isFinite(earliest) ? earliest * 1000 : undefined;
  }
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let s = from; s <= to; s++) out.push(s);
  return out;
}
