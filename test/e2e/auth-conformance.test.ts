import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { PROJECT_ROOT } from "../../src/devcluster/build-worker.js";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";

const exec = promisify(execFile);

/**
 * The OCI distribution-spec conformance suite (the shared harness, as in test/worker/conformance)
 * against an edge where nothing is anonymous: the suite logs in with OCI_USERNAME/OCI_PASSWORD and
 * goes through the token flow (Bearer challenge, /token with Basic, scoped tokens) for every spec.
 */
const HARNESS = path.join(process.env.SHOAL_SHARED_DIR ?? path.resolve(PROJECT_ROOT, "../shared"), "tools/oci-conformance");
const SPECS = 74;
const PASSWORD = "conformance-secret-0123456789abcdef";

let edge: TestEdge;
let reports: string;
beforeAll(async () => {
  if (!existsSync(path.join(HARNESS, "run.sh"))) throw new Error(`conformance harness not found at ${HARNESS} (set SHOAL_SHARED_DIR)`);
  // Under a lock: this file and its sibling build into the same directory, and on a fresh machine
  // two builds at once collided ("cp: cannot create regular file …: File exists").
  await exec("flock", [path.join(os.tmpdir(), "shoal-oci-conformance.lock"), "bash", path.join(HARNESS, "build.sh")], { maxBuffer: 64 * 1024 * 1024 });
  const setting = { users: { conformance: { password: PASSWORD, access: [{ repository: "conformance/*", actions: ["pull", "push", "delete"] }] } }, anonymous: [] };
  edge = await startTestEdge({ SHOAL_AUTH: JSON.stringify(setting) });
  reports = await mkdtemp(path.join(os.tmpdir(), "shoal-auth-conformance-"));
}, 900_000);
afterAll(async () => {
  await edge?.destroy();
  if (reports) await rm(reports, { recursive: true, force: true });
});

describe("OCI conformance through the token flow", () => {
  it(`passes all ${SPECS} specs with credentials, nothing anonymous`, async () => {
    const { stdout } = await exec("bash", [path.join(HARNESS, "run.sh"), new URL(edge.url).host, reports], {
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, OCI_USERNAME: "conformance", OCI_PASSWORD: PASSWORD },
    });
    const summary = /conformance: (\d+) passed, (\d+) failed, (\d+) skipped/.exec(stdout);
    expect(summary, stdout).not.toBeNull();
    const [passed, failed] = [Number(summary![1]), Number(summary![2])];
    const failures = failed > 0 ? await readFile(path.join(reports, "failures.txt"), "utf8") : "";
    expect({ passed, failed, failures }).toEqual({ passed: SPECS, failed: 0, failures: "" });
    // Without credentials the same registry refuses the suite's first pull.
    expect((await fetch(`${edge.url}/v2/conformance/a/tags/list`)).status).toBe(401);
  }, 600_000);
});
