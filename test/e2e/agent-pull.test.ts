import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildImage, layoutManifest, run, skopeoCopy } from "../helpers/images.js";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { freePort } from "../helpers/devcluster.js";
import { pushBlob, pushImage, sha256 } from "../helpers/registry-client.js";
import { pieceCount, pieceLengthFor } from "../../src/shared/p2p/metainfo.js";

/** The agent with real clients: edge and agents as separate processes, real ports. */
let home: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;
let one: AgentHandle;
let two: AgentHandle;
const started: AgentHandle[] = [];

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-agent-e2e-"));
  edge = await startEdgeProcess(home);
  one = await startAgentProcess(edge.url);
  two = await startAgentProcess(edge.url);
  started.push(one, two);
});
afterAll(async () => {
  for (const agent of started) await agent.proc.stop();
  await edge?.proc.stop();
  await rm(home, { recursive: true, force: true });
});

async function fileDigest(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

async function pullVerify(ref: string, expected: string[]): Promise<void> {
  const out = path.join(home, `pull-${Math.random().toString(36).slice(2)}`);
  await skopeoCopy(`docker://${ref}`, `oci:${out}:p`, ["--preserve-digests"]);
  const manifest = await layoutManifest(out, "p");
  expect(manifest.layers.map((l) => l.digest)).toEqual(expected);
  for (const l of manifest.layers) expect(await fileDigest(path.join(out, "blobs/sha256", l.digest.slice(7)))).toBe(l.digest);
}

const podman = (args: string[]) =>
  run("podman", [`--root=${path.join(home, "podman-root")}`, `--runroot=${path.join(home, "run")}`, ...args], { maxBuffer: 1 << 26 });

describe("pulling through agents", () => {
  it("skopeo pulls an image pushed to the edge through each agent; podman too", async () => {
    const { layout, tag } = await buildImage({ layers: [1_500_000, 300_000] });
    const layers = (await layoutManifest(layout, tag)).layers.map((l) => l.digest);
    await skopeoCopy(`oci:${layout}:${tag}`, `docker://${edge.host}/agent/app:v1`);
    await pullVerify(`${one.registryHost}/agent/app:v1`, layers);
    await pullVerify(`${two.registryHost}/agent/app:v1`, layers);
    await podman(["pull", "--tls-verify=false", `${one.registryHost}/agent/app:v1`]);
    const { stdout } = await podman(["image", "inspect", `${one.registryHost}/agent/app:v1`]);
    expect(JSON.parse(stdout)[0].RootFS.Layers).toHaveLength(2);
    expect(await one.metric("shoal_agent_bytes_downloaded_total", '{source="origin"}')).toBeGreaterThan(1_800_000);
  });

  it("is podman's mirror for another registry, under a repository prefix (registries.conf)", async () => {
    // As a node would map docker.io onto a pull-through prefix: mirror location "agent/hub".
    const conf = path.join(home, "registries.conf");
    await writeFile(
      conf,
      ['[[registry]]', 'prefix = "prefixed.example.com"', 'location = "prefixed.example.com"', "", "[[registry.mirror]]", `location = "${two.registryHost}/agent"`, "insecure = true", ""].join("\n"),
    );
    const pulled = await run("podman", [`--root=${path.join(home, "podman-root")}`, `--runroot=${path.join(home, "run")}`, "pull", "prefixed.example.com/app:v1"], {
      env: { ...process.env, CONTAINERS_REGISTRIES_CONF: conf },
      maxBuffer: 1 << 26,
    });
    const id = pulled.stdout.trim().split("\n").at(-1)!;
    const { stdout } = await podman(["image", "inspect", "prefixed.example.com/app:v1"]);
    // prefixed.example.com does not resolve: the agent served all of it, as agent/app:v1.
    expect(JSON.parse(stdout)[0]).toMatchObject({ Id: id, RootFS: { Layers: [expect.any(String), expect.any(String)] } });
  });

  it("serves the same image a second time from its store, with the edge stopped", async () => {
    const { layout, tag } = await buildImage({ layers: [800_000] });
    const layers = (await layoutManifest(layout, tag)).layers.map((l) => l.digest);
    await skopeoCopy(`oci:${layout}:${tag}`, `docker://${edge.host}/agent/offline:v1`);
    const manifestDigest = (await fetch(`${edge.url}/v2/agent/offline/manifests/v1`, { method: "HEAD" })).headers.get("Docker-Content-Digest")!;
    await pullVerify(`${one.registryHost}/agent/offline:v1`, layers);
    const fetchesBefore = await one.metric("shoal_agent_edge_fetches_total", '{kind="blob"}');
    await edge.proc.stop();
    try {
      // By tag (the tag as last resolved, with a logged warning) and by digest.
      await pullVerify(`${one.registryHost}/agent/offline:v1`, layers);
      await pullVerify(`${one.registryHost}/agent/offline@${manifestDigest}`, layers);
      expect(await one.metric("shoal_agent_edge_fetches_total", '{kind="blob"}')).toBe(fetchesBefore);
      // Content it never had is a clear 503, not a hang.
      const missing = await fetch(`${one.registry}/v2/agent/offline/blobs/${sha256("never pulled")}`);
      expect(missing.status).toBe(503);
      expect(((await missing.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/edge is unavailable/);
    } finally {
      edge = await startEdgeProcess(home, {}, edge.port);
    }
  });

  it("keeps its store across a restart", async () => {
    const { layout, tag } = await buildImage({ layers: [600_000] });
    const layers = (await layoutManifest(layout, tag)).layers.map((l) => l.digest);
    await skopeoCopy(`oci:${layout}:${tag}`, `docker://${edge.host}/agent/restart:v1`);
    const ports: [number, number, number] = [await freePort(), await freePort(), await freePort()];
    const first = await startAgentProcess(edge.url, { ports });
    started.push(first);
    await pullVerify(`${first.registryHost}/agent/restart:v1`, layers);
    await first.proc.stop();
    const again = await startAgentProcess(edge.url, { ports, storeDir: first.storeDir });
    started.push(again);
    await pullVerify(`${again.registryHost}/agent/restart:v1`, layers);
    expect(await again.metric("shoal_agent_edge_fetches_total", '{kind="blob"}')).toBe(0);
    const status = (await (await fetch(`${again.admin}/v1/status`)).json()) as { store: { blobs: number } };
    expect(status.store.blobs).toBeGreaterThanOrEqual(3);
  });

  it("evicts least-recently-used blobs to stay under a small capacity", async () => {
    const small = await startAgentProcess(edge.url, { extra: ["--store-capacity=3MB"] });
    started.push(small);
    const digests: string[] = [];
    for (let i = 0; i < 3; i++) {
      const blob = randomBytes(1_200_000);
      digests.push(await pushBlob(edge.url, "agent/evict", blob));
      const res = await fetch(`${small.registry}/v2/agent/evict/blobs/${digests[i]}`);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digests[i]);
    }
    // A blob fetched piece by piece is answered as its pieces verify; it joins the store (and the
    // oldest leaves it) when its download commits, a moment after the client has its last byte.
    const files = () => readdir(path.join(small.storeDir, "blobs/sha256"));
    await expect.poll(files, { timeout: 10_000 }).toContain(digests[2]!.slice(7));
    expect(await files()).not.toContain(digests[0]!.slice(7));
    const status = (await (await fetch(`${small.admin}/v1/status`)).json()) as { store: { bytes: number; blobs: number } };
    expect(status.store.bytes).toBeLessThanOrEqual(3_000_000);
  });

  it("50 parallel pulls of one blob fetch it from the edge once", async () => {
    const fresh = await startAgentProcess(edge.url);
    started.push(fresh);
    const blob = randomBytes(24 * 1024 * 1024);
    const digest = await pushBlob(edge.url, "agent/herd", blob);
    const results = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const res = await fetch(`${fresh.registry}/v2/agent/herd/blobs/${digest}`);
        expect(res.status).toBe(200);
        return sha256(Buffer.from(await res.arrayBuffer()));
      }),
    );
    expect(new Set(results)).toEqual(new Set([digest]));
    // One download: exactly one copy came from the edge (as web-seed pieces), one blob stored.
    expect(await fresh.metric("shoal_agent_blobs_total")).toBe(1);
    expect(await fresh.metric("shoal_agent_bytes_downloaded_total", '{source="origin"}')).toBe(blob.length);
    expect(await fresh.metric("shoal_agent_edge_fetches_total", '{kind="piece"}')).toBe(pieceCount(blob.length, pieceLengthFor(blob.length)));
  });

  it("serves Range requests and OCI errors for unknown content", async () => {
    const digest = await pushBlob(edge.url, "agent/range", "0123456789");
    const res = await fetch(`${one.registry}/v2/agent/range/blobs/${digest}`, { headers: { Range: "bytes=3-6" } });
    expect(res.status).toBe(206);
    expect(await res.text()).toBe("3456");
    const unknown = await fetch(`${one.registry}/v2/agent/range/blobs/${sha256("nope")}`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("BLOB_UNKNOWN");
    const badName = await fetch(`${one.registry}/v2/Bad/manifests/latest`);
    expect(badName.status).toBe(400);
    expect(((await badName.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("NAME_INVALID");
    const tag = await fetch(`${one.registry}/v2/agent/range/manifests/nope`);
    expect(tag.status).toBe(404);
    expect(((await tag.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("MANIFEST_UNKNOWN");
    const plain = await fetch(`${one.registry}/namespace/agent/range/blobs/${digest}`);
    expect(await plain.text()).toBe("0123456789");
  });
});

describe("pushing through an agent", () => {
  it("skopeo pushes a 200 MB layer through the agent, which chunks it under the edge's limit", async () => {
    const { layout, tag } = await buildImage({ layers: [200 * 1000 * 1000] });
    const layers = (await layoutManifest(layout, tag)).layers.map((l) => l.digest);
    await skopeoCopy(`oci:${layout}:${tag}`, `docker://${one.registryHost}/agent/pushed:v1`);
    // At the edge, then back through the other agent.
    const head = await fetch(`${edge.url}/v2/agent/pushed/blobs/${layers[0]}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    await pullVerify(`${two.registryHost}/agent/pushed:v1`, layers);
  });

  it("podman pushes through the agent; tags and catalog read through", async () => {
    await pushImage(edge.url, "agent/list", "a");
    const tags = await fetch(`${one.registry}/v2/agent/list/tags/list`);
    expect(await tags.json()).toEqual({ name: "agent/list", tags: ["a"] });
    const rootfs = path.join(home, "rootfs.tar");
    await run("tar", ["-C", "/usr/share/doc/podman", "-cf", rootfs, "."]);
    await podman(["import", rootfs, `${one.registryHost}/agent/podman:v1`]);
    await podman(["push", "--tls-verify=false", `${one.registryHost}/agent/podman:v1`]);
    expect((await fetch(`${edge.url}/v2/agent/podman/manifests/v1`, { method: "HEAD" })).status).toBe(200);
  });
});
