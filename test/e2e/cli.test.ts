import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createHash } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { startDevcluster, type Devcluster } from "../helpers/devcluster.js";
import { buildImage, layoutManifest, skopeoCopy } from "../helpers/images.js";
import { mergeConfig, parseAgentConfig, parseAgentSecrets } from "../../src/agent-node/config.js";

/** The `shoal` command line against a running devcluster, as an operator would use it. */
const TSX = path.resolve("node_modules/.bin/tsx");

function shoal(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(TSX, ["src/agent-node/main.ts", ...args], { maxBuffer: 1 << 24 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let cluster: Devcluster;
let scratch: string;
let source: { layout: string; tag: string };
let layers: string[];

beforeAll(async () => {
  cluster = await startDevcluster();
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-cli-"));
  source = await buildImage({ layers: [1024 * 1024, 3 * 1024 * 1024] });
  layers = (await layoutManifest(source.layout, source.tag)).layers.map((l) => l.digest);
  await skopeoCopy(`oci:${source.layout}:${source.tag}`, `docker://${cluster.edgeHost}/cli/app:v1`);
});
afterAll(async () => {
  await cluster?.stop();
  await rm(scratch, { recursive: true, force: true });
});

const sha256File = async (file: string) => `sha256:${createHash("sha256").update(await readFile(file)).digest("hex")}`;

describe("shoal pull", () => {
  it("writes an OCI layout through an agent that skopeo reads, every blob verified, with a bytes-by-source summary", async () => {
    const out = path.join(scratch, "pulled");
    // The devcluster here runs on random ports: the admin port is not the registry port + 2.
    const result = await shoal(["pull", `${cluster.agents[0]!.registryHost}/cli/app:v1`, "--output", out, "--admin", cluster.agents[0]!.admin]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^pulled cli\/app@sha256:[0-9a-f]{64} into .* as v1: 3 blobs, 4\.0 MiB/m);
    expect(result.stdout).toMatch(/the agent fetched .* from peers and 4\.0 MiB from the edge/);
    expect((await layoutManifest(out, "v1")).layers.map((l) => l.digest)).toEqual(layers);
    for (const layer of layers) expect(await sha256File(path.join(out, "blobs/sha256", layer.slice(7)))).toBe(layer);

    const again = await shoal(["pull", "cli/app:v1", "--output", out, "--agent", cluster.agents[0]!.registry]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/4\.0 MiB already in the layout/);
  });

  it.each([
    ["a bad reference", ["pull", "Not/Valid:x", "-o", "x"], 2, /is not an image reference/],
    ["a missing tag", ["pull", "cli/app:nope", "-o", "x", "--agent", "AGENT"], 1, /cli\/app:nope: MANIFEST_UNKNOWN/],
    ["an unreachable agent", ["pull", "cli/app:v1", "-o", "x", "--agent", "http://127.0.0.1:9"], 1, /cannot reach the agent at http:\/\/127\.0\.0\.1:9 .*is it running/],
    ["a missing output flag", ["pull", "cli/app:v1"], 1, /required option '-o, --output <dir>'/],
  ])("%s gives one readable line", async (_label, args, code, message) => {
    const result = await shoal(args.map((a) => (a === "AGENT" ? cluster.agents[0]!.registry : a === "x" ? path.join(scratch, "x") : a)));
    expect(result.code).toBe(code);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe("shoal preheat and status", () => {
  it("fills an agent's store ahead of a pull, through its peers, and status shows it", async () => {
    const two = cluster.agents[1]!;
    const preheat = await shoal(["preheat", "cli/app:v1", "--admin", two.admin]);
    expect(preheat.stderr).toBe("");
    expect(preheat.stdout).toMatch(/cli\/app:v1 \(sha256:[0-9a-f]{64}\) in the store: 3 blobs, 4\.0 MiB/);
    // Idempotent: a second call has nothing to fetch.
    const again = await fetch(`${two.admin}/v1/preheat`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ image: "cli/app:v1" }) });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { done: boolean }).done).toBe(true);

    const status = JSON.parse((await shoal(["status", "--admin", two.admin, "--json"])).stdout);
    expect(status.store.blobs).toBeGreaterThanOrEqual(4); // 3 blobs and the manifest
    expect(status.bytesBySource.peer).toBeGreaterThan(0); // agent one had it
    const text = (await shoal(["status", "--admin", two.admin])).stdout;
    expect(text).toMatch(/^store: .* of 10\.0 GiB/m);
    expect(text).toMatch(/seeder\s+sha256:/);

    // The pull after a preheat is served from the store.
    const pulled = await shoal(["pull", `${two.registryHost}/cli/app:v1`, "--output", path.join(scratch, "after-preheat"), "--admin", two.admin]);
    expect(pulled.stdout).toMatch(/fetched 0 B from peers and 0 B from the edge; 4\.0 MiB came from its store/);
  });

  it("refuses to preheat what does not exist, with the reason", async () => {
    const result = await shoal(["preheat", "cli/none:v1", "--admin", cluster.agents[1]!.admin]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/preheat of cli\/none:v1 at .* failed: .*(unknown|not)/i);
  });
});

describe("shoal k8s and shoal token", () => {
  it("prints manifests whose agent config and secrets the agent accepts", async () => {
    const result = await shoal(["k8s", "--edge", "https://edge.example.com", "--edge-token", "agents:0123456789abcdef0123"]);
    expect(result.code).toBe(0);
    const docs = parseAllDocuments(result.stdout).map((d) => d.toJS());
    expect(docs.map((d) => d.kind)).toEqual(["Namespace", "Secret", "ConfigMap", "DaemonSet"]);
    const [, secret, configMap, daemonSet] = docs;
    const container = daemonSet.spec.template.spec.containers[0];
    // The agent's own validation, as it would run in the pod (flags on top of the file).
    const config = parseAgentConfig(mergeConfig(parseYaml(configMap.data["agent.yaml"]), { peerIp: "10.0.0.7" }));
    expect(config.edge).toBe("https://edge.example.com");
    expect(config.store.dir).toBe("/var/lib/shoal/store");
    const secrets = parseAgentSecrets(parseYaml(secret.stringData["secrets.yaml"]), "secret");
    expect(secrets.clusterSecret).toMatch(/^[0-9a-f]{64}$/);
    expect(secrets.edgeToken).toBe("agents:0123456789abcdef0123");
    const help = (await shoal(["agent", "--help"])).stdout;
    for (const arg of container.args.slice(1)) expect(help).toContain(arg.split("=")[0]);
    expect(daemonSet.spec.template.spec.hostNetwork).toBe(true);
    expect(container.ports.map((p: { hostPort: number }) => p.hostPort)).toEqual([16000, 16001, 16002]);
    expect(container.livenessProbe.httpGet).toEqual({ host: "127.0.0.1", path: "/health", port: 16002 });
    expect(daemonSet.spec.template.spec.volumes.find((v: { name: string }) => v.name === "store").hostPath.path).toBe("/var/lib/shoal");
    expect((await shoal(["k8s", "--edge", "not a url"])).stderr).toMatch(/--edge "not a url" is not a URL/);
  });

  it("makes push tokens and cluster secrets the edge and agents accept", async () => {
    const token = await shoal(["token", "--user", "ci-bot"]);
    expect(token.stdout).toMatch(/^ci-bot:[0-9a-f]{40}\n$/);
    expect(token.stderr).toMatch(/SHOAL_PUSH_TOKENS/);
    const secret = await shoal(["token", "--cluster-secret"]);
    expect(parseAgentSecrets({ clusterSecret: secret.stdout.trim() }, "x").clusterSecret).toHaveLength(64);
    expect((await shoal(["token", "--user", "a:b"])).code).toBe(2);
  });
});

describe("structured logs", () => {
  it("follow one request by its id from the agent to the edge, as JSON lines", async () => {
    const requestId = `trace-${Date.now()}`;
    const res = await fetch(`${cluster.agents[0]!.registry}/v2/cli/app/manifests/v1`, {
      headers: { "X-Request-Id": requestId, accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe(requestId);
    const deadline = Date.now() + 5_000;
    const lines = () =>
      cluster
        .output()
        .split("\n")
        .filter((l) => l.includes(requestId))
        .map((l) => JSON.parse(l.slice(l.indexOf("{"))) as Record<string, unknown>);
    // The agent may ask the edge other things first (its access check): wait for the tag's line.
    while (!lines().some((l) => l.path === "/v2/cli/app/manifests/v1") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const found = lines();
    // The agent's access log line and the edge's line for the tag it resolved there.
    expect(found).toContainEqual(expect.objectContaining({ msg: "request", requestId, route: "manifest", status: 200, component: "agent" }));
    expect(found).toContainEqual(expect.objectContaining({ msg: "request", requestId, method: "GET", path: "/v2/cli/app/manifests/v1", status: 200 }));
    // A fresh id when the client sends none (or a malformed one).
    const other = await fetch(`${cluster.edgeUrl}/v2/`, { headers: { "X-Request-Id": "bad id with spaces" } });
    expect(other.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});
