import { OciError } from "../../shared/oci/errors.js";
import { parseRepositoryName } from "../../shared/oci/reference.js";

/** The registry API routes the agent serves, matched from a request path (name has slashes). */
export type Route =
  | { kind: "base" }
  | { kind: "token" }
  | { kind: "catalog" }
  | { kind: "manifest"; name: string; reference: string }
  | { kind: "blob"; name: string; digest: string }
  | { kind: "uploads"; name: string }
  | { kind: "upload"; name: string; id: string }
  | { kind: "tags"; name: string }
  | { kind: "referrers"; name: string; digest: string }
  | { kind: "namespace-blob"; namespace: string; digest: string };

const PATTERNS: [RegExp, (m: RegExpExecArray) => Route][] = [
  [/^\/v2\/?$/, () => ({ kind: "base" })],
  // The edge's token service, passed through (push-proxy.ts token()).
  [/^\/token$/, () => ({ kind: "token" })],
  [/^\/v2\/_catalog$/, () => ({ kind: "catalog" })],
  [/^\/v2\/(.+)\/blobs\/uploads\/?$/, (m) => ({ kind: "uploads", name: m[1]! })],
  [/^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, (m) => ({ kind: "upload", name: m[1]!, id: m[2]! })],
  [/^\/v2\/(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: "blob", name: m[1]!, digest: m[2]! })],
  [/^\/v2\/(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: "manifest", name: m[1]!, reference: m[2]! })],
  [/^\/v2\/(.+)\/tags\/list$/, (m) => ({ kind: "tags", name: m[1]! })],
  [/^\/v2\/(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: "referrers", name: m[1]!, digest: m[2]! })],
  // Kraken's agent download endpoint, for scripts: GET /namespace/<ns>/blobs/<digest>.
  [/^\/namespace\/(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: "namespace-blob", namespace: m[1]!, digest: m[2]! })],
];

export function matchRoute(pathname: string): Route {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    throw new OciError("NAME_INVALID", "malformed path encoding");
  }
  for (const [pattern, build] of PATTERNS) {
    const match = pattern.exec(decoded);
    if (!match) continue;
    const route = build(match);
    if ("name" in route) parseRepositoryName(route.name);
    return route;
  }
  throw new OciError("UNSUPPORTED", `no route for ${pathname.slice(0, 200)}`, { status: 404 });
}
