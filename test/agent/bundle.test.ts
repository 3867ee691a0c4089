import { describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { bundleAgent } from "../../src/devcluster/build-agent.js";
import { run } from "../helpers/images.js";

describe("npm run build:agent", () => {
  it("bundles the agent into one self-contained module that runs with plain node, away from node_modules", async () => {
    // Outside the repository: no node_modules on the way up, so every dependency must be inside.
    const dir = await mkdtemp(path.join(os.tmpdir(), "shoal-bundle-"));
    try {
      const bundle = await bundleAgent(path.join(dir, "shoal.mjs"));
      const { stdout } = await run(process.execPath, [bundle, "agent", "--help"], { cwd: dir });
      for (const flag of ["--peer-port", "--agent-registry-port", "--agent-server-port", "--no-p2p", "--ingress-rate", "--log-format"]) expect(stdout).toContain(flag);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
