import net from "node:net";
import { open, type FileHandle } from "node:fs/promises";
import type { Logger } from "pino";
import { parseDigest, type Digest } from "../../shared/oci/digest.js";
import { Bitfield } from "../../shared/p2p/bitfield.js";
import { pieceBounds, type Metainfo } from "../../shared/p2p/metainfo.js";
import { MAX_BLOCK_BYTES, WIRE_ERROR, WireError, type Frame, type Handshake } from "../../shared/p2p/wire/frames.js";
import type { DiskStore } from "../store/disk-store.js";
import type { AgentMetrics } from "../metrics.js";
import { PeerConnection } from "./peer-connection.js";
import { acceptHandshake } from "./handshake.js";
import { ADMISSION_DEFAULTS, AdmissionBook, admitPeer } from "./admission.js";
import { plainTransport, type PeerTransport } from "./transport.js";
import type { SwarmRegistry } from "./swarm-registry.js";
import type { Bandwidth } from "./token-bucket.js";

export interface PeerServerOptions {
  store: DiskStore;
  /** Blobs being downloaded: their verified pieces are served before the blob is complete. */
  swarms: SwarmRegistry;
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
  const source = await openBlockSource(digest!, options);
  if (!source) return connection.refuse(WIRE_ERROR.UNKNOWN_BLOB, `no ${digest} here`);
  const { metainfo } = source;
  if (connection.isClosed) return source.close();
  connection.once("close", () => source.close());
  if (hello.pieceCount !== metainfo.pieces.length) return connection.refuse(WIRE_ERROR.PROTOCOL, "piece count does not match the metainfo");
  await connection.send({ type: "bitfield", bitfield: source.bitfield() });
  // A peer that is downloading the same blob as we are: we fetch from it over this connection too.
  const toSession = source.joined(connection, hello);

  // Requests are served in order, one at a time, so a slow peer is slowed by its own socket.
  const queue: Extract<Frame, { type: "request" }>[] = [];
  let serving = false;
  const maxQueued = options.maxQueuedRequests ?? 256;
  /** Pieces whose first block we took on: their other blocks are never rejected as "busy". */
  const acceptedPieces = new Set<number>();
  const pump = async () => {
    if (serving) return;
    serving = true;
    try {
      for (let request = queue.shift(); request && !connection.isClosed; request = queue.shift()) {
        try {
          const { index, begin, length } = request;
          if (!(await connection.sendBlock(index, begin, length, (into) => source.read(index, begin, length, into)))) {
            await connection.send({ type: "reject", index, begin, length });
            continue;
          }
          options.metrics.bytesUploaded.inc(length);
        } finally {
          options.bandwidth?.uploads?.release(request.length);
        }
      }
    } finally {
      serving = false;
      // Requests left behind by a closed connection give their share of the backlog back.
      if (connection.isClosed) for (const left of queue.splice(0)) options.bandwidth?.uploads?.release(left.length);
    }
  };
  connection.onFrames((frame: Frame) => {
    if (frame.type === "request") {
      const problem = checkRequest(frame, metainfo);
      if (problem) return connection.refuse(WIRE_ERROR.PROTOCOL, problem);
      if (queue.length >= maxQueued) return connection.refuse(WIRE_ERROR.OVERLOADED, "too many queued requests");
      if (frame.begin === 0) acceptedPieces.delete(frame.index);
      if (options.bandwidth?.uploads && !options.bandwidth.uploads.tryReserve(frame.length, acceptedPieces.has(frame.index))) {
        // Our uplink is booked: say so now, so the peer asks someone else.
        connection.send({ type: "reject", index: frame.index, begin: frame.begin, length: frame.length }).catch(() => undefined);
        return;
      }
      acceptedPieces.add(frame.index);
      queue.push(frame);
      pump().catch((error: Error) => connection.close(error));
    } else if (frame.type === "cancel") {
      const at = queue.findIndex((q) => q.index === frame.index && q.begin === frame.begin);
      if (at >= 0) options.bandwidth?.uploads?.release(queue.splice(at, 1)[0]!.length);
    } else if (frame.type === "handshake") {
      connection.refuse(WIRE_ERROR.PROTOCOL, "a second handshake");
    } else {
      // have/bitfield/piece/…: for our download, if we have one; a seeder ignores them.
      toSession?.(frame);
    }
  });
}

function checkRequest(request: { index: number; begin: number; length: number }, metainfo: Metainfo): string | undefined {
  if (request.index >= metainfo.pieces.length) return `piece ${request.index} does not exist`;
  const { start, end } = pieceBounds(request.index, metainfo.size, metainfo.pieceLength);
  if (request.length === 0 || request.length > MAX_BLOCK_BYTES) return `block length ${request.length} out of range`;
  if (request.begin + request.length > end - start) return "block runs past its piece";
  return undefined;
}

/** Where served blocks come from: the store (a complete blob) or a download in progress. */
interface BlockSource {
  metainfo: Metainfo;
  bitfield(): Uint8Array;
  /**
   * The handshake went out: a download sends this peer `have`s from now on and may fetch from it;
   * returns where the peer's other frames go.
   */
  joined(connection: PeerConnection, hello: Handshake): ((frame: Frame) => void) | undefined;
  /** Reads into `into` (exactly `length` bytes) where it can. */
  read(index: number, begin: number, length: number, into: Buffer): Promise<Buffer | undefined>;
  close(): void;
}

async function openBlockSource(digest: Digest, options: PeerServerOptions): Promise<BlockSource | undefined> {
  const { store } = options;
  const stored = store.get(digest) ? await store.readMetainfo(digest) : undefined;
  if (stored) {
    const release = store.pin(digest);
    let file: FileHandle;
    try {
      file = await open(store.blobPath(digest), "r");
    } catch {
      release();
      return undefined;
    }
    store.touch(digest);
    return {
      metainfo: stored,
      bitfield: () => Bitfield.full(stored.pieces.length).bytes,
      joined: () => undefined,
      read: (index, begin, length, into) => readFileBlock(file, stored, index, begin, length, into),
      close: () => {
        release();
        void file.close();
      },
    };
  }
  const session = options.swarms.get(digest);
  if (!session) return undefined;
  let file: FileHandle | undefined;
  let release: (() => void) | undefined;
  return {
    metainfo: session.metainfo,
    bitfield: () => new Uint8Array(session.have.bytes),
    joined: (connection, hello) => session.adoptInbound(connection, hello),
    async read(index, begin, length, into) {
      const block = await session.readBlock(index, begin, length, into).catch(() => undefined);
      if (block || !store.get(digest)) return block;
      // The download finished and its blob moved into the store: serve from there.
      if (!file) {
        release = store.pin(digest);
        file = await open(store.blobPath(digest), "r");
      }
      return readFileBlock(file, session.metainfo, index, begin, length, into);
    },
    close: () => {
      release?.();
      void file?.close();
    },
  };
}

async function readFileBlock(file: FileHandle, metainfo: Metainfo, index: number, begin: number, length: number, into: Buffer): Promise<Buffer> {
  const data = into.length === length ? into : Buffer.allocUnsafe(length);
  const { start } = pieceBounds(index, metainfo.size, metainfo.pieceLength);
  const { bytesRead } = await file.read(data, 0, length, start + begin);
  if (bytesRead !== length) throw new Error("short read from the store");
  return data;
}
