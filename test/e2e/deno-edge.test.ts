import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { startDenoEdge } from "../helpers/deno-edge.js";
import { buildImage, layoutManifest, run, skopeoCopy } from "../helpers/images.js";
import { startAgentProcess, type AgentHandle } from "../helpers/processes.js";
import { pushBlobChunked, sha256 } from "../helpers/registry-client.js";

/**
 * The self-hosted edge on Deno (`npm run edge:deno`): the Worker's app with file-backed storage,
 * driven by skopeo, podman and agents as the Worker is. (The worker suites also run against it:
 * `npm run test:deno-edge`.)
 */
let home: string;
let scratch: string;
let edge: Awaited<ReturnType<typeof startDenoEdge>>;
const agents: AgentHandle[] = [];

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-deno-"));
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-deno-scratch-"));
  edge = await startDenoEdge(home);
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.proc.stop()));
  await edge?.service.stop();
  await rm(home, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
});

describe("the Deno edge with real clients", () => {
  let layers: string[];

  it("takes a skopeo push and gives it back, every layer verified", async () => {
    const image = await buildImage({ layers: [2 * 1024 * 1024, 30 * 1024 * 1024] });
    layers = (await layoutManifest(image.layout, image.tag)).layers.map((l) => l.digest);
    await skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${edge.host}/deno/app:v1`);
    const out = path.join(scratch, "pulled");
    await skopeoCopy(`docker://${edge.host}/deno/app:v1`, `oci:${out}:v1`);
    expect((await layoutManifest(out, "v1")).layers.map((l) => l.digest)).toEqual(layers);
  });

  it("takes a podman push and pull", async () => {
    const podman = (args: string[]) => run("podman", [`--root=${path.join(scratch, "podman-root")}`, `--runroot=${path.join(scratch, "run")}`, ...args], { maxBuffer: 1 << 26 });
    await skopeoCopy(`docker://${edge.host}/deno/app:v1`, `oci-archive:${path.join(scratch, "app.tar")}`);
    await podman(["pull", `oci-archive:${path.join(scratch, "app.tar")}`]);
    const id = (await podman(["images", "-q"])).stdout.trim().split("\n")[0]!;
    await podman(["tag", id, `${edge.host}/deno/podman:v1`]);
    await podman(["push", "--tls-verify=false", `${edge.host}/deno/podman:v1`]);
    await podman(["rmi", "-a", "-f"]);
    await podman(["pull", "--tls-verify=false", `${edge.host}/deno/podman:v1`]);
    const tags = await (await fetch(`${edge.url}/v2/deno/podman/tags/list`)).json();
    expect(tags).toEqual({ name: "deno/podman", tags: ["v1"] });
  });

  it("stores a chunked upload across multipart parts and keeps everything across a restart", async () => {
    const blob = randomBytes(40 * 1024 * 1024 + 123);
    const digest = await pushBlobChunked(edge.url, "deno/big", blob, 7 * 1024 * 1024);
    await edge.service.stop();
    edge = await startDenoEdge(home, {}, edge.port);
    const res = await fetch(`${edge.url}/v2/deno/big/blobs/${digest}`);
    expect(res.status).toBe(200);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest);
    const out = path.join(scratch, "after-restart");
    await skopeoCopy(`docker://${edge.host}/deno/app:v1`, `oci:${out}:v1`);
    expect((await layoutManifest(out, "v1")).layers.map((l) => l.digest)).toEqual(layers);
  });

  it("is an edge for agents: metainfo, tracker and web seed, and they share pieces", async () => {
    for (let i = 0; i < 2; i++) agents.push(await startAgentProcess(edge.url, { extra: ["--peer-ip=127.0.0.1"] }));
    const [one, two] = agents as [AgentHandle, AgentHandle];
    const big = layers[1]!;
    for (const agent of [one, two]) {
      const res = await fetch(`${agent.registry}/v2/deno/app/blobs/${big}`);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(big);
    }
    expect(await two.metric("shoal_agent_bytes_downloaded_total", '{source="peer"}')).toBeGreaterThanOrEqual(15 * 1024 * 1024);
  });
});
