import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startDevcluster, type Devcluster } from "../helpers/devcluster.js";
import { buildImage, buildMultiArchIndex, layoutManifest, run, skopeo, skopeoCopy } from "../helpers/images.js";
import { pushBlobChunked, pushManifest, sha256 } from "../helpers/registry-client.js";

/** The devcluster's edge with real clients: skopeo and podman push and pull over HTTP. */
let cluster: Devcluster;
let scratch: string;
beforeAll(async () => {
  cluster = await startDevcluster();
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-e2e-"));
});
afterAll(async () => {
  await cluster?.stop();
  await rm(scratch, { recursive: true, force: true });
});

async function fileDigest(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

/** Pulls back into a fresh layout and checks every layer's bytes against its digest. */
async function pullAndVerify(ref: string, expectedLayers: string[]): Promise<void> {
  const out = path.join(scratch, `pull-${Math.random().toString(36).slice(2)}`);
  await skopeoCopy(`docker://${ref}`, `oci:${out}:pulled`, ["--preserve-digests"]);
  const manifest = await layoutManifest(out, "pulled");
  expect(manifest.layers.map((l) => l.digest)).toEqual(expectedLayers);
  for (const layer of manifest.layers) {
    expect(await fileDigest(path.join(out, "blobs/sha256", layer.digest.slice(7)))).toBe(layer.digest);
  }
}

describe("skopeo against the edge", () => {
  it("pushes and pulls a one-layer image", async () => {
    const { layout, tag } = await buildImage({ layers: [2_000_000] });
    const source = await layoutManifest(layout, tag);
    await skopeoCopy(`oci:${layout}:${tag}`, `docker://${cluster.edgeHost}/e2e/one:v1`);
    const { stdout } = await skopeo(["inspect", "--tls-verify=false", `docker://${cluster.edgeHost}/e2e/one:v1`]);
    expect(JSON.parse(stdout).Layers).toEqual(source.layers.map((l) => l.digest));
    await pullAndVerify(`${cluster.edgeHost}/e2e/one:v1`, source.layers.map((l) => l.digest));
  });

  it("pushes and pulls a many-layer image", async () => {
    const { layout, tag } = await buildImage({ layers: [1000, 50_000, 300_000, 7, 1_500_000, 20, 64_000, 5_000, 900_000, 12] });
    const source = await layoutManifest(layout, tag);
    expect(source.layers).toHaveLength(10);
    await skopeoCopy(`oci:${layout}:${tag}`, `docker://${cluster.edgeHost}/e2e/many:v1`);
    await pullAndVerify(`${cluster.edgeHost}/e2e/many:v1`, source.layers.map((l) => l.digest));
  });

  it("pushes and pulls a multi-architecture OCI index with --all", async () => {
    const { layout, tag } = await buildMultiArchIndex(["amd64", "arm64", "s390x"]);
    await skopeoCopy(`oci:${layout}:${tag}`, `docker://${cluster.edgeHost}/e2e/multi:v1`, ["--all"]);
    const { stdout } = await skopeo(["inspect", "--raw", "--tls-verify=false", `docker://${cluster.edgeHost}/e2e/multi:v1`]);
    const index = JSON.parse(stdout) as { mediaType: string; manifests: { platform: { architecture: string } }[] };
    expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(index.manifests.map((m) => m.platform.architecture)).toEqual(["amd64", "arm64", "s390x"]);
    const out = path.join(scratch, "multi-pull");
    await skopeoCopy(`docker://${cluster.edgeHost}/e2e/multi:v1`, `oci:${out}:all`, ["--all"]);
    const arm = await skopeo(["inspect", "--tls-verify=false", "--override-arch=arm64", `docker://${cluster.edgeHost}/e2e/multi:v1`]);
    expect(JSON.parse(arm.stdout).Architecture).toBe("arm64");
  });

  it("a 200 MB layer goes up in chunks under the edge's limit and comes back intact", async () => {
    // skopeo and podman send a layer in one PATCH; over the edge's 100 MB limit they get a clear
    // 413. The chunked push (as the agent will do for them) is what gets such a layer in.
    const layer = randomBytes(200 * 1000 * 1000);
    const layerDigest = await pushBlobChunked(cluster.edgeUrl, "e2e/big", layer, 64 * 1024 * 1024);
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layerDigest] } }));
    const configDigest = await pushBlobChunked(cluster.edgeUrl, "e2e/big", config, 1024);
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layerDigest, size: layer.length }],
    };
    expect((await pushManifest(cluster.edgeUrl, "e2e/big", "v1", manifest, manifest.mediaType)).status).toBe(201);
    await pullAndVerify(`${cluster.edgeHost}/e2e/big:v1`, [layerDigest]);
  });

  it("skopeo pushing a layer over the chunk limit in one request gets a readable 413", async () => {
    const { layout, tag } = await buildImage({ layers: [110 * 1000 * 1000] });
    const error = await skopeoCopy(`oci:${layout}:${tag}`, `docker://${cluster.edgeHost}/e2e/toobig:v1`).then(
      () => undefined,
      (e: { stderr: string }) => e.stderr,
    );
    expect(error).toMatch(/at most 100000000 bytes|SIZE_INVALID|size invalid|413/i);
    // Nothing became visible.
    expect((await fetch(`${cluster.edgeUrl}/v2/e2e/toobig/tags/list`)).status).toBe(404);
  });
});

describe("podman against the edge", () => {
  const podman = (args: string[]) => run("podman", [`--root=${path.join(scratch, "podman-root")}`, `--runroot=${path.join(scratch, "run")}`, ...args], { maxBuffer: 1 << 26 });

  it("pushes an imported image and pulls it back", async () => {
    const rootfs = path.join(scratch, "rootfs.tar");
    await run("tar", ["-C", "/usr/share/doc/skopeo", "-cf", rootfs, "."]);
    await podman(["import", rootfs, `${cluster.edgeHost}/e2e/podman:v1`]);
    await podman(["push", "--tls-verify=false", `${cluster.edgeHost}/e2e/podman:v1`]);
    await podman(["rmi", "-a", "-f"]);
    await podman(["pull", "--tls-verify=false", `${cluster.edgeHost}/e2e/podman:v1`]);
    const { stdout } = await podman(["image", "inspect", `${cluster.edgeHost}/e2e/podman:v1`]);
    expect(JSON.parse(stdout)[0].RepoTags).toContain(`${cluster.edgeHost}/e2e/podman:v1`);
  });

  it("pulls through agent one and agent two of the devcluster (npm start)", async () => {
    const { layout, tag } = await buildImage({ layers: [700_000] });
    const layers = (await layoutManifest(layout, tag)).layers.map((l) => l.digest);
    await skopeoCopy(`oci:${layout}:${tag}`, `docker://${cluster.edgeHost}/e2e/via-agents:v1`);
    for (const agent of cluster.agents) {
      await pullAndVerify(`${agent.registryHost}/e2e/via-agents:v1`, layers);
      await podman(["pull", "--tls-verify=false", `${agent.registryHost}/e2e/via-agents:v1`]);
      expect((await fetch(`${agent.admin}/health`)).status).toBe(200);
    }
  });

  it("pulls an image skopeo pushed, after the edge restarts (state persisted)", async () => {
    const { layout, tag } = await buildImage({ layers: [500_000] });
    await skopeoCopy(`oci:${layout}:${tag}`, `docker://${cluster.edgeHost}/e2e/restart:v1`);
    await cluster.stop();
    cluster = await startDevcluster({}, cluster.home);
    await podman(["pull", "--tls-verify=false", `${cluster.edgeHost}/e2e/restart:v1`]);
    const { stdout } = await podman(["image", "inspect", `${cluster.edgeHost}/e2e/restart:v1`]);
    expect(JSON.parse(stdout)[0].RootFS.Layers).toHaveLength(1);
  });
});
