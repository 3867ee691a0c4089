/**
 * The web-seed ring: how the leechers of a swarm split the pieces that they fetch from the edge
 * (the web seed), so that a cluster pulling a blob at once asks the edge for about one copy.
 *
 * The pieces form a ring. The tracker gives each leecher a slot (small integers, reused as
 * leechers leave); slot k sits at `ringPosition(k)` on the ring, the base-2 van der Corput
 * sequence, so any first n slots split the ring into nearly equal arcs. A leecher's web-seed start
 * is the piece under its position; its slice runs to the next occupied piece, so the live leechers'
 * slices tile the ring (every piece one owner). A swarm sharded over several tracker objects gives
 * shard i of n the arc `arcOf(i, n, pieces)`: each shard tiles its own arc with its own leechers.
 *
 * Shared by the tracker (which computes starts and slices) and the agent (which, without a slice
 * from the tracker, estimates one from the swarm size it sees).
 */

/** Slots are `RING_BITS`-bit integers: a tracker object holds at most 2^RING_BITS leechers. */
export const RING_BITS = 16;
export const RING_SLOTS = 1 << RING_BITS;

/** Where slot k sits on the ring, as a fraction in [0, 1): 0, 1/2, 1/4, 3/4, 1/8, … */
export function ringPosition(k: number): number {
  let position = 0;
  let weight = 0.5;
  for (let n = k; n > 0; n >>>= 1, weight /= 2) if (n & 1) position += weight;
  return position;
}

/**
 * Slot k's position as an integer in [0, RING_SLOTS): its RING_BITS bits reversed. Exact (no
 * floating point), and ordered like `ringPosition` for k < RING_SLOTS.
 */
export function ringPoint(k: number): number {
  let reversed = 0;
  for (let bit = 0; bit < RING_BITS; bit++) reversed |= ((k >>> bit) & 1) << (RING_BITS - 1 - bit);
  return reversed;
}

/** The pieces [first, end) of one shard's arc: shard i of n owns the pieces whose start point lies in [i/n, (i+1)/n). */
export function arcOf(shard: number, shards: number, pieceCount: number): { first: number; end: number } {
  return { first: Math.ceil((shard * pieceCount) / shards), end: Math.ceil(((shard + 1) * pieceCount) / shards) };
}

/** The piece of an arc under a ring point (an integer from `ringPoint`). */
export function pieceAtPoint(point: number, arc: { first: number; end: number }): number {
  return arc.first + Math.floor((point * (arc.end - arc.first)) / RING_SLOTS);
}

/** The first ring point whose piece is `piece` or later (the inverse of `pieceAtPoint`). */
export function firstPointOfPiece(piece: number, arc: { first: number; end: number }): number {
  const length = arc.end - arc.first;
  if (length <= 0) return RING_SLOTS;
  return Math.min(RING_SLOTS, Math.ceil(((piece - arc.first) * RING_SLOTS) / length));
}

/**
 * A leecher's slice when the tracker gave none (an older edge): an even share of the ring over the
 * swarm size the agent knows of (itself and the peers it was handed or is connected to).
 */
export function estimatedSlicePieces(pieceCount: number, peersKnown: number): number {
  return Math.ceil(pieceCount / (Math.max(0, peersKnown) + 1));
}

