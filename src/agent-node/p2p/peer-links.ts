import type { HandoutPeer } from "../../shared/api/announce.js";
import { pieceBounds, type Metainfo } from "../../shared/p2p/metainfo.js";
import { MAX_BLOCK_BYTES, WIRE_ERROR, type Frame } from "../../shared/p2p/wire/frames.js";
import type { PeerKey, SchedulerEvent } from "../../shared/p2p/schedule/index.js";
import type { AgentMetrics } from "../metrics.js";
import { BlockServer } from "./block-server.js";
import type { ConnectionBudget } from "./connection-budget.js";
import { initiateHandshake } from "./handshake.js";
import { PeerConnection } from "./peer-connection.js";
import type { PieceAssemblies } from "./piece-assembly.js";
import type { Bandwidth } from "./token-bucket.js";
import { plainTransport, type PeerTransport } from "./transport.js";

export interface PeerLinksOptions {
  digest: string;
  metainfo: Metainfo;
  peerId: Buffer;
  clusterKey?: Uint8Array;
  transport?: PeerTransport;
  bandwidth?: Bandwidth;
  connectionBudget?: ConnectionBudget;
  metrics: AgentMetrics;
  assemblies: PieceAssemblies;
  /** Our verified pieces, as a handshake's bitfield. */
  bitfield(): Uint8Array;
  /** A verified block of ours for a peer that asks, or undefined. */
  read(index: number, begin: number, length: number, into: Buffer): Promise<Buffer | undefined>;
  /** What happened on a connection, for the scheduler. */
  event(event: SchedulerEvent): void;
  /** Every block of a piece requested from `peer` arrived (in a pooled buffer). */
  piece(index: number, peer: PeerKey, buffer: Buffer): void;
}

/**
 * The sockets of one swarm session: connections we dial (handshake, then blocks both ways) and
 * connections peers opened to us for this blob (the peer server's; we fetch over them too). It
 * turns frames into scheduler events and requests/cancels/drops into frames; it decides nothing.
 */
export class PeerLinks {
  private readonly connections = new Map<PeerKey, PeerConnection>();
  /** Inbound connections (the peer server's) that want our `have`s. */
  private readonly listeners = new Set<PeerConnection>();

  constructor(private readonly options: PeerLinksOptions) {
    options.assemblies.reading = (peer, buffer) => this.connections.get(peer)?.mayReadInto(buffer) ?? false;
  }

  dial(key: PeerKey, to: HandoutPeer, closed: () => boolean): void {
    const { connectionBudget: budget, metainfo } = this.options;
    if (budget && !budget.tryAcquire()) return this.options.event({ type: "connect-failed", peer: key, backoff: false });
    const connection = PeerConnection.dial(this.options.transport ?? plainTransport, to.ip, to.port, 5_000, { idleTimeoutMs: 60_000, keepAliveMs: 20_000, bandwidth: this.options.bandwidth });
    if (budget) connection.socket.once("close", () => budget.release());
    const opening = { digest: this.options.digest, pieceCount: metainfo.pieces.length, bitfield: this.options.bitfield() };
    initiateHandshake(connection, opening, { key: this.options.clusterKey, peerId: this.options.peerId, timeoutMs: 5_000, expectedPeerId: Buffer.from(to.peerId, "hex") })
      .then(({ remote, bitfield }) => {
        if (closed()) return connection.close();
        const server = new BlockServer(connection, { metainfo, read: (i, b, l, into) => this.options.read(i, b, l, into).catch(() => undefined), metrics: this.options.metrics, bandwidth: this.options.bandwidth });
        this.attach(key, connection);
        this.options.event({ type: "peer-connected", peer: key, peerId: Buffer.from(remote.peerId).toString("hex"), inbound: false, bitfield });
        // After the peer is known: frames that came with the handshake are delivered at once.
        connection.onFrames((frame) => server.handle(frame) || this.onFrame(key, connection, frame));
      })
      .catch(() => {
        connection.close();
        this.options.event({ type: "connect-failed", peer: key, backoff: true });
      });
  }

  /** An inbound connection (its requests are the peer server's): returns where its other frames go. */
  adopt(key: PeerKey, connection: PeerConnection): (frame: Frame) => void {
    this.attach(key, connection);
    return (frame) => this.onFrame(key, connection, frame);
  }

  listen(connection: PeerConnection): void {
    this.listeners.add(connection);
    connection.once("close", () => this.listeners.delete(connection));
  }

  /** Asks `peer` for (or cancels) every block of piece `index`. */
  blocks(peer: PeerKey, index: number, type: "request" | "cancel"): void {
    const { start, end } = pieceBounds(index, this.options.metainfo.size, this.options.metainfo.pieceLength);
    const length = end - start;
    if (type === "request") this.options.assemblies.start(index, peer, length);
    else this.options.assemblies.drop(index, peer);
    const connection = this.connections.get(peer);
    if (!connection) return;
    for (let begin = 0; begin < length; begin += MAX_BLOCK_BYTES) {
      connection.send({ type, index, begin, length: Math.min(MAX_BLOCK_BYTES, length - begin) }).catch(() => undefined);
    }
  }

  drop(peer: PeerKey, reason: string, ban: boolean, full = false): void {
    this.options.assemblies.dropPeer(peer);
    this.connections.get(peer)?.refuse(ban ? WIRE_ERROR.BANNED : full ? WIRE_ERROR.OVERLOADED : WIRE_ERROR.PROTOCOL, reason);
  }

  /**
   * Every connection carries requests both ways: tell all of them, the ones we opened too, but
   * the peers `holds` says have the piece already. Inbound connections the session does not
   * fetch over are told always.
   */
  have(index: number, holds: (peer: PeerKey) => boolean): void {
    const told = new Set<PeerConnection>();
    for (const [key, connection] of this.connections) {
      told.add(connection);
      if (!holds(key)) connection.send({ type: "have", index }).catch(() => undefined);
    }
    for (const connection of this.listeners) if (!told.has(connection)) connection.send({ type: "have", index }).catch(() => undefined);
  }

  /** Peers we serve keep their connections: tell them we are now a seeder. */
  complete(): void {
    for (const connection of this.listeners) connection.send({ type: "complete" }).catch(() => undefined);
  }

  /** Closes the connections we opened; inbound ones are the peer server's and go on being served. */
  closeOutbound(): void {
    for (const [key, connection] of this.connections) if (!key.startsWith("in:")) connection.close();
  }

  closeListeners(): void {
    for (const listener of this.listeners) listener.close();
  }

  private attach(key: PeerKey, connection: PeerConnection): void {
    this.connections.set(key, connection);
    this.options.metrics.peerConnections.inc();
    connection.pieceTarget = (index, begin, length) => this.options.assemblies.target(key, index, begin, length);
    connection.once("close", () => {
      if (this.connections.get(key) !== connection) return;
      this.connections.delete(key);
      this.options.assemblies.dropPeer(key);
      this.options.event({ type: "peer-left", peer: key });
    });
  }

  private onFrame(key: PeerKey, connection: PeerConnection, frame: Frame): void {
    const event = this.options.event;
    switch (frame.type) {
      case "have":
        return event({ type: "have", peer: key, index: frame.index });
      case "bitfield":
        return event({ type: "bitfield", peer: key, bitfield: frame.bitfield });
      case "complete":
        return event({ type: "peer-complete", peer: key });
      case "reject":
        this.options.assemblies.drop(frame.index, key);
        return event({ type: "rejected", peer: key, index: frame.index });
      case "piece": {
        const result = this.options.assemblies.block(key, frame.index, frame.begin, frame.data);
        if (result.kind === "bad") return connection.refuse(WIRE_ERROR.PROTOCOL, "block was not requested");
        if (result.kind === "complete") this.options.piece(frame.index, key, result.buffer);
        return;
      }
      case "error":
        return connection.close(new Error(`peer error ${frame.code}: ${frame.message}`));
      default:
        return;
    }
  }
}
