import type { MiddlewareHandler } from "hono";
import { authenticate, parseAuthorization } from "../shared/auth/credentials.js";
import { OciError } from "../shared/oci/errors.js";
import type { AppEnv } from "./services.js";

/** What `docker login` and podman answer: HTTP Basic against this realm. */
export const CHALLENGE = 'Basic realm="shoal", charset="UTF-8"';

const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Who may do what at the edge. With `SHOAL_PUSH_TOKENS` set, anything that changes state (uploads,
 * manifest and tag writes, deletes, tracker announces) needs one of its credentials; with
 * `SHOAL_PULL_AUTH=true`, reads do too. Credentials that are presented but wrong are refused even
 * where none are needed, so a typo shows at once. `GET /v2/` is the login check clients make: it
 * answers 401 with the challenge to anyone without valid credentials while auth is on, which is
 * how docker and podman learn to send theirs on the requests that follow.
 */
export function authMiddleware(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { pushTokens, pullAuth } = c.get("services").settings;
    if (pushTokens.length === 0) return next();
    const presented = parseAuthorization(c.req.header("Authorization"));
    const credential = authenticate(presented, pushTokens);
    const path = c.req.path;
    if (credential) return next();
    if (presented.kind !== "anonymous") {
      throw unauthorized(presented.kind === "malformed" ? "malformed Authorization header" : "invalid credentials");
    }
    const isBase = path === "/v2" || path === "/v2/";
    const isWrite = !READ_METHODS.has(c.req.method);
    // With pull auth, every read but the bare banner at "/" (the registry API, metainfo, dashboards).
    const needed = isBase || isWrite || (pullAuth && path !== "/");
    if (needed) throw unauthorized(isBase ? "authentication required" : isWrite ? "pushing needs credentials (docker login)" : "pulling needs credentials");
    return next();
  };
}

function unauthorized(message: string): OciError {
  return new OciError("UNAUTHORIZED", message, { headers: { "WWW-Authenticate": CHALLENGE } });
}
