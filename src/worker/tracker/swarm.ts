import type { AnnounceRequest, AnnounceResponse, HandoutPeer } from "../../shared/api/announce.js";

export interface SwarmOptions {
  now: () => number;
  /** A peer not heard from for this long is forgotten. */
  peerTtlMs: number;
  /** Seconds between announces that the tracker asks for. */
  intervalSeconds: number;
  /** Most peers handed out in one answer. */
  maxHandout: number;
  random?: () => number;
}

interface PeerEntry extends HandoutPeer {
  lastSeen: number;
  /** Order of arrival, for spreading web-seed start offsets. */
  slot: number;
}

/**
 * Where the k-th peer of a swarm starts on the piece ring, as a fraction: the base-2 van der Corput
 * sequence (0, 1/2, 1/4, 3/4, 1/8, …). Any first n peers split the ring into nearly equal arcs, so
 * each owns a different slice of the web-seed fetches; for n ≤ pieces that are a power of two,
 * every start is a different piece (the golden ratio gave two of four peers the same start).
 */
export function ringPosition(k: number): number {
  let position = 0;
  let weight = 0.5;
  for (let n = k; n > 0; n >>>= 1, weight /= 2) if (n & 1) position += weight;
  return position;
}

function startPiece(slot: number, pieceCount: number): number {
  return pieceCount > 0 ? Math.floor(ringPosition(slot) * pieceCount) : 0;
}

/**
 * The swarm of one blob: who has it (seeders), who is fetching it, and what each newcomer is
 * handed. Pure logic with an injected clock; the Durable Object around it only stores and alarms.
 */
export class Swarm {
  private readonly peers = new Map<string, PeerEntry>();
  private nextSlot = 0;
  private readonly random: () => number;

  constructor(private readonly options: SwarmOptions) {
    this.random = options.random ?? Math.random;
  }

  get size(): number {
    return this.peers.size;
  }

  announce(request: AnnounceRequest): AnnounceResponse {
    const now = this.options.now();
    this.expire();
    if (request.stopped) {
      this.peers.delete(request.peerId);
      return { interval: this.options.intervalSeconds, peers: [], webSeedStartPiece: 0, webSeedSlicePieces: 0 };
    }
    const existing = this.peers.get(request.peerId);
    const entry: PeerEntry = {
      peerId: request.peerId,
      ip: request.ip,
      port: request.port,
      zone: request.zone,
      cluster: request.cluster,
      complete: request.complete,
      have: request.have,
      lastSeen: now,
      slot: existing?.slot ?? this.nextSlot++,
    };
    this.peers.set(request.peerId, entry);
    const webSeedStartPiece = startPiece(entry.slot, request.pieceCount);
    const webSeedSlicePieces = request.complete ? 0 : this.sliceOf(entry, request.pieceCount);
    return { interval: this.options.intervalSeconds, peers: this.handout(entry), webSeedStartPiece, webSeedSlicePieces };
  }

  /**
   * How many pieces from its start a leecher fetches from the web seed: up to the next leecher's
   * start on the ring, so the live leechers' slices tile the ring exactly (every piece has one
   * owner, none has two). Of leechers that share a start (more leechers than pieces), the one
   * that came first owns it and the others get nothing to fetch from the edge.
   */
  private sliceOf(leecher: PeerEntry, pieceCount: number): number {
    if (pieceCount === 0) return 0;
    const start = startPiece(leecher.slot, pieceCount);
    let next = Number.POSITIVE_INFINITY;
    for (const other of this.peers.values()) {
      if (other.complete || other.peerId === leecher.peerId) continue;
      const otherStart = startPiece(other.slot, pieceCount);
      if (otherStart === start) {
        if (other.slot < leecher.slot) return 0;
        continue;
      }
      next = Math.min(next, (otherStart - start + pieceCount) % pieceCount);
    }
    return Number.isFinite(next) ? next : pieceCount;
  }

  /**
   * A bounded, shuffled list, never the requester: seeders before leechers, and within each, the
   * requester's own zone and cluster first, then its cluster, then the rest.
   */
  private handout(requester: PeerEntry): HandoutPeer[] {
    const rank = (p: PeerEntry) =>
      (p.complete ? 0 : 3) + (p.cluster === requester.cluster ? (p.zone === requester.zone ? 0 : 1) : 2);
    const others = [...this.peers.values()].filter((p) => p.peerId !== requester.peerId);
    const keyed = others.map((p) => ({ p, rank: rank(p), tie: this.random() }));
    keyed.sort((a, b) => a.rank - b.rank || a.tie - b.tie);
    return keyed.slice(0, this.options.maxHandout).map(({ p }) => ({
      peerId: p.peerId,
      ip: p.ip,
      port: p.port,
      zone: p.zone,
      cluster: p.cluster,
      complete: p.complete,
      have: p.have,
    }));
  }

  /** Forgets peers that stopped announcing; returns how many. */
  expire(): number {
    const cutoff = this.options.now() - this.options.peerTtlMs;
    let removed = 0;
    for (const [id, peer] of this.peers) {
      if (peer.lastSeen < cutoff) {
        this.peers.delete(id);
        removed++;
      }
    }
    return removed;
  }

  /** When the next peer would expire (for the alarm). */
  nextExpiry(): number | undefined {
    let oldest: number | undefined;
    for (const peer of this.peers.values()) oldest = oldest === undefined ? peer.lastSeen : Math.min(oldest, peer.lastSeen);
    return oldest === undefined ? undefined : oldest + this.options.peerTtlMs;
  }

  snapshot(): { peers: number; seeders: number } {
    let seeders = 0;
    for (const p of this.peers.values()) if (p.complete) seeders++;
    return { peers: this.peers.size, seeders };
  }
}
