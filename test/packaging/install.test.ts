import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { packAgent } from "../../src/devcluster/build-agent.js";

/**
 * `shoal` installed the way users install tools: `npm install -g` of the packed tarball (offline:
 * it has no dependencies to fetch) and of the repository itself, then run from elsewhere.
 */
const exec = promisify(execFile);
let scratch: string;
let version: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-install-"));
  version = JSON.parse(await readFile("package.json", "utf8")).version as string;
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** Runs the installed `shoal` from an empty folder with a bare PATH: nothing of the repository is reachable. */
async function installedShoal(prefix: string, args: string[]): Promise<string> {
  const { stdout } = await exec("shoal", args, {
    cwd: scratch,
    env: { PATH: `${path.join(prefix, "bin")}:${path.dirname(process.execPath)}:/usr/bin:/bin`, HOME: scratch },
  });
  return stdout;
}

describe("installing the CLI", () => {
  it("from the packed tarball, with no registry, as a self-contained bundle", async () => {
    const { tarball } = await packAgent(path.join(scratch, "dist"));
    expect(path.basename(tarball)).toBe(`shoal-${version}.tgz`);
    const { stdout: listing } = await exec("tar", ["tzf", tarball]);
    expect(listing.trim().split("\n").sort()).toEqual(["package/package.json", "package/shoal.mjs"]);
    const prefix = path.join(scratch, "global-tarball");
    await exec("npm", ["install", "--global", "--prefix", prefix, "--offline", "--no-audit", "--no-fund", tarball], { cwd: scratch });
    expect(await installedShoal(prefix, ["--version"])).toBe(`${version}\n`);
    expect(await installedShoal(prefix, ["agent", "--help"])).toContain("--agent-registry-port");
    const manifests = await installedShoal(prefix, ["k8s", "--edge", "https://edge.example.com", "--generate-cluster-secret"]);
    expect(manifests).toContain("kind: DaemonSet");
  });

  it("from the repository (npm install -g .)", async () => {
    const prefix = path.join(scratch, "global-repo");
    await exec("npm", ["install", "--global", "--prefix", prefix, "--offline", "--no-audit", "--no-fund", path.resolve(".")]);
    expect(await installedShoal(prefix, ["--version"])).toBe(`${version}\n`);
  });
});
