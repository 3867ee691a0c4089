/**
 * `npx tsx bench/gc.ts [--blobs 10000] [--manifests 1000] [--out bench-out]`: one garbage
 * collection over an edge (the Worker under miniflare, as the devcluster runs it) holding that
 * many blobs and manifests, half of the manifests deleted and a fifth of the blobs never referenced.
 * Prints the run's time, its storage calls (list pages, delete calls, manifest reads) and what it
 * freed, and writes them to DIR/gc.json.
 */
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createHash } from "node:crypto";
import { startEdgeHost } from "../src/devcluster/edge-host.js";

const { values } = parseArgs({ options: { blobs: { type: "string", default: "10000" }, manifests: { type: "string", default: "1000" }, out: { type: "string", default: "bench-out" }, concurrency: { type: "string", default: "16" } } });
const BLOBS = Number(values.blobs);
const MANIFESTS = Number(values.manifests);
const CONCURRENCY = Number(values.concurrency);
if (![BLOBS, MANIFESTS, CONCURRENCY].every((n) => Number.isInteger(n) && n > 0) || BLOBS < MANIFESTS * 2) {
  console.error("bench gc: --blobs, --manifests and --concurrency are positive integers, --blobs at least twice --manifests");
  process.exit(2);
}

const sha256 = (data: string) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

async function pool<T>(items: T[], run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < items.length) await run(items[next++]!);
  }));
}

export async function benchGc(): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "shoal-bench-gc-"));
  const edge = await startEdgeHost({ stateDir: dir, port: 0, vars: { SHOAL_GC_GRACE_SECONDS: "0", SHOAL_GC_RETENTION: JSON.stringify({ "": { untaggedDays: 0 } }) } });
  try {
    const url = edge.url;
    const postBlob = async (name: string, data: string) => {
      const res = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${sha256(data)}`, { method: "POST", body: data });
      if (res.status !== 201) throw new Error(`blob: ${res.status} ${await res.text()}`);
    };
    // Manifests over 10 repositories, each with a config and layers; the rest of the blobs are loose.
    const perManifest = Math.max(2, Math.floor((BLOBS * 0.8) / MANIFESTS));
    const loose = BLOBS - perManifest * MANIFESTS;
    const started = Date.now();
    const manifests = Array.from({ length: MANIFESTS }, (_, i) => i);
    const digests: string[] = [];
    await pool(manifests, async (i) => {
      const name = `bench/repo${i % 10}`;
      const blobs = Array.from({ length: perManifest }, (_, j) => `manifest ${i} blob ${j}`);
      for (const blob of blobs) await postBlob(name, blob);
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(blobs[0]!), size: Buffer.byteLength(blobs[0]!) },
        layers: blobs.slice(1).map((b) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(b), size: Buffer.byteLength(b) })),
      });
      const res = await fetch(`${url}/v2/${name}/manifests/t${i}`, { method: "PUT", body: manifest, headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
      if (res.status !== 201) throw new Error(`manifest: ${res.status} ${await res.text()}`);
      digests[i] = sha256(manifest);
    });
    await pool(Array.from({ length: loose }, (_, i) => i), (i) => postBlob(`bench/repo${i % 10}`, `loose blob ${i}`));
    await pool(manifests.filter((i) => i % 2 === 0), async (i) => {
      const res = await fetch(`${url}/v2/bench/repo${i % 10}/manifests/${digests[i]}`, { method: "DELETE" });
      if (res.status !== 202) throw new Error(`delete: ${res.status}`);
    });
    const filledS = (Date.now() - started) / 1000;
    console.log(`bench gc: ${MANIFESTS} manifests (${perManifest} blobs each) and ${loose} loose blobs stored in ${filledS.toFixed(1)} s; half the manifests deleted`);

    const t0 = Date.now();
    const start = await fetch(`${url}/shoal/v1/gc`, { method: "POST", body: "{}", headers: { "Content-Type": "application/json" } });
    const { run } = (await start.json()) as { run: { id: number } };
    let report: { phase: string; batches: number; counters: Record<string, number> };
    for (;;) {
      report = await (await fetch(`${url}/shoal/v1/gc/runs/${run.id}`)).json();
      if (report.phase === "done") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const wallS = (Date.now() - t0) / 1000;
    const c = report.counters;
    const result = {
      blobs: BLOBS,
      manifests: MANIFESTS,
      wall_s: wallS,
      batches: report.batches,
      storage_lists: c.storageLists,
      storage_deletes: c.storageDeletes,
      storage_reads: c.storageReads,
      objects_listed: c.objects,
      freed_objects: c.freedObjects,
      freed_bytes: c.freedBytes,
      manifests_dropped: c.manifestsDropped,
    };
    console.log(
      `bench gc: ${wallS.toFixed(1)} s, ${report.batches} batches; storage calls: ${c.storageLists} lists, ${c.storageDeletes} deletes, ${c.storageReads} reads; ` +
        `${c.objects} objects listed, ${c.freedObjects} blobs freed, ${c.manifestsDropped} manifests dropped`,
    );
    await mkdir(values.out!, { recursive: true });
    await writeFile(path.join(values.out!, "gc.json"), `${JSON.stringify(result, null, 2)}\n`);
    return result;
  } finally {
    await edge.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await benchGc();
