import { describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { run } from "../helpers/images.js";

describe("wrangler deploy", () => {
  it("bundles the Worker with every binding and Durable Object class (dry run)", async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), "shoal-deploy-"));
    try {
      const { stdout } = await run(path.resolve("node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", out], {
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
      });
      for (const binding of ["env.REPOSITORY (RepositoryIndex)", "env.UPLOAD (UploadSession)", "env.CATALOG (Catalog)", "env.TRACKER (Tracker)", "env.BLOBS (shoal-blobs)", "env.META"]) {
        expect(stdout).toContain(binding);
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
