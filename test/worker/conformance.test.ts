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
 * The official OCI distribution-spec conformance suite (v1.1.1), built offline from Debian's Go by
 * the harness in the shared tools beside the repository (CI clones the repository next to a copy
 * of shared/; SHOAL_SHARED_DIR points elsewhere). Runs against the miniflare edge, and against the
 * Deno edge under `npm run test:deno-edge` (SHOAL_TEST_EDGE=deno), like every worker suite.
 */
const HARNESS = path.join(process.env.SHOAL_SHARED_DIR ?? path.resolve(PROJECT_ROOT, "../shared"), "tools/oci-conformance");
/** Specs the suite runs with push, pull, discovery and management enabled (5 more skip by its own conditions). */
const SPECS = 74;

let edge: TestEdge;
let reports: string;
beforeAll(async () => {
  if (!existsSync(path.join(HARNESS, "run.sh"))) throw new Error(`conformance harness not found at ${HARNESS} (set SHOAL_SHARED_DIR)`);
  // Builds once (about 30 s, 3 min on a busy machine), then reuses the binary while its inputs are unchanged.
  // Under a lock: this file and its sibling build into the same directory, and on a fresh machine
  // two builds at once collided ("cp: cannot create regular file …: File exists").
  await exec("flock", [path.join(os.tmpdir(), "shoal-oci-conformance.lock"), "bash", path.join(HARNESS, "build.sh")], { maxBuffer: 64 * 1024 * 1024 });
  edge = await startTestEdge();
  reports = await mkdtemp(path.join(os.tmpdir(), "shoal-conformance-"));
}, 900_000);
afterAll(async () => {
  await edge?.destroy();
  if (reports) await rm(reports, { recursive: true, force: true });
});

describe("OCI distribution-spec conformance", () => {
  it(`passes all ${SPECS} specs`, async () => {
    const { stdout } = await exec("bash", [path.join(HARNESS, "run.sh"), new URL(edge.url).host, reports], { maxBuffer: 64 * 1024 * 1024 });
    const summary = /conformance: (\d+) passed, (\d+) failed, (\d+) skipped/.exec(stdout);
    expect(summary, stdout).not.toBeNull();
    const [passed, failed] = [Number(summary![1]), Number(summary![2])];
    // The failing specs with the suite's reasons, so a regression says what broke.
    const failures = failed > 0 ? await readFile(path.join(reports, "failures.txt"), "utf8") : "";
    expect({ passed, failed, failures }).toEqual({ passed: SPECS, failed: 0, failures: "" });
    // The junit report agrees: as many test cases passed, none failed.
    const junit = await readFile(path.join(reports, "junit.xml"), "utf8");
    const suite = /<testsuite\b[^>]*>/.exec(junit)![0];
    expect(Number(/failures="(\d+)"/.exec(suite)![1])).toBe(0);
  }, 600_000);
});
