import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { startUpload } from "../helpers/registry-client.js";
import { rssOf, samplePeak, treeRss } from "../helpers/rss.js";

/** A 1 GiB blob through the real Worker under miniflare: memory must not grow with the blob. */
const BLOB_BYTES = Number(process.env.SHOAL_TEST_BIG_BYTES ?? 1024 * 1024 * 1024);
const CHUNK = 64 * 1024 * 1024;
let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge();
});
afterAll(async () => edge?.destroy());

describe("a 1 GiB layer", () => {
  it("pushes in chunks and pulls back with flat memory", async () => {
    const baseline = treeRss(process.pid);
    const peak = samplePeak(() => treeRss(process.pid));
    const ownBaseline = rssOf(process.pid);
    const ownPeak = samplePeak(() => rssOf(process.pid));
    const hash = createHash("sha256");
    let location = await startUpload(edge.url, "big/one");
    for (let at = 0; at < BLOB_BYTES; at += CHUNK) {
      const length = Math.min(CHUNK, BLOB_BYTES - at);
      // Each chunk streams from 1 MiB pieces, so the test itself holds little.
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= length) return controller.close();
          const piece = randomBytes(Math.min(1024 * 1024, length - sent));
          hash.update(piece);
          sent += piece.length;
          controller.enqueue(piece);
        },
      });
      const res = await fetch(location, {
        method: "PATCH",
        body,
        duplex: "half",
        headers: { "Content-Range": `${at}-${at + length - 1}`, "Content-Length": String(length) },
      } as RequestInit);
      expect(res.status).toBe(202);
      location = new URL(res.headers.get("Location")!, edge.url).toString();
    }
    const digest = `sha256:${hash.digest("hex")}`;
    const put = await fetch(`${location}?digest=${digest}`, { method: "PUT" });
    expect(put.status).toBe(201);

    const res = await fetch(`${edge.url}/v2/big/one/blobs/${digest}`);
    expect(res.headers.get("Content-Length")).toBe(String(BLOB_BYTES));
    const readBack = createHash("sha256");
    let received = 0;
    for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
      readBack.update(piece);
      received += piece.length;
    }
    expect(received).toBe(BLOB_BYTES);
    expect(`sha256:${readBack.digest("hex")}`).toBe(digest);
    const growth = peak.stop() - baseline;
    const ownGrowth = ownPeak.stop() - ownBaseline;
    console.log(
      `${BLOB_BYTES} bytes push+pull: RSS of node + workerd grew ${(growth / 1048576).toFixed(0)} MiB ` +
        `(the test's own node process, client and edge front: ${(ownGrowth / 1048576).toFixed(0)} MiB)`,
    );
    // Flat: a fraction of the blob (one chunk in flight, one part buffered), not the blob itself.
    expect(growth).toBeLessThan(400 * 1024 * 1024);
  }, 600_000);
});
