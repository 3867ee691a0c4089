/**
 * Byte ranges that readers are waiting for (Range reads of a blob still arriving), turned into the
 * pieces that cover them, in the readers' order, for the scheduler's `priorities` event.
 */
export class ReaderRanges {
  private readonly ranges = new Set<{ start: number; end: number; whole: boolean }>();

  constructor(
    private readonly size: number,
    private readonly pieceLength: number,
  ) {}

  /**
   * Adds [start, end] (inclusive); `whole`: a read of the whole blob, which waits in order but
   * does not jump the queue. Returns the function that takes it back (true if it was there).
   */
  add(start: number, end: number, whole = false): () => boolean {
    const range = { start, end, whole };
    this.ranges.add(range);
    return () => this.ranges.delete(range);
  }

  /** The pieces to fetch first: covering some range, not yet had, each once. */
  pieces(has: (index: number) => boolean): number[] {
    const out: number[] = [];
    const seen = new Set<number>();
    for (const { start, end, whole } of this.ranges) {
      if (whole) continue;
      const last = Math.floor(Math.min(end, this.size - 1) / this.pieceLength);
      for (let i = Math.floor(Math.max(0, start) / this.pieceLength); i <= last; i++) {
        if (!seen.has(i) && !has(i)) out.push(i);
        seen.add(i);
      }
    }
    return out;
  }

  /** Is piece `index` one a Range reader (not a whole read) waits for? */
  coversForRange(index: number): boolean {
    for (const { start, end, whole } of this.ranges) {
      if (!whole && Math.floor(start / this.pieceLength) <= index && index <= Math.floor(end / this.pieceLength)) return true;
    }
    return false;
  }

  /** How many reads wait. */
  get waiting(): number {
    return this.ranges.size;
  }

  /** Is a whole read waiting? */
  anyWhole(): boolean {
    for (const range of this.ranges) if (range.whole) return true;
    return false;
  }
}
