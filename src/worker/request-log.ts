import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./services.js";
import { requestLogLevel } from "../shared/request-log-level.js";

/** A request id from the caller (an agent passes its client's on) or a new one: safe characters, bounded. */
function requestIdOf(header: string | undefined): string {
  return header && /^[A-Za-z0-9._:-]{1,128}$/.test(header) ? header : crypto.randomUUID();
}

/**
 * One JSON line per request (Workers Logs on Cloudflare, stdout under miniflare): method, path,
 * status, time and a request id that is also sent back as `X-Request-Id`, so one pull can be
 * followed from the client through the agent to the edge. Never logs headers (credentials).
 */
export function requestLog(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const requestId = requestIdOf(c.req.header("X-Request-Id"));
    const started = Date.now();
    try {
      await next();
    } finally {
      c.header("X-Request-Id", requestId);
      const status = c.res.status;
      console.log(
        JSON.stringify({
          time: new Date().toISOString(),
          level: requestLogLevel(c.req.method, status),
          msg: "request",
          requestId,
          method: c.req.method,
          path: c.req.path.slice(0, 300),
          status,
          ms: Date.now() - started,
        }),
      );
    }
  };
}
