import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { startUpload } from "../helpers/registry-client.js";
import { processTree } from "../helpers/rss.js";

/**
 * Issue 23, item 8: every tiny PATCH made the upload session read its whole tail (up to a 16 MiB
 * part) back from storage and write it again, so a client could make the edge move 32 MiB per
 * request of a few bytes. Measured as the bytes the edge's runtime (workerd and its storage
 * simulator, this process's descendants) reads and writes while the tiny chunks arrive.
 */
let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge();
});
afterAll(async () => edge?.destroy());

/** read + written bytes (rchar + wchar: storage files and sockets) of this process's descendants. */
function descendantsIo(): number {
  let total = 0;
  for (const pid of processTree(process.pid).slice(1)) {
    try {
      const io = readFileSync(`/proc/${pid}/io`, "utf8");
      total += Number(/rchar: (\d+)/.exec(io)![1]) + Number(/wchar: (\d+)/.exec(io)![1]);
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

describe("an upload's tail under tiny chunks", () => {
  it("stores each tiny PATCH's own bytes, not the whole tail again", async () => {
    const hash = createHash("sha256");
    const big = randomBytes(15 * 1024 * 1024);
    hash.update(big);
    let location = await startUpload(edge.url, "sec/tail");
    const patch = async (bytes: Uint8Array, at: number) => {
      const res = await fetch(location, { method: "PATCH", body: bytes, headers: { "Content-Range": `${at}-${at + bytes.length - 1}` } });
      expect(res.status).toBe(202);
      location = new URL(res.headers.get("Location")!, edge.url).toString();
    };
    await patch(big, 0);
    let offset = big.length;
    const TINY = 40;
    const before = descendantsIo();
    for (let i = 0; i < TINY; i++) {
      const tiny = randomBytes(4096);
      hash.update(tiny);
      await patch(tiny, offset);
      offset += tiny.length;
    }
    const moved = descendantsIo() - before;
    console.log(`${TINY} PATCHes of 4 KiB after a 15 MiB tail: the runtime read and wrote ${(moved / 1048576).toFixed(1)} MiB`);
    // Rewriting the tail each time moved 30 MiB per PATCH (1.2 GB here); one tail's worth in all is the bound.
    expect(moved).toBeLessThan(16 * 1024 * 1024);

    const digest = `sha256:${hash.digest("hex")}`;
    expect((await fetch(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    const back = Buffer.from(await (await fetch(`${edge.url}/v2/sec/tail/blobs/${digest}`)).arrayBuffer());
    expect(back.length).toBe(offset);
    expect(`sha256:${createHash("sha256").update(back).digest("hex")}`).toBe(digest);
  });
});
