import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SPECS, buildConformanceSuite, runConformanceSuite } from "../helpers/conformance.js";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";

/**
 * The OCI distribution-spec conformance suite (test/helpers/conformance.ts, as in
 * test/worker/conformance) against an edge where nothing is anonymous: the suite logs in with
 * OCI_USERNAME/OCI_PASSWORD and goes through the token flow (Bearer challenge, /token with Basic,
 * scoped tokens) for every spec.
 */
const PASSWORD = "conformance-secret-0123456789abcdef";

let edge: TestEdge;
let reports: string;
beforeAll(async () => {
  await buildConformanceSuite();
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
    const { stdout, result } = await runConformanceSuite(new URL(edge.url).host, reports, { OCI_USERNAME: "conformance", OCI_PASSWORD: PASSWORD });
    expect(result, stdout).not.toBeNull();
    expect(result).toEqual({ passed: SPECS, failed: 0, failures: "" });
    // Without credentials the same registry refuses the suite's first pull.
    expect((await fetch(`${edge.url}/v2/conformance/a/tags/list`)).status).toBe(401);
  }, 600_000);
});
