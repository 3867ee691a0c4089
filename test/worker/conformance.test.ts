import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SPECS, buildConformanceSuite, runConformanceSuite } from "../helpers/conformance.js";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";

/**
 * The OCI distribution-spec conformance suite (test/helpers/conformance.ts) against the miniflare
 * edge, and against the Deno edge under `npm run test:deno-edge` (SHOAL_TEST_EDGE=deno), like every
 * worker suite.
 */
let edge: TestEdge;
let reports: string;
beforeAll(async () => {
  await buildConformanceSuite();
  edge = await startTestEdge();
  reports = await mkdtemp(path.join(os.tmpdir(), "shoal-conformance-"));
}, 900_000);
afterAll(async () => {
  await edge?.destroy();
  if (reports) await rm(reports, { recursive: true, force: true });
});

describe("OCI distribution-spec conformance", () => {
  it(`passes all ${SPECS} specs`, async () => {
    const { stdout, result } = await runConformanceSuite(new URL(edge.url).host, reports);
    expect(result, stdout).not.toBeNull();
    expect(result).toEqual({ passed: SPECS, failed: 0, failures: "" });
    // The junit report agrees: as many test cases passed, none failed.
    const junit = await readFile(path.join(reports, "junit.xml"), "utf8");
    const suite = /<testsuite\b[^>]*>/.exec(junit)![0];
    expect(Number(/failures="(\d+)"/.exec(suite)![1])).toBe(0);
  }, 600_000);
});
