import { describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

const TSX = path.resolve("node_modules/.bin/tsx");

describe("bench/gc.ts", () => {
  it("times a collection at a small size and writes its figures", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "shoal-gc-bench-"));
    try {
      const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(TSX, ["bench/gc.ts", "--blobs", "40", "--manifests", "10", "--out", out], (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr })),
      );
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/bench gc: [\d.]+ s, \d+ batches; storage calls: \d+ lists/);
      const figures = JSON.parse(await readFile(path.join(out, "gc.json"), "utf8")) as Record<string, number>;
      expect(figures.blobs).toBe(40);
      // A DELETE takes the manifest out of its repository's index at once, so the run finds no
      // manifest of its own to drop; it frees the deleted manifests' bytes with their blobs:
      // 10 loose blobs, and the 5 deleted manifests with their 3 blobs each.
      expect(figures.freed_objects).toBe(10 + 5 * 4);
      expect(figures.storage_lists).toBeGreaterThanOrEqual(1);
      expect(figures.storage_deletes).toBeGreaterThanOrEqual(1);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
