import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments, parse as parseYaml, stringify } from "yaml";
import { bundleAgent } from "../../src/devcluster/build-agent.js";
import { freePorts } from "../../src/devcluster/ports.js";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { buildImage, layoutManifest, skopeoCopy } from "../helpers/images.js";
import { AGENT_ENV_ASSIGNMENTS, AGENT_NODE_FLAGS } from "../../src/agent-node/node-flags.js";

/**
 * The agent image as a platform team builds and runs it: the real Dockerfile, built by the real
 * Docker engine (a dockerd of this test's own, on its own socket and directories) from a local Node
 * base — these machines reach no image registry, so the base is a `docker import` of a minimal
 * root filesystem holding the host's own node — then run with the flags, mounts and security
 * settings of the DaemonSet that `shoal k8s` prints, against a real edge, and pulled through.
 */
const exec = promisify(execFile);
const TSX = path.resolve("node_modules/.bin/tsx");
const BASE = "shoal-test/node-base:local";
const IMAGE = "shoal-agent:test";

let dir: string;
let dockerd: ChildProcess;
let socket: string;
let edge: TestEdge;
let dockerdLog = "";
const docker = (args: string[], options: { timeout?: number } = {}) =>
  exec("docker", ["-H", `unix://${socket}`, ...args], { maxBuffer: 1 << 26, timeout: options.timeout ?? 300_000, env: { ...process.env, DOCKER_BUILDKIT: "0" } });

/** A root filesystem with node at /usr/local/bin/node (where the official images have it) and the libraries it links. */
async function nodeRootfs(root: string): Promise<void> {
  const { stdout } = await exec("ldd", [process.execPath]);
  const libraries = [...stdout.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!);
  for (const library of libraries) {
    await mkdir(path.join(root, path.dirname(library)), { recursive: true });
    await copyFile(library, path.join(root, library));
  }
  await mkdir(path.join(root, "usr/local/bin"), { recursive: true });
  await copyFile(process.execPath, path.join(root, "usr/local/bin/node"));
  await chmod(path.join(root, "usr/local/bin/node"), 0o755);
  for (const d of ["tmp", "etc", "var/lib", "opt"]) await mkdir(path.join(root, d), { recursive: true });
  await chmod(path.join(root, "tmp"), 0o1777);
  await writeFile(path.join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/false\nnode:x:1000:1000:node:/home/node:/bin/false\n");
  await writeFile(path.join(root, "etc/group"), "root:x:0:\nnode:x:1000:\n");
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "shoal-image-"));
  socket = path.join(dir, "docker.sock");
  dockerd = spawn(
    "dockerd",
    [
      `--data-root=${path.join(dir, "data")}`,
      `--exec-root=${path.join(dir, "exec")}`,
      `--pidfile=${path.join(dir, "dockerd.pid")}`,
      `-H`,
      `unix://${socket}`,
      "--storage-driver=vfs",
      "--iptables=false",
      "--ip6tables=false",
      "--bridge=none",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  dockerd.stdout!.on("data", (d: Buffer) => (dockerdLog += d.toString()));
  dockerd.stderr!.on("data", (d: Buffer) => (dockerdLog += d.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (dockerd.exitCode !== null) throw new Error(`dockerd exited: ${dockerdLog.slice(-2000)}`);
    try {
      await docker(["version"], { timeout: 5_000 });
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`dockerd did not start: ${dockerdLog.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  const rootfs = path.join(dir, "rootfs");
  await nodeRootfs(rootfs);
  await exec("sh", ["-c", `tar -C '${rootfs}' -c . | docker -H 'unix://${socket}' import - ${BASE}`]);
  edge = await startTestEdge();
}, 300_000);

afterAll(async () => {
  await edge?.destroy();
  if (dockerd && dockerd.exitCode === null) {
    const exited = new Promise((r) => dockerd.once("exit", r));
    dockerd.kill("SIGTERM");
    const timer = setTimeout(() => dockerd.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
  }
  // dockerd leaves its default network namespace mounted under its exec root.
  for (const line of (await readFile("/proc/mounts", "utf8")).split("\n")) {
    const mountPoint = line.split(" ")[1];
    if (dir && mountPoint?.startsWith(`${dir}/`)) await exec("umount", [mountPoint]).catch(() => undefined);
  }
  await rm(dir, { recursive: true, force: true });
}, 60_000);

describe("the agent image", () => {
  it("builds from packaging/Dockerfile with no network and runs the DaemonSet's agent against an edge, as a non-root user", async () => {
    // The build context: what the Dockerfile copies, laid out as in the repository.
    const context = path.join(dir, "context");
    await bundleAgent(path.join(context, "dist/shoal.mjs"));
    await copyFile(".dockerignore", path.join(context, ".dockerignore"));
    await docker(["build", "--network=none", "--build-arg", `NODE_IMAGE=${BASE}`, "-f", path.resolve("packaging/Dockerfile"), "-t", IMAGE, context]);
    const [config] = JSON.parse((await docker(["image", "inspect", IMAGE])).stdout) as { Config: { User: string; Entrypoint: string[]; Env: string[] } }[];
    expect(config!.Config.User).toBe("1000:1000");
    expect(config!.Config.Entrypoint).toEqual(["/usr/local/bin/node", ...AGENT_NODE_FLAGS, "/opt/shoal/shoal.mjs"]);
    for (const assignment of AGENT_ENV_ASSIGNMENTS) expect(config!.Config.Env).toContain(assignment);
    expect((await docker(["run", "--rm", "--network=none", IMAGE, "--version"])).stdout.trim()).toBe(JSON.parse(await readFile("package.json", "utf8")).version);

    // What a cluster would apply, unchanged but for the ports: this machine's devcluster owns 16000-16002.
    const secretFile = path.join(dir, "cluster-secret");
    await writeFile(secretFile, `${"ab".repeat(32)}\n`);
    const { stdout } = await exec(TSX, ["src/agent-node/main.ts", "k8s", "--edge", edge.url, "--image", IMAGE, "--cluster-secret-file", secretFile]);
    const documents = parseAllDocuments(stdout).map((d) => d.toJS());
    const secret = documents.find((d) => d.kind === "Secret");
    const configMap = documents.find((d) => d.kind === "ConfigMap");
    const pod = documents.find((d) => d.kind === "DaemonSet").spec.template.spec;
    const [container] = pod.containers;
    const [init] = pod.initContainers;
    expect(container.image).toBe(IMAGE);
    const [registryPort, peerPort, adminPort] = await freePorts(3);
    const agentYaml = { ...parseYaml(configMap.data["agent.yaml"]), agentRegistryPort: registryPort, peerPort, agentServerPort: adminPort };

    // The volumes as the kubelet makes them: the ConfigMap's file, the Secret's directory (root's,
    // group fsGroup, defaultMode), and the hostPath store (DirectoryOrCreate: root's, 0755).
    const volumes: Record<string, string> = { config: path.join(dir, "volumes/config/agent.yaml"), secrets: path.join(dir, "volumes/secrets"), store: path.join(dir, "volumes/store") };
    await mkdir(path.dirname(volumes.config!), { recursive: true });
    await writeFile(volumes.config!, stringify(agentYaml));
    await mkdir(volumes.secrets!, { recursive: true });
    const secretsYaml = path.join(volumes.secrets!, "secrets.yaml");
    await writeFile(secretsYaml, secret.stringData["secrets.yaml"]);
    await chown(secretsYaml, 0, pod.securityContext.fsGroup);
    await chmod(secretsYaml, pod.volumes.find((v: { name: string }) => v.name === "secrets").secret.defaultMode);
    await mkdir(volumes.store!, { recursive: true, mode: 0o755 });
    // An older agent that ran as root left a store behind: the init container hands it over too.
    await mkdir(path.join(volumes.store!, "store"), { recursive: true });
    await writeFile(path.join(volumes.store!, "store/left-by-root"), "x");

    const mounts = (list: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[]) =>
      list.flatMap((m) => ["-v", `${volumes[m.name]}:${m.mountPath}${m.readOnly ? ":ro" : ""}`]);
    const security = (context: { runAsUser?: number; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[]; add?: string[] } }, user: number) => [
      "--user",
      `${user}:${context.runAsUser === 0 ? 0 : pod.securityContext.runAsGroup}`,
      ...(context.runAsUser === 0 ? [] : ["--group-add", String(pod.securityContext.fsGroup)]),
      ...(context.readOnlyRootFilesystem ? ["--read-only"] : []),
      ...(context.allowPrivilegeEscalation === false ? ["--security-opt", "no-new-privileges"] : []),
      ...(context.capabilities?.drop ?? []).flatMap((c) => ["--cap-drop", c]),
      ...(context.capabilities?.add ?? []).flatMap((c) => ["--cap-add", c]),
    ];

    await docker(["run", "--rm", "--network=none", ...security(init.securityContext, init.securityContext.runAsUser), ...mounts(init.volumeMounts), "--entrypoint", init.command[0], IMAGE, ...init.command.slice(1)]);
    expect((await stat(volumes.store!)).uid).toBe(pod.securityContext.runAsUser);
    expect((await stat(path.join(volumes.store!, "store/left-by-root"))).uid).toBe(pod.securityContext.runAsUser);

    // hostNetwork: the container shares the host's network, as the DaemonSet's pod does.
    const args = container.args.map((a: string) => a.replace("$(HOST_IP)", "127.0.0.1"));
    const { stdout: id } = await docker(["run", "-d", "--name", "shoal-agent-test", "--network=host", ...security(container.securityContext, pod.securityContext.runAsUser), ...mounts(container.volumeMounts), "-e", "HOST_IP=127.0.0.1", IMAGE, ...args]);
    try {
      const admin = `http://127.0.0.1:${adminPort}`;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const health = await fetch(`${admin}${container.readinessProbe.httpGet.path}`).catch(() => undefined);
        if (health?.ok) break;
        if (Date.now() > deadline) throw new Error(`agent did not become ready: ${(await docker(["logs", id.trim()])).stderr}`);
        await new Promise((r) => setTimeout(r, 300));
      }
      // Push to the edge, pull through the containerised agent: every byte came through it.
      const source = await buildImage({ layers: [512 * 1024, 2 * 1024 * 1024] });
      await skopeoCopy(`oci:${source.layout}:${source.tag}`, `docker://${edge.url.replace("http://", "")}/img/app:v1`);
      const pulled = path.join(dir, "pulled");
      await skopeoCopy(`docker://127.0.0.1:${registryPort}/img/app:v1`, `oci:${pulled}:v1`);
      expect((await layoutManifest(pulled, "v1")).layers).toEqual((await layoutManifest(source.layout, source.tag)).layers);
      const status = (await (await fetch(`${admin}/v1/status`)).json()) as { store: { blobs: number } };
      expect(status.store.blobs).toBeGreaterThanOrEqual(3);

      // Its logs are JSON lines (docker's log is not a terminal) with the agent's name on each.
      const logs = await docker(["logs", id.trim()]);
      const lines = `${logs.stdout}${logs.stderr}`.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toContainEqual(expect.objectContaining({ component: "agent", msg: "agent started", level: "info" }));
      expect(lines.every((l) => l.component === "agent" && typeof l.instance === "string")).toBe(true);
      const inspect = JSON.parse((await docker(["inspect", id.trim()])).stdout)[0] as { Config: { User: string }; HostConfig: { ReadonlyRootfs: boolean } };
      expect(inspect.Config.User).toBe("1000:1000");
      expect(inspect.HostConfig.ReadonlyRootfs).toBe(true);
    } finally {
      await docker(["rm", "-f", id.trim()]);
    }
  }, 600_000); // building with the vfs driver copies the base's 100 MB: slow on a busy machine
});
