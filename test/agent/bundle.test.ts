import { describe, expect, it } from "vitest";
import { rm } from "node:fs/promises";
import path from "node:path";
import { bundleAgent } from "../../src/devcluster/build-agent.js";
import { run } from "../helpers/images.js";

describe("npm run build:agent", () => {
  it("bundles the agent into one module that runs with plain node", async () => {
    // In dist/ (beside node_modules) so the bundle's package imports resolve as on a host.
    const bundle = await bundleAgent(path.resolve("dist", `shoal-test-${process.pid}.mjs`));
    try {
      const { stdout } = await run(process.execPath, [bundle, "agent", "--help"]);
      for (const flag of ["--peer-port", "--agent-registry-port", "--agent-server-port", "--no-p2p", "--ingress-rate"]) expect(stdout).toContain(flag);
    } finally {
      await rm(bundle, { force: true });
      await rm(`${bundle}.map`, { force: true });
    }
  });
});
