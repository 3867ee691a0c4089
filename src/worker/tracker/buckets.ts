import { IndexedSet } from "./indexed-set.js";

/** What a handout bucket needs of a peer: its cluster, and its cluster-and-zone key. */
export interface Placed {
  peerId: string;
  cluster: string;
  /** `zoneKey(cluster, zone)`. */
  bucket: string;
}

export const zoneKey = (cluster: string, zone: string) => `${cluster}\u0000${zone}`;

/** One role's handout buckets (the seeders, or the leechers): all of them, by cluster, by zone. */
export class Buckets<T extends Placed> {
  readonly all = new IndexedSet<T>();
  readonly byCluster = new Map<string, IndexedSet<T>>();
  readonly byZone = new Map<string, IndexedSet<T>>();

  get size(): number {
    return this.all.size;
  }

  add(peer: T): void {
    this.all.add(peer);
    bucketOf(this.byCluster, peer.cluster).add(peer);
    bucketOf(this.byZone, peer.bucket).add(peer);
  }

  delete(peer: T): void {
    this.all.delete(peer);
    dropFrom(this.byCluster, peer.cluster, peer);
    dropFrom(this.byZone, peer.bucket, peer);
  }

  /**
   * Draws into `out` until it holds `limit` peers: the requester's zone first, then its cluster,
   * then anyone, each at random, skipping peers already `taken`. A rank is reached only when the
   * ranks before it ran dry, so what is skipped is at most a handout's worth: O(handout).
   */
  drawInto<O>(out: O[], limit: number, taken: Set<string>, ownCluster: string, ownZone: string, random: () => number, as: (peer: T) => O): void {
    if (out.length >= limit || this.all.size === 0) return;
    const visit = (p: T) => {
      if (!taken.has(p.peerId)) {
        taken.add(p.peerId);
        out.push(as(p));
      }
      return out.length < limit;
    };
    for (const set of [this.byZone.get(zoneKey(ownCluster, ownZone)), this.byCluster.get(ownCluster), this.all]) {
      if (out.length >= limit) return;
      set?.draw(random, visit);
    }
  }
}

function bucketOf<T>(map: Map<string, IndexedSet<T>>, key: string): IndexedSet<T> {
  let set = map.get(key);
  if (!set) map.set(key, (set = new IndexedSet()));
  return set;
}

function dropFrom<T>(map: Map<string, IndexedSet<T>>, key: string, peer: T): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(peer);
  if (set.size === 0) map.delete(key);
}
