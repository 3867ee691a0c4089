import { describe, expect, it } from "vitest";
import { MAX_TAIL_SEGMENTS, segmentsToMerge } from "../../src/worker/upload/tail.js";

/** Replays chunks of the given lengths into a tail, merging as the upload session does. */
function replay(chunks: number[]): { lengths: number[]; rewritten: number } {
  const lengths: number[] = [];
  let rewritten = 0;
  for (const chunk of chunks) {
    lengths.push(chunk);
    const merge = segmentsToMerge(lengths);
    if (merge > 1) {
      const merged = lengths.splice(lengths.length - merge, merge);
      rewritten += merged.reduce((a, b) => a + b, 0);
      lengths.push(merged.reduce((a, b) => a + b, 0));
    }
  }
  return { lengths, rewritten };
}

describe("tail segments", () => {
  it.each([
    [[], 0],
    [[10], 1],
    [[10, 3], 1],
    [[10, 3, 3], 2],
    [[10, 3, 2, 2], 3],
    [[4, 3, 2, 8], 4],
  ])("%j: merges the last %i", (lengths, expected) => {
    expect(segmentsToMerge(lengths)).toBe(expected);
  });

  it("keeps few segments and rewrites each byte a few times under many tiny chunks", () => {
    const big = 15 * 1024 * 1024;
    const { lengths, rewritten } = replay([big, ...Array.from({ length: 2000 }, () => 4096)]);
    // Each segment is longer than all later ones together.
    for (let i = 0; i + 1 < lengths.length; i++) expect(lengths[i]!).toBeGreaterThan(lengths.slice(i + 1).reduce((a, b) => a + b, 0));
    expect(lengths.length).toBeLessThanOrEqual(13);
    expect(lengths[0]).toBe(big); // the big first chunk is never rewritten
    const tiny = 2000 * 4096;
    expect(rewritten).toBeLessThanOrEqual(tiny * 13);
  });

  it("caps the number of segments whatever the chunk sizes", () => {
    const { lengths } = replay(Array.from({ length: 200 }, (_, i) => 10_000 - i));
    expect(lengths.length).toBeLessThanOrEqual(MAX_TAIL_SEGMENTS);
  });
});
