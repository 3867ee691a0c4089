import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { pushBlob, pushBlobChunked, sha256 } from "../helpers/registry-client.js";
import { MetainfoSchema, pieceHash } from "../../src/shared/p2p/metainfo.js";

let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge({ SHOAL_CHUNK_MAX_BYTES: String(8 * 1024 * 1024) });
});
afterAll(async () => edge?.destroy());

const MiB = 1024 * 1024;
const expectedPieces = (data: Uint8Array) => {
  const out = [];
  for (let at = 0; at < data.length; at += MiB) out.push(createHash("sha256").update(data.subarray(at, at + MiB)).digest("hex"));
  return out;
};

async function metainfo(name: string, digest: string) {
  const res = await fetch(`${edge.url}/shoal/v1/${name}/metainfo/${digest}`);
  expect(res.status).toBe(200);
  return MetainfoSchema.parse(await res.json());
}

describe("metainfo", () => {
  it("is computed while a chunked upload streams in: 1 MiB pieces, SHA-256 each", async () => {
    // 37 MiB + 3 in 3 MiB chunks: parts of 16 MiB, blocks across chunk and part boundaries.
    const data = randomBytes(37 * MiB + 3);
    const digest = await pushBlobChunked(edge.url, "meta/chunked", data, 3 * MiB);
    const info = await metainfo("meta/chunked", digest);
    expect(info).toEqual({ digest, size: data.length, pieceLength: MiB, blockLength: MiB, pieces: expectedPieces(data) });
    // Each piece verifies with the shared pieceHash an agent uses.
    expect(await pieceHash(data.subarray(MiB, 2 * MiB), info)).toBe(info.pieces[1]);
  });

  it("is computed once on first request for a blob pushed in one POST", async () => {
    const data = randomBytes(5 * MiB);
    const digest = await pushBlob(edge.url, "meta/mono", data);
    const first = await metainfo("meta/mono", digest);
    expect(first.pieces).toEqual(expectedPieces(data));
    expect(await metainfo("meta/mono", digest)).toEqual(first);
  });

  it("is an empty piece list for an empty blob, and BLOB_UNKNOWN outside the blob's repository", async () => {
    const digest = await pushBlob(edge.url, "meta/empty", "");
    expect((await metainfo("meta/empty", digest)).pieces).toEqual([]);
    const other = await fetch(`${edge.url}/shoal/v1/meta/elsewhere/metainfo/${digest}`);
    expect(other.status).toBe(404);
    expect((await fetch(`${edge.url}/shoal/v1/meta/empty/metainfo/${sha256("x")}`)).status).toBe(404);
  });
});
