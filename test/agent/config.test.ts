import { describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ConfigError, mergeConfig, parseAgentConfig, parseSize } from "../../src/agent-node/config.js";

const run = promisify(execFile);

describe("agent configuration", () => {
  it.each([
    ["1024", 1024],
    [2048, 2048],
    ["10GiB", 10 * 1024 ** 3],
    ["512MB", 512e6],
    ["1.5 KiB", 1536],
  ])("parseSize(%s) = %d", (input, bytes) => expect(parseSize(input)).toBe(bytes));

  it("refuses a bad size", () => expect(() => parseSize("lots")).toThrow(/invalid size/));

  it("flags override the file; defaults fill the rest", () => {
    const config = parseAgentConfig(
      mergeConfig({ edge: "http://edge:1", zone: "a", store: { dir: "/s", capacity: "1GiB" } }, { zone: "b", peerPort: 9000, cluster: undefined }),
    );
    expect(config).toMatchObject({ edge: "http://edge:1", zone: "b", peerPort: 9000, cluster: "devcluster", store: { dir: "/s", capacity: 1024 ** 3 } });
  });

  it("completes lazily read blobs in the background unless told never to", () => {
    const base = { edge: "http://edge:1", store: { dir: "/s" } };
    expect(parseAgentConfig(base).p2p.lazyComplete).toBe("background");
    expect(parseAgentConfig(mergeConfig(base, { p2p: { lazyComplete: "never" } })).p2p).toMatchObject({ lazyComplete: "never", enabled: true });
    expect(() => parseAgentConfig(mergeConfig(base, { p2p: { lazyComplete: "sometimes" } }))).toThrow(/p2p\.lazyComplete/);
  });

  it("lists every problem with its path", () => {
    try {
      parseAgentConfig({ edge: "not a url", store: {}, peerPort: 70000, bogus: 1 });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const message = (error as Error).message;
      expect(message).toMatch(/edge:/);
      expect(message).toMatch(/store\.dir/);
      expect(message).toMatch(/peerPort/);
      expect(message).toMatch(/bogus/);
    }
  });
});

describe("shoal agent command line", () => {
  const shoal = (args: string[]) => run(process.execPath, ["bin/shoal.mjs", ...args]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

  it("prints help with Kraken's flags", async () => {
    const { stdout } = await shoal(["agent", "--help"]);
    for (const flag of ["--config", "--peer-ip", "--peer-port", "--agent-server-port", "--agent-registry-port", "--zone", "--cluster", "--secrets"]) {
      expect(stdout).toContain(flag);
    }
  });

  it("explains a bad config file in one readable message (exit 2)", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "shoal-cfg-"));
    const file = path.join(dir, "agent.yaml");
    await writeFile(file, "edge: nope\nstore:\n  capacity: lots\n");
    const result = await shoal(["agent", "--config", file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/invalid configuration/);
    expect(result.stderr).toMatch(/store\.capacity: invalid size/);
    await writeFile(file, "edge: [unclosed\n");
    expect((await shoal(["agent", "--config", file])).stderr).toMatch(/not valid YAML/);
    expect((await shoal(["agent", "--config", path.join(dir, "missing.yaml")])).stderr).toMatch(/cannot read .*ENOENT/);
  });

  it("refuses a bad port flag", async () => {
    const result = await shoal(["agent", "--peer-port", "99999"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/port/);
  });
});
