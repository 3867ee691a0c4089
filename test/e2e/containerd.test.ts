import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startDevcluster, type Devcluster } from "../helpers/devcluster.js";
import { startContainerd } from "../helpers/containerd.js";
import { buildImage, layoutManifest, run, skopeoCopy } from "../helpers/images.js";

/**
 * The agent as containerd's registry mirror: a real containerd (its own config, state and socket)
 * with a `hosts.toml` that sends `registry.example.com` to the agent. containerd adds
 * `?ns=registry.example.com` to every request; the agent serves them from its store, its peers and
 * the edge. Needs root (containerd), as CI runs.
 */
const MIRRORED = "registry.example.com";
const PREFIXED = "prefixed.example.com";
let cluster: Devcluster;
let scratch: string;
let containerd: Awaited<ReturnType<typeof startContainerd>> | undefined;
let socket: string;

beforeAll(async () => {
  cluster = await startDevcluster();
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-containerd-"));
  const image = await buildImage({ layers: [700 * 1024] });
  await skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${cluster.edgeHost}/mirror/app:v1`);

  containerd = await startContainerd(scratch);
  socket = containerd.socket;

  // What a node's /etc/containerd/certs.d/<registry>/hosts.toml holds (see the README).
  const hosts = path.join(scratch, "certs.d", MIRRORED);
  await mkdir(hosts, { recursive: true });
  await writeFile(
    path.join(hosts, "hosts.toml"),
    [`server = "https://${MIRRORED}"`, "", `[host."${cluster.agents[0]!.registry}"]`, `  capabilities = ["pull", "resolve"]`, ""].join("\n"),
  );
  // A registry whose repositories sit under a prefix at the edge (as docker.io's would under a
  // pull-through prefix such as hub/): the host's path replaces /v2 (override_path).
  const prefixed = path.join(scratch, "certs.d", PREFIXED);
  await mkdir(prefixed, { recursive: true });
  await writeFile(
    path.join(prefixed, "hosts.toml"),
    [`server = "https://${PREFIXED}"`, "", `[host."${cluster.agents[1]!.registry}/v2/mirror"]`, `  capabilities = ["pull", "resolve"]`, "  override_path = true", ""].join("\n"),
  );
});
afterAll(async () => {
  await containerd?.stop();
  await cluster?.stop();
  await rm(scratch, { recursive: true, force: true });
});

const ctr = (args: string[]) => run("ctr", ["--address", socket, "--namespace", "shoal-test", ...args], { maxBuffer: 1 << 24 });

describe("containerd with the agent as its mirror", () => {
  it("resolves and pulls registry.example.com/mirror/app:v1 through the agent, and unpacks it", async () => {
    await ctr(["images", "pull", "--hosts-dir", path.join(scratch, "certs.d"), "--snapshotter", "native", `${MIRRORED}/mirror/app:v1`]);
    const { stdout } = await ctr(["images", "ls", "-q"]);
    expect(stdout.split("\n")).toContain(`${MIRRORED}/mirror/app:v1`);
    // The agent served it, with containerd's ns= query on each request.
    expect(cluster.output()).toMatch(/"url":"\/v2\/mirror\/app\/manifests\/v1\?ns=registry\.example\.com".*"status":200/);
    const layer = (await layoutManifest((await buildLayoutOf()).layout, "x")).layers[0]!.digest;
    expect(cluster.output()).toContain(`/v2/mirror/app/blobs/${layer}?ns=${MIRRORED}`);
    // Unpacked into a snapshot: the image's content is usable by containers.
    const snapshots = await ctr(["snapshots", "--snapshotter", "native", "ls"]);
    expect(snapshots.stdout.trim().split("\n").length).toBeGreaterThan(1);
  });

  it("maps another registry onto a repository prefix at the edge (override_path), as for docker.io → hub/", async () => {
    await ctr(["images", "pull", "--hosts-dir", path.join(scratch, "certs.d"), "--snapshotter", "native", `${PREFIXED}/app:v1`]);
    const { stdout } = await ctr(["images", "ls", "-q"]);
    expect(stdout.split("\n")).toContain(`${PREFIXED}/app:v1`);
    expect(cluster.output()).toMatch(/"url":"\/v2\/mirror\/app\/manifests\/v1\?ns=prefixed\.example\.com".*"status":200/);
  });
});

/** The image as the edge has it, for its layer digest. */
async function buildLayoutOf(): Promise<{ layout: string }> {
  const layout = path.join(scratch, "check");
  await skopeoCopy(`docker://${cluster.edgeHost}/mirror/app:v1`, `oci:${layout}:x`);
  return { layout };
}
