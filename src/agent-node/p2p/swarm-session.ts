import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { Digest } from "../../shared/oci/digest.js";
import { pieceBounds, type Metainfo } from "../../shared/p2p/metainfo.js";
import type { Frame, Handshake } from "../../shared/p2p/wire/frames.js";
import type { AnnounceResponse } from "../../shared/api/announce.js";
import { P2P_DEFAULTS, SwarmScheduler, WEB_SEED, seededRandom, type PieceSource, type SchedulerAction, type SchedulerEvent } from "../../shared/p2p/schedule/index.js";
import { PartialParked, type BlobFiller, type FillSink } from "../store/download.js";
import type { AgentMetrics } from "../metrics.js";
import type { PeerConnection } from "./peer-connection.js";
import type { PeerTransport } from "./transport.js";
import type { Bandwidth } from "./token-bucket.js";
import { piecePool, type BufferPool } from "./buffer-pool.js";
import { PieceAssemblies } from "./piece-assembly.js";
import { PieceStore } from "./piece-store.js";
import { PeerLinks } from "./peer-links.js";
import { ReaderRanges } from "./reader-ranges.js";
import type { ConnectionBudget } from "./connection-budget.js";

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
  /**
   * Announces to the swarm's tracker (complete, have; fetching: the whole blob is wanted) and
   * returns the handout.
   */
  announce: (complete: boolean, have: number, fetching: boolean) => Promise<AnnounceResponse>;
  /** Reads a piece from the web seed (the edge, by Range). */
  webSeed: (start: number, end: number) => Promise<Buffer>;
  maxPeers?: number;
  /** Handed-out addresses never to dial, with why (see shared/p2p/peer-address.ts). */
  refuseAddress?: (ip: string) => string | undefined;
  piecesPerPeer?: number;
  webSeedConcurrency?: number;
  requestTimeoutMs?: number;
  stallTimeoutMs?: number;
  bandwidth?: Bandwidth;
  /** Outbound peer connections across all of the agent's swarms. */
  connectionBudget?: ConnectionBudget;
  /** Where piece assemblies come from and go back to (default: the agent's pool). */
  pool?: BufferPool;
  now?: () => number;
  /** Seed of the scheduler's random choices (default: from the system's entropy). */
  seed?: number;
  /**
   * Fetch the whole blob, behind what Range readers wait for (default); false
   * (`--lazy-complete=never`): only what readers ask for, until a whole read comes.
   */
  background?: boolean;
  /**
   * Without background completion: a partial copy no reader and no peer used for this long is
   * parked (the session stops, its pieces stay in the store for a later read to resume). Default:
   * never parked.
   */
  parkAfterMs?: number;
  /** The session is being parked (tell the tracker this peer left the swarm). */
  parking?: (have: number) => void;
}

/**
 * The driver of one blob's swarm: it owns the sockets, handshakes, piece assembly, hashing and
 * the one timer, and carries out what the scheduler (src/shared/p2p/schedule, the policy) asks.
 * Every piece is verified against the metainfo before it is written or served; verified pieces
 * are served to other peers while the rest arrive.
 */
export class SwarmSession implements BlobFiller {
  readonly size: number;
  private readonly scheduler: SwarmScheduler;
  private readonly links: PeerLinks;
  private readonly assemblies: PieceAssemblies;
  private readonly now: () => number;
  private pieces: PieceStore | undefined;
  private flushQueued = false;
  private timer: NodeJS.Timeout | undefined;
  private settled = false;
  /** Byte ranges readers wait for (Range reads of a blob not yet here): their pieces go first. */
  private readonly readers: ReaderRanges;
  /** When a reader or a peer last used this (partial) copy. */
  private lastUsedAt: number;
  private parkTimer: NodeJS.Timeout | undefined;
  private resolveDone!: () => void;
  private rejectDone!: (error: Error) => void;

  constructor(private readonly options: SwarmSessionOptions) {
    this.now = options.now ?? Date.now;
    this.size = options.metainfo.size;
    this.lastUsedAt = this.now();
    this.assemblies = new PieceAssemblies(options.pool ?? piecePool, options.metainfo.pieces.length);
    this.readers = new ReaderRanges(options.metainfo.size, options.metainfo.pieceLength);
    this.links = new PeerLinks({
      ...options,
      assemblies: this.assemblies,
      bitfield: () => this.bitfield(),
      read: (index, begin, length, into) => this.readBlock(index, begin, length, into),
      event: (event) => this.event(event),
      piece: (index, peer, buffer) => this.arrived(index, peer, buffer, true),
    });
    this.scheduler = new SwarmScheduler({
      pieceCount: options.metainfo.pieces.length,
      selfPeerId: options.peerId.toString("hex"),
      maxPeers: options.maxPeers ?? P2P_DEFAULTS.maxPeersPerSwarm,
      piecesPerPeer: options.piecesPerPeer ?? P2P_DEFAULTS.piecesPerPeer,
      webSeedConcurrency: options.webSeedConcurrency ?? P2P_DEFAULTS.webSeedConcurrency,
      requestTimeoutMs: options.requestTimeoutMs ?? P2P_DEFAULTS.requestTimeoutSeconds * 1000,
      stallTimeoutMs: options.stallTimeoutMs ?? P2P_DEFAULTS.stallTimeoutSeconds * 1000,
      random: seededRandom(options.seed ?? randomBytes(4).readUInt32LE()),
      refuseAddress: options.refuseAddress,
      background: options.background ?? true,
    });
  }

  get digest(): Digest {
    return this.options.digest;
  }

  get metainfo(): Metainfo {
    return this.options.metainfo;
  }

  get pieceLength(): number {
    return this.options.metainfo.pieceLength;
  }

  /** A copy of the verified pieces, as a bitfield for a handshake. */
  bitfield(): Uint8Array {
    return new Uint8Array(this.scheduler.have.bytes);
  }

  stats(): { peers: number; have: number; pieces: number; webInFlight: number } {
    return this.scheduler.stats();
  }

  fill(sink: FillSink): Promise<void> {
    const store = (this.pieces = new PieceStore(sink, this.options.metainfo));
    const done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    void store
      .resume(() => this.settled)
      .then(({ recorded, kept }) => {
        if (recorded > 0) this.options.log.info({ digest: this.digest, recorded, verified: kept.length, pieces: this.options.metainfo.pieces.length }, "resumed an interrupted download");
        return kept;
      })
      .catch((error: Error) => {
        this.options.log.warn({ digest: this.digest, err: error.message }, "cannot resume: starting over");
        return [];
      })
      .then((have) => {
        this.event({ type: "start", have });
        this.armPark();
      });
    return done;
  }

  /** Registers an inbound connection (served by the peer server) for `have` broadcasts. */
  addListener(connection: PeerConnection): void {
    this.links.listen(connection);
  }

  /**
   * A peer that connected to us (the peer server answered its handshake and serves its requests):
   * we fetch from it too, over the same connection. Returns where the peer server sends the
   * frames it does not handle; undefined once the download is over.
   */
  adoptInbound(connection: PeerConnection, hello: Handshake): ((frame: Frame) => void) | undefined {
    this.addListener(connection);
    if (this.settled) return undefined;
    const key = `in:${connection.remote}`;
    const frames = this.links.adopt(key, connection);
    this.event({ type: "peer-connected", peer: key, peerId: Buffer.from(hello.peerId).toString("hex"), inbound: true, bitfield: hello.bitfield });
    return frames;
  }

  /** A verified block for a peer, or undefined when this session does not have it. */
  async readBlock(index: number, begin: number, length: number, into?: Buffer): Promise<Buffer | undefined> {
    if (!this.scheduler.has(index) || !this.pieces) return undefined;
    this.lastUsedAt = this.now();
    return this.pieces.read(index, begin, length, into);
  }

  /**
   * A reader waits for bytes [start, end] (inclusive): the pieces that cover them are fetched
   * first, in order. Returns the function that takes the wish back (the reader is done or gone).
   */
  prioritize(start: number, end: number, whole = false): () => void {
    const remove = this.readers.add(start, end, whole);
    this.lastUsedAt = this.now();
    // A whole read (docker pull) of a blob held in part: the swarm fetches the rest, by its policy.
    if (whole && !this.scheduler.wholeWanted && !this.settled) this.event({ type: "background", on: true });
    this.updatePriorities();
    return () => {
      this.lastUsedAt = this.now();
      if (remove()) this.updatePriorities();
    };
  }

  // ---- parking an idle partial copy ------------------------------------------------------------

  private armPark(): void {
    const after = this.options.parkAfterMs;
    if (after === undefined || this.scheduler.wholeWanted || this.settled || this.parkTimer) return;
    this.parkTimer = setTimeout(() => {
      this.parkTimer = undefined;
      this.maybePark(after);
      // At least a second: a reader that stays longer than the window re-arms it until it is gone.
    }, Math.max(1_000, this.lastUsedAt + after - this.now()));
    this.parkTimer.unref();
  }

  private maybePark(after: number): void {
    if (this.scheduler.wholeWanted || this.settled) return;
    if (this.readers.waiting > 0 || this.now() - this.lastUsedAt < after) return this.armPark();
    const { have } = this.scheduler.stats();
    this.options.log.info({ digest: this.digest, have, pieces: this.options.metainfo.pieces.length, idleSeconds: Math.round(after / 1000) }, "parking an idle partial copy");
    this.options.parking?.(have);
    this.stop(new PartialParked(`no reader or peer used it for ${Math.round(after / 1000)} s`));
  }

  private updatePriorities(): void {
    if (!this.settled) this.event({ type: "priorities", pieces: this.readers.pieces((i) => this.scheduler.has(i)) });
  }

  // ---- events in, actions out ------------------------------------------------------------------

  private event(event: SchedulerEvent): void {
    // A have that no request could follow now changes only counts: the next pass reads them.
    if (!this.scheduler.handle(event, this.now()) || this.flushQueued) return;
    // Events come in bursts (haves, verified pieces): one scheduling pass per event-loop turn.
    this.flushQueued = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushQueued = false;
    for (const action of this.scheduler.poll(this.now())) this.execute(action);
    clearTimeout(this.timer);
    const at = this.scheduler.nextTimeout();
    if (at === undefined || this.settled) return;
    this.timer = setTimeout(() => this.event({ type: "timer" }), Math.max(0, at - this.now()));
    this.timer.unref();
  }

  private execute(action: SchedulerAction): void {
    switch (action.type) {
      case "announce":
        return void this.options.announce(false, action.have, action.fetching).then(
          (response) => this.event({ type: "announced", response }),
          (error: Error) => {
            this.options.log.warn({ digest: this.digest, err: error.message }, "announce failed");
            this.event({ type: "announce-failed" });
          },
        );
      case "connect":
        return this.links.dial(action.peer, action.to, () => this.settled);
      case "request":
      case "cancel":
        return this.links.blocks(action.peer, action.index, action.type);
      case "web-seed":
        return this.readWebSeed(action.index);
      case "drop":
        if (action.ban) this.options.log.warn({ digest: this.digest, peer: action.peer, reason: action.reason }, "peer dropped and banned");
        return this.links.drop(action.peer, action.reason, action.ban, action.full);
      case "have":
        return this.links.have(action.index, (peer) => this.scheduler.peerHolds(peer, action.index));
      case "finished":
        return this.settle();
      case "failed":
        return this.stop(new Error(action.reason));
    }
  }

  private readWebSeed(index: number): void {
    const { start, end } = pieceBounds(index, this.size, this.options.metainfo.pieceLength);
    this.options.log.debug({ index }, "web seed: fetching piece");
    this.options.webSeed(start, end - 1).then(
      (bytes) => this.arrived(index, WEB_SEED, bytes, false),
      (error: Error) => {
        this.options.log.warn({ digest: this.digest, index, err: error.message }, "web seed read failed");
        this.event({ type: "web-seed-failed", index });
      },
    );
  }

  // ---- pieces ------------------------------------------------------------------------------------

  private arrived(index: number, from: PieceSource, bytes: Buffer, pooled: boolean): void {
    const verify = this.scheduler.accepts(index);
    this.event({ type: "piece-arrived", index, from });
    const verified = verify ? this.verifyAndStore(index, from, bytes) : Promise.resolve();
    void verified
      .catch((error: Error) => this.stop(new Error(`cannot store piece ${index}: ${error.message}`)))
      .finally(() => pooled && (this.options.pool ?? piecePool).give(bytes));
  }

  private async verifyAndStore(index: number, from: PieceSource, bytes: Buffer): Promise<void> {
    const { metrics, log } = this.options;
    if (!(await this.pieces!.verify(index, bytes))) {
      metrics.piecesRejected.inc();
      if (from === WEB_SEED) log.error({ digest: this.digest, index }, "web seed sent a piece that does not match its metainfo");
      else log.warn({ digest: this.digest, index, peer: from }, "bad piece: peer dropped and banned");
      return this.event({ type: "piece-invalid", index, from });
    }
    if (this.settled) return;
    await this.pieces!.write(index, bytes);
    log.debug({ index, from, have: this.scheduler.haveTotal + 1 }, "piece verified");
    metrics.bytesDownloaded.inc({ source: from === WEB_SEED ? "origin" : "peer" }, bytes.length);
    metrics.bytesFetched.inc({ reader: this.readers.coversForRange(index) ? "range" : "whole" }, bytes.length);
    this.event({ type: "piece-verified", index, from });
    this.pieces!.advance(this.scheduler.have);
  }

  // ---- the end -----------------------------------------------------------------------------------

  private settle(): void {
    if (this.settled) return;
    this.stopFetching();
    this.links.complete();
    this.pieces?.complete();
    this.resolveDone();
  }

  private stopFetching(): void {
    this.settled = true;
    clearTimeout(this.timer);
    clearTimeout(this.parkTimer);
    this.assemblies.dropAll();
    this.links.closeOutbound();
  }

  /** Stops all network activity: failure or shutdown (the download fails with `error`). */
  stop(error: Error): void {
    const wasSettled = this.settled;
    this.stopFetching();
    this.links.closeListeners();
    if (!wasSettled) this.rejectDone?.(error);
  }
}
