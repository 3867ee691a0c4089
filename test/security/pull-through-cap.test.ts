import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { fakeImage, startFakeUpstream, type FakeImage, type FakeServer } from "../helpers/fake-upstream.js";

/**
 * Anonymous readers cannot fill the edge's storage from an upstream without limit: what pull-through
 * stores for readers without an account counts against SHOAL_UPSTREAM_ANONYMOUS_BYTES_PER_DAY, and
 * a fill past it is refused (429 TOOMANYREQUESTS, nothing stored) while readers with an account
 * still fill, and what is stored is served to anyone. A real edge (either runtime), a real upstream.
 */
const TOKEN = "alice-token-0123456789abcdef";
const ALICE = { authorization: `Basic ${Buffer.from(`alice:${TOKEN}`).toString("base64")}` };
const LAYER_BYTES = 200 * 1024;
const first = fakeImage("lib/one", "v1", LAYER_BYTES);
const second = fakeImage("lib/two", "v1", LAYER_BYTES);
const third = fakeImage("lib/three", "v1", LAYER_BYTES);
let upstream: FakeServer;
let edge: TestEdge;

const layerOf = (image: FakeImage) => [...image.blobs].at(-1)!;
const blobAt = (image: FakeImage, headers: Record<string, string> = {}) => fetch(`${edge.url}/v2/hub/${image.repository}/blobs/${layerOf(image)[0]}`, { headers });
const manifestAt = (image: FakeImage, headers: Record<string, string> = {}) =>
  fetch(`${edge.url}/v2/hub/${image.repository}/manifests/${image.tag}`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json", ...headers } });
const upstreamReadsOf = (digest: string) => upstream.seen.filter((r) => r.url.endsWith(digest)).length;

beforeAll(async () => {
  upstream = await startFakeUpstream({ images: [first, second, third] });
  edge = await startTestEdge({
    SHOAL_PUSH_TOKENS: `alice:${TOKEN}`,
    SHOAL_UPSTREAMS: JSON.stringify({ "hub/": upstream.url }),
    // Room for one layer and a few manifests, not two layers.
    SHOAL_UPSTREAM_ANONYMOUS_BYTES_PER_DAY: String(LAYER_BYTES + 16 * 1024),
  });
});
afterAll(async () => {
  await edge?.destroy();
  await upstream?.close();
});

describe("anonymous pull-through", () => {
  it("fills within its budget", async () => {
    expect((await manifestAt(first)).status).toBe(200);
    const res = await blobAt(first);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(layerOf(first)[1])).toBe(true);
  });

  it("past its budget is refused with 429 TOOMANYREQUESTS, and nothing is stored", async () => {
    expect((await manifestAt(second)).status).toBe(200); // small: still fits
    const res = await blobAt(second);
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe("TOOMANYREQUESTS");
    expect(body.errors[0]!.message).toMatch(/SHOAL_UPSTREAM_ANONYMOUS_BYTES_PER_DAY.*not at the edge yet.*credentials/);
    // Refused again (not stored by the first refusal), and HEAD says the same.
    expect((await blobAt(second)).status).toBe(429);
    expect((await fetch(`${edge.url}/v2/hub/${second.repository}/blobs/${layerOf(second)[0]}`, { method: "HEAD" })).status).toBe(429);
    // The metainfo route (what agents ask first) fills the same way and is refused the same way.
    expect((await fetch(`${edge.url}/shoal/v1/hub/${second.repository}/metainfo/${layerOf(second)[0]}`)).status).toBe(429);
  });

  it("still fills for a reader with an account, and then serves that to anyone", async () => {
    const reads = upstreamReadsOf(layerOf(second)[0]);
    const res = await blobAt(second, ALICE);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(layerOf(second)[1])).toBe(true);
    expect(upstreamReadsOf(layerOf(second)[0])).toBe(reads + 1);
    const anonymous = await blobAt(second);
    expect(anonymous.status).toBe(200);
    expect(Buffer.from(await anonymous.arrayBuffer()).equals(layerOf(second)[1])).toBe(true);
    expect(upstreamReadsOf(layerOf(second)[0])).toBe(reads + 1); // served from the edge
    expect((await blobAt(first)).status).toBe(200);
  });

  it("counts anonymous bearer tokens (docker's anonymous token flow) as anonymous", async () => {
    const tokenRes = await fetch(`${edge.url}/token?service=shoal&scope=repository:hub/${third.repository}:pull`);
    expect(tokenRes.status).toBe(200);
    const { token } = (await tokenRes.json()) as { token: string };
    expect((await blobAt(third, { authorization: `Bearer ${token}` })).status).toBe(429);
  });
});
