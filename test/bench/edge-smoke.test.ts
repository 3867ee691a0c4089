import { describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { run } from "../helpers/images.js";

/** The edge benchmark is not a test; this tiny run only checks that it still runs and writes its files. */
const TSX = path.resolve("node_modules/.bin/tsx");
const OPERATIONS = ["get", "range_get", "monolithic_put", "chunked_put"];

describe("benchmarks (smoke runs)", () => {
  it("edge: a 4 MiB blob, one round, against distribution: JSON with every figure and an SVG plot", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "shoal-bench-smoke-"));
    try {
      await run(TSX, ["bench/main.ts", "edge", "--size", "4MiB", "--rounds", "1", "--requests", "10", "--out", out], { maxBuffer: 1 << 24 });
      const report = JSON.parse(await readFile(path.join(out, "edge.json"), "utf8"));
      expect(report).toMatchObject({ benchmark: "edge", blob_bytes: 4 * 2 ** 20, rounds: 1 });
      for (const op of OPERATIONS) {
        expect(report.shoal[op].median_mb_per_s).toBeGreaterThan(0);
        expect(report.shoal[op].runtime_cpu_s_per_gib).toBeGreaterThanOrEqual(0);
        expect(report.distribution[op].median_mb_per_s).toBeGreaterThan(0);
        expect(report.ratio_to_distribution[op]).toBeCloseTo(report.shoal[op].median_mb_per_s / report.distribution[op].median_mb_per_s);
      }
      // Reads also straight from the runtime's port (the front's cost), pushes only through the front.
      expect(report.shoal_runtime.get.median_mb_per_s).toBeGreaterThan(0);
      expect(report.shoal_runtime.monolithic_put).toBeUndefined();
      for (const registry of ["shoal", "distribution"]) {
        for (const kind of ["head_blob", "get_manifest_by_tag"]) expect(report[registry].latency[kind].p50_ms).toBeGreaterThan(0);
      }
      expect(await readFile(path.join(out, "edge.svg"), "utf8")).toContain("<svg");
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
