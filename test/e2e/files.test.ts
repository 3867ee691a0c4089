import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { startDevcluster, type Devcluster } from "../helpers/devcluster.js";

/** `shoal put` and `shoal get`: any files through the edge and the agents, as OCI artifacts. */
const TSX = path.resolve("node_modules/.bin/tsx");
const MiB = 1024 * 1024;

let cluster: Devcluster;
let scratch: string;
let stateHome: string;

function shoal(args: string[], input?: Buffer): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(TSX, ["src/agent-node/main.ts", ...args], { maxBuffer: 1 << 24, env: { ...process.env, XDG_STATE_HOME: stateHome } }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (input) child.stdin!.end(input);
  });
}

const sha = async (file: string) => createHash("sha256").update(await readFile(file)).digest("hex");
const agentArgs = (i: number) => ["--agent", cluster.agents[i]!.registry, "--admin", cluster.agents[i]!.admin];
const peerBytes = async (i: number) => {
  const text = await (await fetch(`${cluster.agents[i]!.admin}/metrics`)).text();
  return Number(/^shoal_agent_bytes_downloaded_total\{source="peer"\} (\S+)$/m.exec(text)?.[1] ?? 0);
};

let big: string;
let tree: string;

beforeAll(async () => {
  cluster = await startDevcluster();
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-files-"));
  stateHome = path.join(scratch, "state");
  big = path.join(scratch, "model.bin");
  await writeFile(big, randomBytes(64 * MiB));
  tree = path.join(scratch, "dataset");
  await mkdir(path.join(tree, "train"), { recursive: true });
  for (let i = 0; i < 5; i++) await writeFile(path.join(tree, "train", `part-${i}.csv`), randomBytes(1000 + i));
  await writeFile(path.join(tree, "README"), "small files\n");
});
afterAll(async () => {
  await cluster?.stop();
  await rm(scratch, { recursive: true, force: true });
});

describe("shoal put and shoal get", () => {
  it("puts a 64 MiB file and a directory, and gets them on both agents, the second mostly from the first", async () => {
    const put = await shoal(["put", big, tree, "--to", `${cluster.edgeHost}/ml/model:v3`]);
    expect(put.stderr).toMatch(/put 7 file\(s\), 64\.0 MiB .* as ml\/model:v3/);
    expect(put.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    const manifest = (await (await fetch(`${cluster.edgeUrl}/v2/ml/model/manifests/v3`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } })).json()) as {
      artifactType: string;
      layers: { annotations: Record<string, string> }[];
    };
    expect(manifest.artifactType).toBe("application/vnd.shoal.files.v1");
    expect(manifest.layers.map((l) => l.annotations["org.opencontainers.image.title"])).toEqual([
      "model.bin",
      "dataset/README",
      ...[0, 1, 2, 3, 4].map((i) => `dataset/train/part-${i}.csv`),
    ]);

    for (const i of [0, 1]) {
      const out = path.join(scratch, `out-${i}`);
      const got = await shoal(["get", "ml/model:v3", "--output", out, ...agentArgs(i)]);
      expect(got.stderr).toBe("");
      expect(got.stdout).toMatch(/^got 7 file\(s\), 64\.0 MiB/);
      expect(await sha(path.join(out, "model.bin"))).toBe(await sha(big));
      expect(await readFile(path.join(out, "dataset/README"), "utf8")).toBe("small files\n");
      expect(await sha(path.join(out, "dataset/train/part-4.csv"))).toBe(await sha(path.join(tree, "train/part-4.csv")));
      // Nothing half-written is left behind.
      expect((await readdir(out)).filter((n) => n.includes(".shoal-"))).toEqual([]);
    }
    expect(await peerBytes(1)).toBeGreaterThanOrEqual(0.9 * 64 * MiB);
  });

  it("reads standard input as a file", async () => {
    const data = randomBytes(3 * MiB);
    const put = await shoal(["put", "-", "--stdin-name", "logs.tar", "--to", `${cluster.edgeHost}/ml/stdin:v1`], data);
    expect(put.code).toBe(0);
    const out = path.join(scratch, "stdin-out");
    await shoal(["get", "ml/stdin:v1", "--output", out, ...agentArgs(0)]);
    expect((await readFile(path.join(out, "logs.tar"))).equals(data)).toBe(true);
  });

  it("resumes an interrupted put where the edge stands", async () => {
    const file = path.join(scratch, "resumable.bin");
    await writeFile(file, randomBytes(96 * MiB));
    const child = spawn(TSX, ["src/agent-node/main.ts", "put", file, "--chunk-size", "4MiB", "--to", `${cluster.edgeHost}/ml/resume:v1`], {
      env: { ...process.env, XDG_STATE_HOME: stateHome },
      stdio: "ignore",
      detached: true,
    });
    const states = path.join(stateHome, "shoal", "uploads");
    const deadline = Date.now() + 60_000;
    for (;;) {
      // Only the state files: their replacements are written beside them first (*.tmp).
      const names = (await readdir(states).catch(() => [] as string[])).filter((n) => n.endsWith(".json"));
      const offsets = await Promise.all(names.map(async (n) => (JSON.parse(await readFile(path.join(states, n), "utf8")) as { offset: number }).offset));
      if (offsets.some((o) => o >= 16 * MiB)) break;
      if (Date.now() > deadline) throw new Error("the put never got 16 MiB up");
      await new Promise((r) => setTimeout(r, 20));
    }
    process.kill(-child.pid!, "SIGKILL");
    const again = await shoal(["put", file, "--chunk-size", "4MiB", "--to", `${cluster.edgeHost}/ml/resume:v1`]);
    expect(again.code).toBe(0);
    const sent = /\(([\d.]+) MiB sent/.exec(again.stderr);
    expect(Number(sent?.[1])).toBeLessThan(96 - 16 + 4);
    const out = path.join(scratch, "resume-out");
    await shoal(["get", "ml/resume:v1", "--output", out, ...agentArgs(0)]);
    expect(await sha(path.join(out, "resumable.bin"))).toBe(await sha(file));
  });

  it("never returns a damaged copy: a bad local file or a bad blob in the agent's store is fetched again", async () => {
    const out = path.join(scratch, "out-0");
    const target = path.join(out, "model.bin");
    const handle = await open(target, "r+");
    await handle.write(Buffer.from("garbage"), 0, 7, 1000);
    await handle.close();
    const again = await shoal(["get", "ml/model:v3", "--output", out, ...agentArgs(0)]);
    expect(again.stdout).toMatch(/\(4\.9 KiB already there and verified\)/); // the small files only
    expect(await sha(target)).toBe(await sha(big));

    // Damage agent one's stored copy: the get notices, the agent drops it and fetches it anew.
    const digest = `${await sha(big)}`;
    const stored = path.join(cluster.home, "agent-one", "blobs", "sha256", digest);
    const blob = await open(stored, "r+");
    await blob.write(Buffer.from("rot"), 0, 3, 5 * MiB);
    await blob.close();
    const fresh = path.join(scratch, "after-rot");
    const got = await shoal(["get", "ml/model:v3", "--output", fresh, ...agentArgs(0)]);
    expect(got.code).toBe(0);
    expect(await sha(path.join(fresh, "model.bin"))).toBe(await sha(big));
    expect(cluster.output()).toMatch(/stored blob is damaged/);
  });

  it("gives one readable line for a bad reference, a missing tag, an unreachable agent and a full disk", async () => {
    const bad = await shoal(["get", "Bad:Ref", "--output", path.join(scratch, "x")]);
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringMatching(/^shoal: "Bad:Ref" is not an image reference/)]);
    const missing = await shoal(["get", "ml/model:nope", "--output", path.join(scratch, "x"), ...agentArgs(0)]);
    expect(missing.stderr).toMatch(/^shoal: ml\/model:nope: MANIFEST_UNKNOWN: .*\n$/);
    const down = await shoal(["get", "ml/model:v3", "--output", path.join(scratch, "x"), "--agent", "http://127.0.0.1:9"]);
    expect(down.stderr).toMatch(/^shoal: cannot reach the agent at http:\/\/127\.0\.0\.1:9 .*\n$/);
    const noFile = await shoal(["put", path.join(scratch, "nope.bin"), "--to", `${cluster.edgeHost}/ml/x:v1`]);
    expect(noFile.stderr).toMatch(/^shoal: cannot read .*nope\.bin: ENOENT\n$/);

    const small = path.join(scratch, "tiny-disk");
    await mkdir(small, { recursive: true });
    await promisify(execFile)("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", small]);
    try {
      const full = await shoal(["get", "ml/model:v3", "--output", small, ...agentArgs(0)]);
      expect(full.code).toBe(1);
      expect(full.stderr).toMatch(/^shoal: no space left on the device holding .*tiny-disk.*\n$/);
      expect((await readdir(small)).filter((n) => n.includes(".shoal-"))).toEqual([]);
    } finally {
      await promisify(execFile)("umount", [small]);
    }
  });
});
