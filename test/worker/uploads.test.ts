import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { errorCode, pushBlob, pushBlobChunked, sha256, startUpload } from "../helpers/registry-client.js";

let edge: TestEdge;
const CHUNK_MAX = 8 * 1024 * 1024;
beforeAll(async () => {
  edge = await startTestEdge({ SHOAL_CHUNK_MAX_BYTES: String(CHUNK_MAX) });
});
afterAll(async () => edge?.destroy());

async function blobStatus(name: string, digest: string): Promise<number> {
  return (await fetch(`${edge.url}/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status;
}

describe("blob uploads", () => {
  it("POST starts a session: 202 with Location, Range, upload UUID and the chunk limit", async () => {
    const res = await fetch(`${edge.url}/v2/up/start/blobs/uploads/`, { method: "POST" });
    expect(res.status).toBe(202);
    expect(res.headers.get("Location")).toMatch(/^\/v2\/up\/start\/blobs\/uploads\/[0-9a-f-]{36}$/);
    expect(res.headers.get("Range")).toBe("0-0");
    expect(res.headers.get("Docker-Upload-UUID")).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get("OCI-Chunk-Max-Length")).toBe(String(CHUNK_MAX));
    expect(res.headers.get("Docker-Distribution-API-Version")).toBe("registry/2.0");
  });

  it("monolithic POST ?digest= stores a verified blob (201) readable with HEAD and GET", async () => {
    const data = randomBytes(1000);
    const digest = await pushBlob(edge.url, "up/mono", data);
    const head = await fetch(`${edge.url}/v2/up/mono/blobs/${digest}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("Content-Length")).toBe("1000");
    expect(head.headers.get("Docker-Content-Digest")).toBe(digest);
    const get = await fetch(`${edge.url}/v2/up/mono/blobs/${digest}`);
    expect(Buffer.from(await get.arrayBuffer()).equals(data)).toBe(true);
  });

  it("monolithic POST with a wrong digest is DIGEST_INVALID and stores nothing", async () => {
    const digest = sha256("something else");
    const res = await fetch(`${edge.url}/v2/up/bad/blobs/uploads/?digest=${digest}`, { method: "POST", body: "payload" });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe("DIGEST_INVALID");
    expect(await blobStatus("up/bad", digest)).toBe(404);
    expect(await blobStatus("up/bad", sha256("payload"))).toBe(404);
  });

  it("chunked PATCH uploads across part boundaries verify and read back whole (tails carried over)", async () => {
    // 10 MiB parts: 23 MiB in 3 MiB chunks crosses two part boundaries mid-chunk.
    const data = randomBytes(23 * 1024 * 1024 + 17);
    const digest = await pushBlobChunked(edge.url, "up/chunked", data, 3 * 1024 * 1024);
    expect(digest).toBe(sha256(data));
    const res = await fetch(`${edge.url}/v2/up/chunked/blobs/${digest}`);
    expect(res.headers.get("Content-Length")).toBe(String(data.length));
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest);
    // Ranged reads across the part boundary.
    const ranged = await fetch(`${edge.url}/v2/up/chunked/blobs/${digest}`, { headers: { Range: "bytes=10485750-10485769" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("Content-Range")).toBe(`bytes 10485750-10485769/${data.length}`);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(data.subarray(10485750, 10485770))).toBe(true);
  });

  it("a chunk that does not start at the current offset gets 416 with the current Range", async () => {
    const location = await startUpload(edge.url, "up/order");
    const first = await fetch(location, { method: "PATCH", body: "abcd", headers: { "Content-Range": "0-3" } });
    expect(first.status).toBe(202);
    expect(first.headers.get("Range")).toBe("0-3");
    const again = await fetch(location, { method: "PATCH", body: "abcd", headers: { "Content-Range": "0-3" } });
    expect(again.status).toBe(416);
    expect(again.headers.get("Range")).toBe("0-3");
    expect(await errorCode(again)).toBe("BLOB_UPLOAD_INVALID");
    const skip = await fetch(location, { method: "PATCH", body: "efgh", headers: { "Content-Range": "8-11" } });
    expect(skip.status).toBe(416);
    const status = await fetch(location);
    expect(status.status).toBe(204);
    expect(status.headers.get("Range")).toBe("0-3");
    expect(status.headers.get("Location")).toBeTruthy();
    // The last chunk may come with the PUT, with its Content-Range.
    const put = await fetch(`${location}?digest=${sha256("abcdefgh")}`, { method: "PUT", body: "efgh", headers: { "Content-Range": "4-7" } });
    expect(put.status).toBe(201);
    expect(put.headers.get("Location")).toBe(`/v2/up/order/blobs/${sha256("abcdefgh")}`);
  });

  it("PATCH without Content-Range appends (streamed upload), and a chunked-encoding body works", async () => {
    const location = await startUpload(edge.url, "up/stream");
    const parts = [randomBytes(3000), randomBytes(5000)];
    const body = new ReadableStream({
      start(controller) {
        for (const p of parts) controller.enqueue(p);
        controller.close();
      },
    });
    const res = await fetch(location, { method: "PATCH", body, duplex: "half" } as RequestInit);
    expect(res.status).toBe(202);
    expect(res.headers.get("Range")).toBe("0-7999");
    const digest = sha256(Buffer.concat(parts));
    const put = await fetch(`${new URL(res.headers.get("Location")!, edge.url)}?digest=${digest}`, { method: "PUT" });
    expect(put.status).toBe(201);
    expect(await blobStatus("up/stream", digest)).toBe(200);
  });

  it("PUT with a wrong digest is DIGEST_INVALID, stores nothing and ends the session", async () => {
    const location = await startUpload(edge.url, "up/wrong");
    await fetch(location, { method: "PATCH", body: "hello" });
    const wrong = sha256("goodbye");
    const put = await fetch(`${location}?digest=${wrong}`, { method: "PUT" });
    expect(put.status).toBe(400);
    expect(await errorCode(put)).toBe("DIGEST_INVALID");
    expect(await blobStatus("up/wrong", wrong)).toBe(404);
    expect(await blobStatus("up/wrong", sha256("hello"))).toBe(404);
    expect((await fetch(location)).status).toBe(404);
  });

  it("a chunk over the advertised limit gets 413 SIZE_INVALID before anything is stored", async () => {
    const location = await startUpload(edge.url, "up/big");
    const res = await fetch(location, { method: "PATCH", body: new Uint8Array(CHUNK_MAX + 1) });
    expect(res.status).toBe(413);
    expect(await errorCode(res)).toBe("SIZE_INVALID");
    expect(res.headers.get("OCI-Chunk-Max-Length")).toBe(String(CHUNK_MAX));
    const status = await fetch(location);
    expect(status.headers.get("Range")).toBe("0-0");
    // A streamed body without Content-Length is counted and cut at the limit too.
    let sent = 0;
    const stream = new ReadableStream({
      pull(controller) {
        if (sent++ === 12) return controller.close();
        controller.enqueue(new Uint8Array(1024 * 1024));
      },
    });
    const streamed = await fetch(location, { method: "PATCH", body: stream, duplex: "half" } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(await errorCode(streamed)).toBe("SIZE_INVALID");
    expect((await fetch(location)).headers.get("Range")).toBe("0-0");
  });

  it("DELETE cancels an upload; its URL is then unknown", async () => {
    const location = await startUpload(edge.url, "up/cancel");
    await fetch(location, { method: "PATCH", body: "data" });
    expect((await fetch(location, { method: "DELETE" })).status).toBe(204);
    const res = await fetch(location);
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("BLOB_UPLOAD_UNKNOWN");
  });

  it("an upload is reachable only through the repository that started it", async () => {
    const location = await startUpload(edge.url, "up/owner");
    const other = location.replace("/up/owner/", "/up/other/");
    const res = await fetch(other, { method: "PATCH", body: "x" });
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("BLOB_UPLOAD_UNKNOWN");
    const bogus = await fetch(`${edge.url}/v2/up/owner/blobs/uploads/not-a-uuid`);
    expect(bogus.status).toBe(404);
  });

  it("an empty blob uploads and reads back", async () => {
    const location = await startUpload(edge.url, "up/empty");
    const put = await fetch(`${location}?digest=${sha256("")}`, { method: "PUT" });
    expect(put.status).toBe(201);
    const get = await fetch(`${edge.url}/v2/up/empty/blobs/${sha256("")}`);
    expect(get.status).toBe(200);
    expect(get.headers.get("Content-Length")).toBe("0");
    expect((await get.arrayBuffer()).byteLength).toBe(0);
  });
});

describe("sha512 blobs", () => {
  const sha512 = (b: Uint8Array | string) => `sha512:${createHash("sha512").update(b).digest("hex")}`;

  it("a chunked upload over a part boundary closes with a sha512 digest (hashed once, natively)", async () => {
    const data = randomBytes(11 * 1024 * 1024 + 5);
    let location = await startUpload(edge.url, "up/sha512");
    for (let at = 0; at < data.length; at += 4 * 1024 * 1024) {
      const chunk = data.subarray(at, Math.min(data.length, at + 4 * 1024 * 1024));
      const res = await fetch(location, { method: "PATCH", body: chunk, headers: { "Content-Range": `${at}-${at + chunk.length - 1}` } });
      location = new URL(res.headers.get("Location")!, edge.url).toString();
    }
    const wrong = await fetch(`${location}?digest=${sha512("nope")}`, { method: "PUT" });
    expect(wrong.status).toBe(400);
    expect(await errorCode(wrong)).toBe("DIGEST_INVALID");
    expect((await fetch(location)).status).toBe(404);
  });

  it("stores and serves sha512 blobs (monolithic and session), refusing a wrong one", async () => {
    const data = randomBytes(12 * 1024 * 1024);
    let location = await startUpload(edge.url, "up/sha512b");
    for (const half of [data.subarray(0, 6 * 1024 * 1024), data.subarray(6 * 1024 * 1024)]) {
      const patch = await fetch(location, { method: "PATCH", body: half });
      expect(patch.status).toBe(202);
      location = new URL(patch.headers.get("Location")!, edge.url).toString();
    }
    const put = await fetch(`${location}?digest=${sha512(data)}`, { method: "PUT" });
    expect(put.status).toBe(201);
    const get = await fetch(`${edge.url}/v2/up/sha512b/blobs/${sha512(data)}`);
    expect(get.headers.get("Docker-Content-Digest")).toBe(sha512(data));
    expect(Buffer.from(await get.arrayBuffer()).equals(data)).toBe(true);

    const mono = await fetch(`${edge.url}/v2/up/sha512b/blobs/uploads/?digest=${sha512("small")}`, { method: "POST", body: "small" });
    expect(mono.status).toBe(201);
    const bad = await fetch(`${edge.url}/v2/up/sha512b/blobs/uploads/?digest=${sha512("other")}`, { method: "POST", body: "small" });
    expect(await errorCode(bad)).toBe("DIGEST_INVALID");
  });
});

describe("cross-repository mount", () => {
  it("mounts a blob the source repository has (201), else opens an upload (202)", async () => {
    const digest = await pushBlob(edge.url, "mount/src", "mount me");
    const res = await fetch(`${edge.url}/v2/mount/dst/blobs/uploads/?mount=${digest}&from=mount/src`, { method: "POST" });
    expect(res.status).toBe(201);
    expect(res.headers.get("Location")).toBe(`/v2/mount/dst/blobs/${digest}`);
    expect(await blobStatus("mount/dst", digest)).toBe(200);

    const unknown = await fetch(`${edge.url}/v2/mount/dst2/blobs/uploads/?mount=${digest}&from=mount/nowhere`, { method: "POST" });
    expect(unknown.status).toBe(202);
    expect(unknown.headers.get("Location")).toMatch(/^\/v2\/mount\/dst2\/blobs\/uploads\//);
    expect(await blobStatus("mount/dst2", digest)).toBe(404);
  });
});

describe("blob reads", () => {
  it("a blob pushed to one repository is unknown in another", async () => {
    const digest = await pushBlob(edge.url, "iso/a", "isolated");
    const res = await fetch(`${edge.url}/v2/iso/b/blobs/${digest}`);
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("BLOB_UNKNOWN");
  });

  it("serves Range requests (206) and refuses unsatisfiable ones (416)", async () => {
    const digest = await pushBlob(edge.url, "range/r", "0123456789");
    const res = await fetch(`${edge.url}/v2/range/r/blobs/${digest}`, { headers: { Range: "bytes=2-5" } });
    expect(res.status).toBe(206);
    expect(await res.text()).toBe("2345");
    expect(res.headers.get("Content-Range")).toBe("bytes 2-5/10");
    const suffix = await fetch(`${edge.url}/v2/range/r/blobs/${digest}`, { headers: { Range: "bytes=-3" } });
    expect(await suffix.text()).toBe("789");
    const bad = await fetch(`${edge.url}/v2/range/r/blobs/${digest}`, { headers: { Range: "bytes=10-" } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get("Content-Range")).toBe("bytes */10");
  });

  it("DELETE unlinks a blob from the repository (202, then 404)", async () => {
    const digest = await pushBlob(edge.url, "del/blob", "delete me");
    expect((await fetch(`${edge.url}/v2/del/blob/blobs/${digest}`, { method: "DELETE" })).status).toBe(202);
    expect(await blobStatus("del/blob", digest)).toBe(404);
    expect((await fetch(`${edge.url}/v2/del/blob/blobs/${digest}`, { method: "DELETE" })).status).toBe(404);
  });

  it("an upload outlives a restart of the edge between chunks: its digest is then checked on the stored bytes", async () => {
    // The running hash is native and lives in the upload's object; a restart loses it.
    const data = randomBytes(3 * CHUNK_MAX);
    const patch = async (location: string, at: number) => {
      const res = await fetch(location, { method: "PATCH", body: data.subarray(at, at + CHUNK_MAX), headers: { "Content-Range": `${at}-${at + CHUNK_MAX - 1}` } });
      expect(res.status).toBe(202);
      return new URL(res.headers.get("Location")!, edge.url).pathname;
    };
    const good = await patch(await startUpload(edge.url, "up/restart"), 0);
    const bad = await patch(await startUpload(edge.url, "up/restart"), 0);
    edge = await edge.restart();
    for (const path of [good, bad]) await patch(`${edge.url}${await patch(`${edge.url}${path}`, CHUNK_MAX)}`, 2 * CHUNK_MAX);
    const wrong = await fetch(`${edge.url}${bad}?digest=${sha256("something else")}`, { method: "PUT" });
    expect(await errorCode(wrong)).toBe("DIGEST_INVALID");
    const put = await fetch(`${edge.url}${good}?digest=${sha256(data)}`, { method: "PUT" });
    expect(put.status).toBe(201);
    const back = Buffer.from(await (await fetch(`${edge.url}/v2/up/restart/blobs/${sha256(data)}`)).arrayBuffer());
    expect(back.equals(data)).toBe(true);
  }, 300_000);

  it("a PUT carrying the whole blob stores it verified (201); a wrong digest is DIGEST_INVALID and ends the session", async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const location = await startUpload(edge.url, "up/whole");
    const wrong = await fetch(`${location}?digest=${sha256("other")}`, { method: "PUT", body: data });
    expect(await errorCode(wrong)).toBe("DIGEST_INVALID");
    expect(await blobStatus("up/whole", sha256("other"))).toBe(404);
    expect((await fetch(location)).status).toBe(404);
    const again = await startUpload(edge.url, "up/whole");
    const put = await fetch(`${again}?digest=${sha256(data)}`, { method: "PUT", body: data });
    expect(put.status).toBe(201);
    expect(put.headers.get("Docker-Content-Digest")).toBe(sha256(data));
    expect(Buffer.from(await (await fetch(`${edge.url}/v2/up/whole/blobs/${sha256(data)}`)).arrayBuffer()).equals(data)).toBe(true);
    const metainfo = (await (await fetch(`${edge.url}/shoal/v1/up/whole/metainfo/${sha256(data)}`)).json()) as { size: number; pieces: string[] };
    expect(metainfo.size).toBe(data.length);
  });

  it("an invalid digest is DIGEST_INVALID", async () => {
    const res = await fetch(`${edge.url}/v2/a/blobs/sha256:xyz`);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe("DIGEST_INVALID");
  });
});
