import type { Action } from "../../shared/auth/policy.js";

/**
 * What a request needs, from its method and path alone (pure: tested as a table). Every `/v2`
 * route checks its scope (distribution token spec): pull for reads; push for uploads, manifests and
 * tags; pull on the source too for a cross-repository mount; delete for DELETE.
 * - `none`: open to all (the banner, the token service itself).
 * - `login`: the `GET /v2/` check clients make: any valid identity, anonymous gets the challenge.
 * - `account`: an authenticated account, whatever its rules (tracker announces).
 * - `repository`: these actions on these repositories.
 * - `registry`: registry-wide reads (catalog, dashboards, queues): pull on `*`.
 */
export type Requirement =
  | { kind: "none" }
  | { kind: "login" }
  | { kind: "account" }
  | { kind: "registry"; action: Action }
  | { kind: "repository"; needs: { repository: string; action: Action }[] };

const READ = new Set(["GET", "HEAD", "OPTIONS"]);

const REPOSITORY_ROUTES: [RegExp, (method: string) => Action | undefined][] = [
  [/^\/v2\/(.+)\/blobs\/uploads(?:\/[^/]*)?$/, () => "push"],
  [/^\/v2\/(.+)\/blobs\/[^/]+$/, (m) => (READ.has(m) ? "pull" : m === "DELETE" ? "delete" : "push")],
  [/^\/v2\/(.+)\/manifests\/[^/]+$/, (m) => (READ.has(m) ? "pull" : m === "DELETE" ? "delete" : "push")],
  [/^\/v2\/(.+)\/tags\/list$/, (m) => (READ.has(m) ? "pull" : "push")],
  [/^\/v2\/(.+)\/referrers\/[^/]+$/, (m) => (READ.has(m) ? "pull" : "push")],
  [/^\/shoal\/v1\/(.+)\/metainfo\/[^/]+$/, (m) => (READ.has(m) ? "pull" : "push")],
];

export function requirementOf(method: string, path: string, query: URLSearchParams): Requirement {
  // The token service and the agents' access check read credentials themselves.
  if (path === "/" || path === "/token" || path === "/shoal/v1/access") return { kind: "none" };
  if (path === "/v2" || path === "/v2/") return { kind: "login" };
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // the route answers NAME_INVALID; check it as written
  }
  for (const [pattern, actionOf] of REPOSITORY_ROUTES) {
    const match = pattern.exec(decoded);
    if (!match) continue;
    const repository = match[1]!;
    const action = actionOf(method)!;
    const needs = [{ repository, action }];
    // distribution-spec: POST …/uploads/?mount=<digest>&from=<repo> reads the blob out of <repo>.
    const from = query.get("from");
    if (method === "POST" && query.get("mount") && from) needs.push({ repository: from, action: "pull" });
    return { kind: "repository", needs };
  }
  if (path === "/shoal/v1/announce") return { kind: "account" };
  // Anything else that changes state needs an account; any other read is registry-wide.
  return READ.has(method) ? { kind: "registry", action: "pull" } : { kind: "account" };
}
