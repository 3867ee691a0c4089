import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ObjectBucket } from "../../src/edge-deno/bucket.js";
import { FileBucket } from "../../src/edge-deno/file-bucket.js";
import { S3Bucket } from "../../src/edge-deno/s3-bucket.js";
import { FtpBucket } from "../../src/edge-deno/ftp-bucket.js";
import { startS3, startVsftpd } from "../helpers/storage-servers.js";

/**
 * Every storage backend of the self-hosted edge behaves as the part of R2 the edge uses: the same
 * tests against files, a real S3-compatible server (s3rver) and a real FTP server (vsftpd).
 */
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const text = async (body: ReadableStream<Uint8Array>) => Buffer.from(await new Response(body).arrayBuffer());

let scratch: string;
const stops: (() => Promise<void> | void)[] = [];
const backends: Record<string, () => ObjectBucket> = {};

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-buckets-"));
  backends.files = () => new FileBucket(path.join(scratch, "files"));
  const s3 = await startS3(path.join(scratch, "s3"));
  stops.push(s3.close);
  backends.s3 = () => new S3Bucket({ endpoint: s3.endpoint, bucket: s3.bucket, region: "us-east-1", accessKeyId: "S3RVER", secretAccessKey: "S3RVER" });
  const ftp = await startVsftpd(path.join(scratch, "ftp"));
  stops.push(ftp.close);
  const ftpBucket = new FtpBucket(new URL(ftp.url));
  stops.unshift(() => ftpBucket.close());
  backends.ftp = () => ftpBucket;
});
afterAll(async () => {
  for (const stop of stops) await stop();
  await rm(scratch, { recursive: true, force: true });
});

describe.each(["files", "s3", "ftp"])("the %s backend", (name) => {
  const bucket = () => backends[name]!();

  it("stores an object with its metadata and reads it back whole and by range", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    await bucket().put("blobs/sha256/abc", data, { sha256: sha256(data), customMetadata: { "shoal-size": String(data.length) } });
    const head = await bucket().head("blobs/sha256/abc");
    expect(head?.size).toBe(data.length);
    expect(head?.customMetadata["shoal-size"]).toBe(String(data.length));
    const whole = await bucket().get("blobs/sha256/abc");
    expect((await text(whole!.body)).equals(data)).toBe(true);
    const part = await bucket().get("blobs/sha256/abc", { range: { offset: 1_000_000, length: 2_000_000 } });
    expect(part!.range).toEqual({ offset: 1_000_000, length: 2_000_000 });
    expect((await text(part!.body)).equals(data.subarray(1_000_000, 3_000_000))).toBe(true);
    const tail = await bucket().get("blobs/sha256/abc", { range: { suffix: 10 } });
    expect((await text(tail!.body)).equals(data.subarray(data.length - 10))).toBe(true);
    expect(await (await bucket().get("blobs/sha256/abc", { range: { offset: 5, length: 3 } }))!.arrayBuffer()).toEqual(data.subarray(5, 8).buffer.slice(data.byteOffset + 5, data.byteOffset + 8));
  });

  it("refuses a put whose checksum does not match, in R2's words, and stores nothing", async () => {
    await expect(bucket().put("blobs/sha256/bad", "hello", { sha256: "0".repeat(64) })).rejects.toThrow(/did not match/);
    expect(await bucket().head("blobs/sha256/bad")).toBeNull();
    expect(await bucket().get("blobs/sha256/bad")).toBeNull();
  });

  it("overwrites, deletes, and answers null for what is not there", async () => {
    await bucket().put("uploads/x/tail/5", "first");
    await bucket().put("uploads/x/tail/5", "second");
    expect(await (await bucket().get("uploads/x/tail/5"))!.text()).toBe("second");
    await bucket().delete("uploads/x/tail/5");
    await bucket().delete("never/there");
    expect(await bucket().head("uploads/x/tail/5")).toBeNull();
  });

  it("lists keys in order under a prefix, a page at a time after a key, with sizes, times and metadata", async () => {
    const keys = ["gc/list/b", "gc/list/a", "gc/list/c/d", "gc/list/c/e", "gc/other"];
    for (const key of keys) await bucket().put(key, key);
    await bucket().put("gc/list/pointer", new Uint8Array(0), { customMetadata: { "shoal-location": "content/x", "shoal-size": "7" } });
    const first = await bucket().list({ prefix: "gc/list/", limit: 3, include: ["customMetadata"] });
    expect(first.objects.map((o) => o.key)).toEqual(["gc/list/a", "gc/list/b", "gc/list/c/d"]);
    expect(first.truncated).toBe(true);
    expect(first.objects[0]!.size).toBe("gc/list/a".length);
    expect(Math.abs(first.objects[0]!.uploaded.getTime() - Date.now())).toBeLessThan(120_000);
    const rest = await bucket().list({ prefix: "gc/list/", startAfter: "gc/list/c/d", limit: 3, include: ["customMetadata"] });
    expect(rest.objects.map((o) => o.key)).toEqual(["gc/list/c/e", "gc/list/pointer"]);
    expect(rest.truncated).toBe(false);
    expect(rest.objects[1]!.customMetadata["shoal-location"]).toBe("content/x");
    await bucket().delete([...keys, "gc/list/pointer"]);
    expect((await bucket().list({ prefix: "gc/" })).objects).toEqual([]);
  });

  it("assembles multipart uploads from parts sent in any order, and aborts them", async () => {
    const parts = [randomBytes(5 * 1024 * 1024), randomBytes(5 * 1024 * 1024), randomBytes(1234)];
    const upload = await bucket().createMultipartUpload("content/upload-1");
    const sent = [];
    for (const i of [2, 0, 1]) sent.push(await bucket().resumeMultipartUpload("content/upload-1", upload.uploadId).uploadPart(i + 1, parts[i]!));
    const object = await upload.complete(sent);
    const all = Buffer.concat(parts);
    expect(object.size).toBe(all.length);
    expect((await text((await bucket().get("content/upload-1"))!.body)).equals(all)).toBe(true);
    const middle = await bucket().get("content/upload-1", { range: { offset: 5 * 1024 * 1024 - 10, length: 20 } });
    expect((await text(middle!.body)).equals(all.subarray(5 * 1024 * 1024 - 10, 5 * 1024 * 1024 + 10))).toBe(true);

    const dropped = await bucket().createMultipartUpload("content/upload-2");
    await dropped.uploadPart(1, parts[0]!);
    await dropped.abort();
    expect(await bucket().head("content/upload-2")).toBeNull();
  });

  it("serves concurrent ranged reads", async () => {
    const data = randomBytes(8 * 1024 * 1024);
    await bucket().put("blobs/sha256/many", data);
    const reads = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => text((await bucket().get("blobs/sha256/many", { range: { offset: i * 1024 * 1024, length: 1024 * 1024 } }))!.body)),
    );
    expect(Buffer.concat(reads).equals(data)).toBe(true);
  });
});
