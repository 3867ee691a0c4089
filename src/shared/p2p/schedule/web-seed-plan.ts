import type { HandoutPeer } from "../../api/announce.js";
import { estimatedSlicePieces } from "../web-seed-ring.js";
import type { SchedulerTuning } from "./config.js";

export interface WebSeedPick {
  now: number;
  /** How many more web-seed reads may start. */
  concurrency: number;
  /** How long nothing has come from peers (0 while peers or the web seed are busy for us). */
  idleMs: number;
  /** How long to wait for peers before fetching outside our slice. */
  patienceMs: number;
  /** Handshakes under way, and peers connected (by connection and by peer id). */
  connecting: number;
  connectedPeers: number;
  distinctPeers: number;
  /** Missing pieces no connected peer has (a superset of the eligible ones). */
  unseen: ReadonlySet<number>;
  /** Missing, not in flight, and no connected peer has it. */
  eligible: (index: number) => boolean;
  announcing: boolean;
  /** Ask the tracker again at this time (to see whether the slice has settled). */
  wantAnnounceAt: (at: number) => void;
}

/**
 * Which pieces this agent reads from the web seed. Each agent owns a slice of the piece ring: the
 * tracker gives it a start and a length so that the live leechers' slices tile the ring, and it
 * fetches only its slice from the edge at first, so that a cluster pulling at once asks the edge
 * for about one copy in all. Past the first piece of the slice it fetches only once the slice has
 * held for a while (peers still joining take their part of it). A piece past the slice (its owner
 * left, or is not connected to us) is fetched once this agent has had nothing to do for a while,
 * the longer the farther the piece is from its slice: the agent nearest before an orphan piece
 * takes it, and the others then get it from that agent. The first read waits for the first
 * announce, and for the handshakes it started when the handed-out peers have pieces.
 */
export class WebSeedPlan {
  /** At least one announce was answered (or failed): the slice is as good as it gets. */
  announced = false;
  private start = 0;
  private slice: number | undefined;
  /** Pieces of the slice that stay ours whoever joins (the tracker's webSeedSettledPieces). */
  private settledPieces = 0;
  /** How many other peers the tracker handed out last time (the swarm size, bounded). */
  private handoutSize = 0;
  /** When the tracker last gave us our slice (infinity: it could not be asked). */
  private sliceAt = 0;
  /** When the slice last changed: it is trusted once it has held a while. */
  private sliceChangedAt = 0;
  private lastAnnounceAt = 0;
  private holdUntil = Number.POSITIVE_INFINITY;
  /** Readers' pieces wait for handshakes with any handed-out peer until then (see holding). */
  private readerHoldUntil = Number.POSITIVE_INFINITY;
  /** The least time between announces the tracker allows (its minInterval), at least our own. */
  private reannounceMs: number;

  constructor(
    private readonly pieceCount: number,
    private readonly tuning: SchedulerTuning,
  ) {
    this.reannounceMs = tuning.webSeedReannounceMs;
  }

  /**
   * The download began: a reader waits for the tracker's first answer for webSeedHoldMs at most
   * (an answer takes one round trip; then handshakes get readerHoldMs).
   */
  started(now: number): void {
    if (!this.announced) this.readerHoldUntil = now + this.tuning.webSeedHoldMs;
  }

  announcing(now: number): void {
    this.lastAnnounceAt = now;
  }

  answered(startPiece: number, slicePieces: number | undefined, others: readonly HandoutPeer[], now: number, minIntervalMs = 0, settledPieces = 0): void {
    this.reannounceMs = Math.max(this.tuning.webSeedReannounceMs, minIntervalMs);
    const start = startPiece % Math.max(1, this.pieceCount);
    if (start !== this.start || slicePieces !== this.slice) this.sliceChangedAt = now;
    this.start = start;
    this.slice = slicePieces;
    this.settledPieces = Math.min(settledPieces, slicePieces ?? 0);
    this.sliceAt = now;
    this.handoutSize = others.length;
    if (!this.announced) {
      // Handed-out peers with pieces may have ours: wait for their handshakes before asking the
      // edge. Peers that have nothing yet (a cluster pulling at once) are not waited for.
      const worthWaiting = others.some((p) => p.complete || (p.have ?? 1) > 0);
      this.holdUntil = worthWaiting ? now + this.tuning.webSeedHoldMs : 0;
      // A lazy peer's pieces are few and its announced count may be from before its last reads:
      // a reader's piece waits for every handshake (a moment on a LAN, readerHoldMs at most).
      this.readerHoldUntil = others.length > 0 ? now + this.tuning.readerHoldMs : 0;
    }
    this.announced = true;
  }

  /** The tracker could not be reached: go on with the slice we had (or the estimate). */
  trackerUnreachable(): void {
    this.sliceAt = Number.POSITIVE_INFINITY;
    if (!this.announced) this.readerHoldUntil = this.holdUntil = 0;
    this.announced = true;
  }

  /**
   * Before the first answer, and while handshakes run with handed-out peers that have pieces (for
   * a while at most), the edge is not asked: those peers may have what we need.
   */
  holding(now: number, connecting: number, forReaders = false): boolean {
    // A reader's wait is bounded, for the first answer too (a slow tracker costs it readerHoldMs).
    if (forReaders) return (!this.announced || connecting > 0) && now < this.readerHoldUntil;
    return !this.announced || (connecting > 0 && now < this.holdUntil);
  }

  pick(p: WebSeedPick): number[] {
    const picked: number[] = [];
    if (this.holding(p.now, p.connecting)) return picked;
    const slice = this.slice ?? this.estimatedSlice(p.distinctPeers);
    /** Looks at the piece k along the ring from our start; false: stop looking. */
    const visit = (k: number): boolean => {
      if (picked.length >= p.concurrency) return false;
      const i = (this.start + k) % this.pieceCount;
      if (!p.eligible(i)) return true;
      if (k >= slice && p.idleMs < p.patienceMs * (1 + (k - slice) / Math.max(1, slice))) return false;
      if (k >= this.settledPieces && k > 0 && k < slice && !this.settled(p)) return false;
      picked.push(i);
      return true;
    };
    // Nearest first. While many pieces are unseen, along the ring (the walk stops early); else only
    // the unseen ones, sorted (late in a download they are few: no walk over every piece per poll).
    if (p.unseen.size * 8 > this.pieceCount) {
      // Eligible pieces are unseen ones: the set's lookup passes over the rest cheaply.
      for (let k = 0; k < this.pieceCount; k++) if (p.unseen.has((this.start + k) % this.pieceCount) && !visit(k)) break;
    } else {
      const ahead: number[] = [];
      for (const i of p.unseen) ahead.push((i - this.start + this.pieceCount) % this.pieceCount);
      ahead.sort((x, y) => x - y);
      for (const k of ahead) if (!visit(k)) break;
    }
    return picked;
  }

  /**
   * Is the slice settled enough to fetch more than its first piece: unchanged over two answers at
   * least a second apart? Else asks the tracker again (at most once a second). An agent alone in
   * its swarm at the last announce goes on (a newcomer costs at most the piece in flight).
   */
  private settled(p: WebSeedPick): boolean {
    if (this.sliceAt === Number.POSITIVE_INFINITY) return true;
    if (this.handoutSize === 0 && p.connectedPeers === 0) return true;
    const settled = this.sliceAt - this.sliceChangedAt >= this.tuning.webSeedReannounceMs;
    if (!p.announcing) {
      if (p.now - this.lastAnnounceAt >= this.reannounceMs) p.wantAnnounceAt(p.now);
      else if (!settled) p.wantAnnounceAt(this.lastAnnounceAt + this.reannounceMs);
    }
    return settled;
  }

  /** Without the tracker's slice (an older edge): the ring over the swarm size we know of. */
  private estimatedSlice(distinctPeers: number): number {
    return estimatedSlicePieces(this.pieceCount, Math.max(this.handoutSize, distinctPeers));
  }
}
