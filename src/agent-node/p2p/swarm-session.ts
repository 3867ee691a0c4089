import type { Logger } from "pino";
import type { Digest } from "../../shared/oci/digest.js";
import { Bitfield } from "../../shared/p2p/bitfield.js";
import { pieceBounds, pieceHash, type Metainfo } from "../../shared/p2p/metainfo.js";
import { MAX_BLOCK_BYTES, WIRE_ERROR, type Frame, type Handshake } from "../../shared/p2p/wire/frames.js";
import type { AnnounceResponse, HandoutPeer } from "../../shared/api/announce.js";
import type { BlobFiller, FillSink } from "../store/download.js";
import type { AgentMetrics } from "../metrics.js";
import { PeerConnection } from "./peer-connection.js";
import { initiateHandshake } from "./handshake.js";
import { plainTransport, type PeerTransport } from "./transport.js";
import type { Bandwidth } from "./token-bucket.js";
import { piecePool, type BufferPool } from "./buffer-pool.js";

export interface SwarmSessionOptions {
  digest: Digest;
  metainfo: Metainfo;
  peerId: Buffer;
  /** The cluster secret's key: peers must prove they know it, and we prove it to them. */
  clusterKey?: Uint8Array;
  /** TCP or mutual TLS (default TCP). */
  transport?: PeerTransport;
  metrics: AgentMetrics;
  log: Logger;
  /** Announces to the swarm's tracker (complete, have) and returns the handout. */
  announce: (complete: boolean, have: number) => Promise<AnnounceResponse>;
  /** Reads a piece from the web seed (the edge, by Range). */
  webSeed: (start: number, end: number) => Promise<Buffer>;
  /** Is this handed-out peer us? */
  isSelf: (peer: HandoutPeer) => boolean;
  maxPeers?: number;
  /** Pieces requested from one peer at a time (each as blocks of up to 1 MiB). */
  piecesPerPeer?: number;
  webSeedConcurrency?: number;
  /** Pieces fetched at once from all peers and the web seed together (endgame aside). */
  maxPiecesInFlight?: number;
  requestTimeoutMs?: number;
  /** Fail when no piece verified for this long (no peer and no web seed could help). */
  stallTimeoutMs?: number;
  bandwidth?: Bandwidth;
  /** Outbound peer connections across all of the agent's swarms. */
  connectionBudget?: ConnectionBudget;
  /** Where piece assemblies come from and go back to (default: the agent's pool). */
  pool?: BufferPool;
  now?: () => number;
}

/** A cap on open outbound peer connections, shared by an agent's swarm sessions. */
export class ConnectionBudget {
  private open = 0;

  constructor(readonly max: number) {}

  tryAcquire(): boolean {
    if (this.open >= this.max) return false;
    this.open++;
    return true;
  }

  release(): void {
    this.open = Math.max(0, this.open - 1);
  }

  get inUse(): number {
    return this.open;
  }
}

interface RemotePeer {
  key: string;
  /** Hex peer id from its handshake (bans follow the peer, not its address). */
  peerId: string;
  /** It connected to us: its connection belongs to the peer server and outlives our download. */
  inbound: boolean;
  connection: PeerConnection;
  /** Pieces it asked us for whose first block we took on (the rest are never rejected as busy). */
  acceptedPieces: Set<number>;
  /** It rejected a request (busy): no new requests to it before then. */
  rejectedUntil: number;
  /** Blocks it asked us for, served one at a time. */
  serving: Promise<void>;
  queued: number;
  bitfield: Bitfield;
  pieces: Set<number>;
  strikes: number;
}

interface Assembly {
  buffer: Buffer;
  received: number;
  blocks: number;
  from: string;
  timer: NodeJS.Timeout;
  startedAt: number;
}

/**
 * One blob being fetched by the P2P scheduler: pieces from peers (rarest first, random tie-breaks,
 * several in flight per peer, endgame duplicates at the end, request timeouts), pieces no peer has
 * from the web seed starting at the tracker's offset for this agent, every piece verified against
 * the metainfo before it is written or served. A peer that sends a bad piece is dropped and banned
 * from the swarm. Verified pieces are served to other peers while the rest arrive.
 */
export class SwarmSession implements BlobFiller {
  readonly size: number;
  readonly have: Bitfield;
  private readonly pieceTotal: number;
  private readonly peers = new Map<string, RemotePeer>();
  private readonly connecting = new Set<string>();
  private readonly banned = new Set<string>();
  /** Peers that failed: when to try again, and how many times in a row they failed. */
  private readonly retryAfter = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  /** Inbound connections that want our `have`s. */
  private readonly listeners = new Set<PeerConnection>();
  private readonly assemblies = new Map<number, Map<string, Assembly>>();
  /** How many connected peers have each piece (kept as bitfields, haves and drops arrive). */
  private readonly availability: Uint16Array;
  /** A schedule pass is queued for this turn of the event loop (see schedule). */
  private scheduleQueued = false;
  private readonly webInFlight = new Set<number>();
  private webSeedStart = 0;
  /** Pieces from webSeedStart that are ours to fetch from the web seed (the tracker's answer). */
  private webSeedSlice: number | undefined;
  /** How many peers the tracker handed out last time (the swarm size, bounded by the handout). */
  private handoutSize = 0;
  /** Pieces whose bytes are being verified and written (a duplicate arriving meanwhile is dropped). */
  private readonly verifying = new Set<number>();
  /** Moving average of how long a piece takes to arrive, for the web seed's patience. */
  private pieceMs = 0;
  /** The web seed waits for the first announce and the handshakes it started (peers first). */
  private webSeedHoldUntil = Number.POSITIVE_INFINITY;
  private announced = false;
  private announcing = false;
  private lastAnnounceAt = 0;
  /** When the tracker last gave us our web-seed slice (infinity: it could not be asked). */
  private sliceAt = 0;
  /** When the slice last changed (peers joined or left): it is trusted once it has held a while. */
  private sliceChangedAt = 0;
  private contiguous = 0;
  private sink: FillSink | undefined;
  private finished = false;
  private resolveDone!: () => void;
  private rejectDone!: (error: Error) => void;
  private announceTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly pool: BufferPool;
  private lastProgressAt = 0;

  constructor(private readonly options: SwarmSessionOptions) {
    this.now = options.now ?? Date.now;
    this.pool = options.pool ?? piecePool;
    this.size = options.metainfo.size;
    this.pieceTotal = options.metainfo.pieces.length;
    this.have = new Bitfield(this.pieceTotal);
    this.availability = new Uint16Array(this.pieceTotal);
  }

  get digest(): Digest {
    return this.options.digest;
  }

  get metainfo(): Metainfo {
    return this.options.metainfo;
  }

  fill(sink: FillSink): Promise<void> {
    this.sink = sink;
    const done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    void this.resume()
      .catch((error: Error) => this.options.log.warn({ digest: this.digest, err: error.message }, "cannot resume: starting over"))
      .then(() => this.begin());
    return done;
  }

  /**
   * Takes over the pieces an interrupted download of this blob left on disk, each verified again
   * against the metainfo (a crash may have recorded a piece whose bytes never reached the disk).
   */
  private async resume(): Promise<void> {
    const recorded = [...new Set(this.sink!.recorded())].filter((i) => Number.isInteger(i) && i >= 0 && i < this.pieceTotal);
    if (recorded.length === 0) return;
    let kept = 0;
    for (const index of recorded) {
      if (this.finished) return;
      const { start, end } = pieceBounds(index, this.size, this.options.metainfo.pieceLength);
      const bytes = await this.sink!.readAt(start, end - start).catch(() => undefined);
      if (!bytes || (await pieceHash(bytes, this.options.metainfo)) !== this.options.metainfo.pieces[index]) continue;
      this.have.set(index);
      kept++;
    }
    while (this.contiguous < this.pieceTotal && this.have.has(this.contiguous)) this.contiguous++;
    this.sink!.advance(Math.min(this.size, this.contiguous * this.options.metainfo.pieceLength));
    this.options.log.info({ digest: this.digest, recorded: recorded.length, verified: kept, pieces: this.pieceTotal }, "resumed an interrupted download");
  }

  private begin(): void {
    if (this.finished) return;
    if (this.have.complete()) {
      this.finish();
      return;
    }
    this.lastProgressAt = this.now();
    this.tickTimer = setInterval(() => this.tick(), 500);
    this.tickTimer.unref();
    void this.announce();
    this.schedule();
  }

  private tick(): void {
    const stallMs = this.options.stallTimeoutMs ?? 120_000;
    if (!this.finished && this.now() - this.lastProgressAt > stallMs) {
      return this.stop(new Error(`no verified piece for ${Math.round(stallMs / 1000)} s from ${this.peers.size} peers or the web seed`));
    }
    this.schedule();
  }

  /** Registers an inbound connection (served by the peer server) for `have` broadcasts. */
  addListener(connection: PeerConnection): void {
    this.listeners.add(connection);
    connection.once("close", () => this.listeners.delete(connection));
  }

  /**
   * A verified block for a peer, or undefined when this session does not have it. Works until the
   * blob is committed to the store (then the peer server reads the store).
   */
  async readBlock(index: number, begin: number, length: number, into?: Buffer): Promise<Buffer | undefined> {
    if (!this.have.has(index) || !this.sink) return undefined;
    const { start } = pieceBounds(index, this.size, this.options.metainfo.pieceLength);
    return this.sink.readAt(start + begin, length, into);
  }

  stats(): { peers: number; have: number; pieces: number; webInFlight: number } {
    return { peers: this.peers.size, have: this.have.count(), pieces: this.pieceTotal, webInFlight: this.webInFlight.size };
  }

  private async announce(): Promise<void> {
    if (this.finished || this.announcing) return;
    this.announcing = true;
    this.lastAnnounceAt = this.now();
    clearTimeout(this.announceTimer);
    let interval = 3;
    try {
      const response = await this.options.announce(false, this.have.count());
      // The first answer comes while the swarm forms (peers pulling at once announce within a
      // moment): ask again soon, so the web-seed slice is the settled one.
      interval = this.announced ? response.interval : Math.min(response.interval, FIRST_REANNOUNCE_S);
      const start = response.webSeedStartPiece % Math.max(1, this.pieceTotal);
      if (start !== this.webSeedStart || response.webSeedSlicePieces !== this.webSeedSlice) this.sliceChangedAt = this.now();
      this.webSeedStart = start;
      this.webSeedSlice = response.webSeedSlicePieces;
      this.sliceAt = this.now();
      this.handoutSize = response.peers.filter((p) => !this.options.isSelf(p)).length;
      for (const peer of response.peers) this.connect(peer);
      // Handed-out peers with pieces may have ours: wait for their handshakes (bitfields) before
      // asking the edge. Peers that have nothing yet (a cluster pulling at once) are not waited for.
      const worthWaiting = response.peers.some((p) => !this.options.isSelf(p) && (p.complete || (p.have ?? 1) > 0));
      if (!this.announced) this.webSeedHoldUntil = worthWaiting ? this.now() + WEB_SEED_HOLD_MS : 0;
    } catch (error) {
      // Tracker unreachable: go on with the peers we know and the web seed (and the slice we had).
      this.sliceAt = Number.POSITIVE_INFINITY;
      this.options.log.warn({ digest: this.digest, err: (error as Error).message }, "announce failed");
    }
    this.announced = true;
    this.announcing = false;
    if (!this.finished) this.scheduleAnnounceIn(interval * 1000);
    this.schedule();
  }

  /**
   * Is the web-seed slice settled enough to fetch more than its first piece: unchanged over two
   * answers at least a second apart? Else asks the tracker again (at most once a second): while
   * peers are still joining, a piece of the slice may become a newcomer's. A settled slice is
   * refreshed in the background, once a second while the agent fetches from the edge. An agent
   * alone in its swarm at the last announce goes on (a newcomer costs at most the piece in flight).
   */
  private sliceIsSettled(): boolean {
    if (this.sliceAt === Number.POSITIVE_INFINITY) return true; // no tracker: the slice we had
    if (this.handoutSize === 0 && this.peers.size === 0) return true;
    const now = this.now();
    const settled = this.sliceAt - this.sliceChangedAt >= WEB_SEED_REANNOUNCE_MS;
    if (!this.announcing) {
      if (now - this.lastAnnounceAt >= WEB_SEED_REANNOUNCE_MS) void this.announce();
      else if (!settled) this.scheduleAnnounceIn(WEB_SEED_REANNOUNCE_MS - (now - this.lastAnnounceAt));
    }
    return settled;
  }

  private scheduleAnnounceIn(ms: number): void {
    clearTimeout(this.announceTimer);
    this.announceTimer = setTimeout(() => void this.announce(), ms);
    this.announceTimer.unref();
  }

  private connect(peer: HandoutPeer): void {
    const key = `${peer.ip}:${peer.port}`;
    const maxPeers = this.options.maxPeers ?? 16;
    if (this.options.isSelf(peer) || this.banned.has(key) || this.banned.has(peer.peerId) || this.peers.has(key) || this.connecting.has(key)) return;
    if (this.peers.size + this.connecting.size >= maxPeers) return;
    if ((this.retryAfter.get(key) ?? 0) > this.now()) return;
    const budget = this.options.connectionBudget;
    if (budget && !budget.tryAcquire()) return;
    this.connecting.add(key);
    const socket = (this.options.transport ?? plainTransport).connect(peer.ip, peer.port, 5_000);
    if (budget) socket.once("close", () => budget.release());
    const connection = new PeerConnection(socket, { idleTimeoutMs: 60_000, keepAliveMs: 20_000, bandwidth: this.options.bandwidth });
    initiateHandshake(
      connection,
      { digest: this.digest, pieceCount: this.pieceTotal, bitfield: this.have.bytes },
      { key: this.options.clusterKey, peerId: this.options.peerId, timeoutMs: 5_000 },
    )
      .then(({ remote: frame, bitfield: bits }) => {
        this.connecting.delete(key);
        let bitfield: Bitfield;
        try {
          bitfield = new Bitfield(this.pieceTotal, bits);
        } catch (error) {
          return connection.refuse(WIRE_ERROR.PROTOCOL, (error as Error).message);
        }
        const peerId = Buffer.from(frame.peerId).toString("hex");
        if (this.banned.has(peerId)) return connection.refuse(WIRE_ERROR.BANNED, "banned from this swarm");
        const remote = this.addPeer(key, peerId, false, connection, bitfield);
        this.failures.delete(key);
        connection.pieceTarget = (index, begin, length) => this.landBlock(key, index, begin, length);
        connection.onFrames((f) => this.onFrame(remote, f));
      })
      .catch(() => {
        this.connecting.delete(key);
        this.backOff(key);
        connection.close();
      });
  }

  private addPeer(key: string, peerId: string, inbound: boolean, connection: PeerConnection, bitfield: Bitfield): RemotePeer {
    const remote: RemotePeer = { key, peerId, inbound, connection, bitfield, pieces: new Set(), strikes: 0, serving: Promise.resolve(), queued: 0, rejectedUntil: 0, acceptedPieces: new Set() };
    const replaced = this.peers.get(key);
    if (replaced) this.countPieces(replaced.bitfield, -1);
    this.peers.set(key, remote);
    this.countPieces(remote.bitfield, 1);
    this.options.metrics.peerConnections.inc();
    connection.once("close", () => this.dropPeer(remote));
    this.schedule();
    return remote;
  }

  /**
   * A peer that connected to us (the peer server answered its handshake): we fetch from it too,
   * over the same connection. Returns where the peer server sends the frames it does not handle.
   * Undefined when the peer is banned or the session has no room.
   */
  adoptInbound(connection: PeerConnection, hello: Handshake): ((frame: Frame) => void) | undefined {
    this.addListener(connection);
    const peerId = Buffer.from(hello.peerId).toString("hex");
    if (this.finished || this.banned.has(peerId)) return undefined;
    let bitfield: Bitfield;
    try {
      bitfield = new Bitfield(this.pieceTotal, hello.bitfield);
    } catch {
      return undefined;
    }
    const remote = this.addPeer(`in:${connection.remote}`, peerId, true, connection, bitfield);
    connection.pieceTarget = (index, begin, length) => this.landBlock(remote.key, index, begin, length);
    return (frame) => this.onFrame(remote, frame);
  }

  private onFrame(peer: RemotePeer, frame: Frame): void {
    switch (frame.type) {
      case "request":
        return this.serveBlock(peer, frame.index, frame.begin, frame.length);
      case "have":
        if (frame.index >= this.pieceTotal) return peer.connection.refuse(WIRE_ERROR.PROTOCOL, "have out of range");
        this.peerHas(peer, frame.index);
        return this.schedule();
      case "bitfield": {
        let field: Bitfield;
        try {
          field = new Bitfield(this.pieceTotal, frame.bitfield);
        } catch (error) {
          return peer.connection.refuse(WIRE_ERROR.PROTOCOL, (error as Error).message);
        }
        this.countPieces(peer.bitfield, -1);
        peer.bitfield.bytes.set(field.bytes);
        this.countPieces(peer.bitfield, 1);
        return this.schedule();
      }
      case "complete":
        for (let i = 0; i < this.pieceTotal; i++) this.peerHas(peer, i);
        return this.schedule();
      case "piece":
        return this.onBlock(peer, frame.index, frame.begin, frame.data);
      case "reject":
        // Busy or missing: ask others for a moment before this peer again.
        this.release(frame.index, peer.key);
        peer.rejectedUntil = this.now() + REJECT_BACKOFF_MS;
        return this.schedule();
      case "error":
        return peer.connection.close(new Error(`peer error ${frame.code}: ${frame.message}`));
      default:
        return;
    }
  }

  /**
   * A peer we fetch from asks us for a block (connections carry requests both ways): served from
   * our verified pieces, one at a time per peer, or rejected when we do not have it.
   */
  private serveBlock(peer: RemotePeer, index: number, begin: number, length: number): void {
    if (index >= this.pieceTotal || length === 0 || length > MAX_BLOCK_BYTES) return peer.connection.refuse(WIRE_ERROR.PROTOCOL, "bad request");
    const { start, end } = pieceBounds(index, this.size, this.options.metainfo.pieceLength);
    if (begin + length > end - start) return peer.connection.refuse(WIRE_ERROR.PROTOCOL, "block runs past its piece");
    if (peer.queued >= MAX_QUEUED_REQUESTS) return peer.connection.refuse(WIRE_ERROR.OVERLOADED, "too many queued requests");
    const uploads = this.options.bandwidth?.uploads;
    if (begin === 0) peer.acceptedPieces.delete(index);
    if (uploads && !uploads.tryReserve(length, peer.acceptedPieces.has(index))) {
      peer.connection.send({ type: "reject", index, begin, length }).catch(() => undefined);
      return;
    }
    peer.acceptedPieces.add(index);
    peer.queued++;
    peer.serving = peer.serving
      .then(async () => {
        peer.queued--;
        if (peer.connection.isClosed) return;
        const sent = await peer.connection.sendBlock(index, begin, length, (into) => this.readBlock(index, begin, length, into).catch(() => undefined));
        if (!sent) return peer.connection.send({ type: "reject", index, begin, length });
        this.options.metrics.bytesUploaded.inc(length);
      })
      .catch(() => undefined)
      .finally(() => uploads?.release(length));
  }

  private peerHas(peer: RemotePeer, index: number): void {
    if (peer.bitfield.has(index)) return;
    peer.bitfield.set(index);
    if (this.peers.get(peer.key) === peer) this.availability[index]!++;
  }

  /** Adds (or takes away) a peer's pieces to the availability counts. */
  private countPieces(bitfield: Bitfield, sign: 1 | -1): void {
    for (let i = 0; i < this.pieceTotal; i++) if (bitfield.has(i)) this.availability[i]! += sign;
  }

  /**
   * Queues a schedule pass: events that change what to fetch (a have, a verified piece, a peer
   * joining) come in bursts, and one pass per turn of the event loop sees them all.
   */
  private schedule(): void {
    if (this.scheduleQueued) return;
    this.scheduleQueued = true;
    setImmediate(() => {
      this.scheduleQueued = false;
      this.runSchedule();
    });
  }

  /** Picks work for every peer with room, then for the web seed. */
  private runSchedule(): void {
    if (this.finished || !this.sink) return;
    const perPeer = this.options.piecesPerPeer ?? 2;
    const missing: number[] = [];
    for (let i = 0; i < this.pieceTotal; i++) if (!this.have.has(i)) missing.push(i);
    if (missing.length === 0) return;
    const peers = [...this.peers.values()].filter((p) => !p.connection.isClosed);
    const busy = (i: number) => this.assemblies.has(i) || this.webInFlight.has(i) || this.verifying.has(i);
    const unassigned = missing.filter((i) => !busy(i));
    const endgame = unassigned.length === 0;
    // Rarest first, random among equals; pieces enough peers have, in order (see COMMON_AVAILABILITY).
    const ranked = (endgame ? missing : unassigned)
      .map((i) => {
        const n = this.availability[i]!;
        return { i, n: Math.min(n, COMMON_AVAILABILITY), tie: n >= COMMON_AVAILABILITY ? i : Math.random() };
      })
      .filter((x) => x.n > 0)
      .sort((a, b) => a.n - b.n || a.tie - b.tie);
    // Few pieces at a time: each completes (and can be passed on) sooner than if every peer's
    // piece were fetched at once, sharing the link; and memory stays a few pieces per swarm.
    const maxInFlight = this.options.maxPiecesInFlight ?? 4;
    for (const peer of shuffle(peers)) {
      if (peer.rejectedUntil > this.now()) continue;
      for (const { i } of ranked) {
        if (peer.pieces.size >= perPeer) break;
        if (!endgame && this.assemblies.size + this.webInFlight.size >= maxInFlight) break;
        if (!peer.bitfield.has(i) || peer.pieces.has(i) || this.have.has(i) || this.verifying.has(i)) continue;
        if (!endgame && busy(i)) continue;
        if (endgame && (this.assemblies.get(i)?.size ?? 0) >= ENDGAME_MAX_REQUESTS) continue;
        this.requestPiece(peer, i);
      }
    }
    this.scheduleWebSeed(busy);
  }

  /**
   * The web seed, for pieces no connected peer has. Each agent owns a slice of the piece ring:
   * the tracker gives it a start and a length so that the live leechers' slices tile the ring,
   * and it fetches only its slice from the edge at first, so that a cluster pulling at once asks
   * the edge for about one copy in all (it re-announces before each web-seed piece, so peers that
   * joined meanwhile take their part). A piece past the slice (its owner left, or is not connected
   * to us) is fetched once this agent has had nothing to do for a while, the longer the farther
   * the piece is from its slice: the agent nearest before an orphan piece takes it, and the
   * others then get it from that agent. The first fetch waits for the first announce, and for the
   * handshakes it started when the handed-out peers have pieces.
   */
  private scheduleWebSeed(busy: (i: number) => boolean): void {
    if (!this.announced || (this.connecting.size > 0 && this.now() < this.webSeedHoldUntil)) return;
    const concurrency = this.options.webSeedConcurrency ?? 1;
    const slice = this.webSeedSlice ?? this.estimatedSlice();
    const waitingForPeers = [...this.peers.values()].some((p) => p.pieces.size > 0);
    const idleMs = waitingForPeers || this.webInFlight.size > 0 ? 0 : this.now() - this.lastProgressAt;
    for (let k = 0; k < this.pieceTotal && this.webInFlight.size < concurrency; k++) {
      const i = (this.webSeedStart + k) % this.pieceTotal;
      if (this.have.has(i) || busy(i) || this.availability[i]! > 0) continue;
      if (k >= slice && idleMs < this.patienceMs() * (1 + (k - slice) / Math.max(1, slice))) break;
      if (k > 0 && k < slice && !this.sliceIsSettled()) break;
      this.fetchFromWebSeed(i);
    }
  }

  /** Without the tracker's slice (an older edge): the ring over the swarm size we know of. */
  private estimatedSlice(): number {
    const peerIds = new Set([...this.peers.values()].map((p) => p.peerId));
    return Math.ceil(this.pieceTotal / (Math.max(this.handoutSize, peerIds.size) + 1));
  }

  /** Every open connection of this swarm: inbound ones (served by the peer server) and ours. */
  private connections(): Set<PeerConnection> {
    const all = new Set(this.listeners);
    for (const peer of this.peers.values()) if (!peer.connection.isClosed) all.add(peer.connection);
    return all;
  }

  private notePieceTime(ms: number): void {
    this.pieceMs = this.pieceMs === 0 ? ms : 0.8 * this.pieceMs + 0.2 * ms;
  }

  /** How long to wait for peers before fetching outside our slice: a few piece times. */
  private patienceMs(): number {
    return Math.max(WEB_SEED_PATIENCE_MIN_MS, 2 * this.pieceMs);
  }

  private requestPiece(peer: RemotePeer, index: number): void {
    const { start, end } = pieceBounds(index, this.size, this.options.metainfo.pieceLength);
    const length = end - start;
    const blocks = Math.ceil(length / MAX_BLOCK_BYTES);
    const timer = setTimeout(() => {
      // Too slow: give the piece back and count a strike against the peer.
      peer.strikes++;
      this.release(index, peer.key);
      if (peer.strikes >= 3) peer.connection.refuse(WIRE_ERROR.PROTOCOL, "too slow");
      this.schedule();
    }, this.options.requestTimeoutMs ?? 30_000);
    timer.unref();
    const byPeer = this.assemblies.get(index) ?? new Map<string, Assembly>();
    byPeer.set(peer.key, { buffer: this.pool.take(length), received: 0, blocks, from: peer.key, timer, startedAt: this.now() });
    this.assemblies.set(index, byPeer);
    peer.pieces.add(index);
    for (let b = 0; b < blocks; b++) {
      const begin = b * MAX_BLOCK_BYTES;
      peer.connection.send({ type: "request", index, begin, length: Math.min(MAX_BLOCK_BYTES, length - begin) }).catch(() => undefined);
    }
  }

  private onBlock(peer: RemotePeer, index: number, begin: number, data: Uint8Array): void {
    const assembly = this.assemblies.get(index)?.get(peer.key);
    if (!assembly || begin + data.length > assembly.buffer.length || begin % MAX_BLOCK_BYTES !== 0) {
      // Unrequested data (or a cancelled duplicate arriving late): ignore when harmless.
      if (!assembly && index < this.pieceTotal) return;
      return peer.connection.refuse(WIRE_ERROR.PROTOCOL, "block was not requested");
    }
    // The decoder may have put the block in place already (see landBlock).
    if (data.buffer !== assembly.buffer.buffer || data.byteOffset !== assembly.buffer.byteOffset + begin) assembly.buffer.set(data, begin);
    assembly.received++;
    if (assembly.received < assembly.blocks) return;
    clearTimeout(assembly.timer);
    this.notePieceTime(this.now() - assembly.startedAt);
    void this.completePiece(index, assembly.buffer, peer);
  }

  /**
   * Where a block a peer sends should be decoded to: straight into the assembly of its piece
   * from that peer, when it fits one (anything else gets a buffer of its own and onBlock judges it).
   */
  private landBlock(peerKey: string, index: number, begin: number, length: number): Uint8Array | undefined {
    const assembly = this.assemblies.get(index)?.get(peerKey);
    if (!assembly || begin % MAX_BLOCK_BYTES !== 0 || begin + length > assembly.buffer.length) return undefined;
    return assembly.buffer.subarray(begin, begin + length);
  }

  private fetchFromWebSeed(index: number): void {
    const { start, end } = pieceBounds(index, this.size, this.options.metainfo.pieceLength);
    this.webInFlight.add(index);
    const startedAt = this.now();
    this.options.log.debug({ index, inFlight: this.webInFlight.size }, "web seed: fetching piece");
    this.options
      .webSeed(start, end - 1)
      .then((bytes) => {
        this.notePieceTime(this.now() - startedAt);
        return this.completePiece(index, bytes, undefined);
      })
      .catch((error: Error) => this.options.log.warn({ digest: this.digest, index, err: error.message }, "web seed read failed"))
      .finally(() => {
        this.webInFlight.delete(index);
        this.schedule();
      });
  }

  private async completePiece(index: number, bytes: Buffer, from: RemotePeer | undefined): Promise<void> {
    if (from) {
      from.pieces.delete(index);
      this.assemblies.get(index)?.delete(from.key);
    }
    try {
      if (this.have.has(index) || this.verifying.has(index) || this.finished) return this.schedule();
      this.verifying.add(index);
      try {
        await this.verifyAndStore(index, bytes, from);
      } finally {
        this.verifying.delete(index);
      }
    } finally {
      if (from) this.pool.give(bytes); // a peer's piece was assembled in a pooled buffer
    }
  }

  private async verifyAndStore(index: number, bytes: Buffer, from: RemotePeer | undefined): Promise<void> {
    const expected = this.options.metainfo.pieces[index];
    if ((await pieceHash(bytes, this.options.metainfo)) !== expected) {
      this.options.metrics.piecesRejected.inc();
      if (from) {
        this.options.log.warn({ digest: this.digest, index, peer: from.key }, "bad piece: peer dropped and banned");
        this.banned.add(from.key);
        this.banned.add(from.peerId);
        from.connection.refuse(WIRE_ERROR.BANNED, `piece ${index} failed verification`);
      } else {
        this.options.log.error({ digest: this.digest, index }, "web seed sent a piece that does not match its metainfo");
      }
      return this.schedule();
    }
    if (this.have.has(index) || this.finished) return;
    const { start } = pieceBounds(index, this.size, this.options.metainfo.pieceLength);
    await this.sink!.writeAt(start, bytes);
    await this.sink!.record(index);
    this.have.set(index);
    this.lastProgressAt = this.now();
    this.options.log.debug({ index, from: from?.key ?? "web seed", have: this.have.count() }, "piece verified");
    this.options.metrics.bytesDownloaded.inc({ source: from ? "peer" : "origin" }, bytes.length);
    // Endgame: whoever else was fetching this piece can stop.
    for (const [key, assembly] of this.assemblies.get(index) ?? []) {
      clearTimeout(assembly.timer);
      this.pool.give(assembly.buffer);
      const other = this.peers.get(key);
      other?.pieces.delete(index);
      other?.connection.send({ type: "cancel", index, begin: 0, length: Math.min(MAX_BLOCK_BYTES, bytes.length) }).catch(() => undefined);
    }
    this.assemblies.delete(index);
    // Every connection carries requests both ways: tell all of them, the ones we opened too.
    for (const connection of this.connections()) connection.send({ type: "have", index }).catch(() => undefined);
    while (this.contiguous < this.pieceTotal && this.have.has(this.contiguous)) this.contiguous++;
    this.sink!.advance(Math.min(this.size, this.contiguous * this.options.metainfo.pieceLength));
    if (this.have.complete()) return this.finish();
    this.schedule();
  }

  private release(index: number, key: string): void {
    const assembly = this.assemblies.get(index)?.get(key);
    if (assembly) {
      clearTimeout(assembly.timer);
      this.pool.give(assembly.buffer);
    }
    this.assemblies.get(index)?.delete(key);
    if (this.assemblies.get(index)?.size === 0) this.assemblies.delete(index);
    this.peers.get(key)?.pieces.delete(index);
  }

  private dropPeer(peer: RemotePeer): void {
    for (const index of peer.pieces) this.release(index, peer.key);
    if (this.peers.get(peer.key) === peer) {
      this.countPieces(peer.bitfield, -1);
      this.peers.delete(peer.key);
    }
    this.backOff(peer.key);
    this.schedule();
  }

  /** Exponential backoff for a peer that failed or left: 1 s, 2 s, 4 s … up to a minute. */
  private backOff(key: string): void {
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    this.retryAfter.set(key, this.now() + Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (failures - 1)));
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.stopFetching();
    // Peers we serve keep their connections: tell them we are now a seeder.
    for (const connection of this.listeners) connection.send({ type: "complete" }).catch(() => undefined);
    this.sink?.advance(this.size);
    this.resolveDone();
  }

  private stopFetching(): void {
    clearTimeout(this.announceTimer);
    clearInterval(this.tickTimer);
    for (const assemblies of this.assemblies.values()) {
      for (const a of assemblies.values()) {
        clearTimeout(a.timer);
        this.pool.give(a.buffer);
      }
    }
    this.assemblies.clear();
    // Inbound connections are the peer server's: they go on being served from the store.
    for (const peer of this.peers.values()) if (!peer.inbound) peer.connection.close();
  }

  /** Stops all network activity: failure or shutdown (the download fails with `error`). */
  stop(error: Error): void {
    this.stopFetching();
    for (const listener of this.listeners) listener.close();
    if (!this.finished) {
      this.finished = true;
      this.rejectDone?.(error);
    }
  }
}

/** Blocks a peer may have asked us for and not yet received. */
const MAX_QUEUED_REQUESTS = 256;
/** How long a peer that rejected a request (busy) is left alone. */
const REJECT_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 60_000;
/** Least time with nothing from peers before an agent fetches pieces outside its web-seed slice. */
const WEB_SEED_PATIENCE_MIN_MS = 1_000;
/** How long the web seed waits for handed-out peers to finish their handshakes. */
const WEB_SEED_HOLD_MS = 2_000;
/** Seconds to the second announce, whatever the tracker's interval (the swarm was forming at the first). */
const FIRST_REANNOUNCE_S = 1;
/** The least time between announces sent to refresh the web-seed slice. */
const WEB_SEED_REANNOUNCE_MS = 1_000;
/**
 * Pieces that this many connected peers have are common: fetched in order, lowest index first,
 * so the blob's verified prefix grows during the download and is hashed and streamed to the client
 * meanwhile (in random order nearly all of it waited for the last piece: a second at 64 MiB).
 * Rarer pieces still go first, at random, so new pieces spread.
 */
const COMMON_AVAILABILITY = 3;
/** Peers asked for one piece at once in the endgame. */
const ENDGAME_MAX_REQUESTS = 2;

function shuffle<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

