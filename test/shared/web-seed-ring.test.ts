import { describe, expect, it } from "vitest";
import { RING_SLOTS, arcOf, estimatedSlicePieces, firstPointOfPiece, pieceAtPoint, ringPoint, ringPosition } from "../../src/shared/p2p/web-seed-ring.js";

describe("the web-seed ring", () => {
  it("places slots by the van der Corput sequence, as exact integer points", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map(ringPosition)).toEqual([0, 0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875]);
    for (let k = 0; k < 1000; k++) expect(ringPoint(k) / RING_SLOTS).toBe(ringPosition(k));
  });

  it.each([
    [1, 64],
    [4, 64],
    [3, 10],
    [8, 5],
  ])("%i shards split %i pieces into arcs that tile them", (shards, pieces) => {
    const arcs = Array.from({ length: shards }, (_, i) => arcOf(i, shards, pieces));
    expect(arcs[0]!.first).toBe(0);
    expect(arcs.at(-1)!.end).toBe(pieces);
    for (let i = 1; i < shards; i++) expect(arcs[i]!.first).toBe(arcs[i - 1]!.end);
  });

  it("finds the first point of each piece of an arc", () => {
    const arc = { first: 16, end: 29 };
    for (let piece = arc.first; piece < arc.end; piece++) {
      const point = firstPointOfPiece(piece, arc);
      expect(pieceAtPoint(point, arc)).toBe(piece);
      if (point > 0) expect(pieceAtPoint(point - 1, arc)).toBe(piece - 1);
    }
  });

  it("estimates an even slice from the swarm size an agent knows", () => {
    expect(estimatedSlicePieces(64, 0)).toBe(64);
    expect(estimatedSlicePieces(64, 15)).toBe(4);
    expect(estimatedSlicePieces(10, 3)).toBe(3);
  });
});
