import type { RateSamples } from "../../shared/dashboard/rate-history.js";

/** What a blob is to the images pulled through this agent: `dash/web:v1`, `layer 1 of 2`. */
export interface BlobLabel {
  image: string;
  /** `config`, `layer 1 of 2`. */
  part: string;
  size: number;
}

/** What `GET /v1/status` on the admin port answers, and what its HTML page (`GET /`) shows. */
export interface AgentStatus {
  uptimeSeconds: number;
  edge: string;
  zone: string;
  cluster: string;
  peerId: string;
  store: { bytes: number; capacityBytes: number; blobs: number; pinned: number };
  bytesBySource: Record<string, number>;
  /** Blob bytes sent to peers (shoal_agent_bytes_uploaded_total). */
  bytesToPeers?: number;
  /** Bytes sent to local registry clients (shoal_agent_bytes_served_total). */
  bytesToClients?: number;
  downloads: { digest: string; size?: number; written: number; state: string }[];
  /** `peers`: connected peers while downloading; peers the tracker handed out at the last announce while seeding. */
  swarms: ({ digest: string; role: string; peers?: number; have?: number; pieces?: number } & Partial<BlobLabel>)[];
  /** Manifest pulls through this agent's registry port, by image (`repository:tag` or `@digest`). */
  pulls?: { image: string; count: number }[];
  /** Bytes per second, the last minutes: `peer` and `origin` (fetched), `uploaded` (sent to peers). */
  throughput?: RateSamples;
}
