import { describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { AGENT_ENV_ASSIGNMENTS, AGENT_NODE_FLAGS } from "../../src/agent-node/node-flags.js";

/** The systemd unit runs the agent with flags it accepts and passes systemd's own check. */
const UNIT = "packaging/systemd/shoal-agent.service";
const exec = promisify(execFile);

describe("the systemd unit", () => {
  it("starts `shoal agent` with flags the agent knows, stops within its shutdown time, and keeps the store writable", async () => {
    const unit = await readFile(UNIT, "utf8");
    const value = (key: string) => new RegExp(`^${key}=(.*)$`, "m").exec(unit)?.[1];
    const args = value("ExecStart")!.split(/\s+/);
    // node with the agent's V8 flags (node-flags.ts), then the bundle's agent command.
    const flags = AGENT_NODE_FLAGS.length;
    expect(args.slice(0, 3 + flags)).toEqual(["/usr/bin/node", ...AGENT_NODE_FLAGS, "/opt/shoal/shoal.mjs", "agent"]);
    const { stdout: help } = await exec(path.resolve("node_modules/.bin/tsx"), ["src/agent-node/main.ts", "agent", "--help"]);
    for (const flag of args.slice(3 + flags).filter((a) => a.startsWith("--"))) expect(help).toContain(flag);
    // ...and its environment (node-flags.ts).
    const environment = [...unit.matchAll(/^Environment=(.*)$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    for (const assignment of AGENT_ENV_ASSIGNMENTS) expect(environment).toContain(assignment);
    expect(Number(value("TimeoutStopSec"))).toBeGreaterThan(10); // the agent's own shutdown timeout
    expect(value("ReadWritePaths")).toBe("/var/lib/shoal");
    expect(value("StateDirectory")).toBe("shoal");
    expect(value("ProtectSystem")).toBe("strict");
  });

  it("passes systemd-analyze verify (unknown paths aside)", async () => {
    let output = "";
    try {
      const result = await exec("systemd-analyze", ["verify", UNIT]);
      output = `${result.stdout}${result.stderr}`;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new Error("systemd-analyze is missing: apt-get install systemd (.ci/run does)");
      output = `${(error as { stdout?: string }).stdout ?? ""}${(error as { stderr?: string }).stderr ?? ""}`;
    }
    // The node binary and /opt/shoal do not exist on a build machine; anything else is a unit error.
    const problems = output
      .split("\n")
      .filter((l) => l.trim() && !/\/usr\/bin\/node|\/opt\/shoal|is not executable|No such file|Failed to prepare filename|Command .* is not executable|System has not been booted|Failed to connect to bus/.test(l));
    expect(problems).toEqual([]);
  });
});
