import { describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { run } from "../helpers/images.js";

/** Benchmarks are not tests; these tiny runs only check that they still run and write their files. */
const TSX = path.resolve("node_modules/.bin/tsx");

describe("benchmarks (smoke runs)", () => {
  it("p2p: 2 agents, 8 MiB, p2p and direct modes: JSON with the figures and an SVG plot", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "shoal-bench-smoke-"));
    try {
      await run(TSX, ["bench/main.ts", "p2p", "--agents", "2", "--size", "8MiB", "--modes", "p2p,direct", "--out", out], { maxBuffer: 1 << 24 });
      const report = JSON.parse(await readFile(path.join(out, "p2p.json"), "utf8"));
      expect(report).toMatchObject({ agents: 2, blob_bytes: 8 * 2 ** 20, registry: null });
      expect(report.bound_s).toBeCloseTo(8 / 6.25);
      for (const mode of ["p2p", "direct"]) {
        expect(report[mode].times_s).toHaveLength(2);
        // An honest link: nobody finishes before the bound allows (less the half-second burst).
        expect(report[mode].p50_s).toBeGreaterThan(report.bound_s - 0.6);
        expect(report[mode].wan_bytes).toBeGreaterThan(0);
        expect(report[mode].agent_peak_rss_bytes).toBeGreaterThan(0);
      }
      // Direct pulls cost a copy per agent through the uplink; P2P less.
      expect(report.direct.wan_bytes).toBeGreaterThanOrEqual(2 * 8 * 2 ** 20);
      expect(await readFile(path.join(out, "p2p.svg"), "utf8")).toContain("<svg");
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it("agent: one agent pulls 16 MiB from 2 seeders, against aria2: JSON with both clients' figures", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "shoal-bench-smoke-"));
    try {
      await run(TSX, ["bench/main.ts", "agent", "--size", "16MiB", "--seeders", "2", "--rounds", "1", "--out", out], { maxBuffer: 1 << 24 });
      const report = JSON.parse(await readFile(path.join(out, "agent.json"), "utf8"));
      expect(report).toMatchObject({ blob_bytes: 16 * 2 ** 20, seeders: 2, rounds: 1 });
      for (const client of ["shoal", "aria2"]) {
        const [round] = report[client];
        expect(round.mb_per_s).toBeGreaterThan(0);
        expect(round.cpu_s_per_gib_received).toBeGreaterThan(0);
        expect(round.peak_rss_bytes).toBeGreaterThan(0);
      }
      // The seeders fed the puller: at most a piece or two came from the edge.
      expect(report.shoal[0].origin_bytes).toBeLessThanOrEqual(2 * 2 ** 20);
      expect(report.cpu_ratio).toBeCloseTo(report.median.shoal.cpu_s_per_gib_received / report.median.aria2.cpu_s_per_gib_received);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it("serve: a 16 MiB blob to 2 readers against distribution: JSON with both rates", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "shoal-bench-smoke-"));
    try {
      await run(TSX, ["bench/main.ts", "serve", "--size", "16MiB", "--readers", "2", "--rounds", "1", "--out", out], { maxBuffer: 1 << 24 });
      const report = JSON.parse(await readFile(path.join(out, "serve.json"), "utf8"));
      expect(report.shoal.mb_per_s).toBeGreaterThan(0);
      expect(report.distribution.mb_per_s).toBeGreaterThan(0);
      expect(report.ratio).toBeCloseTo(report.shoal.mb_per_s / report.distribution.mb_per_s);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
