import http from "node:http";
import type { Logger } from "pino";
import type { AgentMetrics } from "../metrics.js";
import { renderDashboard } from "./dashboard.js";
import type { AgentStatus } from "./status.js";
import { localHostNames, refusalFor } from "../local-guard.js";
import { RateHistory } from "../../shared/dashboard/rate-history.js";

export interface AdminServerOptions {
  metrics: AgentMetrics;
  log: Logger;
  /** JSON for GET /v1/status. */
  status: () => Promise<AgentStatus>;
  healthy: () => boolean;
  /** Refreshes gauges before a scrape. */
  beforeMetrics?: () => void;
  /** `POST /v1/preheat` with a JSON body: fetch an image into the store ahead of its pulls. */
  preheat?: (body: unknown) => Promise<{ status: number; body: unknown }>;
  /** `POST /v1/store/verify {"digest"}`: hash a stored blob again, dropping it if damaged. */
  verify?: (body: unknown) => Promise<{ status: number; body: unknown }>;
  /** Host names besides localhost, IP literals and the machine's name that mean this host. */
  hostNames?: string[];
}

/** Largest JSON body the admin server reads. */
const MAX_BODY_BYTES = 64 * 1024;

/** Seconds of throughput the page plots. */
const HISTORY_SECONDS = 120;

/**
 * Samples the byte counters once a second into a ring of per-second rates (the page's plot):
 * `peer` and `origin` fetched, `uploaded` sent to peers. Runs while the server listens.
 */
function sampleThroughput(server: http.Server, metrics: AgentMetrics): RateHistory {
  const history = new RateHistory(HISTORY_SECONDS, ["peer", "origin", "uploaded"]);
  const last = new Map<string, number>();
  const sample = async () => {
    const downloaded = (await metrics.bytesDownloaded.get()).values;
    const totals: [string, number][] = [
      ["peer", downloaded.find((v) => v.labels.source === "peer")?.value ?? 0],
      ["origin", downloaded.find((v) => v.labels.source === "origin")?.value ?? 0],
      ["uploaded", (await metrics.bytesUploaded.get()).values[0]?.value ?? 0],
    ];
    const now = Date.now();
    for (const [name, total] of totals) {
      history.add(name, total - (last.get(name) ?? 0), now);
      last.set(name, total);
    }
  };
  let timer: NodeJS.Timeout | undefined;
  server.on("listening", () => {
    timer = setInterval(() => void sample().catch(() => undefined), 1_000);
    timer.unref();
  });
  server.on("close", () => clearInterval(timer));
  return history;
}

/** The agent's admin port: health, Prometheus metrics, a JSON status and an HTML page of it at `/`. */
export function createAdminServer(options: AdminServerOptions): http.Server {
  const names = localHostNames(options.hostNames);
  const status = async (): Promise<AgentStatus> => ({ ...(await options.status()), throughput: history.samples(Date.now()) });
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    };
    (async () => {
      // No page a browser shows may read this port (DNS rebinding) or act on it (CSRF): see local-guard.ts.
      const refusal = refusalFor(req.headers, names);
      if (refusal) {
        req.resume();
        return send(403, "application/json", JSON.stringify({ error: refusal }));
      }
      const action = req.method === "POST" ? { "/v1/preheat": options.preheat, "/v1/store/verify": options.verify }[path ?? ""] : undefined;
      if (action) {
        // A page can POST text/plain across origins without asking first; application/json it cannot.
        if (!/^application\/json\s*(;|$)/i.test(req.headers["content-type"] ?? "")) {
          req.resume();
          return send(415, "application/json", JSON.stringify({ error: "the body must be sent as Content-Type: application/json" }));
        }
        const body = await readJson(req);
        if (body === undefined) return send(400, "application/json", JSON.stringify({ error: `the body must be JSON of at most ${MAX_BODY_BYTES} bytes` }));
        const result = await action(body);
        return send(result.status, "application/json", JSON.stringify(result.body, null, 2));
      }
      if (req.method !== "GET" && req.method !== "HEAD") return send(405, "text/plain", "method not allowed\n");
      if (path === "/health") return options.healthy() ? send(200, "text/plain", "OK\n") : send(503, "text/plain", "starting or stopping\n");
      if (path === "/metrics") options.beforeMetrics?.();
      if (path === "/metrics") return send(200, options.metrics.registry.contentType, await options.metrics.registry.metrics());
      if (path === "/v1/status") return send(200, "application/json", JSON.stringify(await status(), null, 2));
      if (path === "/") return send(200, "text/html; charset=utf-8", renderDashboard(await status()));
      return send(404, "text/plain", "not found\n");
    })().catch((error: unknown) => {
      options.log.error({ err: error }, "admin request failed");
      if (!res.headersSent) send(500, "text/plain", "internal error\n");
    });
  });
  const history = sampleThroughput(server, options.metrics);
  return server;
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req) {
    length += (chunk as Buffer).length;
    if (length > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}
