import { describe, expect, it } from "vitest";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { bundleAgent } from "../../src/devcluster/build-agent.js";
import { run } from "../helpers/images.js";
import { AGENT_ENV_ASSIGNMENTS, AGENT_NODE_FLAGS } from "../../src/agent-node/node-flags.js";

describe("npm run build:agent", () => {
  it("bundles the agent into one self-contained module that runs with plain node, away from node_modules", async () => {
    // Outside the repository: no node_modules on the way up, so every dependency must be inside.
    const dir = await mkdtemp(path.join(os.tmpdir(), "shoal-bundle-"));
    try {
      const bundle = await bundleAgent(path.join(dir, "shoal.mjs"));
      const { stdout } = await run(process.execPath, [bundle, "agent", "--help"], { cwd: dir });
      for (const flag of ["--peer-port", "--agent-registry-port", "--agent-server-port", "--no-p2p", "--ingress-rate", "--log-format"]) expect(stdout).toContain(flag);
      // Run as a program: its #! line sets the agent's environment and V8 flags (node-flags.ts).
      const [shebang] = (await readFile(bundle, "utf8")).split("\n", 1);
      expect(shebang).toBe(`#!/usr/bin/env -S ${[...AGENT_ENV_ASSIGNMENTS, "node", ...AGENT_NODE_FLAGS].join(" ")}`);
      await chmod(bundle, 0o755);
      const direct = await run(bundle, ["agent", "--help"], { cwd: dir, env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` } });
      expect(direct.stdout).toContain("--peer-port");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
