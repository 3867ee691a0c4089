import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { errorCode, pushImage, pushManifest } from "../helpers/registry-client.js";

let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge();
});
afterAll(async () => edge?.destroy());

describe("tags/list", () => {
  it("lists tags in lexical order and pages with n/last and a Link header", async () => {
    const { text } = await pushImage(edge.url, "t/paged", "a");
    for (const tag of ["d", "b", "e", "c", "B"]) {
      await pushManifest(edge.url, "t/paged", tag, text, "application/vnd.oci.image.manifest.v1+json");
    }
    const all = await fetch(`${edge.url}/v2/t/paged/tags/list`);
    expect(await all.json()).toEqual({ name: "t/paged", tags: ["B", "a", "b", "c", "d", "e"] });
    expect(all.headers.get("Link")).toBeNull();

    const first = await fetch(`${edge.url}/v2/t/paged/tags/list?n=2`);
    expect(await first.json()).toEqual({ name: "t/paged", tags: ["B", "a"] });
    expect(first.headers.get("Link")).toBe('</v2/t/paged/tags/list?n=2&last=a>; rel="next"');
    const second = await fetch(`${edge.url}/v2/t/paged/tags/list?n=2&last=a`);
    expect(await second.json()).toEqual({ name: "t/paged", tags: ["b", "c"] });
    const last = await fetch(`${edge.url}/v2/t/paged/tags/list?n=2&last=c`);
    expect(await last.json()).toEqual({ name: "t/paged", tags: ["d", "e"] });
    expect(last.headers.get("Link")).toBeNull();

    const zero = await fetch(`${edge.url}/v2/t/paged/tags/list?n=0`);
    expect(await zero.json()).toEqual({ name: "t/paged", tags: [] });
    expect(zero.headers.get("Link")).toBeNull();
  });

  it("an unknown repository is NAME_UNKNOWN; a bad n is refused", async () => {
    const res = await fetch(`${edge.url}/v2/t/none/tags/list`);
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("NAME_UNKNOWN");
    await pushImage(edge.url, "t/bad", "v1");
    expect((await fetch(`${edge.url}/v2/t/bad/tags/list?n=-1`)).status).toBe(400);
    expect((await fetch(`${edge.url}/v2/t/bad/tags/list?n=abc`)).status).toBe(400);
  });
});

describe("_catalog", () => {
  it("lists repositories with paging", async () => {
    await pushImage(edge.url, "cat/one", "v1");
    await pushImage(edge.url, "cat/two", "v1");
    const res = await fetch(`${edge.url}/v2/_catalog`);
    const { repositories } = (await res.json()) as { repositories: string[] };
    expect(repositories).toEqual(expect.arrayContaining(["cat/one", "cat/two"]));
    expect([...repositories].sort()).toEqual(repositories);
    const page = await fetch(`${edge.url}/v2/_catalog?n=1`);
    expect(((await page.json()) as { repositories: string[] }).repositories).toHaveLength(1);
    expect(page.headers.get("Link")).toMatch(/^<\/v2\/_catalog\?n=1&last=[^>]+>; rel="next"$/);
  });
});

describe("errors and routes", () => {
  it("GET /v2/ answers 200 with the API version header", async () => {
    const res = await fetch(`${edge.url}/v2/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("Docker-Distribution-API-Version")).toBe("registry/2.0");
  });

  it.each([
    ["/v2/UPPER/tags/list", 400, "NAME_INVALID"],
    ["/v2/a..b/manifests/latest", 400, "NAME_INVALID"],
    ["/v2/a/-b/blobs/sha256:" + "0".repeat(64), 400, "NAME_INVALID"],
    ["/v2/a%00b/manifests/latest", 400, "NAME_INVALID"],
    ["/v2/a/%2e%2e/%2e%2e/manifests/latest", 404, "UNSUPPORTED"],
    [`/v2/${"a".repeat(256)}/tags/list`, 400, "NAME_INVALID"],
    ["/v2/a/unknown-route", 404, "UNSUPPORTED"],
    ["/v2/a/blobs", 404, "UNSUPPORTED"],
    ["/nothing", 404, "UNSUPPORTED"],
  ])("%s → %i %s", async (path, status, code) => {
    const res = await fetch(`${edge.url}${path}`);
    expect(res.status).toBe(status);
    expect(res.headers.get("Content-Type")).toMatch(/application\/json/);
    expect(await errorCode(res)).toBe(code);
  });

  it("a method a route does not have is an OCI error too", async () => {
    const res = await fetch(`${edge.url}/v2/a/tags/list`, { method: "POST" });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(await errorCode(res)).toBe("UNSUPPORTED");
  });

  it("state persists across an edge restart (R2, Durable Objects)", async () => {
    const { digest } = await pushImage(edge.url, "persist/me", "v1", ["persisted layer"]);
    edge = await edge.restart();
    const res = await fetch(`${edge.url}/v2/persist/me/manifests/v1`, { method: "HEAD" });
    expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
  });
});
