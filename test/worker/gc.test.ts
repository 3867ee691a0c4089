import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { errorCode, pushBlob, pushImage, pushManifest, sha256 } from "../helpers/registry-client.js";
import { blobDigests, runGc, startGc, storedKeys, waitForRun, type GcRunJson } from "../helpers/gc.js";

const RETENTION = { "": { untaggedDays: 0 }, "ret/": { keepLast: 2, keepTags: "^stable$", untaggedDays: 0 } };

let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge({ SHOAL_GC_GRACE_SECONDS: "0", SHOAL_GC_RETENTION: JSON.stringify(RETENTION) });
});
afterAll(async () => edge?.destroy());

async function pullsWhole(url: string, name: string, reference: string): Promise<void> {
  const res = await fetch(`${url}/v2/${name}/manifests/${reference}`);
  expect(res.status, `${name}:${reference}`).toBe(200);
  const manifest = (await res.json()) as { config: { digest: string }; layers: { digest: string }[] };
  for (const blob of [manifest.config, ...manifest.layers]) {
    const b = await fetch(`${url}/v2/${name}/blobs/${blob.digest}`);
    expect(b.status, `${name} ${blob.digest}`).toBe(200);
    expect(sha256(new Uint8Array(await b.arrayBuffer()))).toBe(blob.digest);
  }
}

describe("garbage collection", () => {
  it("a dry run reports what a run frees and deletes nothing; the run frees it; metrics and history show both", async () => {
    await pushImage(edge.url, "dry/app", "v1", ["dry-keep"]);
    const gone = await pushImage(edge.url, "dry/app", "v2", ["dry-gone-1", "dry-gone-2"]);
    expect((await fetch(`${edge.url}/v2/dry/app/manifests/${gone.digest}`, { method: "DELETE" })).status).toBe(202);
    await pushBlob(edge.url, "dry/app", "dry-loose");
    const before = await storedKeys(edge);
    const dry = await runGc(edge.url, { dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(dry.counters.freedObjects).toBe(0);
    expect(dry.counters.garbageObjects).toBeGreaterThanOrEqual(4); // two layers, the manifest, the loose blob
    expect(await storedKeys(edge)).toEqual(before);
    await pullsWhole(edge.url, "dry/app", "v1");

    const run = await runGc(edge.url);
    expect(run.counters.freedObjects).toBe(run.counters.garbageObjects);
    expect(run.counters.freedBytes).toBe(run.counters.garbageBytes);
    expect(run.counters.freedObjects).toBeGreaterThanOrEqual(dry.counters.garbageObjects);
    const stored = blobDigests(await storedKeys(edge));
    for (const content of ["dry-gone-1", "dry-gone-2", "dry-loose"]) expect(stored).not.toContain(sha256(content));
    expect(stored).not.toContain(gone.digest);
    await pullsWhole(edge.url, "dry/app", "v1");

    const history = (await (await fetch(`${edge.url}/shoal/v1/gc`)).json()) as { runs: GcRunJson[]; graceSeconds: number };
    expect(history.graceSeconds).toBe(0);
    expect(history.runs.slice(0, 2).map((r) => r.id)).toEqual([run.id, dry.id]);
    const metrics = await (await fetch(`${edge.url}/shoal/v1/gc/metrics`)).text();
    expect(metrics).toMatch(/^shoal_edge_stored_bytes \d+$/m);
    expect(metrics).toContain(`shoal_gc_last_freed_bytes ${run.counters.freedBytes}`);
    expect(metrics).toContain("shoal_gc_running 0");
    const dashboard = await (await fetch(`${edge.url}/dashboard`)).text();
    expect(dashboard).toContain("Storage and garbage collection");
    expect(dashboard).toContain(`data-gc-run="${run.id}"`);
    expect(dashboard).toContain(`data-gc-run="${dry.id}"`);
  });

  it("retention per prefix: keeps the last N tags by push time and the tags matching the pattern, drops the others and what only they held", async () => {
    const stable = await pushImage(edge.url, "ret/app", "stable", ["ret-stable"]);
    const old = await pushImage(edge.url, "ret/app", "old", ["ret-old"]);
    await pushImage(edge.url, "ret/app", "new1", ["ret-new1"]);
    await pushImage(edge.url, "ret/app", "new2", ["ret-new2"]);
    // Outside the prefix, every tag is kept.
    await pushImage(edge.url, "other/app", "old", ["ret-old"]);
    await pushImage(edge.url, "other/app", "x", ["other-x"]);
    await pushImage(edge.url, "other/app", "y", ["other-y"]);
    const run = await runGc(edge.url);
    expect(run.counters.tagsDropped).toBe(1);
    const tags = (await (await fetch(`${edge.url}/v2/ret/app/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags.sort()).toEqual(["new1", "new2", "stable"]);
    expect((await fetch(`${edge.url}/v2/ret/app/manifests/${old.digest}`)).status).toBe(404);
    await pullsWhole(edge.url, "ret/app", stable.digest);
    // Its layer lives on through the other repository; the manifest's bytes too (the same JSON).
    await pullsWhole(edge.url, "other/app", "old");
    expect(blobDigests(await storedKeys(edge))).toContain(sha256("ret-old"));
  });

  it("never deletes a blob that a push links again while the run goes on (the interlock), whatever the timing", async () => {
    const layers = Array.from({ length: 6 }, (_, i) => `relinked-${i}`);
    for (let round = 0; round < 4; round++) {
      // Blobs left unreachable: a deleted image's layers.
      const dead = await pushImage(edge.url, "race/a", `r${round}`, layers);
      expect((await fetch(`${edge.url}/v2/race/a/manifests/${dead.digest}`, { method: "DELETE" })).status).toBe(202);
      // A collection and pushes that use those blobs again, at the same time; a push refused
      // because it lost the race is pushed again, as a client would.
      const gc = runGc(edge.url, { batchSize: 2 });
      const pushes = ["race/b", "race/c", "race/a"].map(async (name) => {
        for (let attempt = 0; ; attempt++) {
          try {
            return await pushImage(edge.url, name, `r${round}`, layers);
          } catch (error) {
            if (attempt > 5 || !/BLOB_UNKNOWN/.test(String(error))) throw error;
          }
        }
      });
      const [report] = await Promise.all([gc, ...pushes]);
      for (const name of ["race/b", "race/c", "race/a"]) await pullsWhole(edge.url, name, `r${round}`);
      // And the next run, with no pushes going on, keeps them too: they are tagged.
      await runGc(edge.url);
      for (const name of ["race/b", "race/c", "race/a"]) await pullsWhole(edge.url, name, `r${round}`);
      expect(report!.phase).toBe("done");
    }
  });

  it("refuses a manifest whose blobs were collected after the route checked them (MANIFEST_BLOB_UNKNOWN), and takes it once they are pushed again", async () => {
    const config = await pushBlob(edge.url, "late/app", "{}");
    const layer = await pushBlob(edge.url, "late/app", "late-layer");
    await runGc(edge.url); // nothing referenced them: unlinked and deleted
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: config, size: 2 },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size: 10 }],
    };
    const refused = await pushManifest(edge.url, "late/app", "v1", manifest, manifest.mediaType);
    expect(refused.status).toBe(400);
    expect(await errorCode(refused)).toBe("MANIFEST_BLOB_UNKNOWN");
    await pushBlob(edge.url, "late/app", "{}");
    await pushBlob(edge.url, "late/app", "late-layer");
    expect((await pushManifest(edge.url, "late/app", "v1", manifest, manifest.mediaType)).status).toBe(201);
    await runGc(edge.url);
    await pullsWhole(edge.url, "late/app", "v1");
  });

  it("a collector killed mid-sweep and started again loses nothing reachable and finishes the sweep", async () => {
    const images = [];
    for (let i = 0; i < 3; i++) images.push(await pushImage(edge.url, "kill/app", `v${i}`, [`kill-layer-${i}`, "kill-shared"]));
    // Orphans, then a run to kill while it deletes them. On a fast machine a run can finish before
    // the test sees it mid-sweep: then it tries again with new orphans (the earlier run freed its own).
    const orphans: string[] = [];
    let lastOrphans = 0;
    let started: { id: number } | undefined;
    for (let attempt = 0; !started; attempt++) {
      expect(attempt, "never caught a run mid-sweep").toBeLessThan(6);
      const these: string[] = [];
      for (let i = 0; i < 120 * (attempt + 1); i++) these.push(await pushBlob(edge.url, `kill/junk${i % 3}`, `kill-orphan-${attempt}-${i}`));
      orphans.push(...these);
      const run = await startGc(edge.url, { batchSize: 1 });
      // Wait until it is deleting, then kill the edge under it.
      for (;;) {
        const now = (await (await fetch(`${edge.url}/shoal/v1/gc/runs/${run.id}`)).json()) as GcRunJson;
        if (now.phase === "done") break;
        if (now.phase === "blobs" && now.counters.freedObjects > 0) {
          started = run;
          lastOrphans = these.length;
          break;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    edge = await edge.restart();
    const joined = await startGc(edge.url);
    expect(joined.id).toBe(started.id);
    const report = await waitForRun(edge.url, started.id);
    // The batch in hand when it was killed deleted its blob, but its count was lost with it.
    expect(report.counters.freedObjects).toBeGreaterThanOrEqual(lastOrphans - 1);
    const stored = blobDigests(await storedKeys(edge));
    for (const orphan of orphans) expect(stored).not.toContain(orphan);
    for (let i = 0; i < 3; i++) await pullsWhole(edge.url, "kill/app", `v${i}`);
    expect(images.every((image) => stored.includes(image.digest))).toBe(true);
  });
});
