import type { AnnounceResponse, HandoutPeer } from "../../api/announce.js";
import { Bitfield } from "../bitfield.js";
import { SCHEDULER_TUNING, type SchedulerTuning } from "./config.js";
import { WEB_SEED, type PeerKey, type PieceSource, type SchedulerAction, type SchedulerEvent } from "./events.js";
import { rarestFirst, type PieceSelectionPolicy } from "./piece-selection.js";
import type { Random } from "./random.js";
import { shuffled } from "./random.js";
import { WebSeedPlan } from "./web-seed-plan.js";

export interface SchedulerConfig {
  pieceCount: number;
  /** Our own peer id (hex): handout entries with it are us. */
  selfPeerId: string;
  /** Peer connections per swarm. */
  maxPeers: number;
  piecesPerPeer: number;
  webSeedConcurrency: number;
  requestTimeoutMs: number;
  /** Fail when no piece verified for this long (no peer and no web seed could help). */
  stallTimeoutMs: number;
  random: Random;
  /** Handed-out addresses never to dial (loopback, link-local, metadata…), with why; see peer-address.ts. */
  refuseAddress?: (ip: string) => string | undefined;
  policy?: PieceSelectionPolicy;
  tuning?: Partial<SchedulerTuning>;
  /**
   * Fetch the pieces no reader waits for too, behind the readers' (default). Off (an agent's
   * `--lazy-complete=never`): only what readers ask for is fetched, the swarm stays joined to serve
   * it, and the stall timeout runs only while a reader waits.
   */
  background?: boolean;
}

interface Peer {
  key: PeerKey;
  peerId: string;
  inbound: boolean;
  bitfield: Bitfield;
  /** Pieces requested from it, with when. */
  requested: Map<number, Request>;
  /**
   * requested.size, kept on the peer: the passes read it for every peer, and in a fleet's
   * simulation the maps are not in cache (2,000 hosts: 14.7 s against 16.6 s for 1.5 virtual s).
   */
  pending: number;
  /** It rejected a request (busy): no new requests to it before then. */
  rejectedUntil: number;
  strikes: number;
  /** How many of its pieces we lack: a peer with none is not worth looking through. */
  interesting: number;
}

interface Request {
  startedAt: number;
  deadline: number;
}

/**
 * The swarm policy of one blob, as a pure state machine: events in (`handle`), actions out
 * (`poll`), the clock and randomness passed in, no I/O. Which piece from which peer (the selection
 * policy: rarest first, common pieces in order, endgame duplicates at the end), which pieces from
 * the web seed (the tracker's slice of the piece ring; see WebSeedPlan), when to announce, dial,
 * give up on a slow request, drop or ban a peer, and when the download has failed.
 *
 * Events only update state; the work they call for is chosen in `poll`, once for however many
 * events arrived (the driver polls once per turn of its event loop: a burst of `have`s costs one
 * pass), and only after an event for which `handle` returned true (most haves cannot be acted on
 * at once). `nextTimeout()` says when to call `poll` again if nothing else happens. The same seed and the same events give the same actions.
 */
export class SwarmScheduler {
  readonly pieceCount: number;
  private readonly tuning: SchedulerTuning;
  private readonly policy: PieceSelectionPolicy;
  private readonly random: Random;
  private readonly haveField: Bitfield;
  private haveCount = 0;
  private readonly peers = new Map<PeerKey, Peer>();
  private readonly connectedIds = new Map<string, number>();
  private readonly connecting = new Set<PeerKey>();
  private readonly banned = new Set<string>();
  private readonly retryAfter = new Map<PeerKey, number>();
  private readonly failures = new Map<PeerKey, number>();
  /** How many connected peers have each piece. */
  private readonly availability: Uint16Array;
  /** Requests in flight by piece: which peers were asked. */
  private readonly inFlight = new Map<number, Set<PeerKey>>();
  private readonly webInFlight = new Map<number, number>();
  /** Pieces whose bytes are being verified and written (a duplicate arriving meanwhile is dropped). */
  private readonly verifying = new Set<number>();
  private readonly webSeed: WebSeedPlan;
  /** Pieces readers wait for, most urgent first (see the `priorities` event). */
  private wanted: number[] = [];
  private webSeedFailures = 0;
  private webSeedRetryAt = 0;
  /** Missing pieces that no connected peer has (the web seed's candidates): while none, it has nothing to do. */
  private readonly unseen = new Set<number>();
  /** With an incremental policy (rarest first): rare[n - 1] holds the missing pieces exactly n connected peers have. */
  private readonly rare: Set<number>[];
  private readonly common: number | undefined;
  /** No piece below this is missing (a cursor for the in-order part of rarest first). */
  private firstMissing = 0;
  /**
   * No request's deadline is before this (a lower bound: releasing a request leaves it, the next
   * expiry pass makes it exact again). Polls before it skip looking at every request.
   */
  private nextDeadline = Number.POSITIVE_INFINITY;
  /** Moving average of how long a piece takes to arrive, for the web seed's patience. */
  private pieceMs = 0;
  private started = false;
  private done = false;
  private announcing = false;
  /** What the announce in flight (or the last one) said of `fetching`. */
  private announcedFetching: boolean | undefined;
  private nextAnnounceAt = Number.POSITIVE_INFINITY;
  private lastProgressAt = 0;
  private readonly out: SchedulerAction[] = [];
  /** Peers' reject backoffs by when they end, from `rejectionsHead` on (see nextRejectionEnd). */
  private readonly rejections: { peer: Peer; until: number }[] = [];
  private rejectionsHead = 0;
  private background: boolean;

  constructor(private readonly config: SchedulerConfig) {
    this.pieceCount = config.pieceCount;
    this.tuning = { ...SCHEDULER_TUNING, ...config.tuning };
    this.policy = config.policy ?? rarestFirst();
    this.random = config.random;
    this.haveField = new Bitfield(this.pieceCount);
    this.availability = new Uint16Array(this.pieceCount);
    for (let i = 0; i < this.pieceCount; i++) this.unseen.add(i);
    this.common = this.policy.commonAvailability;
    this.rare = Array.from({ length: Math.max(0, (this.common ?? 1) - 1) }, () => new Set<number>());
    this.webSeed = new WebSeedPlan(this.pieceCount, this.tuning);
    this.background = config.background ?? true;
  }

  // ---- queries ---------------------------------------------------------------------------------

  has(index: number): boolean {
    return index >= 0 && index < this.pieceCount && this.haveField.has(index);
  }

  /**
   * Has `peer` told us it holds piece `index`? Then a `have` for it would tell the peer nothing it
   * could use (it asks us only for pieces it lacks), and the driver does not send one: in a swarm
   * that fetches in much the same order, about half of all haves, each a frame, a write and a
   * wake-up on both sides.
   */
  peerHolds(peer: PeerKey, index: number): boolean {
    const known = this.peers.get(peer);
    return known !== undefined && index >= 0 && index < this.pieceCount && known.bitfield.has(index);
  }

  /** Is the whole blob wanted (background completion, or a whole read came), not only readers' pieces? */
  get wholeWanted(): boolean {
    return this.background;
  }

  get have(): Bitfield {
    return this.haveField;
  }

  get haveTotal(): number {
    return this.haveCount;
  }

  get finished(): boolean {
    return this.done;
  }

  /** Should bytes of piece `index` that just arrived be verified (not had, not being verified)? */
  accepts(index: number): boolean {
    return !this.done && index >= 0 && index < this.pieceCount && !this.haveField.has(index) && !this.verifying.has(index);
  }

  /** Pieces being fetched, from peers or the web seed. */
  get busyPieces(): number {
    return this.inFlight.size + this.webInFlight.size;
  }

  isConnected(peer: PeerKey): boolean {
    return this.peers.has(peer);
  }

  isBanned(peerOrId: string): boolean {
    return this.banned.has(peerOrId);
  }

  stats(): { peers: number; have: number; pieces: number; webInFlight: number; inFlight: number } {
    return { peers: this.peers.size, have: this.haveCount, pieces: this.pieceCount, webInFlight: this.webInFlight.size, inFlight: this.inFlight.size };
  }

  /** When `poll` should be called next if no event comes first (absolute ms), or undefined. */
  nextTimeout(): number | undefined {
    if (this.done || !this.started) return undefined;
    // Only what lies ahead of the last poll counts: what is due now was handled by it.
    const after = this.lastPollAt;
    let next = Number.POSITIVE_INFINITY;
    const consider = (at: number) => {
      if (at > after && at < next) next = at;
    };
    consider(this.nextAnnounceAt);
    if (this.fetching()) consider(this.lastProgressAt + this.config.stallTimeoutMs + 1);
    if (this.inFlight.size > 0) consider(this.nextDeadline);
    const rejection = this.nextRejectionEnd(after);
    if (rejection !== undefined) consider(rejection);
    consider(this.webSeedRetryAt);
    // Patience and the web seed's hold have no deadline of their own: look again now and then.
    if (this.missing() > 0 && this.fetching()) consider(after + this.tuning.tickMs);
    return next === Number.POSITIVE_INFINITY ? undefined : next;
  }

  // ---- events ----------------------------------------------------------------------------------

  /**
   * Takes in an event. Returns whether it may call for actions (the driver then polls soon): always,
   * except a `have` that no request could follow now — we hold or are fetching the piece, the peer
   * has a request of ours or rejected one lately, every in-flight slot is taken. That is most haves
   * in a busy swarm (a host finishing a piece tells all its peers at once), and a poll for one
   * would only walk the peers to find nothing to do: in the simulated 2,600-host run, 1,300 polls a
   * second per host. Whatever the have changed (availability, the peer's bitfield) counts at the
   * next poll, which the driver makes for any other event or at `nextTimeout()`.
   */
  handle(event: SchedulerEvent, now: number): boolean {
    if (event.type === "have") {
      const peer = this.peers.get(event.peer);
      if (!peer) return false;
      if (!Number.isInteger(event.index) || event.index < 0 || event.index >= this.pieceCount) {
        this.drop(peer, "have out of range", false);
        return true;
      }
      this.peerHas(peer, event.index);
      return this.couldRequest(peer, event.index, now);
    }
    this.take(event, now);
    return true;
  }

  /** Might a poll now ask `peer` for something, now that it holds `index`? (See `handle`.) */
  private couldRequest(peer: Peer, index: number, now: number): boolean {
    if (!this.started || this.done) return false;
    if (this.wanted.length > 0) return true; // readers' pieces: passWanted has its own rules
    if (!this.background) return false;
    if (this.haveField.has(index) || this.verifying.has(index)) return false;
    if (this.verifying.size >= this.tuning.maxPiecesWaitingForDisk) return false;
    if (peer.rejectedUntil > now || peer.pending >= this.config.piecesPerPeer) return false;
    const inFlight = this.inFlight.size + this.webInFlight.size;
    if (this.missing() <= inFlight + this.verifying.size) return true; // the endgame asks for busy pieces too
    return inFlight < this.tuning.maxPiecesInFlight && !this.busy(index);
  }

  private take(event: Exclude<SchedulerEvent, { type: "have" }>, now: number): void {
    switch (event.type) {
      case "start":
        return this.onStart(event.have, now);
      case "announced":
        return this.onAnnounced(event.response, now);
      case "announce-failed":
        this.announcing = false;
        this.webSeed.trackerUnreachable();
        this.nextAnnounceAt = now + this.tuning.announceRetrySeconds * 1000;
        return;
      case "connect-failed":
        this.connecting.delete(event.peer);
        if (event.backoff) this.backOff(event.peer, now);
        return;
      case "peer-connected":
        return this.onConnected(event.peer, event.peerId, event.inbound, event.bitfield, now);
      case "peer-left":
        return this.onLeft(event.peer, now);
      case "bitfield": {
        const peer = this.peers.get(event.peer);
        if (!peer) return;
        let field: Bitfield;
        try {
          field = new Bitfield(this.pieceCount, event.bitfield);
        } catch (error) {
          return this.drop(peer, (error as Error).message, false);
        }
        this.count(peer.bitfield, -1);
        peer.bitfield = field;
        this.count(peer.bitfield, 1);
        peer.interesting = this.lacking(field);
        return;
      }
      case "peer-complete": {
        const peer = this.peers.get(event.peer);
        if (!peer) return;
        // Only the pieces its bitfield lacks, a byte at a time (most are there by now).
        const bits = peer.bitfield.bytes;
        for (let b = 0; b < bits.length; b++) {
          if (bits[b] === 0xff) continue;
          for (let i = b * 8; i < Math.min(this.pieceCount, b * 8 + 8); i++) this.peerHas(peer, i);
        }
        return;
      }
      case "rejected": {
        const peer = this.peers.get(event.peer);
        if (!peer) return;
        this.release(peer, event.index);
        peer.rejectedUntil = now + this.tuning.rejectBackoffMs;
        this.noteRejection(peer);
        return;
      }
      case "piece-arrived":
        return this.onArrived(event.index, event.from, now);
      case "piece-verified":
        return this.onVerified(event.index, event.from, now);
      case "piece-invalid":
        return this.onInvalid(event.index, event.from);
      case "web-seed-failed":
        this.webInFlight.delete(event.index);
        this.webSeedFailures++;
        this.webSeedRetryAt = now + Math.min(this.tuning.maxWebSeedBackoffMs, 500 * 2 ** (this.webSeedFailures - 1));
        return;
      case "priorities": {
        const idle = !this.fetching();
        this.wanted = event.pieces.filter((i) => Number.isInteger(i) && i >= 0 && i < this.pieceCount && !this.haveField.has(i));
        // A swarm that fetched nothing while no reader waited has not stalled: the clock starts now.
        if (idle && this.fetching()) this.lastProgressAt = now;
        return;
      }
      case "background": {
        const idle = !this.fetching();
        const was = this.background;
        this.background = event.on;
        if (idle && this.fetching()) this.lastProgressAt = now;
        // The tracker learns at once that this peer now wants a web-seed slice (or no longer does).
        if (was !== event.on && this.started && !this.announcing) this.nextAnnounceAt = Math.min(this.nextAnnounceAt, now);
        return;
      }
      case "timer":
        return;
    }
  }

  private onStart(have: readonly number[], now: number): void {
    if (this.started) return;
    this.started = true;
    for (const index of have) {
      if (Number.isInteger(index) && index >= 0 && index < this.pieceCount && !this.haveField.has(index)) this.setHave(index);
    }
    this.lastProgressAt = now;
    this.lastPollAt = now;
    if (this.haveCount === this.pieceCount) return this.finish();
    this.nextAnnounceAt = now;
    this.webSeed.started(now);
  }

  private onAnnounced(response: AnnounceResponse, now: number): void {
    this.announcing = false;
    if (this.done) return;
    const first = !this.webSeed.announced;
    const others = response.peers.filter((p) => p.peerId !== this.config.selfPeerId);
    // A big swarm's tracker asks for fewer announces (minInterval): the quick ones obey it too.
    const minInterval = response.minInterval ?? 0;
    this.webSeed.answered(response.webSeedStartPiece, response.webSeedSlicePieces, others, now, minInterval * 1000, response.webSeedSettledPieces);
    // The first answer comes while the swarm forms (peers pulling at once announce within a
    // moment): ask again soon, so the web-seed slice is the settled one.
    const interval = first ? Math.min(response.interval, Math.max(minInterval, this.tuning.firstReannounceSeconds)) : response.interval;
    // A whole read came while the announce was out: the tracker should know (for a slice) soon.
    const changed = this.announcedFetching !== this.background;
    this.nextAnnounceAt = now + (changed ? Math.max(minInterval, this.tuning.webSeedReannounceMs / 1000) : interval) * 1000;
    for (const peer of others) this.connect(peer, now);
  }

  private connect(to: HandoutPeer, now: number): void {
    const key = `${to.ip}:${to.port}`;
    if (this.banned.has(key) || this.banned.has(to.peerId) || this.peers.has(key) || this.connecting.has(key)) return;
    if (this.connectedIds.has(to.peerId)) return; // already connected the other way
    if (this.config.refuseAddress?.(to.ip)) return; // an announcer may name any address: not ours to dial
    // Peers with nothing we lack do not count: hosts that met each other early and all lack the
    // same pieces would otherwise stay among themselves, never dialling a seeder (simulated,
    // 2,600 hosts: 152 waited 50 s on the edge's patience, each with 30 peers and none useful).
    if (this.connecting.size + this.peers.size >= this.tuning.maxConnectedPeers) return;
    if (this.connecting.size + this.usefulPeers() >= this.config.maxPeers) return;
    if ((this.retryAfter.get(key) ?? 0) > now) return;
    this.connecting.add(key);
    this.out.push({ type: "connect", peer: key, to });
  }

  private onConnected(key: PeerKey, peerId: string, inbound: boolean, bits: Uint8Array, now: number): void {
    this.connecting.delete(key);
    if (!inbound) this.failures.delete(key);
    if (this.done) {
      if (!inbound) this.out.push({ type: "drop", peer: key, reason: "download finished", ban: false });
      return;
    }
    if (this.banned.has(peerId) || this.banned.has(key)) {
      this.out.push({ type: "drop", peer: key, reason: "banned from this swarm", ban: true });
      return;
    }
    if (inbound && !this.peers.has(key) && this.peers.size >= this.tuning.maxConnectedPeers) {
      this.out.push({ type: "drop", peer: key, reason: `swarm full: ${this.peers.size} peers connected`, ban: false, full: true });
      return;
    }
    let bitfield: Bitfield;
    try {
      bitfield = new Bitfield(this.pieceCount, bits);
    } catch (error) {
      this.out.push({ type: "drop", peer: key, reason: (error as Error).message, ban: false });
      return;
    }
    const replaced = this.peers.get(key);
    if (replaced) this.forget(replaced, now);
    const peer: Peer = { key, peerId, inbound, bitfield, requested: new Map(), pending: 0, rejectedUntil: 0, strikes: 0, interesting: this.lacking(bitfield) };
    this.peers.set(key, peer);
    this.connectedIds.set(peerId, (this.connectedIds.get(peerId) ?? 0) + 1);
    this.count(bitfield, 1);
  }

  private onLeft(key: PeerKey, now: number): void {
    this.connecting.delete(key);
    const peer = this.peers.get(key);
    if (peer) this.forget(peer, now);
    this.backOff(key, now);
  }

  private onArrived(index: number, from: PieceSource, now: number): void {
    if (from === WEB_SEED) {
      const startedAt = this.webInFlight.get(index);
      if (startedAt !== undefined) this.notePieceTime(now - startedAt);
      this.webInFlight.delete(index);
      this.webSeedFailures = 0;
      this.webSeedRetryAt = 0;
    } else {
      const peer = this.peers.get(from);
      const request = peer?.requested.get(index);
      if (peer && request) {
        this.notePieceTime(now - request.startedAt);
        this.release(peer, index);
      }
    }
    if (this.accepts(index)) this.verifying.add(index);
  }

  private onVerified(index: number, from: PieceSource, now: number): void {
    this.verifying.delete(index);
    if (this.done || this.haveField.has(index)) return;
    this.setHave(index);
    this.lastProgressAt = now;
    if (this.wanted.includes(index)) this.wanted = this.wanted.filter((i) => i !== index);
    // Endgame: whoever else was fetching this piece can stop.
    for (const key of [...(this.inFlight.get(index) ?? [])]) {
      const peer = this.peers.get(key);
      if (!peer) continue;
      this.release(peer, index);
      if (key !== from) this.out.push({ type: "cancel", peer: key, index });
    }
    this.out.push({ type: "have", index });
    if (this.haveCount === this.pieceCount) this.finish();
  }

  private onInvalid(index: number, from: PieceSource): void {
    this.verifying.delete(index);
    if (from === WEB_SEED) return;
    const peer = this.peers.get(from);
    this.banned.add(from);
    if (peer) {
      this.banned.add(peer.peerId);
      this.drop(peer, `piece ${index} failed verification`, true);
    }
  }

  // ---- the pass --------------------------------------------------------------------------------

  private lastPollAt = 0;

  /** The actions that the events so far (and the time) call for. */
  poll(now: number): SchedulerAction[] {
    this.lastPollAt = now;
    if (this.started && !this.done) {
      this.expireRequests(now);
      if (this.fetching() && now - this.lastProgressAt > this.config.stallTimeoutMs) {
        this.fail(`no verified piece for ${Math.round(this.config.stallTimeoutMs / 1000)} s from ${this.peers.size} peers or the web seed`);
      } else {
        this.pass(now);
        this.maybeAnnounce(now);
      }
    }
    return this.out.splice(0);
  }

  private maybeAnnounce(now: number): void {
    if (this.done || this.announcing || now < this.nextAnnounceAt) return;
    this.announcing = true;
    this.webSeed.announcing(now);
    this.nextAnnounceAt = Number.POSITIVE_INFINITY;
    this.announcedFetching = this.background;
    this.out.push({ type: "announce", have: this.haveCount, fetching: this.background });
  }

  private expireRequests(now: number): void {
    if (now < this.nextDeadline) return;
    let next = Number.POSITIVE_INFINITY;
    const expired: [Peer, number][] = [];
    for (const peer of this.peers.values()) {
      for (const [index, request] of peer.requested) {
        if (request.deadline <= now) expired.push([peer, index]);
        else if (request.deadline < next) next = request.deadline;
      }
    }
    this.nextDeadline = next;
    for (const [peer, index] of expired) {
      if (!this.peers.has(peer.key) || !peer.requested.has(index)) continue; // dropped meanwhile
      // Too slow: give the piece back and count a strike against the peer.
      peer.strikes++;
      this.release(peer, index);
      this.out.push({ type: "cancel", peer: peer.key, index });
      if (peer.strikes >= this.tuning.maxStrikes) this.drop(peer, "too slow", false);
    }
  }

  private busy(i: number): boolean {
    return this.inFlight.has(i) || this.webInFlight.has(i) || this.verifying.has(i);
  }

  /** Picks work for every peer with room, then for the web seed. */
  private pass(now: number): void {
    if (this.haveCount === this.pieceCount) return;
    this.passWanted(now);
    if (!this.background) return;
    // The disk is behind: what arrives now would only wait in memory.
    if (this.verifying.size >= this.tuning.maxPiecesWaitingForDisk) return;
    if (this.peerRoom(now)) this.passPeers(now);
    this.passWebSeed(now);
  }

  /**
   * Could a peer be asked for anything now? Cheap, so that a poll with nothing to start (most of
   * them: every slot busy) does not walk every piece.
   */
  private peerRoom(now: number): boolean {
    const inFlight = this.inFlight.size + this.webInFlight.size;
    // Past the cap only the endgame asks more, and it has not come while more pieces are missing than could be busy.
    if (inFlight >= this.tuning.maxPiecesInFlight && this.missing() > inFlight + this.verifying.size) return false;
    for (const peer of this.peers.values()) if (peer.rejectedUntil <= now && peer.pending < this.config.piecesPerPeer) return true;
    return false;
  }

  private passPeers(now: number): void {
    const maybeEndgame = this.missing() <= this.inFlight.size + this.webInFlight.size + this.verifying.size;
    if (this.common !== undefined && !maybeEndgame) return this.passPeersIncremental(now, this.common);
    const missing: number[] = [];
    const unassigned: number[] = [];
    for (let i = 0; i < this.pieceCount; i++) {
      if (this.haveField.has(i)) continue;
      missing.push(i);
      if (!this.busy(i)) unassigned.push(i);
    }
    if (missing.length === 0) return;
    const endgame = unassigned.length === 0;
    const candidates = endgame ? missing.filter((i) => !this.verifying.has(i)) : unassigned;
    const ranked = this.policy.rank({ candidates, availability: this.availability, endgame }, this.random);
    // Few pieces at a time: each completes (and can be passed on) sooner than if every peer's
    // piece were fetched at once, sharing the link; and memory stays a few pieces per swarm.
    const peers = shuffled([...this.peers.values()], this.random);
    for (const peer of peers) {
      if (peer.rejectedUntil > now) continue;
      peer.rejectedUntil = 0;
      for (const i of ranked) {
        if (peer.requested.size >= this.config.piecesPerPeer) break;
        if (!endgame && this.inFlight.size + this.webInFlight.size >= this.tuning.maxPiecesInFlight) break;
        if (!peer.bitfield.has(i) || peer.requested.has(i) || this.haveField.has(i) || this.verifying.has(i)) continue;
        if (!endgame && this.busy(i)) continue;
        if (endgame && (this.inFlight.get(i)?.size ?? 0) >= this.tuning.endgameMaxRequests) continue;
        this.request(peer, i, now);
      }
    }
  }

  /**
   * What `passPeers` does with rarest first, without walking every piece: the rare buckets (small
   * once the swarm has spread the blob) shuffled, then the common pieces in index order from the
   * first missing one, read off the peer's bitfield a byte at a time. Only peers with room and
   * with pieces we lack are looked at.
   */
  private passPeersIncremental(now: number, common: number): void {
    const perPeer = this.config.piecesPerPeer;
    const cap = this.tuning.maxPiecesInFlight;
    const peers: Peer[] = [];
    for (const peer of this.peers.values()) if (peer.interesting > 0 && peer.rejectedUntil <= now && peer.pending < perPeer) peers.push(peer);
    if (peers.length === 0) return;
    const rare: number[] = [];
    for (const bucket of this.rare) {
      const from = rare.length;
      for (const i of bucket) if (!this.busy(i)) rare.push(i);
      for (let k = rare.length - 1; k > from; k--) {
        const j = from + Math.floor(this.random() * (k - from + 1));
        const t = rare[k]!;
        rare[k] = rare[j]!;
        rare[j] = t;
      }
    }
    const have = this.haveField.bytes;
    while (this.firstMissing < this.pieceCount && (have[this.firstMissing >> 3]! & (0x80 >> (this.firstMissing & 7))) !== 0) this.firstMissing++;
    const full = () => this.inFlight.size + this.webInFlight.size >= cap;
    for (const peer of shuffled(peers, this.random)) {
      if (full()) break;
      const bits = peer.bitfield.bytes;
      for (const i of rare) {
        if (peer.pending >= perPeer || full()) break;
        if ((bits[i >> 3]! & (0x80 >> (i & 7))) !== 0 && !this.busy(i)) this.request(peer, i, now);
      }
      for (let b = this.firstMissing >> 3; b < bits.length && peer.pending < perPeer && !full(); b++) {
        let mask = bits[b]! & ~have[b]!;
        while (mask !== 0 && peer.pending < perPeer && !full()) {
          const bit = Math.clz32(mask) - 24;
          mask &= ~(0x80 >> bit);
          const i = b * 8 + bit;
          if (this.availability[i]! >= common && !this.busy(i)) this.request(peer, i, now);
        }
      }
    }
  }

  /**
   * Pieces a reader waits for come first, in its order, outside the usual limits (a reader's
   * latency is what lazy pulling is for): from a connected peer that has the piece and is not
   * busy, preferring the one with the fewest requests in flight; when no peer has it, from the
   * web seed at once, whatever the slice, with one read more than the usual concurrency — once the
   * first announce is answered and the handshakes with handed-out peers are done, for a moment at
   * most (a second host's lazy read comes from the first host's partial copy, not from the edge).
   */
  private passWanted(now: number): void {
    if (this.wanted.length === 0) return;
    this.wanted = this.wanted.filter((i) => !this.haveField.has(i));
    for (const i of this.wanted) {
      if (this.busy(i)) continue;
      let best: Peer | undefined;
      for (const peer of this.peers.values()) {
        if (peer.rejectedUntil > now || !peer.bitfield.has(i) || peer.requested.size > this.config.piecesPerPeer) continue;
        if (!best || peer.requested.size < best.requested.size) best = peer;
      }
      if (best) {
        this.request(best, i, now);
      } else if (
        this.availability[i] === 0 &&
        now >= this.webSeedRetryAt &&
        this.webInFlight.size <= this.config.webSeedConcurrency &&
        !this.webSeed.holding(now, this.connecting.size, true)
      ) {
        this.webInFlight.set(i, now);
        this.out.push({ type: "web-seed", index: i });
      }
    }
  }

  /**
   * The web seed, for pieces no connected peer has: this agent's slice of the piece ring first
   * (see WebSeedPlan), pieces past it only after a while with nothing from peers.
   */
  private passWebSeed(now: number): void {
    if (now < this.webSeedRetryAt || this.unseen.size === 0 || this.webInFlight.size >= this.config.webSeedConcurrency) return;
    // Requests in flight are all to connected peers (forgetting a peer releases its requests).
    const waitingForPeers = this.inFlight.size > 0;
    const idleMs = waitingForPeers || this.webInFlight.size > 0 ? 0 : now - this.lastProgressAt;
    const wanted = this.webSeed.pick({
      now,
      concurrency: this.config.webSeedConcurrency - this.webInFlight.size,
      idleMs,
      patienceMs: Math.max(this.haveCount === 0 && this.peers.size > 0 ? this.tuning.webSeedPatienceFirstMs : this.tuning.webSeedPatienceMinMs, 2 * this.pieceMs),
      connecting: this.connecting.size,
      connectedPeers: this.peers.size,
      distinctPeers: this.connectedIds.size,
      unseen: this.unseen,
      eligible: (i) => !this.haveField.has(i) && !this.busy(i) && this.availability[i] === 0,
      announcing: this.announcing,
      wantAnnounceAt: (at) => {
        if (!this.announcing) this.nextAnnounceAt = Math.min(this.nextAnnounceAt, at);
      },
    });
    for (const index of wanted) {
      this.webInFlight.set(index, now);
      this.out.push({ type: "web-seed", index });
    }
  }

  private request(peer: Peer, index: number, now: number): void {
    const deadline = now + this.config.requestTimeoutMs;
    peer.requested.set(index, { startedAt: now, deadline });
    peer.pending = peer.requested.size;
    if (deadline < this.nextDeadline) this.nextDeadline = deadline;
    let askers = this.inFlight.get(index);
    if (!askers) this.inFlight.set(index, (askers = new Set()));
    askers.add(peer.key);
    this.out.push({ type: "request", peer: peer.key, index });
  }

  // ---- bookkeeping -----------------------------------------------------------------------------

  private release(peer: Peer, index: number): void {
    peer.requested.delete(index);
    peer.pending = peer.requested.size;
    const askers = this.inFlight.get(index);
    askers?.delete(peer.key);
    if (askers?.size === 0) this.inFlight.delete(index);
  }

  /** The hot path of every `have` (index already checked): bytes, not Bitfield's checked accessors. */
  private peerHas(peer: Peer, index: number): void {
    const bits = peer.bitfield.bytes;
    const byte = index >> 3;
    const mask = 0x80 >> (index & 7);
    if ((bits[byte]! & mask) !== 0) return;
    bits[byte]! |= mask;
    this.addAvailability(index, 1);
    if ((this.haveField.bytes[byte]! & mask) === 0) peer.interesting++;
  }

  /** Counts a holder more or less for a piece, keeping `unseen` and the rare buckets. */
  private addAvailability(index: number, sign: 1 | -1): void {
    const before = this.availability[index]!;
    const after = before + sign;
    this.availability[index] = after;
    if (this.haveField.has(index)) return;
    if (before === 0) this.unseen.delete(index);
    else if (after === 0) this.unseen.add(index);
    if (this.common === undefined) return;
    if (before > 0 && before < this.common) this.rare[before - 1]!.delete(index);
    if (after > 0 && after < this.common) this.rare[after - 1]!.add(index);
  }

  private setHave(index: number): void {
    this.haveField.set(index);
    this.haveCount++;
    const n = this.availability[index]!;
    if (n === 0) this.unseen.delete(index);
    else if (this.common !== undefined && n < this.common) this.rare[n - 1]!.delete(index);
    if (n > 0) for (const peer of this.peers.values()) if (peer.bitfield.has(index)) peer.interesting--;
  }

  /** Connected peers that have a piece we lack. */
  private usefulPeers(): number {
    let n = 0;
    for (const peer of this.peers.values()) if (peer.interesting > 0) n++;
    return n;
  }

  /** How many pieces of `field` we lack. */
  private lacking(field: Bitfield): number {
    const have = this.haveField.bytes;
    let n = 0;
    for (let b = 0; b < have.length; b++) {
      let m = field.bytes[b]! & ~have[b]!;
      while (m !== 0) {
        m &= m - 1;
        n++;
      }
    }
    return n;
  }

  /** Adds (or takes away) a peer's pieces to the availability counts. */
  private count(bitfield: Bitfield, sign: 1 | -1): void {
    const bytes = bitfield.bytes;
    for (let b = 0; b < bytes.length; b++) {
      const byte = bytes[b]!;
      if (byte === 0) continue;
      for (let bit = 0; bit < 8; bit++) if (byte & (0x80 >> bit)) this.addAvailability(b * 8 + bit, sign);
    }
  }

  /** Keeps `rejections` in order of their end (a constant backoff from a clock that does not go back: an append). */
  private noteRejection(peer: Peer): void {
    const until = peer.rejectedUntil;
    const list = this.rejections;
    list.push({ peer, until });
    if (list.length - 1 > this.rejectionsHead && list[list.length - 2]!.until > until) {
      const tail = list.splice(this.rejectionsHead).sort((a, b) => a.until - b.until);
      list.push(...tail);
    }
  }

  /**
   * The first end of a peer's reject backoff after `after` (what nextTimeout needs of every peer's
   * rejectedUntil), without walking the peers: ends at or before it, and of peers gone or asked
   * again since, are dropped from the front of the list.
   */
  private nextRejectionEnd(after: number): number | undefined {
    const list = this.rejections;
    while (this.rejectionsHead < list.length) {
      const { peer, until } = list[this.rejectionsHead]!;
      if (until > after && peer.rejectedUntil === until && this.peers.get(peer.key) === peer) break;
      this.rejectionsHead++;
    }
    if (this.rejectionsHead > 64 && this.rejectionsHead * 2 > list.length) {
      list.splice(0, this.rejectionsHead);
      this.rejectionsHead = 0;
    }
    return list[this.rejectionsHead]?.until;
  }

  private forget(peer: Peer, _now: number): void {
    for (const index of [...peer.requested.keys()]) this.release(peer, index);
    this.count(peer.bitfield, -1);
    this.peers.delete(peer.key);
    const n = (this.connectedIds.get(peer.peerId) ?? 1) - 1;
    if (n <= 0) this.connectedIds.delete(peer.peerId);
    else this.connectedIds.set(peer.peerId, n);
  }

  private drop(peer: Peer, reason: string, ban: boolean): void {
    this.out.push({ type: "drop", peer: peer.key, reason, ban });
    this.forget(peer, 0);
  }

  /** Exponential backoff for a peer that failed or left: 1 s, 2 s, 4 s … up to a minute. */
  private backOff(key: PeerKey, now: number): void {
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    this.retryAfter.set(key, now + Math.min(this.tuning.maxPeerBackoffMs, 1000 * 2 ** (failures - 1)));
  }

  private notePieceTime(ms: number): void {
    this.pieceMs = this.pieceMs === 0 ? ms : 0.8 * this.pieceMs + 0.2 * ms;
  }

  /** Is anything to be fetched now: everything (background), or what readers wait for? */
  private fetching(): boolean {
    return this.background || this.wanted.length > 0;
  }

  private missing(): number {
    return this.pieceCount - this.haveCount;
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.out.push({ type: "finished" });
    this.closeAll();
  }

  private fail(reason: string): void {
    if (this.done) return;
    this.done = true;
    this.out.push({ type: "failed", reason });
    this.closeAll();
  }

  /** Done: nothing more is asked of anyone. The driver closes what it opened. */
  private closeAll(): void {
    for (const peer of this.peers.values()) for (const index of [...peer.requested.keys()]) this.release(peer, index);
    this.nextAnnounceAt = Number.POSITIVE_INFINITY;
  }
}
