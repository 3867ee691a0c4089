import type http from "node:http";
import type net from "node:net";
import { randomBytes } from "node:crypto";
import { parseDigest, type Digest } from "../shared/oci/digest.js";
import type { Metainfo } from "../shared/p2p/metainfo.js";
import { createPeerServer } from "./p2p/peer-server.js";
import { SeedableBlobs } from "./p2p/seedable.js";
import { refusedAddress } from "../shared/p2p/peer-address.js";
import { Announcer } from "./p2p/announcer.js";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { AgentConfig, AgentSecrets } from "./config.js";
import { DiskStore } from "./store/disk-store.js";
import { DownloadManager } from "./store/download.js";
import { EdgeClient } from "./edge/edge-client.js";
import { AgentMetrics } from "./metrics.js";
import { PullService } from "./registry/pull.js";
import { PushProxy } from "./registry/push-proxy.js";
import { AccessGate } from "./registry/access.js";
import { Preheater } from "./registry/preheat.js";
import { createRegistryServer } from "./registry/server.js";
import { createAdminServer } from "./admin/server.js";
import type { AgentStatus } from "./admin/status.js";
import { BlobLabels } from "./admin/blob-labels.js";
import { readFile } from "node:fs/promises";
import { BlobFetcher } from "./p2p/blob-fetcher.js";
import { SwarmRegistry } from "./p2p/swarm-registry.js";
import { backlogFor, bucketFor, type Bandwidth } from "./p2p/token-bucket.js";
import { plainTransport, tlsTransport } from "./p2p/transport.js";
import { clusterKey } from "../shared/p2p/auth.js";

/** The host agent: registry port, admin port, store; `start()` and `stop()` once each. */
export class Agent {
  readonly metrics = new AgentMetrics();
  readonly store: DiskStore;
  readonly downloads: DownloadManager;
  readonly edge: EdgeClient;
  readonly swarms = new SwarmRegistry();
  /** This agent's peer id: 20 random bytes, new at each start. */
  readonly peerId = randomBytes(20);
  private announcer: Announcer | undefined;
  private peerServer: net.Server | undefined;
  /** Inbound peer connections, ended at stop (a peer's idle connection would hold the server open). */
  private readonly peerSockets = new Set<net.Socket>();
  private registryServer: http.Server | undefined;
  private adminServer: http.Server | undefined;
  private running = false;
  private readonly startedAt = Date.now();
  /** Image and layer names for the admin page's swarm rows, and pulls by image. */
  private readonly labels = new BlobLabels();

  private readonly clusterKey: Uint8Array | undefined;

  constructor(
    readonly config: AgentConfig,
    secrets: AgentSecrets,
    private readonly log: Logger,
  ) {
    this.clusterKey = secrets.clusterSecret ? clusterKey(secrets.clusterSecret) : undefined;
    this.store = new DiskStore({ dir: config.store.dir, capacityBytes: config.store.capacity, log: log.child({ part: "store" }) });
    this.downloads = new DownloadManager(this.store, log.child({ part: "download" }));
    this.edge = new EdgeClient({ baseUrl: config.edge, ...(secrets.edgeToken ? { token: secrets.edgeToken } : {}) });
  }

  async start(): Promise<{ registryPort: number; adminPort: number; peerPort: number }> {
    await this.store.open();
    const bandwidth: Bandwidth = {
      ingress: bucketFor(this.config.p2p.ingressRate),
      egress: bucketFor(this.config.p2p.egressRate),
      uploads: backlogFor(),
    };
    const transport = this.config.p2p.tls ? await tlsTransport(this.config.p2p.tls) : plainTransport;
    if (!this.clusterKey) this.log.warn("no clusterSecret in --secrets: peers are not authenticated (any host that reaches the peer port can fetch pieces)");
    const peerSecurity = { clusterKey: this.clusterKey, transport };
    this.peerServer = createPeerServer({ seedable: new SeedableBlobs(this.store, this.swarms), metrics: this.metrics, bandwidth, log: this.log.child({ part: "peer" }), peerId: this.peerId, ...peerSecurity });
    this.peerServer.on("connection", (socket: net.Socket) => {
      this.peerSockets.add(socket);
      socket.once("close", () => this.peerSockets.delete(socket));
    });
    const peerPort = await listen(this.peerServer, this.config.peerPort, this.config.peerListenHost);
    this.announcer = new Announcer({
      edge: this.edge,
      log: this.log.child({ part: "announce" }),
      peerId: this.peerId.toString("hex"),
      ip: this.config.peerIp,
      port: peerPort,
      zone: this.config.zone,
      cluster: this.config.cluster,
      seedWindowMs: this.config.p2p.seedWindowSeconds * 1000,
    });
    this.announcer.start();
    const announcer = this.announcer;
    const { p2p } = this.config;
    const fetcher = new BlobFetcher({
      store: this.store,
      downloads: this.downloads,
      edge: this.edge,
      swarms: this.swarms,
      metrics: this.metrics,
      log: this.log.child({ part: "fetch" }),
      peerId: this.peerId,
      announceRequest: (digest, pieceCount, complete, have, fetching) => announcer.request(digest, pieceCount, complete, have, fetching),
      announced: (digest, response) => announcer.heardFor(digest, response),
      p2p: {
        enabled: p2p.enabled,
        maxPeersPerSwarm: p2p.maxPeersPerSwarm,
        maxPeerConnections: p2p.maxPeerConnections,
        piecesPerPeer: p2p.piecesPerPeer,
        webSeedConcurrency: p2p.webSeedConcurrency,
        requestTimeoutMs: p2p.requestTimeoutSeconds * 1000,
        stallTimeoutMs: p2p.stallTimeoutSeconds * 1000,
        // Loopback peers only for an agent that itself is on loopback (a devcluster, tests).
        allowLoopbackPeers: refusedAddress(this.config.peerIp, { allowLoopback: false }) === "a loopback address",
        bandwidth,
        lazyComplete: p2p.lazyComplete,
        partialSeedWindowMs: p2p.seedWindowSeconds * 1000,
        ...peerSecurity,
      },
      onStored: (name, digest, metainfo) => this.startSeeding(name, digest, metainfo),
    });
    const pull = new PullService({
      store: this.store,
      fetcher,
      edge: this.edge,
      metrics: this.metrics,
      log: this.log.child({ part: "registry" }),
      tagTtlMs: this.config.registry.tagTtlSeconds * 1000,
      onBlobServed: (name, digest) => this.startSeeding(name, digest),
      onManifestServed: (name, reference, digest, mediaType) => {
        const image = reference.includes(":") ? `${name}@${reference.slice(0, 19)}…` : `${name}:${reference}`;
        void this.labels.noteManifest(image, digest, mediaType, () => readFile(this.store.blobPath(digest))).catch(() => undefined);
      },
    });
    const push = new PushProxy(this.edge, this.log.child({ part: "push" }));
    const preheater = new Preheater({ pull, fetcher, store: this.store, log: this.log.child({ part: "preheat" }) });
    const access = new AccessGate(this.edge, this.log.child({ part: "access" }));
    this.registryServer = createRegistryServer({ pull, push, access, metrics: this.metrics, log: this.log.child({ part: "registry" }) });
    this.adminServer = createAdminServer({
      metrics: this.metrics,
      log: this.log.child({ part: "admin" }),
      healthy: () => this.running,
      beforeMetrics: () => {
        const usage = this.store.usage();
        this.metrics.storeBytes.set(usage.bytes);
        this.metrics.partialBlobs.set(usage.partialBlobs);
        this.metrics.partialBytes.set(usage.partialBytes);
      },
      status: () => this.status(),
      preheat: (body) => preheater.preheat(body),
      verify: (body) => this.verifyStored(body),
    });
    this.metrics.storeCapacity.set(this.config.store.capacity);
    const registryPort = await listen(this.registryServer, this.config.agentRegistryPort, this.config.listenHost);
    const adminPort = await listen(this.adminServer, this.config.agentServerPort, this.config.listenHost);
    this.running = true;
    this.log.info(
      { registryPort, adminPort, peerPort, peerId: this.peerId.toString("hex"), edge: this.config.edge, zone: this.config.zone, cluster: this.config.cluster, peerAuth: Boolean(this.clusterKey), peerTls: transport.secure },
      "agent started",
    );
    return { registryPort, adminPort, peerPort };
  }

  /**
   * A blob is in the store (just fetched, or served again): seed it to its swarm, with its
   * metainfo kept beside it. A blob already seeded is only marked as recently used (no I/O: this
   * runs on every request served from the store).
   */
  private startSeeding(name: string, digest: Digest, known?: Metainfo): void {
    if (this.announcer?.touch(digest)) return;
    void (async () => {
      let metainfo = known ?? (await this.store.readMetainfo(digest));
      if (!metainfo) {
        metainfo = await this.edge.getMetainfo(name, digest);
        await this.store.writeMetainfo(metainfo);
      }
      await this.announcer?.seed(digest, metainfo.pieces.length);
    })().catch((error: Error) => this.log.warn({ digest, err: error.message }, "cannot seed blob"));
  }

  private async verifyStored(body: unknown): Promise<{ status: number; body: unknown }> {
    const digest = (body as { digest?: unknown } | null)?.digest;
    let parsed: Digest;
    try {
      parsed = parseDigest(String(digest));
    } catch {
      return { status: 400, body: { error: 'the body must be {"digest": "sha256:…"}' } };
    }
    const state = await this.store.verify(parsed);
    return { status: state === "absent" ? 404 : 200, body: { digest: parsed, state } };
  }

  async status(): Promise<AgentStatus> {
    const metric = async (name: string) => (await this.metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
    const downloaded = await metric("shoal_agent_bytes_downloaded_total");
    const total = async (name: string) => (await metric(name)).reduce((sum, v) => sum + v.value, 0);
    return {
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      edge: this.config.edge,
      zone: this.config.zone,
      cluster: this.config.cluster,
      store: this.store.usage(),
      bytesBySource: Object.fromEntries(downloaded.map((v) => [String(v.labels.source), v.value])),
      bytesToPeers: await total("shoal_agent_bytes_uploaded_total"),
      bytesToClients: await total("shoal_agent_bytes_served_total"),
      pulls: this.labels.pullCounts(),
      downloads: this.downloads.active().map((d) => ({ digest: d.digest, size: d.size, written: d.written, state: d.state })),
      peerId: this.peerId.toString("hex"),
      swarms: [
        ...this.swarms.list().map((s) => ({ digest: s.digest, role: "downloading", ...s.stats(), ...this.labels.label(s.digest) })),
        ...(this.announcer?.active() ?? []).map((s) => ({ digest: s.digest, role: "seeder", peers: s.peers, have: s.pieceCount, pieces: s.pieceCount, ...this.labels.label(s.digest) })),
      ],
    };
  }

  async stop(): Promise<void> {
    if (!this.running && !this.registryServer) return;
    this.running = false;
    this.announcer?.stop();
    this.swarms.stopAll();
    for (const socket of this.peerSockets) socket.destroy();
    await Promise.all([close(this.registryServer), close(this.adminServer), closeNet(this.peerServer)]);
    await this.edge.close();
    this.log.info("agent stopped");
  }
}

function listen(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

function closeNet(server: net.Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}

function close(server: http.Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 2_000).unref();
  });
}
