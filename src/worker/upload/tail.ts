/**
 * An upload's tail: the bytes after its last full multipart part, waiting durably for the next
 * chunk. It is kept as segments, one object each, so that a chunk too small to fill a part stores
 * only its own bytes: rewriting the whole tail (up to a part, 16 MiB) on every tiny PATCH let a
 * client make the edge move 16 MiB per request. Segments are read back once, when a part fills or
 * the upload finishes, and merged as they accumulate (below) so their number stays small.
 */
export interface TailSegment {
  key: string;
  /** Offset of the segment's first byte in the blob. */
  start: number;
  length: number;
}

/** More segments than this are merged whatever their sizes (the list lives in the upload's state). */
export const MAX_TAIL_SEGMENTS = 24;

/**
 * How many segments at the end of the list to merge into one, after a new segment was appended.
 * A segment no longer than what follows it is merged with it, as a binary counter carries: every
 * segment is longer than all later ones together, so there are about log2(part / smallest chunk)
 * of them and each byte is rewritten only a few times however small the chunks are.
 */
export function segmentsToMerge(lengths: readonly number[]): number {
  const n = lengths.length;
  if (n === 0) return 0;
  let merged = lengths[n - 1]!;
  let count = 1;
  while (count < n && (lengths[n - 1 - count]! <= merged || n - count + 1 > MAX_TAIL_SEGMENTS)) {
    merged += lengths[n - 1 - count]!;
    count += 1;
  }
  return count;
}

export function tailLength(segments: readonly TailSegment[]): number {
  return segments.reduce((total, segment) => total + segment.length, 0);
}

export function segmentKey(uploadId: string, start: number, length: number): string {
  // Named by the bytes it holds: a chunk that fails before the state is saved overwrites only
  // objects the state does not point to.
  return `uploads/${uploadId}/tail/${start}-${start + length}`;
}
