import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import path from "node:path";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { sha256 } from "../helpers/registry-client.js";
import { blobDigests, storedKeys } from "../helpers/gc.js";

const TSX = path.resolve("node_modules/.bin/tsx");
const TOKEN = "alice:alice-gc-token-0123456789";
const AUTH = { Authorization: `Basic ${Buffer.from(TOKEN).toString("base64")}` };

function shoal(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(TSX, ["src/agent-node/main.ts", ...args], { env: { ...process.env, SHOAL_TOKEN: "", ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function push(url: string, name: string, content: string): Promise<string> {
  const digest = sha256(content);
  const res = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${digest}`, { method: "POST", body: content, headers: AUTH });
  expect(res.status).toBe(201);
  return digest;
}

let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge({ SHOAL_PUSH_TOKENS: TOKEN, SHOAL_GC_GRACE_SECONDS: "0" });
});
afterAll(async () => edge?.destroy());

describe("shoal gc", () => {
  it("refuses bad input with exit 2 and a missing right with a one-line error", async () => {
    const bad = await shoal(["gc", "--edge", "localhost:15000"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^shoal: --edge must be an http\(s\) URL/)]);
    expect((await shoal(["gc", "--edge", edge.url, "--timeout", "soon"])).code).toBe(2);
    const anonymous = await shoal(["gc", "--edge", edge.url]);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr.trim()).toMatch(/^shoal: starting a garbage collection: UNAUTHORIZED: .*\(pass --token with the gc right\)$/);
  });

  it("--dry-run reports what a collection would free and deletes nothing; a run frees it and reports it", async () => {
    const orphan = await push(edge.url, "cli/app", "an orphan blob of the cli test");
    const dry = await shoal(["gc", "--edge", edge.url, "--dry-run"], { SHOAL_TOKEN: TOKEN });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/dry run: nothing deleted/);
    expect(dry.stdout).toMatch(/would free +1 objects, 30 B/);
    expect(blobDigests(await storedKeys(edge))).toContain(orphan);
    const run = await shoal(["gc", "--edge", edge.url, "--token", TOKEN, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as { phase: string; dryRun: boolean; counters: { freedObjects: number; freedBytes: number } };
    expect(report).toMatchObject({ phase: "done", dryRun: false, counters: { freedObjects: 1, freedBytes: 30 } });
    expect(blobDigests(await storedKeys(edge))).not.toContain(orphan);
  });
});
