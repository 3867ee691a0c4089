import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { pushBlobChunked } from "../helpers/registry-client.js";
import { rssOf, samplePeak, treeRss } from "../helpers/rss.js";

/**
 * A client that reads a big blob slowly must not make the edge hold the blob: the runtime's
 * storage reads ran ahead of it (miniflare held ~the whole object), so the edge reads storage one
 * bounded range at a time (READ_RANGE_BYTES in src/worker/storage/blob-store.ts).
 */
const BLOB_BYTES = 128 * 1024 * 1024;
let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge();
});
afterAll(async () => edge?.destroy());

/** Resident memory of the edge's runtime: this process's tree without this process (and its front). */
const runtimeRss = () => treeRss(process.pid) - rssOf(process.pid);

describe("a slow reader of a big blob", () => {
  it("gets every byte while the edge's memory stays flat", async () => {
    const blob = randomBytes(BLOB_BYTES);
    const digest = await pushBlobChunked(edge.url, "big/slow", blob, 64 * 1024 * 1024);
    const baseline = runtimeRss();
    const peak = samplePeak(runtimeRss, 50);
    const res = await fetch(`${edge.url}/v2/big/slow/blobs/${digest}`);
    expect(res.headers.get("Content-Length")).toBe(String(BLOB_BYTES));
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const hash = createHash("sha256");
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      received += value.length;
      await new Promise((r) => setTimeout(r, 2)); // about 30 MB/s: slower than storage
    }
    const growth = peak.stop() - baseline;
    console.log(`${BLOB_BYTES} bytes read slowly: the edge's runtime grew ${(growth / 1048576).toFixed(0)} MiB`);
    expect(received).toBe(BLOB_BYTES);
    expect(`sha256:${hash.digest("hex")}`).toBe(digest);
    // At most a storage range in flight, not the blob (reading all at once, the runtime grew 52 MiB here).
    expect(growth).toBeLessThan(32 * 1024 * 1024);

    // A Range read across several storage ranges, from an odd offset.
    const start = 1_000_003;
    const end = start + 40 * 1024 * 1024;
    const ranged = await fetch(`${edge.url}/v2/big/slow/blobs/${digest}`, { headers: { Range: `bytes=${start}-${end}` } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(blob.subarray(start, end + 1))).toBe(true);
  }, 300_000);
});
