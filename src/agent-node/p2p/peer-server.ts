import net from "node:net";
import type { Logger } from "pino";
import { parseDigest, type Digest } from "../../shared/oci/digest.js";
import { WIRE_ERROR, WireError, type Frame } from "../../shared/p2p/wire/frames.js";
import type { AgentMetrics } from "../metrics.js";
import { PeerConnection } from "./peer-connection.js";
import { acceptHandshake } from "./handshake.js";
import { ADMISSION_DEFAULTS, AdmissionBook, admitPeer } from "./admission.js";
import { plainTransport, type PeerTransport } from "./transport.js";
import { BlockServer } from "./block-server.js";
import type { SeedableBlobs } from "./seedable.js";
import type { Bandwidth } from "./token-bucket.js";

export interface PeerServerOptions {
  /** What this agent can seed: stored blobs and the verified pieces of downloads in progress. */
  seedable: SeedableBlobs;
  metrics: AgentMetrics;
  log: Logger;
  peerId: Uint8Array;
  /** The cluster secret's key: peers must prove they know it (see handshake.ts). */
  clusterKey?: Uint8Array;
  /** TCP or mutual TLS (default TCP). */
  transport?: PeerTransport;
  bandwidth?: Bandwidth;
  maxConnections?: number;
  maxConnectionsPerAddress?: number;
  handshakeTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** Requests a peer may have queued before it is refused as abusive. */
  maxQueuedRequests?: number;
}

/**
 * The agent's peer port, serving side: a peer names a blob in its handshake and (with a cluster
 * secret) proves it belongs; if this agent has the blob (verified, with metainfo) or is
 * downloading it, it answers with its bitfield and serves block
 * requests from the store or from the download's verified pieces (sending `have` as more verify).
 * Anything else gets an error frame with the reason and the connection is closed.
 */
export function createPeerServer(options: PeerServerOptions): net.Server {
  // Waiting (not yet authenticated) and established connections have their own budgets: admission.ts.
  const book = new AdmissionBook({
    ...ADMISSION_DEFAULTS,
    maxConnections: options.maxConnections ?? ADMISSION_DEFAULTS.maxConnections,
    maxPerAddress: options.maxConnectionsPerAddress ?? ADMISSION_DEFAULTS.maxPerAddress,
  });
  const server = (options.transport ?? plainTransport).createServer((socket) => {
    const address = socket.remoteAddress ?? "?";
    const connection = new PeerConnection(socket, { idleTimeoutMs: options.idleTimeoutMs ?? 60_000, keepAliveMs: 20_000, bandwidth: options.bandwidth });
    const established = admitPeer(book, connection, address, options.handshakeTimeoutMs ?? 5_000);
    if (!established) return;
    serve(connection, options, established).catch((error: Error) => {
      options.log.debug({ peer: connection.remote, err: error.message }, "peer connection ended");
      // A refusal was sent already where there was one to send; a timeout still gets its reason.
      if (error instanceof WireError) connection.refuse(WIRE_ERROR.PROTOCOL, error.message);
      else connection.close(error);
    });
  });
  return server;
}

async function serve(connection: PeerConnection, options: PeerServerOptions, established: () => boolean): Promise<void> {
  let digest: Digest | undefined;
  const hello = await acceptHandshake(connection, { key: options.clusterKey, peerId: options.peerId, timeoutMs: options.handshakeTimeoutMs ?? 5_000 }, (h) => {
    try {
      digest = parseDigest(h.digest);
      return undefined;
    } catch {
      return { code: WIRE_ERROR.PROTOCOL, message: "invalid digest" };
    }
  });
  if (!established()) return;
  const source = await options.seedable.open(digest!);
  if (!source) return connection.refuse(WIRE_ERROR.UNKNOWN_BLOB, `no ${digest} here`);
  const { metainfo } = source;
  if (connection.isClosed) return source.close();
  connection.once("close", () => source.close());
  if (hello.pieceCount !== metainfo.pieces.length) return connection.refuse(WIRE_ERROR.PROTOCOL, "piece count does not match the metainfo");
  await connection.send({ type: "bitfield", bitfield: source.bitfield() });
  // A peer that is downloading the same blob as we are: we fetch from it over this connection too.
  const toSession = source.joined(connection, hello);
  const blocks = new BlockServer(connection, {
    metainfo,
    read: (index, begin, length, into) => source.read(index, begin, length, into),
    metrics: options.metrics,
    bandwidth: options.bandwidth,
    maxQueued: options.maxQueuedRequests,
  });
  connection.onFrames((frame: Frame) => {
    if (blocks.handle(frame)) return;
    if (frame.type === "handshake") return connection.refuse(WIRE_ERROR.PROTOCOL, "a second handshake");
    // have/bitfield/piece/…: for our download, if we have one; a seeder ignores them.
    toSession?.(frame);
  });
}
