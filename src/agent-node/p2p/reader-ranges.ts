/**
 * Byte ranges that readers are waiting for (Range reads of a blob still arriving), turned into the
 * pieces that cover them, in the readers' order, for the scheduler's `priorities` event.
 */
export class ReaderRanges {
  private readonly ranges = new Set<{ start: number; end: number }>();

  constructor(
    private readonly size: number,
    private readonly pieceLength: number,
  ) {}

  /** Adds [start, end] (inclusive); returns the function that takes it back (true if it was there). */
  add(start: number, end: number): () => boolean {
    const range = { start, end };
    this.ranges.add(range);
    return () => this.ranges.delete(range);
  }

  /** The pieces to fetch first: covering some range, not yet had, each once. */
  pieces(has: (index: number) => boolean): number[] {
    const out: number[] = [];
    const seen = new Set<number>();
    for (const { start, end } of this.ranges) {
      const last = Math.floor(Math.min(end, this.size - 1) / this.pieceLength);
      for (let i = Math.floor(Math.max(0, start) / this.pieceLength); i <= last; i++) {
        if (!seen.has(i) && !has(i)) out.push(i);
        seen.add(i);
      }
    }
    return out;
  }
}
