import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, spawn } from "node:child_process";
import net from "node:net";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { freePort, freePorts, startDevcluster, type Devcluster } from "../helpers/devcluster.js";
import { startTestEdge } from "../helpers/edge.js";
import { buildImage, layoutManifest, run, skopeoCopy } from "../helpers/images.js";
import { mergeConfig, parseAgentConfig, parseAgentSecrets } from "../../src/agent-node/config.js";
import { bundleAgent } from "../../src/devcluster/build-agent.js";

/**
 * The `shoal` command line against a running devcluster, as an operator would use it: the bundle
 * that `npm run build:agent` ships (one self-contained file, started by plain node).
 */
const TSX = path.resolve("node_modules/.bin/tsx");
let bundle: string;

function shoal(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bundle, ...args], { maxBuffer: 1 << 24, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let cluster: Devcluster;
let scratch: string;
let source: { layout: string; tag: string };
let layers: string[];

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-cli-"));
  bundle = await bundleAgent(path.join(scratch, "shoal.mjs"));
  cluster = await startDevcluster();
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
    ["a missing output flag", ["pull", "cli/app:v1"], 2, /^shoal: required option '-o, --output <dir>' not specified \(see shoal pull --help\)\n$/],
    ["a missing --to", ["put", "x"], 2, /^shoal: required option '--to <ref>' not specified/],
    ["an unknown command", ["pul", "cli/app:v1"], 2, /^shoal: unknown command 'pul' \(Did you mean one of pull, put\?\) \(see shoal --help\)\n$/],
    ["a bad port", ["agent", "--peer-port", "http"], 2, /^shoal: option '--peer-port <port>' argument 'http' is invalid/],
  ])("%s gives one readable line", async (_label, args, code, message) => {
    const result = await shoal(args.map((a) => (a === "AGENT" ? cluster.agents[0]!.registry : a === "x" ? path.join(scratch, "x") : a)));
    expect(result.code).toBe(code);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trimEnd().split("\n")).toHaveLength(1); // one line: no help dump, no stack trace
  });

  it("prints its version", async () => {
    const version = JSON.parse(await readFile("package.json", "utf8")).version as string;
    for (const flag of ["--version", "-V"]) expect(await shoal([flag])).toEqual({ code: 0, stdout: `${version}\n`, stderr: "" });
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
    const result = await shoal(["k8s", "--edge", "https://edge.example.com", "--edge-token", "agents:0123456789abcdef0123", "--generate-cluster-secret"]);
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
    expect((await shoal(["k8s", "--edge", "not a url", "--generate-cluster-secret"])).stderr).toMatch(/--edge "not a url" is not a URL/);
  });

  it("takes the cluster secret from a file or an existing Secret, and makes one only when asked", async () => {
    const secretsOf = (yaml: string) => parseAllDocuments(yaml).map((d) => d.toJS()).filter((d) => d.kind === "Secret");
    // Nothing said: no new secret behind the operator's back (re-applying would rotate it).
    const none = await shoal(["k8s", "--edge", "https://edge.example.com"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^shoal: the agents need their cluster secret: --cluster-secret-file FILE, --existing-secret NAME .*--generate-cluster-secret/);
    expect(none.stdout).toBe("");

    const file = path.join(scratch, "cluster-secret");
    await writeFile(file, `${(await shoal(["token", "--cluster-secret"])).stdout}`);
    const runs = await Promise.all([1, 2].map(() => shoal(["k8s", "--edge", "https://edge.example.com", "--cluster-secret-file", file])));
    expect(runs[0]!.stdout).toBe(runs[1]!.stdout); // the same output every run: re-applying changes nothing
    const [secret] = secretsOf(runs[0]!.stdout);
    expect(parseYaml(secret.stringData["secrets.yaml"]).clusterSecret).toBe((await readFile(file, "utf8")).trim());

    const existing = await shoal(["k8s", "--edge", "https://edge.example.com", "--existing-secret", "fleet-secrets"]);
    expect(existing.code).toBe(0);
    expect(secretsOf(existing.stdout)).toEqual([]);
    const daemonSet = parseAllDocuments(existing.stdout).map((d) => d.toJS()).find((d) => d.kind === "DaemonSet");
    expect(daemonSet.spec.template.spec.volumes.find((v: { name: string }) => v.name === "secrets").secret.secretName).toBe("fleet-secrets");

    expect((await shoal(["k8s", "--edge", "https://e.example.com", "--cluster-secret-file", path.join(scratch, "absent")])).stderr).toMatch(/cannot read --cluster-secret-file .*ENOENT/);
    expect((await shoal(["k8s", "--edge", "https://e.example.com", "--cluster-secret-file", file, "--generate-cluster-secret"])).code).toBe(2);
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
    // The agent writes its own line once the response is finished: wait for both.
    const complete = () => lines().some((l) => l.path === "/v2/cli/app/manifests/v1") && lines().some((l) => l.component === "agent" && l.msg === "request");
    while (!complete() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const found = lines();
    // The agent's access log line and the edge's line for the tag it resolved there.
    expect(found).toContainEqual(expect.objectContaining({ msg: "request", requestId, route: "manifest", status: 200, component: "agent" }));
    expect(found).toContainEqual(expect.objectContaining({ msg: "request", requestId, method: "GET", path: "/v2/cli/app/manifests/v1", status: 200 }));
    // A fresh id when the client sends none (or a malformed one).
    const other = await fetch(`${cluster.edgeUrl}/v2/`, { headers: { "X-Request-Id": "bad id with spaces" } });
    expect(other.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("errors a newcomer meets", () => {
  it("tells a wrong --token from a missing one", async () => {
    const edge = await startTestEdge({ SHOAL_PUSH_TOKENS: "alice:0123456789abcdef0123", SHOAL_PULL_AUTH: "true" });
    try {
      const file = path.join(scratch, "token-check.txt");
      await writeFile(file, "hello\n");
      const to = `${edge.url.replace("http://", "")}/files/t:v1`;
      const missing = await shoal(["put", file, "--to", to], { SHOAL_TOKEN: "" });
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/^shoal: the edge wants credentials \(--token user:token or SHOAL_TOKEN\)/);
      const wrong = await shoal(["put", file, "--to", to, "--token", "alice:not-the-right-token-0000"]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/^shoal: the edge refused the credentials \(check the user and token given with --token or SHOAL_TOKEN\): HTTP 401\n$/);
      const right = await shoal(["put", file, "--to", to, "--token", "alice:0123456789abcdef0123"]);
      expect(right.stderr).toMatch(/put 1 file/);
      expect(right.code).toBe(0);
    } finally {
      await edge.destroy();
    }
  });

  it("gives up on an edge or agent that accepts connections and never answers, with a clear message", async () => {
    const held: net.Socket[] = [];
    const silent = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const file = path.join(scratch, "silent.txt");
      await writeFile(file, "hello\n");
      const started = Date.now();
      const put = await shoal(["put", file, "--to", `127.0.0.1:${port}/files/t:v1`], { SHOAL_HTTP_TIMEOUT_SECONDS: "1" });
      expect(put.code).toBe(1);
      expect(put.stderr).toMatch(new RegExp(`^shoal: the edge at http://127\\.0\\.0\\.1:${port} did not answer HEAD /v2/files/t/blobs/sha256:[0-9a-f]{64}: no answer within 1 s \\(SHOAL_HTTP_TIMEOUT_SECONDS sets the wait\\)\\n$`));
      const pull = await shoal(["pull", "cli/app:v1", "-o", path.join(scratch, "silent"), "--agent", `http://127.0.0.1:${port}`], { SHOAL_HTTP_TIMEOUT_SECONDS: "1" });
      expect(pull.code).toBe(1);
      expect(pull.stderr).toMatch(/^shoal: the agent at http:\/\/127\.0\.0\.1:\d+ did not answer GET \/v2\/cli\/app\/manifests\/v1: no answer within 1 s/);
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });

  it("refuses to start the devcluster and the Deno edge on a token under 16 characters, in one line", async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), "shoal-bad-token-"));
    try {
      const env = { ...process.env, SHOAL_HOME: home, SHOAL_PUSH_TOKENS: "alice:short", SHOAL_EDGE_PORT: String(await freePort()) };
      const run = (command: string, args: string[]) =>
        new Promise<{ code: number; stderr: string }>((resolve) => {
          execFile(command, args, { env }, (error, _stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code) : 0, stderr }));
        });
      const devcluster = await run(TSX, ["src/devcluster/main.ts"]);
      expect(devcluster.code).toBe(2);
      expect(devcluster.stderr).toMatch(/^devcluster: refusing to start: invalid edge settings: .*the token of alice is shorter than 16 characters\n$/);
      const deno = await run(path.resolve("node_modules/.bin/deno"), ["run", "--allow-all", "src/edge-deno/main.ts", "--port", "0"]);
      expect(deno.code).toBe(2);
      expect(deno.stderr).toMatch(/^edge:deno: refusing to start: invalid edge settings: .*the token of alice is shorter than 16 characters\n$/);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});

describe("logs", () => {
  it("are one JSON format from the three devcluster processes, with component and instance on every line", async () => {
    const records = cluster
      .output()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const seen = new Set(records.map((r) => `${r.component}/${r.instance}`));
    for (const name of ["devcluster/main", "edge/edge", "agent/agent-one", "agent/agent-two"]) expect(seen).toContain(name);
    for (const record of records) {
      expect(record.level).toMatch(/^(trace|debug|info|warn|error|fatal)$/);
      expect(record.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(typeof record.component).toBe("string");
      expect(typeof record.instance).toBe("string");
    }
    // Nothing else on stdout/stderr but JSON lines (a pipe gets JSON, a terminal pretty lines).
    expect(cluster.output().split("\n").filter((l) => l.trim() && !l.startsWith("{"))).toEqual([]);
  });

  it("log the HEAD 404s every push makes as info, not warnings", async () => {
    const missing = `sha256:${"0".repeat(64)}`;
    const ids = { edge: `head-edge-${Date.now()}`, agent: `head-agent-${Date.now()}` };
    expect((await fetch(`${cluster.edgeUrl}/v2/cli/app/blobs/${missing}`, { method: "HEAD", headers: { "X-Request-Id": ids.edge } })).status).toBe(404);
    expect((await fetch(`${cluster.agents[0]!.registry}/v2/cli/app/blobs/${missing}`, { method: "HEAD", headers: { "X-Request-Id": ids.agent } })).status).toBe(404);
    const find = (id: string) =>
      cluster
        .output()
        .split("\n")
        .filter((l) => l.includes(id) && l.includes('"msg":"request"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const deadline = Date.now() + 5_000;
    // The agent passes its request id to the edge, whose line may come first: wait for the agent's own.
    const agentLine = () => find(ids.agent).some((r) => r.component === "agent");
    while ((find(ids.edge).length === 0 || !agentLine()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(find(ids.edge)).toContainEqual(expect.objectContaining({ level: "info", status: 404, component: "edge" }));
    expect(find(ids.agent)).toContainEqual(expect.objectContaining({ level: "info", status: 404, component: "agent", instance: "agent-one" }));
    // A GET that finds nothing is still a warning.
    const get = `get-${Date.now()}`;
    await fetch(`${cluster.edgeUrl}/v2/cli/app/blobs/${missing}`, { headers: { "X-Request-Id": get } });
    while (find(get).length === 0 && Date.now() < deadline + 5_000) await new Promise((r) => setTimeout(r, 100));
    expect(find(get)).toContainEqual(expect.objectContaining({ level: "warn", status: 404 }));
  });

  it("are pretty lines with --log-format pretty (what a terminal gets by default)", async () => {
    const [registry, peer, admin] = await freePorts(3);
    const child = spawn(process.execPath, [bundle, "agent", "--log-format", "pretty", "--instance", "box-7", "--edge", cluster.edgeUrl, "--store-dir", path.join(scratch, "pretty-store"), `--agent-registry-port=${registry}`, `--peer-port=${peer}`, `--agent-server-port=${admin}`], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    try {
      const deadline = Date.now() + 30_000;
      while (!output.includes("agent started") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(output).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: agent\/box-7 agent started \{.*"registryPort":\d+/m);
    } finally {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
  });
});

describe("progress bars in a real terminal", () => {
  /** Runs a command in a tmux pane `columns` wide and returns the screen once it has exited. */
  async function onTerminal(columns: number, command: string[]): Promise<string[]> {
    const session = `shoal-progress-${process.pid}-${columns}`;
    const quoted = command.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    await run("tmux", ["new-session", "-d", "-s", session, "-x", String(columns), "-y", "30", `${quoted}; echo EXIT=$?; sleep 600`]);
    try {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const { stdout } = await run("tmux", ["capture-pane", "-p", "-t", session]);
        if (stdout.includes("EXIT=")) return stdout.split("\n");
        if (Date.now() > deadline) throw new Error(`no exit on the terminal:\n${stdout}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      await run("tmux", ["kill-session", "-t", session]);
    }
  }

  it.each([80, 200])("fit %i columns with the full size, a rate and no leftover hashing bar", async (columns) => {
    const dir = path.join(scratch, `terminal-${columns}`);
    await mkdir(dir, { recursive: true });
    const name = `a-model-file-with-a-rather-long-name-${columns}.safetensors`;
    await writeFile(path.join(dir, name), randomBytes(24 * 1024 * 1024));
    const put = await onTerminal(columns, [process.execPath, bundle, "put", path.join(dir, name), "--to", `${cluster.edgeHost}/term/files:c${columns}`]);
    expect(put).toContain("EXIT=0");
    for (const line of put) expect([...line].length).toBeLessThanOrEqual(columns);
    const bars = put.filter((l) => l.includes("█"));
    expect(bars).toHaveLength(1); // the upload's bar; the hashing bar went away
    expect(bars[0]).toMatch(/ 100% +24\.0 MiB\/ *24\.0 MiB +[\d.]+ (B|KiB|MiB|GiB)\/s done$/);
    // The whole name when there is room; else its start and its end.
    if (columns >= 200) expect(bars[0]).toContain(name);
    else expect(bars[0]).toMatch(/^ a-model-fil…\S*safetensors /);
    expect(put.join("\n")).toMatch(/put 1 file\(s\), 24\.0 MiB \(24\.0 MiB sent\)/);

    const got = await onTerminal(columns, [process.execPath, bundle, "get", `term/files:c${columns}`, "-o", path.join(dir, "out"), "--agent", cluster.agents[0]!.registry, "--admin", cluster.agents[0]!.admin]);
    expect(got).toContain("EXIT=0");
    for (const line of got) expect([...line].length).toBeLessThanOrEqual(columns);
    expect(got.filter((l) => l.includes("█"))[0]).toMatch(/ 100% +24\.0 MiB\/ *24\.0 MiB +[\d.]+ (B|KiB|MiB|GiB)\/s done$/);
  });
});
