import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

/** The agent's Prometheus metrics; the names are fixed in ARCHITECTURE.md. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly bytesDownloaded = new Counter({
    name: "shoal_agent_bytes_downloaded_total",
    help: "Blob bytes that arrived into the store, by source (peer or origin, the edge).",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });
  readonly bytesUploaded = new Counter({
    name: "shoal_agent_bytes_uploaded_total",
    help: "Blob bytes sent to peers.",
    registers: [this.registry],
  });
  readonly blobs = new Counter({
    name: "shoal_agent_blobs_total",
    help: "Blobs fetched into the store and verified.",
    registers: [this.registry],
  });
  readonly piecesRejected = new Counter({
    name: "shoal_agent_pieces_rejected_total",
    help: "Pieces that failed verification against their metainfo.",
    registers: [this.registry],
  });
  readonly edgeFetches = new Counter({
    name: "shoal_agent_edge_fetches_total",
    help: "Requests to the edge for content, by kind (blob, manifest, tag).",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly peerConnections = new Counter({
    name: "shoal_agent_peer_connections_total",
    help: "Outbound peer connections established.",
    registers: [this.registry],
  });
  readonly bytesServed = new Counter({
    name: "shoal_agent_bytes_served_total",
    help: "Bytes sent to local registry clients (docker, containerd, podman).",
    registers: [this.registry],
  });
  readonly requests = new Counter({
    name: "shoal_agent_registry_requests_total",
    help: "Registry port requests by route and status.",
    labelNames: ["route", "method", "status"] as const,
    registers: [this.registry],
  });
  readonly bytesFetched = new Counter({
    name: "shoal_agent_bytes_fetched_total",
    help: "Blob bytes fetched (from peers or the edge), by what they were fetched for: pieces Range readers waited for (lazy pulls) or whole-blob downloads.",
    labelNames: ["reader"] as const,
    registers: [this.registry],
  });
  readonly partialBlobs = new Gauge({ name: "shoal_agent_partial_blobs", help: "Blobs held in part in the store (lazy reads' pieces, downloads under way).", registers: [this.registry] });
  readonly partialBytes = new Gauge({ name: "shoal_agent_partial_bytes", help: "Verified bytes of the blobs held in part.", registers: [this.registry] });
  readonly storeBytes = new Gauge({ name: "shoal_agent_store_bytes", help: "Bytes held in the store.", registers: [this.registry] });
  readonly storeCapacity = new Gauge({ name: "shoal_agent_store_capacity_bytes", help: "Store capacity.", registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "shoal_agent_process_" });
    this.bytesDownloaded.inc({ source: "peer" }, 0);
    this.bytesDownloaded.inc({ source: "origin" }, 0);
    this.bytesFetched.inc({ reader: "range" }, 0);
    this.bytesFetched.inc({ reader: "whole" }, 0);
  }
}
