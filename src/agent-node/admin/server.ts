import http from "node:http";
import type { Logger } from "pino";
import type { AgentMetrics } from "../metrics.js";

export interface AdminServerOptions {
  metrics: AgentMetrics;
  log: Logger;
  /** JSON for GET /v1/status. */
  status: () => Promise<unknown> | unknown;
  healthy: () => boolean;
  /** Refreshes gauges before a scrape. */
  beforeMetrics?: () => void;
}

/** The agent's admin port: health, Prometheus metrics and a JSON status. */
export function createAdminServer(options: AdminServerOptions): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    };
    (async () => {
      if (req.method !== "GET" && req.method !== "HEAD") return send(405, "text/plain", "method not allowed\n");
      if (path === "/health") return options.healthy() ? send(200, "text/plain", "OK\n") : send(503, "text/plain", "starting or stopping\n");
      if (path === "/metrics") options.beforeMetrics?.();
      if (path === "/metrics") return send(200, options.metrics.registry.contentType, await options.metrics.registry.metrics());
      if (path === "/v1/status") return send(200, "application/json", JSON.stringify(await options.status(), null, 2));
      return send(404, "text/plain", "not found\n");
    })().catch((error: unknown) => {
      options.log.error({ err: error }, "admin request failed");
      if (!res.headersSent) send(500, "text/plain", "internal error\n");
    });
  });
}
