import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startDevcluster, type Devcluster } from "../helpers/devcluster.js";
import { startContainerd } from "../helpers/containerd.js";
import { buildImage, run, skopeoCopy } from "../helpers/images.js";

/**
 * containerd (real, its own config and socket) pulling through an agent mirror (hosts.toml) from a
 * devcluster with SHOAL_AUTH: a public repository anonymously; a private one only with the
 * credentials a kubelet would pass from its pull secret (`ctr --user`), which containerd trades
 * for a token at the agent's /token (the agent passes the token flow through to the edge).
 */
const SECRET = "ci-secret-0123456789abcdef0123";
const SETTING = {
  users: { ci: { password: SECRET, access: [{ repository: "*", actions: ["pull", "push"] }] } },
  anonymous: [{ repository: "public/*", actions: ["pull"] }],
};
const MIRRORED = "registry.example.com";
let cluster: Devcluster;
let scratch: string;
let containerd: Awaited<ReturnType<typeof startContainerd>> | undefined;
let socket: string;

beforeAll(async () => {
  cluster = await startDevcluster({ SHOAL_AUTH: JSON.stringify(SETTING) });
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-ctr-auth-"));
  const image = await buildImage({ layers: [400 * 1024] });
  for (const name of ["public/app:v1", "private/app:v1"]) {
    await skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${cluster.edgeHost}/${name}`, ["--dest-creds", `ci:${SECRET}`]);
  }
  containerd = await startContainerd(scratch);
  socket = containerd.socket;
  const hosts = path.join(scratch, "certs.d", MIRRORED);
  await mkdir(hosts, { recursive: true });
  await writeFile(path.join(hosts, "hosts.toml"), [`server = "https://${MIRRORED}"`, "", `[host."${cluster.agents[0]!.registry}"]`, `  capabilities = ["pull", "resolve"]`, ""].join("\n"));
});
afterAll(async () => {
  await containerd?.stop();
  await cluster?.stop();
  await rm(scratch, { recursive: true, force: true });
});

const pull = (ref: string, extra: string[] = []) =>
  run("ctr", ["--address", socket, "--namespace", "shoal-auth", "images", "pull", ...extra, "--hosts-dir", path.join(scratch, "certs.d"), "--snapshotter", "native", ref], { maxBuffer: 1 << 24 });

describe("containerd through an agent mirror with per-repository auth", () => {
  it("pulls a public repository anonymously", async () => {
    await pull(`${MIRRORED}/public/app:v1`);
    const { stdout } = await run("ctr", ["--address", socket, "--namespace", "shoal-auth", "images", "ls", "-q"]);
    expect(stdout.split("\n")).toContain(`${MIRRORED}/public/app:v1`);
  });

  it("is refused a private repository without credentials, and pulls it with the pull secret's", async () => {
    const refused = await pull(`${MIRRORED}/private/app:v1`).then(
      () => "pulled",
      (error: { stderr?: string }) => String(error.stderr ?? error),
    );
    expect(refused).not.toBe("pulled");
    expect(refused).toMatch(/401|403|unauthorized|denied/i);
    await pull(`${MIRRORED}/private/app:v1`, ["--user", `ci:${SECRET}`]);
    const { stdout } = await run("ctr", ["--address", socket, "--namespace", "shoal-auth", "images", "ls", "-q"]);
    expect(stdout.split("\n")).toContain(`${MIRRORED}/private/app:v1`);
  });
});
