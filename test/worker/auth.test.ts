import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { errorCode, sha256 } from "../helpers/registry-client.js";

const ALICE = "alice:alice-token-0123456789";
const basic = (text: string) => `Basic ${Buffer.from(text).toString("base64")}`;
const AUTH = { authorization: basic(ALICE) };

/** `SHOAL_PUSH_TOKENS` at the edge: who may push, announce and (with SHOAL_PULL_AUTH) pull. */
describe("push authentication", () => {
  let edge: TestEdge;
  beforeAll(async () => {
    edge = await startTestEdge({ SHOAL_PUSH_TOKENS: `${ALICE},bob:bob-token-0123456789abc` });
  });
  afterAll(async () => edge?.destroy());

  it("GET /v2/ challenges clients without credentials, as docker login expects", async () => {
    const res = await fetch(`${edge.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Basic realm="shoal", charset="UTF-8"');
    expect(await errorCode(res)).toBe("UNAUTHORIZED");
    expect((await fetch(`${edge.url}/v2/`, { headers: AUTH })).status).toBe(200);
    expect((await fetch(`${edge.url}/v2/`, { headers: { authorization: "Bearer bob-token-0123456789abc" } })).status).toBe(200);
    const wrong = await fetch(`${edge.url}/v2/`, { headers: { authorization: basic("alice:wrong-token-0123456789") } });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ errors: [{ code: "UNAUTHORIZED", message: "invalid credentials" }] });
  });

  it("refuses uploads, manifest writes, deletes and announces without credentials, and nothing is stored", async () => {
    const start = await fetch(`${edge.url}/v2/a/b/blobs/uploads/`, { method: "POST" });
    expect(start.status).toBe(401);
    expect(start.headers.get("www-authenticate")).toContain("Basic");
    const mono = await fetch(`${edge.url}/v2/a/b/blobs/uploads/?digest=${sha256("x")}`, { method: "POST", body: "x" });
    expect(mono.status).toBe(401);
    expect((await fetch(`${edge.url}/v2/a/b/blobs/${sha256("x")}`, { method: "HEAD", headers: AUTH })).status).toBe(404);
    const put = await fetch(`${edge.url}/v2/a/b/manifests/v1`, { method: "PUT", body: "{}", headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
    expect(put.status).toBe(401);
    expect((await fetch(`${edge.url}/v2/a/b/manifests/v1`, { method: "DELETE" })).status).toBe(401);
    const announce = await fetch(`${edge.url}/shoal/v1/announce`, { method: "POST", body: "{}" });
    expect(announce.status).toBe(401);
  });

  it("accepts a push with credentials; anonymous pulls still work (SHOAL_PULL_AUTH is off)", async () => {
    const digest = await pushBlobWith(edge.url, "a/b", "hello", AUTH);
    const res = await fetch(`${edge.url}/v2/a/b/blobs/${digest}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hello");
    // podman without a login sends an empty Basic login: anonymous, not wrong.
    expect((await fetch(`${edge.url}/v2/a/b/blobs/${digest}`, { headers: { authorization: basic(":") } })).status).toBe(200);
    // Wrong credentials are refused even where none are needed, so a typo shows.
    expect((await fetch(`${edge.url}/v2/a/b/blobs/${digest}`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
  });
});

describe("pull authentication", () => {
  let edge: TestEdge;
  beforeAll(async () => {
    edge = await startTestEdge({ SHOAL_PUSH_TOKENS: ALICE, SHOAL_PULL_AUTH: "true" });
  });
  afterAll(async () => edge?.destroy());

  it("needs credentials for blobs, manifests, listings and metainfo too", async () => {
    const digest = await pushBlobWith(edge.url, "p/q", "secret layer", AUTH);
    for (const path of [`/v2/p/q/blobs/${digest}`, "/v2/p/q/manifests/latest", "/v2/p/q/tags/list", "/v2/_catalog", `/shoal/v1/p/q/metainfo/${digest}`, "/dashboard", "/dashboard.json"]) {
      const res = await fetch(`${edge.url}${path}`);
      expect(res.status, path).toBe(401);
      expect(await errorCode(res)).toBe("UNAUTHORIZED");
    }
    const ok = await fetch(`${edge.url}/v2/p/q/blobs/${digest}`, { headers: AUTH });
    expect(await ok.text()).toBe("secret layer");
  });
});

describe("misconfiguration", () => {
  it("a malformed SHOAL_PUSH_TOKENS fails closed with an error, never open", async () => {
    const edge = await startTestEdge({ SHOAL_PUSH_TOKENS: "alice" });
    try {
      const res = await fetch(`${edge.url}/v2/`);
      expect(res.status).toBe(500);
      expect(await errorCode(res)).toBe("UNKNOWN");
      expect((await fetch(`${edge.url}/v2/x/y/blobs/uploads/`, { method: "POST" })).status).toBe(500);
    } finally {
      await edge.destroy();
    }
  });
});

async function pushBlobWith(base: string, name: string, data: string, headers: Record<string, string>): Promise<string> {
  const digest = sha256(data);
  const res = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${digest}`, { method: "POST", body: data, headers: { ...headers, "content-type": "application/octet-stream" } });
  expect(res.status).toBe(201);
  return digest;
}
