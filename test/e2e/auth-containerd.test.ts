import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startDevcluster, type Devcluster } from "../helpers/devcluster.js";
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
let containerd: ChildProcess;
let socket: string;
let output = "";

beforeAll(async () => {
  cluster = await startDevcluster({ SHOAL_AUTH: JSON.stringify(SETTING) });
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-ctr-auth-"));
  const image = await buildImage({ layers: [400 * 1024] });
  for (const name of ["public/app:v1", "private/app:v1"]) {
    await skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${cluster.edgeHost}/${name}`, ["--dest-creds", `ci:${SECRET}`]);
  }
  socket = path.join(scratch, "containerd.sock");
  const config = path.join(scratch, "config.toml");
  await writeFile(
    config,
    [
      "version = 2",
      `root = "${path.join(scratch, "root")}"`,
      `state = "${path.join(scratch, "state")}"`,
      `disabled_plugins = ["io.containerd.grpc.v1.cri"]`,
      "[grpc]",
      `  address = "${socket}"`,
      "[ttrpc]",
      `  address = "${socket}.ttrpc"`,
      "",
    ].join("\n"),
  );
  containerd = spawn("containerd", ["--config", config], { stdio: ["ignore", "pipe", "pipe"] });
  containerd.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  containerd.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 20_000;
  while (!existsSync(socket)) {
    if (containerd.exitCode !== null || Date.now() > deadline) throw new Error(`containerd did not start: ${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const hosts = path.join(scratch, "certs.d", MIRRORED);
  await mkdir(hosts, { recursive: true });
  await writeFile(path.join(hosts, "hosts.toml"), [`server = "https://${MIRRORED}"`, "", `[host."${cluster.agents[0]!.registry}"]`, `  capabilities = ["pull", "resolve"]`, ""].join("\n"));
});
afterAll(async () => {
  if (containerd && containerd.exitCode === null) {
    const exited = new Promise((r) => containerd.once("exit", r));
    containerd.kill("SIGTERM");
    await exited;
  }
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
