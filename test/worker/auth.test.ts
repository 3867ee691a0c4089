import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sign } from "hono/jwt";
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { errorCode, sha256 } from "../helpers/registry-client.js";

const ALICE = "alice:alice-token-0123456789";
const basic = (text: string) => `Basic ${Buffer.from(text).toString("base64")}`;
const AUTH = { authorization: basic(ALICE) };
const KEY_NEW = "new-signing-key-5f1c9a7e2b4d6f8091a3c5e7";
const KEY_OLD = "old-signing-key-0a2b4c6d8e1f3a5b7c9d0e2f";

/** `SHOAL_PUSH_TOKENS`, the shorthand: its users push and pull everywhere; everyone pulls. */
describe("the token flow with SHOAL_PUSH_TOKENS", () => {
  let edge: TestEdge;
  beforeAll(async () => {
    edge = await startTestEdge({ SHOAL_PUSH_TOKENS: `${ALICE},bob:bob-token-0123456789abc` });
  });
  afterAll(async () => edge?.destroy());

  it("GET /v2/ sends clients without credentials to the token service, as docker expects", async () => {
    const res = await fetch(`${edge.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(`Bearer realm="${edge.url}/token",service="shoal"`);
    expect(await errorCode(res)).toBe("UNAUTHORIZED");
    // Basic and a bare push token keep working for scripts.
    expect((await fetch(`${edge.url}/v2/`, { headers: AUTH })).status).toBe(200);
    expect((await fetch(`${edge.url}/v2/`, { headers: { authorization: "Bearer bob-token-0123456789abc" } })).status).toBe(200);
    const wrong = await fetch(`${edge.url}/v2/`, { headers: { authorization: basic("alice:wrong-token-0123456789") } });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ errors: [{ code: "UNAUTHORIZED", message: "invalid credentials" }] });
  });

  it("/token answers the spec's fields; an anonymous token pulls but cannot push", async () => {
    const digest = await pushBlobWith(edge.url, "a/b", "hello", AUTH);
    const anon = await token(edge.url, "repository:a/b:pull,push");
    expect(anon.body).toMatchObject({ expires_in: 300 });
    expect(anon.body.access_token).toBe(anon.body.token);
    expect(new Date(anon.body.issued_at).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(claims(anon.body.token)).toMatchObject({ iss: "shoal", aud: "shoal", sub: "", access: [{ type: "repository", name: "a/b", actions: ["pull"] }] });
    const bearer = { authorization: `Bearer ${anon.body.token}` };
    expect((await fetch(`${edge.url}/v2/`, { headers: bearer })).status).toBe(200);
    expect(await (await fetch(`${edge.url}/v2/a/b/blobs/${digest}`, { headers: bearer })).text()).toBe("hello");
    const push = await fetch(`${edge.url}/v2/a/b/blobs/uploads/`, { method: "POST", headers: bearer });
    expect(push.status).toBe(401);
    expect(push.headers.get("www-authenticate")).toBe(`Bearer realm="${edge.url}/token",service="shoal",scope="repository:a/b:pull,push",error="insufficient_scope"`);
    // Anonymous pulls need no token at all (SHOAL_PULL_AUTH is off).
    expect((await fetch(`${edge.url}/v2/a/b/blobs/${digest}`)).status).toBe(200);
  });

  it("a logged-in token pushes; without credentials a push is challenged with its scope, and nothing is stored", async () => {
    const start = await fetch(`${edge.url}/v2/c/d/blobs/uploads/`, { method: "POST" });
    expect(start.status).toBe(401);
    expect(start.headers.get("www-authenticate")).toContain('scope="repository:c/d:pull,push"');
    const mono = await fetch(`${edge.url}/v2/c/d/blobs/uploads/?digest=${sha256("x")}`, { method: "POST", body: "x" });
    expect(mono.status).toBe(401);
    expect((await fetch(`${edge.url}/v2/c/d/blobs/${sha256("x")}`, { method: "HEAD", headers: AUTH })).status).toBe(404);
    expect((await fetch(`${edge.url}/v2/c/d/manifests/v1`, { method: "DELETE" })).status).toBe(401);
    expect((await fetch(`${edge.url}/shoal/v1/announce`, { method: "POST", body: "{}" })).status).toBe(401);
    const issued = await token(edge.url, "repository:c/d:pull,push", AUTH);
    expect(claims(issued.body.token)).toMatchObject({ sub: "alice", access: [{ name: "c/d", actions: ["pull", "push"] }] });
    await pushBlobWith(edge.url, "c/d", "pushed with a token", { authorization: `Bearer ${issued.body.token}` });
    // A token is for the repositories it names only.
    expect((await fetch(`${edge.url}/v2/e/f/blobs/uploads/`, { method: "POST", headers: { authorization: `Bearer ${issued.body.token}` } })).status).toBe(401);
    // Wrong credentials at the token service: 401, as docker login expects.
    expect((await token(edge.url, "repository:c/d:pull", { authorization: basic("alice:wrong-token-0123456789") })).status).toBe(401);
  });
});

describe("SHOAL_AUTH: accounts, rules, anonymous repositories", () => {
  let edge: TestEdge;
  const SETTING = {
    users: {
      robot: { password: "robot-secret-0123456789abcdef", access: [{ repository: "team/*", actions: ["pull", "push"] }] },
      reader: { password: `sha256:${sha256("reader-secret-0123456789abc").slice(7)}`, access: [{ repository: "*", actions: ["pull"] }] },
      admin: { password: "admin-secret-0123456789abcdef", access: [{ repository: "*", actions: ["pull", "push", "delete"] }] },
    },
    anonymous: [{ repository: "public/*", actions: ["pull"] }],
  };
  const ROBOT = { authorization: basic("robot:robot-secret-0123456789abcdef") };
  const READER = { authorization: basic("reader:reader-secret-0123456789abc") };
  const ADMIN = { authorization: basic("admin:admin-secret-0123456789abcdef") };
  beforeAll(async () => {
    edge = await startTestEdge({ SHOAL_AUTH: JSON.stringify(SETTING), SHOAL_TOKEN_KEYS: `${KEY_NEW},${KEY_OLD}` });
  });
  afterAll(async () => edge?.destroy());

  it("a robot with push on team/* pushes team/x, never other/x (Basic: 403; its token grants nothing there)", async () => {
    await pushBlobWith(edge.url, "team/x", "team layer", ROBOT);
    const other = await fetch(`${edge.url}/v2/other/x/blobs/uploads/`, { method: "POST", headers: ROBOT });
    expect(other.status).toBe(403);
    expect(await errorCode(other)).toBe("DENIED");
    expect(other.headers.get("www-authenticate")).toContain('error="insufficient_scope"');
    const issued = await token(edge.url, "repository:other/x:pull,push", ROBOT);
    expect(claims(issued.body.token).access).toEqual([]);
    const withToken = await fetch(`${edge.url}/v2/other/x/blobs/uploads/`, { method: "POST", headers: { authorization: `Bearer ${issued.body.token}` } });
    expect(withToken.status).toBe(403);
    expect(await errorCode(withToken)).toBe("DENIED");
  });

  it("a private repository needs an account that may pull it; a public one is anonymous", async () => {
    const secret = await pushBlobWith(edge.url, "private/app", "private layer", ADMIN);
    const open = await pushBlobWith(edge.url, "public/app", "public layer", ADMIN);
    expect((await fetch(`${edge.url}/v2/public/app/blobs/${open}`)).status).toBe(200);
    const refused = await fetch(`${edge.url}/v2/private/app/blobs/${secret}`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toBe(`Bearer realm="${edge.url}/token",service="shoal",scope="repository:private/app:pull"`);
    expect((await fetch(`${edge.url}/shoal/v1/private/app/metainfo/${secret}`)).status).toBe(401);
    expect(await (await fetch(`${edge.url}/v2/private/app/blobs/${secret}`, { headers: READER })).text()).toBe("private layer");
    // The robot's rules cover team/* only.
    expect((await fetch(`${edge.url}/v2/private/app/blobs/${secret}`, { headers: ROBOT })).status).toBe(403);
    const anon = await token(edge.url, "repository:private/app:pull");
    expect(claims(anon.body.token).access).toEqual([]);
    const viaToken = await token(edge.url, "repository:private/app:pull", READER);
    expect(await (await fetch(`${edge.url}/v2/private/app/blobs/${secret}`, { headers: { authorization: `Bearer ${viaToken.body.token}` } })).text()).toBe("private layer");
    // The catalog lists every repository: only for an account with a rule for "*".
    expect((await fetch(`${edge.url}/v2/_catalog`)).status).toBe(401);
    expect((await fetch(`${edge.url}/v2/_catalog`, { headers: ROBOT })).status).toBe(403);
    expect((await fetch(`${edge.url}/v2/_catalog`, { headers: READER })).status).toBe(200);
  });

  it("delete needs delete; a mount needs pull on the source", async () => {
    const digest = await pushBlobWith(edge.url, "team/src", "mount me", ROBOT);
    expect((await fetch(`${edge.url}/v2/team/src/blobs/${digest}`, { method: "DELETE", headers: ROBOT })).status).toBe(403);
    const mount = await fetch(`${edge.url}/v2/team/dst/blobs/uploads/?mount=${digest}&from=private/app`, { method: "POST", headers: ROBOT });
    expect(mount.status).toBe(403);
    expect(mount.headers.get("www-authenticate")).toContain('scope="repository:team/dst:pull,push repository:private/app:pull"');
    expect((await fetch(`${edge.url}/v2/team/dst/blobs/uploads/?mount=${digest}&from=team/src`, { method: "POST", headers: ROBOT })).status).toBe(201);
  });

  it("refuses an expired token, a forged one, and one for another service; accepts the previous key's until it expires", async () => {
    const digest = await pushBlobWith(edge.url, "private/t", "t", ADMIN);
    const now = Math.floor(Date.now() / 1000);
    const payload = (exp: number, aud = "shoal") => ({ iss: "shoal", aud, sub: "reader", iat: now - 600, exp, access: [{ type: "repository", name: "private/t", actions: ["pull"] }] });
    const get = (jwt: string) => fetch(`${edge.url}/v2/private/t/blobs/${digest}`, { headers: { authorization: `Bearer ${jwt}` } });
    expect((await get(await sign(payload(now + 300), KEY_OLD, "HS256"))).status).toBe(200);
    const expired = await get(await sign(payload(now - 1), KEY_NEW, "HS256"));
    expect(expired.status).toBe(401);
    expect(expired.headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect((await get(await sign(payload(now + 300), "forged-key-0123456789abcdefghijklmnop", "HS256"))).status).toBe(401);
    expect((await get(await sign(payload(now + 300, "elsewhere"), KEY_NEW, "HS256"))).status).toBe(401);
    // Tokens the edge issues are signed with the first key.
    const issued = await token(edge.url, "repository:private/t:pull", READER);
    expect((await get(issued.body.token)).status).toBe(200);
  });

  it("answers agents' access checks for the credentials they pass on", async () => {
    const check = (repository: string, headers: Record<string, string> = {}) => fetch(`${edge.url}/shoal/v1/access?repository=${repository}`, { headers });
    expect(await (await check("private/app")).json()).toEqual({ open: false, service: "shoal", account: null, pull: false, anonymousPull: false });
    expect(await (await check("private/app", READER)).json()).toMatchObject({ account: "reader", pull: true });
    expect(await (await check("public/app")).json()).toMatchObject({ pull: true, anonymousPull: true });
    expect((await check("private/app", { authorization: basic("reader:nope-nope-nope-nope") })).status).toBe(401);
  });
});

describe("pull auth and fail-closed settings", () => {
  it("SHOAL_PULL_AUTH=true: blobs, manifests, listings, metainfo and dashboards need credentials", async () => {
    const edge = await startTestEdge({ SHOAL_PUSH_TOKENS: ALICE, SHOAL_PULL_AUTH: "true" });
    try {
      const digest = await pushBlobWith(edge.url, "p/q", "secret layer", AUTH);
      for (const path of [`/v2/p/q/blobs/${digest}`, "/v2/p/q/manifests/latest", "/v2/p/q/tags/list", "/v2/_catalog", `/shoal/v1/p/q/metainfo/${digest}`, "/dashboard", "/dashboard.json"]) {
        const res = await fetch(`${edge.url}${path}`);
        expect(res.status, path).toBe(401);
        expect(await errorCode(res)).toBe("UNAUTHORIZED");
      }
      expect(await (await fetch(`${edge.url}/v2/p/q/blobs/${digest}`, { headers: AUTH })).text()).toBe("secret layer");
    } finally {
      await edge.destroy();
    }
  });

  it.each([
    [{ SHOAL_PUSH_TOKENS: "alice" }, "a token entry must be user:token"],
    [{ SHOAL_PUSH_TOKENS: " " }, "SHOAL_PUSH_TOKENS lists no user:token"],
    [{ SHOAL_PUSH_TOKENS: "," }, "SHOAL_PUSH_TOKENS lists no user:token"],
    [{ SHOAL_PULL_AUTH: "true" }, "SHOAL_PULL_AUTH=true needs accounts"],
    [{ SHOAL_AUTH: '{"anonymous":[]}', SHOAL_PULL_AUTH: "true" }, "SHOAL_PULL_AUTH=true needs at least one account"],
    [{ SHOAL_PUSH_TOKENS: ALICE, SHOAL_TOKEN_KEYS: "short" }, "key 1 is weak"],
    [{ SHOAL_AUTH: '{"users":{"x":{"password":"short"}}}' }, "users.x.password"],
  ])("fails closed on %j (every request 500, never open)", async (vars, reason) => {
    if (process.env.SHOAL_TEST_EDGE === "deno") {
      // The self-hosted edge checks its settings at start and refuses to run, with the reason in one line.
      await expect(startTestEdge(vars as Record<string, string>)).rejects.toThrow(/refusing to start: invalid edge settings/);
      return;
    }
    const edge = await startTestEdge(vars as Record<string, string>);
    try {
      for (const [path, method] of [["/v2/", "GET"], ["/v2/x/y/blobs/uploads/", "POST"], ["/token", "GET"]] as const) {
        const res = await fetch(`${edge.url}${path}`, { method });
        expect(res.status, path).toBe(500);
        expect(await errorCode(res)).toBe("UNKNOWN");
      }
    } finally {
      await edge.destroy();
    }
    const { edgeSettings } = await import("../../src/worker/env.js");
    expect(() => edgeSettings(vars as never)).toThrow(reason);
  });
});

describe("shoal token --access", () => {
  it("makes an account for SHOAL_AUTH (secret stored hashed, added to the given setting) that the edge accepts", async () => {
    const tsx = path.resolve("node_modules/.bin/tsx");
    const base = JSON.stringify({ users: {}, anonymous: [{ repository: "public/*", actions: ["pull"] }] });
    const { stdout, stderr } = await promisify(execFile)(tsx, ["src/agent-node/main.ts", "token", "--user", "ci", "--access", "team/*:pull,push", "--setting", base]);
    const setting = JSON.parse(stdout) as { users: Record<string, { password: string }>; anonymous: unknown[] };
    const secret = /secret, shown once: ([0-9a-f]{40})/.exec(stderr)![1]!;
    expect(setting.users.ci!.password).toBe(sha256(secret));
    expect(setting.anonymous).toEqual([{ repository: "public/*", actions: ["pull"] }]);
    expect(stdout).not.toContain(secret);
    const edge = await startTestEdge({ SHOAL_AUTH: stdout.trim() });
    try {
      await pushBlobWith(edge.url, "team/ci", "built by ci", { authorization: basic(`ci:${secret}`) });
      expect((await fetch(`${edge.url}/v2/other/ci/blobs/uploads/`, { method: "POST", headers: { authorization: basic(`ci:${secret}`) } })).status).toBe(403);
    } finally {
      await edge.destroy();
    }
    await expect(promisify(execFile)(tsx, ["src/agent-node/main.ts", "token", "--access", "team/*:fly"])).rejects.toMatchObject({ code: 2 });
  });
});

async function token(base: string, scope: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/token?service=shoal&scope=${encodeURIComponent(scope)}`, { headers });
  const body = res.status === 200 ? ((await res.json()) as { token: string; access_token: string; expires_in: number; issued_at: string }) : (await res.body?.cancel(), undefined);
  return { status: res.status, body: body! };
}

function claims(jwt: string): Record<string, unknown> & { access: unknown[] } {
  return JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString());
}

async function pushBlobWith(base: string, name: string, data: string, headers: Record<string, string>): Promise<string> {
  const digest = sha256(data);
  const res = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${digest}`, { method: "POST", body: data, headers: { ...headers, "content-type": "application/octet-stream" } });
  expect(res.status, await res.clone().text()).toBe(201);
  return digest;
}
