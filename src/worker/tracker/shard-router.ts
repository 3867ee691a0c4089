/**
 * Which tracker object of a swarm an announce goes to. A swarm is spread over `count` objects
 * (shards), so that no object takes more than its share of the announces, the first announces of
 * a fleet starting together included: the shard is known before the swarm is, from the announce
 * alone. Pure, so the edge, the fleet simulator and the benchmarks route alike.
 *
 * The key is the identity a peer id is bound to when that is an address (all the peers of one
 * address land in one shard, so its per-address cap holds for the whole swarm, as with one object),
 * else the peer id (a fleet sharing one account spreads evenly).
 */
export function shardOf(peerId: string, identity: string, count: number): number {
  if (count <= 1) return 0;
  return fnv1a(identity.startsWith("address:") ? identity : peerId) % count;
}

/** The Durable Object name of shard `index` of `count` (one shard: the digest, as before sharding). */
export function trackerObjectName(digest: string, index: number, count: number): string {
  return count <= 1 ? digest : `${digest}/shard-${index}-of-${count}`;
}

/** FNV-1a, 32 bits: a cheap, well-spread hash of a short string. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
