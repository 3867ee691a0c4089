import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { request } from "undici";
import { freePort, startDevcluster, type Devcluster } from "../helpers/devcluster.js";
import { startDistribution } from "../helpers/distribution.js";
import { buildImage, layoutManifest, skopeo, skopeoCopy } from "../helpers/images.js";
import type { ServiceProcess } from "../helpers/service-process.js";

/**
 * Pull-through from an upstream registry and replication to a remote one, against real
 * distribution registries (Debian's docker-registry), with clients pulling through the agents.
 */
const TOKEN = "upstream-token-42";
let scratch: string;
let upstreamPort: number;
let targetPort: number;
let upstream: ServiceProcess;
let target: ServiceProcess;
let proxy: TokenProxy;
let cluster: Devcluster;
let layers: string[];
let image: { layout: string; tag: string };

/**
 * Token auth in front of a registry, as Docker Hub does it: 401 with a Bearer challenge, a token
 * service that wants basic credentials, then requests with the token are passed on. Counts traffic.
 */
interface TokenProxy {
  url: string;
  counts: { tokens: number; manifests: number; blobs: number };
  close(): Promise<void>;
}

async function startTokenProxy(backend: () => number): Promise<TokenProxy> {
  const port = await freePort();
  const counts = { tokens: 0, manifests: 0, blobs: 0 };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", `http://127.0.0.1:${port}`);
    if (url.pathname === "/token") {
      counts.tokens++;
      const ok = req.headers.authorization === `Basic ${Buffer.from("puller:pull-secret").toString("base64")}`;
      res.writeHead(ok ? 200 : 401, { "content-type": "application/json" });
      return void res.end(ok ? JSON.stringify({ token: TOKEN, expires_in: 300 }) : "{}");
    }
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { "www-authenticate": `Bearer realm="http://127.0.0.1:${port}/token",service="test-registry",scope="repository:library/app:pull"` });
      return void res.end();
    }
    if (url.pathname.includes("/manifests/")) counts.manifests++;
    if (url.pathname.includes("/blobs/")) counts.blobs++;
    request(`http://127.0.0.1:${backend()}${req.url}`, { method: req.method as "GET", headers: { accept: req.headers.accept ?? "*/*" } })
      .then((up) => {
        const headers = Object.fromEntries(Object.entries(up.headers).filter(([k]) => !["connection", "transfer-encoding"].includes(k)));
        res.writeHead(up.statusCode, headers as http.OutgoingHttpHeaders);
        up.body.pipe(res);
      })
      .catch(() => {
        res.writeHead(503);
        res.end();
      });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${port}`, counts, close: () => new Promise((r) => server.close(() => r())) };
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-upstreams-"));
  upstreamPort = await freePort();
  targetPort = await freePort();
  upstream = await startDistribution(path.join(scratch, "upstream"), upstreamPort);
  target = await startDistribution(path.join(scratch, "target"), targetPort);
  proxy = await startTokenProxy(() => upstreamPort);
  image = await buildImage({ layers: [512 * 1024, 2 * 1024 * 1024] });
  layers = (await layoutManifest(image.layout, image.tag)).layers.map((l) => l.digest);
  await skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://127.0.0.1:${upstreamPort}/library/app:v1`);
  cluster = await startDevcluster({
    SHOAL_UPSTREAMS: JSON.stringify({ "hub/": { url: proxy.url, username: "puller", password: "pull-secret", tagTtlSeconds: 1 } }),
    SHOAL_REPLICATION: JSON.stringify({ "rep/": `http://127.0.0.1:${targetPort}` }),
  });
});
afterAll(async () => {
  await cluster?.stop();
  await proxy?.close();
  await upstream?.stop();
  await target?.stop();
  await rm(scratch, { recursive: true, force: true });
});

const pulledLayers = async (ref: string, name: string) => {
  const out = path.join(scratch, name);
  await skopeoCopy(`docker://${ref}`, `oci:${out}:x`);
  return (await layoutManifest(out, "x")).layers.map((l) => l.digest);
};

describe("pull-through", () => {
  it("resolves an image the edge never had at its upstream (token auth), through an agent", async () => {
    expect(await pulledLayers(`${cluster.agents[0]!.registryHost}/hub/library/app:v1`, "via-one")).toEqual(layers);
    expect(proxy.counts.tokens).toBeGreaterThanOrEqual(1);
    expect(proxy.counts.blobs).toBe(layers.length + 1); // the layers and the config, once each
  });

  it("serves later pulls from the edge, and the cached tag while the upstream is down", async () => {
    const blobsBefore = proxy.counts.blobs;
    expect(await pulledLayers(`${cluster.agents[1]!.registryHost}/hub/library/app:v1`, "via-two")).toEqual(layers);
    expect(proxy.counts.blobs).toBe(blobsBefore); // content never asked of the upstream again
    await upstream.stop();
    await new Promise((r) => setTimeout(r, 1_500)); // past the tag's time to live
    const res = await fetch(`${cluster.edgeUrl}/v2/hub/library/app/manifests/v1`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
    expect(res.status).toBe(200);
    // The edge's log line comes through the devcluster's log pipe: wait for it rather than race it.
    const deadline = Date.now() + 10_000;
    while (!/upstream unavailable: serving the tag as last resolved/.test(cluster.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(cluster.output()).toMatch(/upstream unavailable: serving the tag as last resolved/);
    expect(await pulledLayers(`${cluster.edgeHost}/hub/library/app:v1`, "upstream-down")).toEqual(layers);
    const unknown = await fetch(`${cluster.edgeUrl}/v2/hub/library/app/manifests/never`);
    expect(unknown.status).toBe(503);
    expect(((await unknown.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/upstream .* answered 503|unreachable|fetch failed/);
    upstream = await startDistribution(path.join(scratch, "upstream"), upstreamPort);
  });
});

describe("replication", () => {
  const targetTags = async () => {
    const res = await fetch(`http://127.0.0.1:${targetPort}/v2/app/tags/list`).catch(() => undefined);
    return res?.ok ? ((await res.json()) as { tags: string[] }).tags : [];
  };
  const until = async (check: () => Promise<boolean>, ms: number, what: string) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  it("copies a pushed tag to the remote registry within seconds", async () => {
    const started = Date.now();
    await skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${cluster.edgeHost}/rep/app:v1`);
    await until(async () => (await targetTags()).includes("v1"), 15_000, "v1 at the target");
    process.stdout.write(`replicated in ${Date.now() - started} ms\n`);
    const [edgeDigest, targetDigest] = await Promise.all(
      [`${cluster.edgeHost}/rep/app:v1`, `127.0.0.1:${targetPort}/app:v1`].map(async (ref) => JSON.parse((await skopeo(["inspect", "--tls-verify=false", `docker://${ref}`])).stdout).Digest),
    );
    expect(targetDigest).toBe(edgeDigest);
    expect(await pulledLayers(`127.0.0.1:${targetPort}/app:v1`, "from-target")).toEqual(layers);
  });

  it("keeps a tag pushed during the remote's outage and copies it once the remote is back", async () => {
    await target.stop();
    await skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${cluster.edgeHost}/rep/app:v2`);
    type Status = { pending: number; failing: number; jobs: { tag: string; attempts: number; lastError: string | null; state: string }[] };
    let status: Status | undefined;
    await until(
      async () => {
        status = (await (await fetch(`${cluster.edgeUrl}/shoal/v1/replication`)).json()) as Status;
        return status.jobs.some((j) => j.tag === "v2" && j.attempts >= 1);
      },
      15_000,
      "a failed attempt",
    );
    const failing = status!.jobs.find((j) => j.tag === "v2")!;
    expect(failing.state).toBe("pending");
    expect(failing.lastError).toMatch(/127\.0\.0\.1:\d+/);
    target = await startDistribution(path.join(scratch, "target"), targetPort);
    await until(async () => (await targetTags()).includes("v2"), 30_000, "v2 at the target");
    // The tag lands at the target just before the queue records the copy as done.
    const queue = async () => (await (await fetch(`${cluster.edgeUrl}/shoal/v1/replication`)).json()) as Status;
    await until(async () => (await queue()).jobs.find((j) => j.tag === "v2")?.state === "done", 10_000, "the copy recorded as done");
    const done = await queue();
    expect(done.jobs.find((j) => j.tag === "v2")?.state).toBe("done");
    expect(done.pending).toBe(0);
  });
});
