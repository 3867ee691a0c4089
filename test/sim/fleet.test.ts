import { describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { simulateFleet } from "../../bench/sim/fleet.js";
import { run as runCommand } from "../helpers/images.js";

const MiB = 2 ** 20;

/**
 * The fleet simulator (bench/sim) on a small fleet: the real scheduler and tracker logic over the
 * modelled network. Invariants, not timings: every live host completes with every piece verified,
 * no link carries more than its capacity, the same seed gives the same run.
 */
describe("fleet simulator", () => {
  it("200 hosts in 2 zones, staggered, with churn: every survivor completes, every piece verified, no link above its capacity", () => {
    const options = { hosts: 200, size: 8 * MiB, agentBandwidth: 50 * MiB, wanBandwidth: 100 * MiB, zones: 2, stagger: 0.5, churn: 0.1, seed: 7, checkLoad: true };
    const run = simulateFleet(options);
    expect(run.unfinished).toEqual([]);
    expect(run.killed).toBeGreaterThan(0);
    expect(run.result.completed).toBe(200 - run.killed);
    expect(run.badPieces).toBe(0);
    expect(run.peakLoad).toBeGreaterThan(0.5);
    expect(run.peakLoad).toBeLessThanOrEqual(1 + 1e-9);
    // At least one copy crossed the WAN (the edge is the only source at the start), and peers carried most bytes.
    expect(run.result.wan_bytes).toBeGreaterThanOrEqual(8 * MiB);
    expect(run.result.peer_bytes).toBeGreaterThan(run.result.wan_bytes);
    // No host finishes before its link allows.
    expect(run.times[0]!).toBeGreaterThanOrEqual(8 / 50);
    expect(run.result.tracker.announces).toBeGreaterThanOrEqual(200);

    // Deterministic: the same seed, the same run.
    const again = simulateFleet(options);
    expect(again.times).toEqual(run.times);
    expect(again.result.events).toBe(run.result.events);
  }, 60_000);

  it("npm run bench -- sim writes sim.json with exactly the report's fields, and the CDF plot", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "shoal-sim-"));
    try {
      await runCommand(path.resolve("node_modules/.bin/tsx"), ["bench/main.ts", "sim", "--hosts", "8", "--size", "4MiB", "--zones", "2", "--out", out], { maxBuffer: 1 << 24 });
      const report = JSON.parse(await readFile(path.join(out, "sim.json"), "utf8"));
      expect(Object.keys(report).sort()).toEqual(["agent_bandwidth", "blob_bytes", "bound_s", "completed", "events", "hosts", "max_s", "p50_s", "p90_s", "p999_s", "p99_s", "peer_bytes", "tracker", "wall_s", "wan_bandwidth", "wan_bytes"]);
      expect(Object.keys(report.tracker).sort()).toEqual(["announces", "objects", "peak_announces_per_s_per_object"]);
      expect(report).toMatchObject({ hosts: 8, completed: 8, blob_bytes: 4 * MiB });
      expect(report.p50_s).toBeGreaterThanOrEqual(report.bound_s);
      expect(await readFile(path.join(out, "sim.svg"), "utf8")).toContain("<svg");
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 60_000);
});
