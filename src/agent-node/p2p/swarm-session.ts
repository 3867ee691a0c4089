import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { Digest } from "../../shared/oci/digest.js";
import { pieceBounds, pieceHash, type Metainfo } from "../../shared/p2p/metainfo.js";
import { MAX_BLOCK_BYTES, WIRE_ERROR, type Frame, type Handshake } from "../../shared/p2p/wire/frames.js";
import type { AnnounceResponse, HandoutPeer } from "../../shared/api/announce.js";
import { P2P_DEFAULTS, SwarmScheduler, WEB_SEED, seededRandom, type PeerKey, type PieceSource, type SchedulerAction, type SchedulerEvent } from "../../shared/p2p/schedule/index.js";
import type { BlobFiller, FillSink } from "../store/download.js";
import type { AgentMetrics } from "../metrics.js";
import { PeerConnection } from "./peer-connection.js";
import { initiateHandshake } from "./handshake.js";
import { plainTransport, type PeerTransport } from "./transport.js";
import type { Bandwidth } from "./token-bucket.js";
import { piecePool, type BufferPool } from "./buffer-pool.js";
import { BlockServer } from "./block-server.js";
import { PieceAssemblies } from "./piece-assembly.js";
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
  /** Announces to the swarm's tracker (complete, have) and returns the handout. */
  announce: (complete: boolean, have: number) => Promise<AnnounceResponse>;
  /** Reads a piece from the web seed (the edge, by Range). */
  webSeed: (start: number, end: number) => Promise<Buffer>;
  maxPeers?: number;
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
  private readonly connections = new Map<PeerKey, PeerConnection>();
  /** Inbound connections (the peer server's) that want our `have`s. */
  private readonly listeners = new Set<PeerConnection>();
  private readonly assemblies: PieceAssemblies;
  private readonly now: () => number;
  private sink: FillSink | undefined;
  private contiguous = 0;
  private flushQueued = false;
  private timer: NodeJS.Timeout | undefined;
  private settled = false;
  /** Byte ranges readers wait for (Range reads of a blob not yet here): their pieces go first. */
  private readonly readers = new Set<{ start: number; end: number }>();
  private resolveDone!: () => void;
  private rejectDone!: (error: Error) => void;

  constructor(private readonly options: SwarmSessionOptions) {
    this.now = options.now ?? Date.now;
    this.size = options.metainfo.size;
    this.assemblies = new PieceAssemblies(options.pool ?? piecePool, options.metainfo.pieces.length);
    this.scheduler = new SwarmScheduler({
      pieceCount: options.metainfo.pieces.length,
      selfPeerId: options.peerId.toString("hex"),
      maxPeers: options.maxPeers ?? P2P_DEFAULTS.maxPeersPerSwarm,
      piecesPerPeer: options.piecesPerPeer ?? P2P_DEFAULTS.piecesPerPeer,
      webSeedConcurrency: options.webSeedConcurrency ?? P2P_DEFAULTS.webSeedConcurrency,
      requestTimeoutMs: options.requestTimeoutMs ?? P2P_DEFAULTS.requestTimeoutSeconds * 1000,
      stallTimeoutMs: options.stallTimeoutMs ?? P2P_DEFAULTS.stallTimeoutSeconds * 1000,
      random: seededRandom(options.seed ?? randomBytes(4).readUInt32LE()),
    });
  }

  get digest(): Digest {
    return this.options.digest;
  }

  get metainfo(): Metainfo {
    return this.options.metainfo;
  }

  /** A copy of the verified pieces, as a bitfield for a handshake. */
  bitfield(): Uint8Array {
    return new Uint8Array(this.scheduler.have.bytes);
  }

  stats(): { peers: number; have: number; pieces: number; webInFlight: number } {
    return this.scheduler.stats();
  }

  fill(sink: FillSink): Promise<void> {
    this.sink = sink;
    const done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    void this.resume()
      .catch((error: Error) => {
        this.options.log.warn({ digest: this.digest, err: error.message }, "cannot resume: starting over");
        return [];
      })
      .then((have) => this.event({ type: "start", have }));
    return done;
  }

  /**
   * The pieces an interrupted download of this blob left on disk, each verified again against the
   * metainfo (a crash may have recorded a piece whose bytes never reached the disk).
   */
  private async resume(): Promise<number[]> {
    const { metainfo } = this.options;
    const recorded = [...new Set(this.sink!.recorded())].filter((i) => Number.isInteger(i) && i >= 0 && i < metainfo.pieces.length);
    const kept: number[] = [];
    for (const index of recorded) {
      if (this.settled) break;
      const { start, end } = pieceBounds(index, this.size, metainfo.pieceLength);
      const bytes = await this.sink!.readAt(start, end - start).catch(() => undefined);
      if (bytes && (await pieceHash(bytes, metainfo)) === metainfo.pieces[index]) kept.push(index);
    }
    if (recorded.length > 0) {
      this.advanceOver(new Set(kept));
      this.options.log.info({ digest: this.digest, recorded: recorded.length, verified: kept.length, pieces: metainfo.pieces.length }, "resumed an interrupted download");
    }
    return kept;
  }

  /** Registers an inbound connection (served by the peer server) for `have` broadcasts. */
  addListener(connection: PeerConnection): void {
    this.listeners.add(connection);
    connection.once("close", () => this.listeners.delete(connection));
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
    this.attach(key, connection);
    this.event({ type: "peer-connected", peer: key, peerId: Buffer.from(hello.peerId).toString("hex"), inbound: true, bitfield: hello.bitfield });
    return (frame) => this.onFrame(key, connection, frame);
  }

  /** A verified block for a peer, or undefined when this session does not have it. */
  async readBlock(index: number, begin: number, length: number, into?: Buffer): Promise<Buffer | undefined> {
    if (!this.scheduler.has(index) || !this.sink) return undefined;
    const { start } = pieceBounds(index, this.size, this.options.metainfo.pieceLength);
    return this.sink.readAt(start + begin, length, into);
  }

  /**
   * A reader waits for bytes [start, end] (inclusive): the pieces that cover them are fetched
   * first, in order. Returns the function that takes the wish back (the reader is done or gone).
   */
  prioritize(start: number, end: number): () => void {
    const range = { start, end };
    this.readers.add(range);
    this.updatePriorities();
    return () => {
      if (this.readers.delete(range)) this.updatePriorities();
    };
  }

  private updatePriorities(): void {
    if (this.settled) return;
    const { pieceLength, size } = this.options.metainfo;
    const pieces: number[] = [];
    const seen = new Set<number>();
    for (const { start, end } of this.readers) {
      const last = Math.floor(Math.min(end, size - 1) / pieceLength);
      for (let i = Math.floor(start / pieceLength); i <= last; i++) {
        if (!seen.has(i) && !this.scheduler.has(i)) pieces.push(i);
        seen.add(i);
      }
    }
    this.event({ type: "priorities", pieces });
  }

  // ---- events in, actions out ------------------------------------------------------------------

  private event(event: SchedulerEvent): void {
    this.scheduler.handle(event, this.now());
    if (this.flushQueued) return;
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
        return void this.options.announce(false, action.have).then(
          (response) => this.event({ type: "announced", response }),
          (error: Error) => {
            this.options.log.warn({ digest: this.digest, err: error.message }, "announce failed");
            this.event({ type: "announce-failed" });
          },
        );
      case "connect":
        return this.dial(action.peer, action.to);
      case "request":
        return this.sendRequests(action.peer, action.index, "request");
      case "cancel":
        return this.sendRequests(action.peer, action.index, "cancel");
      case "web-seed":
        return this.readWebSeed(action.index);
      case "drop":
        this.assemblies.dropPeer(action.peer);
        if (action.ban) this.options.log.warn({ digest: this.digest, peer: action.peer, reason: action.reason }, "peer dropped and banned");
        return this.connections.get(action.peer)?.refuse(action.ban ? WIRE_ERROR.BANNED : WIRE_ERROR.PROTOCOL, action.reason);
      case "have":
        // Every connection carries requests both ways: tell all of them, the ones we opened too.
        for (const connection of new Set([...this.listeners, ...this.connections.values()])) connection.send({ type: "have", index: action.index }).catch(() => undefined);
        return;
      case "finished":
        return this.settle();
      case "failed":
        return this.stop(new Error(action.reason));
    }
  }

  // ---- sockets -----------------------------------------------------------------------------------

  private dial(key: PeerKey, to: HandoutPeer): void {
    const budget = this.options.connectionBudget;
    if (budget && !budget.tryAcquire()) return this.event({ type: "connect-failed", peer: key, backoff: false });
    const socket = (this.options.transport ?? plainTransport).connect(to.ip, to.port, 5_000);
    if (budget) socket.once("close", () => budget.release());
    const connection = new PeerConnection(socket, { idleTimeoutMs: 60_000, keepAliveMs: 20_000, bandwidth: this.options.bandwidth });
    const pieceCount = this.options.metainfo.pieces.length;
    initiateHandshake(connection, { digest: this.digest, pieceCount, bitfield: this.bitfield() }, { key: this.options.clusterKey, peerId: this.options.peerId, timeoutMs: 5_000, expectedPeerId: Buffer.from(to.peerId, "hex") })
      .then(({ remote, bitfield }) => {
        if (this.settled) return connection.close();
        const server = new BlockServer(connection, { metainfo: this.options.metainfo, read: (i, b, l, into) => this.readBlock(i, b, l, into).catch(() => undefined), metrics: this.options.metrics, bandwidth: this.options.bandwidth });
        this.attach(key, connection);
        this.event({ type: "peer-connected", peer: key, peerId: Buffer.from(remote.peerId).toString("hex"), inbound: false, bitfield });
        // After the peer is known: frames that came with the handshake are delivered at once.
        connection.onFrames((frame) => server.handle(frame) || this.onFrame(key, connection, frame));
      })
      .catch(() => {
        connection.close();
        this.event({ type: "connect-failed", peer: key, backoff: true });
      });
  }

  private attach(key: PeerKey, connection: PeerConnection): void {
    this.connections.set(key, connection);
    this.options.metrics.peerConnections.inc();
    connection.pieceTarget = (index, begin, length) => this.assemblies.target(key, index, begin, length);
    connection.once("close", () => {
      if (this.connections.get(key) !== connection) return;
      this.connections.delete(key);
      this.assemblies.dropPeer(key);
      this.event({ type: "peer-left", peer: key });
    });
  }

  private onFrame(key: PeerKey, connection: PeerConnection, frame: Frame): void {
    switch (frame.type) {
      case "have":
        return this.event({ type: "have", peer: key, index: frame.index });
      case "bitfield":
        return this.event({ type: "bitfield", peer: key, bitfield: frame.bitfield });
      case "complete":
        return this.event({ type: "peer-complete", peer: key });
      case "reject":
        this.assemblies.drop(frame.index, key);
        return this.event({ type: "rejected", peer: key, index: frame.index });
      case "piece": {
        const result = this.assemblies.block(key, frame.index, frame.begin, frame.data);
        if (result.kind === "bad") return connection.refuse(WIRE_ERROR.PROTOCOL, "block was not requested");
        if (result.kind === "complete") this.arrived(frame.index, key, result.buffer, true);
        return;
      }
      case "error":
        return connection.close(new Error(`peer error ${frame.code}: ${frame.message}`));
      default:
        return;
    }
  }

  /** Asks `peer` for (or cancels) every block of piece `index`. */
  private sendRequests(peer: PeerKey, index: number, type: "request" | "cancel"): void {
    const connection = this.connections.get(peer);
    const { start, end } = pieceBounds(index, this.size, this.options.metainfo.pieceLength);
    const length = end - start;
    if (type === "request") this.assemblies.start(index, peer, length);
    else this.assemblies.drop(index, peer);
    if (!connection) return;
    for (let begin = 0; begin < length; begin += MAX_BLOCK_BYTES) {
      connection.send({ type, index, begin, length: Math.min(MAX_BLOCK_BYTES, length - begin) }).catch(() => undefined);
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
    const { metainfo, metrics, log } = this.options;
    if ((await pieceHash(bytes, metainfo)) !== metainfo.pieces[index]) {
      metrics.piecesRejected.inc();
      if (from === WEB_SEED) log.error({ digest: this.digest, index }, "web seed sent a piece that does not match its metainfo");
      else log.warn({ digest: this.digest, index, peer: from }, "bad piece: peer dropped and banned");
      return this.event({ type: "piece-invalid", index, from });
    }
    if (this.settled) return;
    const { start } = pieceBounds(index, this.size, metainfo.pieceLength);
    await this.sink!.writeAt(start, bytes);
    await this.sink!.record(index);
    log.debug({ index, from, have: this.scheduler.haveTotal + 1 }, "piece verified");
    metrics.bytesDownloaded.inc({ source: from === WEB_SEED ? "origin" : "peer" }, bytes.length);
    this.event({ type: "piece-verified", index, from });
    this.advanceOver(this.scheduler.have);
  }

  /** Readers may have the verified prefix of the blob. */
  private advanceOver(have: { has(index: number): boolean }): void {
    const pieces = this.options.metainfo.pieces.length;
    while (this.contiguous < pieces && have.has(this.contiguous)) this.contiguous++;
    this.sink!.advance(Math.min(this.size, this.contiguous * this.options.metainfo.pieceLength));
  }

  // ---- the end -----------------------------------------------------------------------------------

  private settle(): void {
    if (this.settled) return;
    this.stopFetching();
    // Peers we serve keep their connections: tell them we are now a seeder.
    for (const connection of this.listeners) connection.send({ type: "complete" }).catch(() => undefined);
    this.sink?.advance(this.size);
    this.resolveDone();
  }

  private stopFetching(): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.assemblies.dropAll();
    // Inbound connections are the peer server's: they go on being served from the store.
    for (const [key, connection] of this.connections) if (!key.startsWith("in:")) connection.close();
  }

  /** Stops all network activity: failure or shutdown (the download fails with `error`). */
  stop(error: Error): void {
    const wasSettled = this.settled;
    this.stopFetching();
    for (const listener of this.listeners) listener.close();
    if (!wasSettled) this.rejectDone?.(error);
  }
}
