import type { Context, MiddlewareHandler } from "hono";
import { parseAuthorization } from "../shared/auth/credentials.js";
import { can, findAccount, rulesAllow, type Account, type Action } from "../shared/auth/policy.js";
import { bearerChallenge, grantsAllow, type Grant, type Scope } from "../shared/auth/scope.js";
import { OciError } from "../shared/oci/errors.js";
import type { AuthSettings } from "./env.js";
import { requirementOf } from "./auth/route-access.js";
import { looksLikeJwt, verifyToken } from "./auth/token.js";
import type { AppEnv } from "./services.js";

/**
 * Who is asking. An account proved with HTTP Basic (`docker login` for scripts, `curl -u`) or a
 * `SHOAL_PUSH_TOKENS` token alone as Bearer; a bearer JWT from `/token`, which carries its grants;
 * or nobody.
 */
export type Identity =
  | { kind: "anonymous" }
  | { kind: "account"; account: Account }
  | { kind: "token"; sub: string; access: Grant[]; account: Account | undefined };

/**
 * The distribution token flow at the edge. `GET /v2/` answers 401 with a Bearer challenge
 * (`realm="<edge>/token",service="<name>"`) to anyone without valid credentials, so docker,
 * podman, skopeo and containerd fetch a token — anonymously for public repositories — and send it
 * on what follows. Every route then checks its scope (auth/route-access.ts). Credentials that are
 * presented but wrong are refused even where none are needed, so a typo shows at once.
 */
export function authMiddleware(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { auth } = c.get("services").settings;
    if (auth.policy.open) {
      c.set("identity", { kind: "anonymous" });
      return next();
    }
    const url = new URL(c.req.url);
    const requirement = requirementOf(c.req.method, url.pathname, url.searchParams);
    if (requirement.kind === "none") return next();
    const identity = await identify(c.req.header("Authorization"), auth, () => realmOf(c));
    c.set("identity", identity);
    switch (requirement.kind) {
      case "login":
        if (identity.kind === "anonymous") throw challenge(c, auth, "authentication required");
        break;
      case "account":
        if (!accountOf(identity)) throw challenge(c, auth, "this needs an account (docker login)");
        break;
      case "registry":
        if (!allowed(auth, identity, requirement.action, "*")) throw denied(c, auth, identity, { type: "registry", name: "catalog", actions: [requirement.action] });
        break;
      case "repository":
        if (requirement.needs.every(({ repository, action }) => allowed(auth, identity, action, repository))) break;
        // The challenge names every scope the request needs (a mount: push here and pull on the
        // source), so one token covers it; docker asks for pull and push together when it pushes.
        throw denied(
          c,
          auth,
          identity,
          requirement.needs.map(({ repository, action }) => ({ type: "repository", name: repository, actions: action === "pull" ? ["pull"] : ["pull", action] })),
        );
    }
    return next();
  };
}

/**
 * The check other edge code calls (the garbage collector: `requireAccess(c, "gc", "*")`): throws
 * the right 401/403 unless the request's identity may do `action` on `repository`.
 */
export function requireAccess(c: Context<AppEnv>, action: Action, repository: string): void {
  const { auth } = c.get("services").settings;
  const identity = c.get("identity") ?? { kind: "anonymous" };
  if (!allowed(auth, identity, action, repository)) {
    throw denied(c, auth, identity, repository === "*" ? { type: "registry", name: "catalog", actions: [action] } : { type: "repository", name: repository, actions: [action] });
  }
}

/** May this identity do `action` on `repository`? A token allows what it was granted (and what anyone may). */
export function allowed(auth: AuthSettings, identity: Identity, action: Action, repository: string): boolean {
  const { policy } = auth;
  if (policy.open || rulesAllow(policy.anonymous, action, repository)) return true;
  if (identity.kind === "account") return can(policy, identity.account, action, repository);
  if (identity.kind === "token") {
    if (repository === "*") return identity.account !== undefined && can(policy, identity.account, action, "*");
    return grantsAllow(identity.access, "repository", repository, action);
  }
  return false;
}

export function accountOf(identity: Identity): Account | undefined {
  return identity.kind === "account" ? identity.account : identity.kind === "token" ? identity.account : undefined;
}

/** The identity an Authorization header proves; wrong credentials are a 401, never anonymous. */
export async function identify(header: string | undefined, auth: AuthSettings, realm: () => string): Promise<Identity> {
  const presented = parseAuthorization(header);
  const fail = (message: string, error?: "invalid_token") =>
    new OciError("UNAUTHORIZED", message, { headers: { "WWW-Authenticate": bearerChallenge(realm(), auth.service, undefined, error) } });
  switch (presented.kind) {
    case "anonymous":
      return { kind: "anonymous" };
    case "malformed":
      throw fail("malformed Authorization header");
    case "basic": {
      const account = findAccount(auth.policy, presented.user, presented.token);
      if (!account) throw fail("invalid credentials");
      return { kind: "account", account };
    }
    case "bearer": {
      if (looksLikeJwt(presented.token)) {
        const claims = await verifyToken(presented.token, auth.keys, auth.service);
        if (!claims) throw fail("invalid or expired token", "invalid_token");
        const account = claims.sub ? auth.policy.accounts.find((a) => a.name === claims.sub) : undefined;
        // A token of an account removed since it was issued is worth nothing.
        if (claims.sub && !account) throw fail("the token's account no longer exists", "invalid_token");
        return { kind: "token", sub: claims.sub, access: claims.access, account };
      }
      const account = findAccount(auth.policy, undefined, presented.token);
      if (!account) throw fail("invalid credentials");
      return { kind: "account", account };
    }
  }
}

/** `<scheme>://<host the client used>/token`: where clients of this edge get their tokens. */
export function realmOf(c: Context<AppEnv>): string {
  const url = new URL(c.req.url);
  const forwarded = c.req.header("X-Forwarded-Proto");
  const scheme = forwarded === "https" || forwarded === "http" ? forwarded : url.protocol.replace(":", "");
  // X-Forwarded-Host: set by a front such as the devcluster's; only misleads a client that sets it itself.
  const host = c.req.header("X-Forwarded-Host") ?? c.req.header("Host") ?? url.host;
  return `${scheme}://${host}/token`;
}

function challenge(c: Context<AppEnv>, auth: AuthSettings, message: string, scope?: Scope | Scope[]): OciError {
  return new OciError("UNAUTHORIZED", message, { headers: { "WWW-Authenticate": bearerChallenge(realmOf(c), auth.service, scope) } });
}

/**
 * distribution token spec: a request without the scope it needs gets the challenge naming that
 * scope — 401 for anonymous clients (log in, or fetch a token for it), and for a token that lacks
 * it `error="insufficient_scope"`: 401 when nobody is behind the token, 403 DENIED for an account
 * whose rules do not allow it (logging in again would not help); 401 again when the account may but
 * the token was issued for less.
 */
function denied(c: Context<AppEnv>, auth: AuthSettings, identity: Identity, scope: Scope | Scope[]): OciError {
  const scopes = Array.isArray(scope) ? scope : [scope];
  const what = scopes.map((s) => `${s.actions.join(",")} on ${s.name}`).join(" and ");
  if (identity.kind === "anonymous") return challenge(c, auth, `authentication required (${what})`, scopes);
  const headers = { "WWW-Authenticate": bearerChallenge(realmOf(c), auth.service, scopes, "insufficient_scope") };
  const account = accountOf(identity);
  const accountMay = account !== undefined && scopes.every((s) => s.actions.every((a) => can(auth.policy, account, a as Action, s.type === "registry" ? "*" : s.name)));
  // A token narrower than its account's rules: a fresh token for the scope will do.
  if (!account || (identity.kind === "token" && accountMay)) return new OciError("UNAUTHORIZED", `insufficient scope: this token does not allow ${what}`, { headers });
  return new OciError("DENIED", `${account.name} may not ${what}`, { headers });
}
