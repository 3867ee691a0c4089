/**
 * A set with O(1) add, delete and random sampling: an array plus each item's index in it (delete
 * swaps the last item into the hole). The tracker keeps one per handout bucket (seeders or leechers
 * of a zone, of a cluster, of the swarm), so a handout costs what it hands out, not the swarm size.
 */
export class IndexedSet<T> {
  private readonly items: T[] = [];
  private readonly index = new Map<T, number>();

  get size(): number {
    return this.items.length;
  }

  has(item: T): boolean {
    return this.index.has(item);
  }

  add(item: T): void {
    if (this.index.has(item)) return;
    this.index.set(item, this.items.length);
    this.items.push(item);
  }

  delete(item: T): boolean {
    const at = this.index.get(item);
    if (at === undefined) return false;
    const last = this.items.pop()!;
    this.index.delete(item);
    if (last !== item) {
      this.items[at] = last;
      this.index.set(last, at);
    }
    return true;
  }

  /**
   * Visits items in random order until `visit` returns false (a partial Fisher-Yates shuffle done
   * in place: the order of a set means nothing, so shuffling it costs nothing but the draws). Stop
   * early and the rest is never touched.
   */
  draw(random: () => number, visit: (item: T) => boolean): void {
    const items = this.items;
    for (let j = 0; j < items.length; j++) {
      const r = j + Math.floor(random() * (items.length - j));
      const picked = items[r]!;
      if (r !== j) {
        const other = items[j]!;
        items[j] = picked;
        items[r] = other;
        this.index.set(picked, j);
        this.index.set(other, r);
      }
      if (!visit(picked)) return;
    }
  }

  values(): IterableIterator<T> {
    return this.items.values();
  }
}
