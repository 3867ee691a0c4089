import type { Random } from "./random.js";

/** What a piece-selection policy sees of the swarm when it ranks candidate pieces. */
export interface SelectionView {
  /** Pieces it may pick from (missing, and not in flight unless in the endgame). */
  candidates: readonly number[];
  /** How many connected peers have each piece. */
  availability: Uint16Array;
  endgame: boolean;
}

/**
 * The order in which to try pieces. Pieces no connected peer has are left out by the scheduler
 * (they are the web seed's); the policy only orders what peers can give.
 */
export interface PieceSelectionPolicy {
  readonly name: string;
  rank(view: SelectionView, random: Random): number[];
}

/**
 * Rarest first, random among equals, so new pieces spread through the swarm — except pieces that
 * `commonAvailability` or more peers have: those are fetched in order, lowest index first, so the
 * blob's verified prefix grows during the download and is hashed and streamed to the client
 * meanwhile (in random order nearly all of it waited for the last piece: a second at 64 MiB).
 */
export function rarestFirst(commonAvailability = 3): PieceSelectionPolicy {
  return {
    name: `rarest-first(common=${commonAvailability})`,
    rank({ candidates, availability }, random) {
      const ranked: { i: number; n: number; tie: number }[] = [];
      for (const i of candidates) {
        const n = availability[i]!;
        if (n === 0) continue;
        ranked.push({ i, n: Math.min(n, commonAvailability), tie: n >= commonAvailability ? i : random() });
      }
      ranked.sort((a, b) => a.n - b.n || a.tie - b.tie);
      return ranked.map((r) => r.i);
    },
  };
}

/** Lowest index first (a baseline for the simulator: best for streaming, worst for spreading). */
export const sequential: PieceSelectionPolicy = {
  name: "sequential",
  rank: ({ candidates, availability }) => candidates.filter((i) => availability[i]! > 0),
};
