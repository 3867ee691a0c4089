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
  /**
   * Set by rarest first: pieces with at least this many holders go in index order, rarer ones
   * first in random order. The scheduler then keeps the rare pieces in buckets as availability
   * changes and ranks incrementally, instead of calling `rank` over every missing piece on each
   * poll (that is O(pieces) per poll: a 3 GB blob has 1,431 pieces). `rank` still serves the endgame.
   */
  readonly commonAvailability?: number;
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
    commonAvailability,
    // Buckets by availability instead of a sort: a poll ranks every candidate (thousands of pieces
    // in a big blob), and only the rare buckets need their random order.
    rank({ candidates, availability }, random) {
      const rare: number[][] = Array.from({ length: commonAvailability - 1 }, () => []);
      const common: number[] = [];
      let ordered = true;
      for (const i of candidates) {
        const n = availability[i]!;
        if (n === 0) continue;
        if (n >= commonAvailability) {
          if (common.length > 0 && i < common[common.length - 1]!) ordered = false;
          common.push(i);
        } else rare[n - 1]!.push(i);
      }
      if (!ordered) common.sort((x, y) => x - y);
      const ranked: number[] = [];
      for (const bucket of rare) {
        for (let k = bucket.length - 1; k > 0; k--) {
          const j = Math.floor(random() * (k + 1));
          const t = bucket[k]!;
          bucket[k] = bucket[j]!;
          bucket[j] = t;
        }
        for (const i of bucket) ranked.push(i);
      }
      for (const i of common) ranked.push(i);
      return ranked;
    },
  };
}

/** Lowest index first (a baseline for the simulator: best for streaming, worst for spreading). */
export const sequential: PieceSelectionPolicy = {
  name: "sequential",
  rank: ({ candidates, availability }) => candidates.filter((i) => availability[i]! > 0),
};
