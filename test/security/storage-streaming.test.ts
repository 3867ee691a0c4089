import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ObjectBucket } from "../../src/edge-deno/bucket.js";
import { S3Bucket } from "../../src/edge-deno/s3-bucket.js";
import { FtpBucket } from "../../src/edge-deno/ftp-bucket.js";
import { startS3, startVsftpd } from "../helpers/storage-servers.js";

/**
 * The Deno edge's S3 and FTP backends stream a put's body (a blob pull-through fetches, of any
 * size) to the server instead of reading it whole into memory first. The test holds the body open
 * after 40 MiB and waits for the server's directory (s3rver, Debian's vsftpd) to hold most of them:
 * a backend that buffers sends nothing before the body ends, so it never gets there. Then the rest
 * flows, and the object must read back intact; a streamed body with a wrong checksum stores nothing.
 */
const MiB = 1024 * 1024;
const TOTAL = 72 * MiB;
const HOLD_AT = 40 * MiB;

let scratch: string;
const stops: (() => Promise<void> | void)[] = [];
const backends: Record<string, { bucket: ObjectBucket; dir: string }> = {};

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-streaming-"));
  const s3 = await startS3(path.join(scratch, "s3"));
  stops.push(s3.close);
  backends.s3 = { bucket: new S3Bucket({ endpoint: s3.endpoint, bucket: s3.bucket, region: "us-east-1", accessKeyId: "S3RVER", secretAccessKey: "S3RVER" }), dir: path.join(scratch, "s3") };
  const ftp = await startVsftpd(path.join(scratch, "ftp"));
  stops.push(ftp.close);
  const ftpBucket = new FtpBucket(new URL(ftp.url));
  stops.unshift(() => ftpBucket.close());
  backends.ftp = { bucket: ftpBucket, dir: path.join(scratch, "ftp", "root", "data") };
});
afterAll(async () => {
  for (const stop of stops) await stop();
  await rm(scratch, { recursive: true, force: true });
});

/** Bytes of every file under `dir` (but in a folder named `skip`). */
async function bytesUnder(dir: string, skip?: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile() && !(skip && entry.parentPath.split(path.sep).includes(skip))) total += (await stat(path.join(entry.parentPath, entry.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/** A body of `total` bytes made as it is read, 1 MiB a pull, that stops at `holdAt` until released. */
function heldBody(total: number, holdAt: number) {
  const hash = createHash("sha256");
  let sent = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (sent === holdAt) await released;
        if (sent >= total) return controller.close();
        const chunk = new Uint8Array(MiB);
        for (let i = 0; i < chunk.length; i += 4096) chunk[i] = (sent / MiB + i) & 0xff;
        hash.update(chunk);
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, release, sent: () => sent, sha256: () => hash.copy().digest("hex") };
}

describe.each(["s3", "ftp"])("the %s backend", (name) => {
  it("sends a large put's body to the server while it is still arriving, and stores it intact", async () => {
    const { bucket, dir } = backends[name]!;
    const before = await bytesUnder(dir);
    const body = heldBody(TOTAL, HOLD_AT);
    // The checksum is only known at the end here; give the right one, computed from the same bytes.
    const expected = createHash("sha256");
    for (let at = 0; at < TOTAL; at += MiB) {
      const chunk = new Uint8Array(MiB);
      for (let i = 0; i < chunk.length; i += 4096) chunk[i] = (at / MiB + i) & 0xff;
      expected.update(chunk);
    }
    const sha256 = expected.digest("hex");
    const put = bucket.put("blobs/sha256/streamed", body.stream, { sha256, customMetadata: { "shoal-size": String(TOTAL) } });
    put.catch(() => undefined);
    const deadline = Date.now() + 30_000;
    let reached = 0;
    while (((reached = (await bytesUnder(dir)) - before) < HOLD_AT - 16 * MiB || body.sent() < HOLD_AT) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(body.sent()).toBe(HOLD_AT); // the body is held open …
    expect(reached, "bytes at the server while the body was still open").toBeGreaterThanOrEqual(HOLD_AT - 16 * MiB); // … and most of it is there already
    body.release();
    const stored = await put;
    expect(stored.size).toBe(TOTAL);
    expect(body.sha256()).toBe(sha256);
    const head = await bucket.head("blobs/sha256/streamed");
    expect(head?.size).toBe(TOTAL);
    expect(head?.customMetadata["shoal-size"]).toBe(String(TOTAL));
    const read = createHash("sha256");
    for await (const chunk of (await bucket.get("blobs/sha256/streamed"))!.body) read.update(chunk);
    expect(read.digest("hex")).toBe(sha256);
    await bucket.delete("blobs/sha256/streamed");
  });

  it("stores nothing from a streamed body whose checksum does not match", async () => {
    const { bucket, dir } = backends[name]!;
    const before = await bytesUnder(dir, "._S3rver_uploads");
    const body = heldBody(20 * MiB, -1);
    await expect(bucket.put("blobs/sha256/wrong", body.stream, { sha256: "0".repeat(64) })).rejects.toThrow(/did not match/);
    expect(await bucket.head("blobs/sha256/wrong")).toBeNull();
    expect(await bucket.get("blobs/sha256/wrong")).toBeNull();
    // No part or temporary file left behind either.
    // No temporary file left behind either. (s3rver has no AbortMultipartUpload, so the parts of
    // the aborted upload stay in its own uploads folder; S3 drops them on the abort.)
    expect(await bytesUnder(dir, "._S3rver_uploads")).toBeLessThanOrEqual(before);
  });
});
