import type { HandoutPeer } from "../../shared/api/announce.js";
import { Buckets, zoneKey } from "./buckets.js";

/**
 * How the shards of one swarm learn of each other. Each shard posts a summary of itself (its
 * counts and a small random sample of its peers, seeders first) to shard 0, the hub, and gets the
 * other shards' latest summaries back in the same call: one small call per shard now and then,
 * never one per announce, and a shard with no peers makes none. With them a shard hands out
 * peers of other shards too, sizes its interval by the whole swarm, and places its leechers'
 * web-seed arc among all the swarm's leechers.
 */
export interface ShardSummary {
  shard: number;
  peers: number;
  /** Leechers on the web-seed ring (fetching the whole blob): the arcs are shared out by them. */
  leechers: number;
  /** Incomplete peers that fetch only what their readers ask (no slice); absent from older shards. */
  holders?: number;
  /** Leechers fetching the whole blob, on the ring or waiting for a place (absent from older shards: `leechers`). */
  fetching?: number;
  /** A few of its peers, for handouts elsewhere. */
  sample: HandoutPeer[];
  /** When the hub should forget it (its own peers would be forgotten by then). */
  expiresAt: number;
}

/** Peers sampled into a summary. */
export const SHARD_SAMPLE_PEERS = 16;
/** Other shards' peers one shard keeps for its handouts (a handout takes a few of them). */
export const REMOTE_PEERS_MAX = 128;

/** What the hub holds: each shard's latest summary. At most one per shard, so O(shards). */
export class ShardBoard {
  private readonly summaries = new Map<number, ShardSummary>();

  /** Keeps `summary` and returns every other live shard's. */
  post(summary: ShardSummary, now: number): ShardSummary[] {
    this.summaries.set(summary.shard, summary);
    const others: ShardSummary[] = [];
    for (const [shard, s] of this.summaries) {
      if (s.expiresAt <= now) this.summaries.delete(shard);
      else if (shard !== summary.shard) others.push(s);
    }
    return others;
  }

  /** Peers and seeders of the shards on the board but `except` (the hub reports the swarm's totals). */
  totals(now: number, except: number): { peers: number; seeders: number } {
    let peers = 0;
    let seeders = 0;
    for (const s of this.summaries.values()) {
      if (s.expiresAt <= now || s.shard === except) continue;
      peers += s.peers;
      seeders += s.peers - (s.fetching ?? s.leechers) - (s.holders ?? 0);
    }
    return { peers, seeders };
  }
}

export interface RemotePeer extends HandoutPeer {
  bucket: string;
}

/** What one shard knows of the others, from the hub's last answer. */
export class RemoteView {
  seeders = new Buckets<RemotePeer>();
  leechers = new Buckets<RemotePeer>();
  /** Peers held by the other shards, together. */
  peers = 0;
  /** The other shards' leechers that fetch the whole blob, together (their share of the web-seed readers). */
  fetching = 0;
  /** Leechers of each other shard, by shard index. */
  private leechersOf = new Map<number, number>();
  /** When the hub last answered (or failed to); undefined: never asked. */
  at: number | undefined;

  /**
   * `offset`: where in each summary's sample this shard starts (its own index): every shard gets
   * the same summaries from the hub, and views that all took each sample's first peers handed the
   * same 128 peers out swarm-wide (simulated, 260 hosts over 64 shards: one peer in 72 handouts,
   * another in 2, where one object hands each out 15 to 45 times), leaving the rest poorly connected.
   */
  learn(summaries: readonly ShardSummary[], now: number, offset = 0): void {
    this.at = now;
    this.peers = 0;
    this.fetching = 0;
    this.leechersOf = new Map();
    this.seeders = new Buckets();
    this.leechers = new Buckets();
    for (const s of summaries) {
      this.peers += s.peers;
      this.fetching += s.fetching ?? s.leechers;
      this.leechersOf.set(s.shard, s.leechers);
    }
    // A bounded sample, taken round robin over the shards (each sample lists its seeders first).
    let kept = 0;
    for (let k = 0; k < SHARD_SAMPLE_PEERS && kept < REMOTE_PEERS_MAX; k++) {
      for (const s of summaries) {
        if (k >= s.sample.length || kept >= REMOTE_PEERS_MAX) continue;
        const p = s.sample[(k + offset) % s.sample.length]!;
        (p.complete ? this.seeders : this.leechers).add({ ...p, bucket: zoneKey(p.cluster, p.zone) });
        kept++;
      }
    }
  }

  /** The hub could not be reached: keep what we knew, ask again later. */
  failed(now: number): void {
    this.at = now;
  }

  /**
   * Where shard `index` of `count`, with `own` leechers, places its leechers on the piece ring:
   * the swarm's leechers in shard order, each shard the arc its share of them spans, so that the
   * shards' arcs tile the ring as one object's leechers would. (A shard that has not posted counts
   * as empty: until it does, a neighbour's arc covers its part, rather than nobody.)
   */
  arc(index: number, count: number, own: number, pieceCount: number): { first: number; end: number } {
    if (count <= 1) return { first: 0, end: pieceCount };
    let before = 0;
    let total = own;
    for (const [shard, n] of this.leechersOf) {
      if (shard === index || shard >= count) continue;
      total += n;
      if (shard < index) before += n;
    }
    if (total === 0) return { first: 0, end: pieceCount };
    return { first: Math.ceil((before * pieceCount) / total), end: Math.ceil(((before + own) * pieceCount) / total) };
  }
}
