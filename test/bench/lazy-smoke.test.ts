import { describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { LazyReport } from "../../bench/lazy.js";

const TSX = path.resolve("node_modules/.bin/tsx");

describe("npm run bench -- lazy", () => {
  it("times random Range reads at a small size and writes its figures and plot", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "shoal-lazy-bench-"));
    try {
      const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(TSX, ["bench/main.ts", "lazy", "--size", "16MiB", "--reads", "4", "--out", out], (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr })),
      );
      expect(result.code, result.stderr.slice(-3000)).toBe(0);
      expect(result.stdout).toMatch(/cold agent +ttfb p50 [\d.]+ ms/);
      const report = JSON.parse(await readFile(path.join(out, "lazy.json"), "utf8")) as LazyReport;
      expect(report.reads).toBe(4);
      expect(report.cold_agent.reads).toHaveLength(4);
      // A 64 KiB read covers one piece, or two across a boundary: never more.
      for (const read of report.cold_agent.reads) expect(read.fetched_bytes).toBeLessThanOrEqual(2 * report.piece_bytes);
      // The second agent's reads come from its peer's partial copy.
      expect(report.warm_peer.origin_bytes).toBe(0);
      expect(report.warm_peer.fetched_bytes).toBeGreaterThan(0);
      expect(report.tail_read.cold_agent_fetched_bytes).toBeLessThanOrEqual(2 * report.piece_bytes);
      expect(report.tail_read.second_agent_origin_bytes).toBe(0);
      expect((await stat(path.join(out, "lazy.svg"))).size).toBeGreaterThan(1000);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 300_000);
});
