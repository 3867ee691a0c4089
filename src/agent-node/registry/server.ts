import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { requestLogLevel } from "../../shared/request-log-level.js";
import type { Logger } from "pino";
import { randomUUID } from "node:crypto";
import { OciError } from "../../shared/oci/errors.js";
import type { AgentMetrics } from "../metrics.js";
import type { PullService } from "./pull.js";
import type { PushProxy } from "./push-proxy.js";
import type { AccessGate } from "./access.js";
import { matchRoute, type Route } from "./routes.js";
import { withRequestId } from "../request-context.js";
import { API_VERSION_HEADER, sendError } from "./respond.js";
import { localHostNames, refusalFor } from "../local-guard.js";

export interface RegistryServerOptions {
  pull: PullService;
  push: PushProxy;
  /** Checks a client's pull right before anything of a repository is served (access.ts). */
  access: AccessGate;
  metrics: AgentMetrics;
  log: Logger;
  /** Host names besides localhost, IP literals and the machine's name that mean this host. */
  hostNames?: string[];
}

/** A client has this long to send its request line and headers (a stalled one holds a socket). */
export const HEADERS_TIMEOUT_MS = 10_000;
/** ... and this long for a whole request, body included: one PATCH of a large layer. */
export const REQUEST_TIMEOUT_MS = 60 * 60_000;

/** The agent's registry port: what docker, containerd, skopeo and podman talk to on localhost. */
export function createRegistryServer(options: RegistryServerOptions): http.Server {
  const names = localHostNames(options.hostNames);
  // Timeouts are checked on this interval: a header timeout of 10 s needs a finer one than 30 s.
  const server = http.createServer({ connectionsCheckingInterval: 1_000 }, (req, res) => {
    const given = req.headers["x-request-id"];
    const requestId = typeof given === "string" && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID();
    res.setHeader("X-Request-Id", requestId);
    const started = Date.now();
    let routeKind = "unknown";
    res.on("finish", () => {
      options.metrics.requests.inc({ route: routeKind, method: req.method ?? "", status: String(res.statusCode) });
      const level = requestLogLevel(req.method ?? "", res.statusCode);
      options.log[level]({ requestId, method: req.method, url: req.url?.slice(0, 300), route: routeKind, status: res.statusCode, ms: Date.now() - started }, "request");
    });
    const refusal = refusalFor(req.headers, names);
    if (refusal) {
      options.log.warn({ requestId, host: req.headers.host, origin: req.headers.origin }, "refused a request from a browser page");
      req.resume();
      return sendError(res, new OciError("DENIED", refusal));
    }
    withRequestId(requestId, () => handle(req, res, options, (kind) => (routeKind = kind))).catch((error: unknown) => {
      const clientGone = (error as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE" || res.destroyed;
      if (clientGone) options.log.debug({ requestId, url: req.url }, "client went away");
      else if (!(error instanceof OciError)) options.log.error({ requestId, err: error, url: req.url }, "request failed");
      req.resume();
      sendError(res, error);
    });
  });
  server.keepAliveTimeout = 65_000;
  // Not 0 (no limit): that also turns off the header timeout, and a client that never finishes its
  // headers would hold a socket for good.
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  return server;
}

async function handle(req: IncomingMessage, res: ServerResponse, options: RegistryServerOptions, setRoute: (kind: string) => void): Promise<void> {
  const url = new URL(req.url ?? "/", "http://agent");
  const route: Route = matchRoute(url.pathname);
  setRoute(route.kind);
  const method = req.method ?? "GET";
  const read = method === "GET" || method === "HEAD";
  switch (route.kind) {
    case "base":
      if (!read) break;
      return options.push.base(req, res);
    case "token":
      if (method === "GET") return options.push.token(req, res);
      break;
    case "manifest":
      if (read) {
        await options.access.checkPull(req, route.name);
        return options.pull.manifest(req, res, route.name, route.reference);
      }
      if (method === "PUT" || method === "DELETE") return options.push.forward(req, res, method === "PUT");
      break;
    case "blob":
      if (read) {
        await options.access.checkPull(req, route.name);
        return options.pull.blob(req, res, route.name, route.digest);
      }
      if (method === "DELETE") return options.push.forward(req, res, false);
      break;
    case "namespace-blob":
      if (read) {
        await options.access.checkPull(req, route.namespace);
        return options.pull.blob(req, res, route.namespace, route.digest);
      }
      break;
    case "uploads":
      if (method === "POST") return options.push.startUpload(req, res, route.name);
      break;
    case "upload":
      if (method === "PATCH") return options.push.patch(req, res);
      if (method === "PUT") return options.push.put(req, res);
      if (method === "GET" || method === "DELETE") return options.push.forward(req, res, false);
      break;
    case "tags":
    case "catalog":
    case "referrers":
      // Listings are the edge's: read through, with the client's credentials.
      if (read) return options.push.forward(req, res, false);
      break;
  }
  res.setHeader("Allow", "GET, HEAD");
  throw new OciError("UNSUPPORTED", `${method} is not supported on ${url.pathname.slice(0, 200)}`, { status: 405, headers: API_VERSION_HEADER });
}
