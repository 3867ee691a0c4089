import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { OciError } from "../shared/oci/errors.js";
import { drain } from "./upload/upload-session.js";
import { servicesFromEnv, type AppEnv, type Services } from "./services.js";
import { blobRoutes } from "./registry/blobs.js";
import { uploadRoutes } from "./registry/uploads.js";
import { manifestRoutes } from "./registry/manifests.js";
import { listingRoutes } from "./registry/listings.js";
import { metainfoRoutes } from "./origin/metainfo.js";
import { trackerRoutes } from "./tracker/routes.js";
import { replicationRoutes } from "./upstream/replication.js";
import { dashboardRoutes } from "./dashboard/routes.js";
import { authMiddleware } from "./auth.js";
import { authRoutes } from "./auth/routes.js";
import { requestLog } from "./request-log.js";

/** Bodies up to this size are read and dropped before an error response (see `drain`). */
const DRAIN_MAX_BYTES = 2 * 1024 * 1024 * 1024;

/** A refused request's unread body is drained first, so the client gets the response. */
async function drainUnreadBody(request: Request): Promise<void> {
  const body = request.body;
  if (!body || request.bodyUsed || body.locked) return;
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  if (declared > DRAIN_MAX_BYTES) return;
  await drain(body.getReader());
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

  app.get("/", (c) => c.text("Shoal edge: OCI registry at /v2/, dashboard at /dashboard\n"));

  app.notFound((c) => {
    const error = c.req.path.startsWith("/v2")
      ? new OciError("UNSUPPORTED", `no route for ${c.req.method} ${c.req.path.slice(0, 200)}`, { status: 404 })
      : new OciError("UNSUPPORTED", "not found", { status: 404 });
    return error.toResponse({ "Docker-Distribution-API-Version": "registry/2.0" });
  });

  app.onError(async (err, c) => {
    const headers = { "Docker-Distribution-API-Version": "registry/2.0" };
    await drainUnreadBody(c.req.raw);
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
