import { Hono } from "hono";
import { parseAuthorization } from "../../shared/auth/credentials.js";
import { ACTIONS, findAccount, type Account, type Action } from "../../shared/auth/policy.js";
import { parseScopes, type Grant } from "../../shared/auth/scope.js";
import { OciError } from "../../shared/oci/errors.js";
import { allowed, identify, realmOf, type Identity } from "../auth.js";
import type { AppEnv } from "../services.js";
import { signToken } from "./token.js";

export const authRoutes = new Hono<AppEnv>();

/**
 * The token service (distribution token spec, "Getting a Bearer Token"):
 * `GET /token?service=<name>&scope=repository:<name>:pull,push` with HTTP Basic credentials or
 * none. Wrong credentials are a 401; otherwise a token granting what the account (or anyone) may do
 * of what was asked — possibly nothing; the registry then answers insufficient_scope.
 * Answer: `{token, access_token, expires_in, issued_at}`.
 */
authRoutes.get("/token", async (c) => {
  const { auth } = c.get("services").settings;
  const service = c.req.query("service");
  if (service !== undefined && service !== auth.service) throw new OciError("UNSUPPORTED", `this token service is for "${auth.service}", not "${service.slice(0, 100)}"`, { status: 400 });
  const account = accountFromHeader(c.req.header("Authorization"), auth.policy.open ? undefined : auth, () => realmOf(c));
  const identity: Identity = account ? { kind: "account", account } : { kind: "anonymous" };
  const access: Grant[] = [];
  for (const scope of parseScopes(c.req.queries("scope") ?? [])) {
    if (scope.type === "repository") {
      const asked = scope.actions.includes("*") ? ["pull", "push", "delete"] : scope.actions;
      const actions = asked.filter((a): a is Action => (ACTIONS as readonly string[]).includes(a) && allowed(auth, identity, a as Action, scope.name));
      if (actions.length) access.push({ type: "repository", name: scope.name, actions: [...new Set(actions)] });
    } else if (scope.type === "registry" && scope.name === "catalog" && allowed(auth, identity, "pull", "*")) {
      access.push({ type: "registry", name: "catalog", actions: ["*"] });
    }
  }
  const now = Math.floor(Date.now() / 1000);
  const token = await signToken(auth.keys[0]!, auth.service, { sub: account?.name ?? "", access }, auth.tokenTtlSeconds, now);
  c.header("Cache-Control", "no-store");
  return c.json({ token, access_token: token, expires_in: auth.tokenTtlSeconds, issued_at: new Date(now * 1000).toISOString() });
});

/**
 * For agents, which serve content from their store and must not serve a private repository to a
 * client the edge would refuse: may the request's credentials (passed on from the client as they
 * came: Basic, a push token, or a token from `/token`) pull `repository`? Invalid credentials are a
 * 401; otherwise `{open, service, account, pull, anonymousPull}`.
 */
authRoutes.get("/shoal/v1/access", async (c) => {
  const { auth } = c.get("services").settings;
  const repository = c.req.query("repository") ?? "";
  if (!repository) throw new OciError("NAME_INVALID", "repository= is required");
  const identity = auth.policy.open ? ({ kind: "anonymous" } as const) : await identify(c.req.header("Authorization"), auth, () => realmOf(c));
  const account = identity.kind === "account" ? identity.account.name : identity.kind === "token" ? identity.sub || null : null;
  return c.json({
    open: auth.policy.open,
    service: auth.service,
    account,
    pull: allowed(auth, identity, "pull", repository),
    anonymousPull: allowed(auth, { kind: "anonymous" }, "pull", repository),
  });
});

/** The account behind `/token`'s credentials: HTTP Basic (what docker sends) or a push token as Bearer. */
function accountFromHeader(header: string | undefined, auth: { policy: Parameters<typeof findAccount>[0]; service: string } | undefined, realm: () => string): Account | undefined {
  const presented = parseAuthorization(header);
  if (presented.kind === "anonymous" || !auth) return undefined;
  const unauthorized = (message: string) => new OciError("UNAUTHORIZED", message, { headers: { "WWW-Authenticate": `Basic realm="${realm()}", charset="UTF-8"` } });
  if (presented.kind === "basic") {
    const account = findAccount(auth.policy, presented.user, presented.token);
    if (!account) throw unauthorized("invalid credentials");
    return account;
  }
  if (presented.kind === "bearer") {
    const account = findAccount(auth.policy, undefined, presented.token);
    if (!account) throw unauthorized("invalid credentials");
    return account;
  }
  throw unauthorized("malformed Authorization header");
}
