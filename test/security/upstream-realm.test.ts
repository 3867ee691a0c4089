import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { fakeImage, listen, startFakeUpstream, type FakeServer } from "../helpers/fake-upstream.js";

/**
 * An upstream's token challenge names the realm the edge asks for a token, with the upstream's
 * Basic credentials. A realm on another host (here 127.0.0.2, the upstream being 127.0.0.1) must
 * get nothing — no credentials, no request — unless the upstream's `tokenRealms` names that host.
 * Blob reads the upstream redirects to another host (a CDN) go there without the credentials.
 * A real edge (either runtime), a real upstream and a real other host, over HTTP.
 */
const BASIC = `Basic ${Buffer.from("puller:pull-secret").toString("base64")}`;
const TOKEN = "the-upstream-token";
const images = [fakeImage("team/app", "v1", 64 * 1024)];
let other: FakeServer;
let upstream: FakeServer;
let edge: TestEdge;

beforeAll(async () => {
  // The other host: a token service that hands out the upstream's token for its credentials, and a CDN.
  other = await listen("127.0.0.2", (req, res) => {
    if (req.url?.startsWith("/token")) {
      const ok = req.headers.authorization === BASIC;
      res.writeHead(ok ? 200 : 401, { "content-type": "application/json" });
      return void res.end(ok ? JSON.stringify({ token: TOKEN, expires_in: 300 }) : "{}");
    }
    const bytes = images[0]!.blobs.get((req.url ?? "").slice(1));
    res.writeHead(bytes ? 200 : 404, { "content-length": bytes?.length ?? 0 });
    res.end(bytes);
  });
  upstream = await startFakeUpstream({ images, auth: { token: TOKEN, realm: () => `${other.url}/token` }, redirectBlobs: () => other.url });
  const credentials = { username: "puller", password: "pull-secret" };
  edge = await startTestEdge({
    SHOAL_UPSTREAMS: JSON.stringify({
      "plain/": { url: upstream.url, ...credentials },
      "trusting/": { url: upstream.url, ...credentials, tokenRealms: [new URL(other.url).host] },
    }),
  });
});
afterAll(async () => {
  await edge?.destroy();
  await upstream?.close();
  await other?.close();
});

const manifestAt = (name: string) => fetch(`${edge.url}/v2/${name}/manifests/v1`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });

describe("an upstream's token realm", () => {
  it("on another host is refused with a clear error, and nothing is sent there", async () => {
    const res = await manifestAt("plain/team/app");
    expect(res.status).toBe(502);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.message).toMatch(/asks for a token from http:\/\/127\.0\.0\.2:\d+, which is not its own host.*tokenRealms/);
    expect(other.seen).toEqual([]);
    // The upstream saw the edge's credentials (they are its own); the other host saw no request at all.
    expect(upstream.seen.length).toBeGreaterThan(0);
  });

  it("on a host the upstream's tokenRealms names gets the credentials, and the pull works", async () => {
    const res = await manifestAt("trusting/team/app");
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(images[0]!.manifest)).toBe(true);
    const tokenRequests = other.seen.filter((r) => r.url.startsWith("/token"));
    expect(tokenRequests.length).toBe(1);
    expect(tokenRequests[0]!.authorization).toBe(BASIC);
  });

  it("a blob the upstream redirects to another host is fetched there without the credentials", async () => {
    const [digest, bytes] = [...images[0]!.blobs].at(-1)!;
    const res = await fetch(`${edge.url}/v2/trusting/team/app/blobs/${digest}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    // The upstream got the token; the CDN host got the read, and no Authorization with it.
    expect(upstream.seen.some((r) => r.url.endsWith(digest) && r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    const cdn = other.seen.filter((r) => r.url === `/${digest}`);
    expect(cdn.length).toBe(1);
    expect(cdn[0]!.authorization).toBeUndefined();
  });
});
