import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { OciError } from "../shared/oci/errors.js";
import { servicesFromEnv, type AppEnv, type Services } from "./services.js";
import { blobRoutes } from "./registry/blobs.js";
import { uploadRoutes } from "./registry/uploads.js";
import { manifestRoutes } from "./registry/manifests.js";
import { listingRoutes } from "./registry/listings.js";
import { metainfoRoutes } from "./origin/metainfo.js";
import { trackerRoutes } from "./tracker/routes.js";
import { replicationRoutes } from "./upstream/replication.js";
import { dashboardRoutes } from "./dashboard/routes.js";
import { gcRoutes } from "./gc/routes.js";
import { authMiddleware } from "./auth.js";
import { authRoutes } from "./auth/routes.js";
import { requestLog } from "./request-log.js";

/**
 * What happens to a refused request's unread body. A client refused for its credentials (401,
 * 403) is answered at once and its body cancelled unread: whoever has no right to upload does not
 * get to hold the request, or our bandwidth, for as long as its chunked body lasts. Any other
 * refusal (413 for a chunk over the limit, …) comes from a client that may send, and clients such
 * as skopeo read the answer only once their body is written (else: "broken pipe"), so up to
 * DRAIN_MAX_BYTES of it are read and dropped first, counted as they arrive (a chunked body used
 * to count as length 0, without limit).
 */
const DRAIN_MAX_BYTES = 2 * 1024 * 1024 * 1024;

async function drainUnreadBody(request: Request, refusedCaller: boolean): Promise<void> {
  const body = request.body;
  if (!body || request.bodyUsed || body.locked) return;
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  if (refusedCaller || !(declared <= DRAIN_MAX_BYTES)) return void (await body.cancel().catch(() => undefined));
  const reader = body.getReader();
  try {
    for (let read = 0; read <= DRAIN_MAX_BYTES; ) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
    }
    await reader.cancel();
  } catch {
    // The client went away: nothing left to drain.
  }
}

export interface AppOptions {
  /** Overrides how services are built from bindings (tests, other runtimes). */
  services?: (env: AppEnv["Bindings"]) => Services;
}

/** The edge's hono app: the OCI Distribution API on `/v2`. */
export function createApp(options: AppOptions = {}): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const makeServices = options.services ?? servicesFromEnv;

  app.use("*", requestLog());
  app.use("*", async (c, next) => {
    c.set("services", makeServices(c.env));
    await next();
    c.header("Docker-Distribution-API-Version", "registry/2.0");
  });
  app.use("*", authMiddleware());

  app.get("/v2/", (c) => c.json({}));
  app.get("/v2", (c) => c.json({}));
  app.route("/", authRoutes);
  app.route("/", listingRoutes);
  app.route("/", uploadRoutes);
  app.route("/", blobRoutes);
  app.route("/", manifestRoutes);
  app.route("/", metainfoRoutes);
  app.route("/", trackerRoutes);
  app.route("/", replicationRoutes);
  app.route("/", dashboardRoutes);
  app.route("/", gcRoutes);

  app.get("/", (c) => c.text("Shoal edge: OCI registry at /v2/, dashboard at /dashboard\n"));

  app.notFound((c) => {
    const error = c.req.path.startsWith("/v2")
      ? new OciError("UNSUPPORTED", `no route for ${c.req.method} ${c.req.path.slice(0, 200)}`, { status: 404 })
      : new OciError("UNSUPPORTED", "not found", { status: 404 });
    return error.toResponse({ "Docker-Distribution-API-Version": "registry/2.0" });
  });

  app.onError(async (err, c) => {
    const headers = { "Docker-Distribution-API-Version": "registry/2.0" };
    const status = err instanceof OciError ? err.status : 0;
    await drainUnreadBody(c.req.raw, status === 401 || status === 403);
    if (err instanceof OciError) return err.toResponse(headers);
    if (err instanceof HTTPException) {
      return new OciError("UNSUPPORTED", err.message || "bad request", { status: err.status }).toResponse(headers);
    }
    if (err instanceof SyntaxError || (err as { name?: string }).name === "ZodError") {
      return new OciError("UNSUPPORTED", `bad request: ${err.message.slice(0, 300)}`, { status: 400 }).toResponse(headers);
    }
    console.error(JSON.stringify({ level: "error", msg: "unhandled", method: c.req.method, path: c.req.path, error: String(err?.stack ?? err) }));
    return new OciError("UNKNOWN", "internal error").toResponse(headers);
  });

  return app;
}
