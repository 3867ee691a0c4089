import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startDenoEdge } from "../helpers/deno-edge.js";
import { buildImage, layoutManifest, skopeoCopy } from "../helpers/images.js";
import { startAgentProcess, type AgentHandle } from "../helpers/processes.js";
import { startS3, startVsftpd } from "../helpers/storage-servers.js";

/**
 * The self-hosted edge with its blobs on S3 (s3rver) and on FTP (vsftpd): images with skopeo, and
 * files with `shoal put` to the edge and `shoal get` through an agent that uses it.
 */
const TSX = path.resolve("node_modules/.bin/tsx");
const shoal = (args: string[]) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(TSX, ["src/agent-node/main.ts", ...args], { maxBuffer: 1 << 24, env: { ...process.env, XDG_STATE_HOME: path.join(scratch, "state") } }, (error, stdout, stderr) =>
      resolve({ code: error ? 1 : 0, stdout, stderr }),
    ),
  );
const sha = async (file: string) => createHash("sha256").update(await readFile(file)).digest("hex");

let scratch: string;
let image: { layout: string; tag: string };
let layers: string[];
let file: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-deno-storage-"));
  image = await buildImage({ layers: [1024 * 1024, 3 * 1024 * 1024] });
  layers = (await layoutManifest(image.layout, image.tag)).layers.map((l) => l.digest);
  file = path.join(scratch, "weights.bin");
  await writeFile(file, randomBytes(40 * 1024 * 1024 + 5)); // three 16 MiB multipart parts
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe.each([
  ["S3", (dir: string) => startS3(dir)],
  ["FTP", (dir: string) => startVsftpd(dir)],
] as const)("the Deno edge on %s", (_name, startServer) => {
  let server: { env: Record<string, string>; close(): Promise<void> };
  let edge: Awaited<ReturnType<typeof startDenoEdge>>;
  let agent: AgentHandle;
  let home: string;

  beforeAll(async () => {
    home = await mkdtemp(path.join(scratch, "home-"));
    server = await startServer(path.join(home, "server"));
    edge = await startDenoEdge(home, server.env);
    agent = await startAgentProcess(edge.url);
  });
  afterAll(async () => {
    await agent?.proc.stop();
    await edge?.service.stop();
    await server?.close();
  });

  it("takes an image from skopeo and gives it back", async () => {
    await skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${edge.host}/store/app:v1`);
    const out = path.join(home, "pulled");
    await skopeoCopy(`docker://${edge.host}/store/app:v1`, `oci:${out}:v1`);
    expect((await layoutManifest(out, "v1")).layers.map((l) => l.digest)).toEqual(layers);
    expect(edge.service.output).toMatch(new RegExp(`"storage":"${_name === "S3" ? "S3 bucket shoal" : "FTP 127\\.0\\.0\\.1"}`));
  });

  it("takes files from shoal put and gives them back through an agent", async () => {
    const put = await shoal(["put", file, "--chunk-size", "10MiB", "--to", `${edge.host}/files/weights:v1`]);
    expect(put.stderr).toMatch(/put 1 file\(s\), 40\.0 MiB/);
    const out = path.join(home, "got");
    const got = await shoal(["get", "files/weights:v1", "--output", out, "--agent", agent.registry, "--admin", agent.admin]);
    expect(got.stdout).toMatch(/^got 1 file\(s\)/);
    expect(await sha(path.join(out, "weights.bin"))).toBe(await sha(file));
  });
});
