import type { Logger } from "pino";
import type { Digest } from "../../shared/oci/digest.js";
import type { Metainfo } from "../../shared/p2p/metainfo.js";
import type { AnnounceRequest, AnnounceResponse } from "../../shared/api/announce.js";
import type { DiskStore } from "../store/disk-store.js";
import type { BlobFiller, BlobSource, Download, DownloadManager } from "../store/download.js";
import type { EdgeClient } from "../edge/edge-client.js";
import { resumingStream } from "../edge/resuming-stream.js";
import type { AgentMetrics } from "../metrics.js";
import type { SwarmRegistry } from "./swarm-registry.js";
import { SwarmSession } from "./swarm-session.js";
import { refusedAddress } from "../../shared/p2p/peer-address.js";
import { ConnectionBudget } from "./connection-budget.js";
import type { Bandwidth, TokenBucket } from "./token-bucket.js";
import type { PeerTransport } from "./transport.js";

export interface P2pSettings {
  /** Off: every blob comes from the edge in one stream (the "direct" mode of the benchmark). */
  enabled: boolean;
  maxPeersPerSwarm: number;
  /** Outbound peer connections across all swarms. */
  maxPeerConnections: number;
  piecesPerPeer: number;
  webSeedConcurrency: number;
  requestTimeoutMs: number;
  /** A download that gets no verified piece for this long fails (clients get an error, not a hang). */
  stallTimeoutMs: number;
  /** Dial handed-out loopback addresses (only when this agent is itself on loopback). */
  allowLoopbackPeers?: boolean;
  /** Ingress and egress limits for peer traffic; web-seed reads count as ingress. */
  bandwidth: Bandwidth;
  /** The cluster secret's key (peer authentication) and how peer connections are carried. */
  clusterKey?: Uint8Array;
  transport?: PeerTransport;
  /**
   * After a Range read of a blob not held, fetch the rest in the background (behind readers) or
   * never (the partial copy stays, served to readers and peers, until a whole read comes).
   */
  lazyComplete?: "background" | "never";
  /**
   * With `lazyComplete: "never"`: a partial copy no reader or peer used for this long is parked
   * (its pieces stay in the store; the next read resumes it). The same window complete blobs are
   * announced for after their last use.
   */
  partialSeedWindowMs?: number;
}

export interface BlobFetcherOptions {
  store: DiskStore;
  downloads: DownloadManager;
  edge: EdgeClient;
  swarms: SwarmRegistry;
  metrics: AgentMetrics;
  log: Logger;
  peerId: Buffer;
  /** The announce this agent sends for a swarm (its address, zone, cluster). */
  announceRequest: (digest: Digest, pieceCount: number, complete: boolean, have: number, fetching?: boolean) => AnnounceRequest;
  /** Each answer to a download's announce (the announcer spreads the announce of completion by it). */
  announced?: (digest: Digest, response: AnnounceResponse) => void;
  p2p: P2pSettings;
  /** A blob fetched for repository `name` is in the store, verified (with its metainfo, if P2P). */
  onStored: (name: string, digest: Digest, metainfo: Metainfo | undefined) => void;
}

/** Blobs this small are fetched from the edge in one request, not through their swarm. */
export const SMALL_BLOB_BYTES = 256 * 1024;

/**
 * Gets a blob that is not in the store: through its swarm (pieces from peers, the edge as web
 * seed for what no peer has) when the edge has its metainfo, else (and for small blobs) as one
 * stream from the edge.
 * Concurrent requests share one download (DownloadManager).
 */
export class BlobFetcher {
  private readonly connections: ConnectionBudget;
  /** Metainfo being written beside a blob whose download has begun (see metainfo()). */
  private readonly metainfoWrites = new Map<Digest, Promise<void>>();

  constructor(private readonly options: BlobFetcherOptions) {
    this.connections = new ConnectionBudget(options.p2p.maxPeerConnections);
  }

  fetch(name: string, digest: Digest): Download {
    const { downloads, metrics } = this.options;
    let session: SwarmSession | undefined;
    let metainfo: Metainfo | undefined;
    const download = downloads.fetch(
      digest,
      async () => {
        const opened = await this.open(name, digest);
        metainfo = opened.metainfo;
        if (opened.source instanceof SwarmSession) session = opened.source;
        return opened.source;
      },
      {
        onBytes: (n) => {
          metrics.bytesDownloaded.inc({ source: "origin" }, n);
          metrics.bytesFetched.inc({ reader: "whole" }, n);
        },
        onDone: () => {
          metrics.blobs.inc();
          // Seeded once its metainfo is beside it (peers are served from the store by it). Written
          // again if the download began from a stored copy: evicting a parked partial copy of the
          // blob meanwhile removes it.
          const written = this.metainfoWrites.get(digest) ?? (metainfo ? this.keepMetainfo(metainfo) : Promise.resolve());
          void written.then(() => this.afterStored(name, digest, metainfo));
        },
      },
    );
    // The session serves peers until the blob, and its metainfo, are in the store.
    const forget = () => {
      const written = this.metainfoWrites.get(digest) ?? Promise.resolve();
      void written.then(() => {
        if (session) this.options.swarms.remove(session);
      });
    };
    download.finished.then(forget, (error: Error) => {
      session?.stop(error);
      forget();
    });
    return download;
  }

  private afterStored(name: string, digest: Digest, metainfo: Metainfo | undefined): void {
    this.options.onStored(name, digest, metainfo);
  }

  /** The source of a blob's bytes, and its metainfo when it has one (to seed it afterwards). */
  private async open(name: string, digest: Digest): Promise<{ source: BlobSource | BlobFiller; metainfo?: Metainfo }> {
    if (!this.options.p2p.enabled) return { source: await this.stream(name, digest) };
    const metainfo = await this.metainfo(name, digest);
    if (!metainfo || metainfo.size === 0) return { source: await this.stream(name, digest) };
    if (metainfo.size > SMALL_BLOB_BYTES) return { source: this.startSession(name, metainfo), metainfo };
    // A small blob (an image config, a tiny layer) costs the edge about as much as an announce,
    // and through the swarm it would wait behind peers' queued pieces: it comes straight from
    // the edge, and from its swarm only when the edge cannot give it.
    try {
      return { source: await this.stream(name, digest), metainfo };
    } catch (error) {
      this.options.log.warn({ digest, err: (error as Error).message }, "edge read failed: fetching the small blob from peers");
      return { source: this.startSession(name, metainfo), metainfo };
    }
  }

  /** The whole blob from the edge in one stream (verified against its digest as it is stored). */
  private async stream(name: string, digest: Digest): Promise<BlobSource> {
    const { edge, metrics, log, p2p } = this.options;
    metrics.edgeFetches.inc({ kind: "blob" });
    log.debug({ digest }, "fetching the blob from the edge in one stream");
    const opened = await edge.openBlob(name, digest);
    const body = resumingStream(opened, (offset) => edge.openBlob(name, digest, { start: offset, end: opened.size - 1 }), {
      onBreak: (offset, error) => {
        metrics.edgeFetches.inc({ kind: "blob" });
        log.warn({ digest, offset, size: opened.size, err: error.message }, "edge stream broke: reading the rest by Range");
      },
    });
    const ingress = p2p.bandwidth.ingress;
    return { size: opened.size, body: ingress ? paced(body, ingress) : body };
  }

  private async metainfo(name: string, digest: Digest): Promise<Metainfo | undefined> {
    const stored = await this.options.store.readMetainfo(digest);
    if (stored) return stored;
    try {
      this.options.metrics.edgeFetches.inc({ kind: "metainfo" });
      const metainfo = await this.options.edge.getMetainfo(name, digest);
      // Kept beside the blob from the start (see SeedableBlobs): the moment the blob is
      // committed it can be seeded, with nothing more from the edge. Written while the download
      // begins (a lazy read waits for neither); the session stays registered until it is.
      void this.keepMetainfo(metainfo);
      return metainfo;
    } catch (error) {
      // No metainfo (or the edge refused it): the plain stream still verifies the whole blob.
      this.options.log.info({ digest, err: (error as Error).message }, "no metainfo: fetching without peers");
      return undefined;
    }
  }

  /** Writes the metainfo beside the blob; until it is written, `metainfoWrites` says so. */
  private keepMetainfo(metainfo: Metainfo): Promise<void> {
    const digest = metainfo.digest as Digest;
    const written = this.options.store.writeMetainfo(metainfo).catch((error: Error) => {
      this.options.log.warn({ digest, err: error.message }, "cannot keep the metainfo beside the blob");
    });
    this.metainfoWrites.set(digest, written);
    void written.then(() => {
      if (this.metainfoWrites.get(digest) === written) this.metainfoWrites.delete(digest);
    });
    return written;
  }

  private startSession(name: string, metainfo: Metainfo): SwarmSession {
    const { edge, metrics, log, p2p, peerId, announceRequest } = this.options;
    const digest = metainfo.digest as Digest;
    const session = new SwarmSession({
      digest,
      metainfo,
      peerId,
      metrics,
      log: log.child({ digest }),
      announce: async (complete, have, fetching) => {
        const response = await edge.announce(announceRequest(digest, metainfo.pieces.length, complete, have, fetching));
        this.options.announced?.(digest, response);
        return response;
      },
      webSeed: async (start, end) => {
        metrics.edgeFetches.inc({ kind: "piece" });
        return readAll(edge, name, digest, start, end, p2p.bandwidth);
      },
      maxPeers: p2p.maxPeersPerSwarm,
      refuseAddress: (ip) => refusedAddress(ip, { allowLoopback: p2p.allowLoopbackPeers ?? false }),
      piecesPerPeer: p2p.piecesPerPeer,
      webSeedConcurrency: p2p.webSeedConcurrency,
      requestTimeoutMs: p2p.requestTimeoutMs,
      stallTimeoutMs: p2p.stallTimeoutMs,
      bandwidth: p2p.bandwidth,
      clusterKey: p2p.clusterKey,
      transport: p2p.transport,
      connectionBudget: this.connections,
      background: p2p.lazyComplete !== "never",
      parkAfterMs: p2p.partialSeedWindowMs,
      parking: (have) => {
        // The tracker forgets this peer at once (else it hands it out for three intervals more).
        const request = { ...announceRequest(digest, metainfo.pieces.length, false, have, false), stopped: true };
        edge.announce(request).catch((error: Error) => log.debug({ digest, err: error.message }, "stop announce failed"));
      },
    });
    this.options.swarms.add(session);
    return session;
  }
}

/** A byte stream that waits for the ingress limit as it is read (backpressure does the rest). */
async function* paced(body: AsyncIterable<Uint8Array>, bucket: TokenBucket): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    await bucket.take(chunk.byteLength);
    yield chunk;
  }
}

/** Bytes [start, end] of a blob from the edge (a web-seed read), checked for length. */
async function readAll(edge: EdgeClient, name: string, digest: Digest, start: number, end: number, bandwidth: Bandwidth): Promise<Buffer> {
  const { size, body } = await edge.openBlob(name, digest, { start, end });
  const expected = end - start + 1;
  if (size !== expected) {
    body.destroy();
    throw new Error(`web seed answered ${size} bytes for a ${expected}-byte range`);
  }
  const out = Buffer.allocUnsafe(expected);
  let at = 0;
  for await (const chunk of body) {
    const bytes = chunk as Buffer;
    if (at + bytes.length > expected) {
      body.destroy();
      throw new Error("web seed sent more than the range");
    }
    bytes.copy(out, at);
    at += bytes.length;
    // Nobody else has this piece yet (peers' copies are asked of peers): it goes first.
    await bandwidth.ingress?.take(bytes.length, true);
  }
  if (at !== expected) throw new Error(`web seed sent ${at} of ${expected} bytes`);
  return out;
}
