/** What `GET /v1/status` on the admin port answers, and what its HTML page (`GET /`) shows. */
export interface AgentStatus {
  uptimeSeconds: number;
  edge: string;
  zone: string;
  cluster: string;
  peerId: string;
  store: { bytes: number; capacityBytes: number; blobs: number; pinned: number };
  bytesBySource: Record<string, number>;
  downloads: { digest: string; size?: number; written: number; state: string }[];
  swarms: { digest: string; role: string; peers?: number; have?: number; pieces?: number }[];
}
