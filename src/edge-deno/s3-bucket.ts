import { createHash } from "node:crypto";
import { AwsClient } from "aws4fetch";
import { BodyObject, CHECKSUMS, LIST_MAX_KEYS, bodyBytes, checksumMismatch, PieceReader, resolveRange, verifyChecksum, type ListOptions, type ListedObjects, type MultipartUpload, type ObjectBucket, type PutBody, type PutOptions, type RangeOption, type StoredObject } from "./bucket.js";

/**
 * The edge's objects in any S3-compatible store (AWS S3, R2's S3 API, MinIO, Ceph) through
 * aws4fetch (Web-standard fetch and SigV4, so it runs on Deno): metadata as `x-amz-meta-*`, ranged
 * reads for the web seed, multipart uploads for big blobs. A put of bytes, or of a stream that ends
 * within one part, is one PUT whose checksum is checked before it is sent. A longer stream (a blob
 * pull-through fetches from an upstream, of any size) goes up as a multipart upload one part at a
 * time, hashed on the way, and is completed only if its checksum holds (aborted otherwise): memory
 * holds one part, never the whole body, and a wrong body is never stored. Path-style addressing:
 * `<endpoint>/<bucket>/<key>`.
 */

/** Parts of a streamed put (S3 wants at least 5 MiB but for the last). */
export const STREAM_PART_BYTES = 8 * 1024 * 1024;
export interface S3Settings {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

const META = "x-amz-meta-";

export class S3Bucket implements ObjectBucket {
  private readonly aws: AwsClient;

  constructor(private readonly settings: S3Settings) {
    this.aws = new AwsClient({ accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey, region: settings.region, service: "s3" });
  }

  url(key: string, query = ""): string {
    const path = key
      .split("/")
      .map((segment) => encodeURIComponent(segment))
      .join("/");
    return `${this.settings.endpoint.replace(/\/+$/, "")}/${encodeURIComponent(this.settings.bucket)}/${path}${query}`;
  }

  async send(url: string, init: RequestInit = {}): Promise<Response> {
    let res: Response;
    try {
      res = await this.aws.fetch(url, init);
    } catch (error) {
      throw new Error(`S3 ${init.method ?? "GET"} ${url}: ${(error as Error).message}`);
    }
    return res;
  }

  async head(key: string): Promise<StoredObject | null> {
    const res = await this.send(this.url(key), { method: "HEAD" });
    if (res.status === 404) return null;
    if (!res.ok) throw new Error(`S3 HEAD ${key} answered ${res.status}`);
    return objectFrom(key, res.headers, Number(res.headers.get("content-length") ?? 0));
  }

  /**
   * ListObjects (version 1: its `marker` is R2's `startAfter`, and every S3-compatible store has
   * it; s3rver cannot make V2's continuation tokens on OpenSSL 3). S3 lists no metadata: with
   * `include`, it is read (HEAD) for empty objects, the only ones the edge keeps metadata that
   * matters on (blob pointers name the object holding their bytes).
   */
  async list(options: ListOptions = {}): Promise<ListedObjects> {
    const query = new URLSearchParams({ "max-keys": String(Math.min(options.limit ?? LIST_MAX_KEYS, LIST_MAX_KEYS)) });
    if (options.prefix) query.set("prefix", options.prefix);
    if (options.startAfter) query.set("marker", options.startAfter);
    const base = `${this.settings.endpoint.replace(/\/+$/, "")}/${encodeURIComponent(this.settings.bucket)}`;
    const res = await this.send(`${base}?${query}`);
    const text = await res.text();
    if (!res.ok) throw new Error(`S3 list answered ${res.status}: ${text.slice(0, 200)}`);
    const objects: StoredObject[] = [];
    for (const [, entry = ""] of text.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
      const key = xmlText(/<Key>([\s\S]*?)<\/Key>/.exec(entry)?.[1] ?? "");
      const size = Number(/<Size>(\d+)<\/Size>/.exec(entry)?.[1] ?? 0);
      const etag = xmlText(/<ETag>([\s\S]*?)<\/ETag>/.exec(entry)?.[1] ?? "");
      const uploaded = new Date(/<LastModified>([^<]+)<\/LastModified>/.exec(entry)?.[1] ?? Date.now());
      const listed: StoredObject = { key, size, etag: unquote(etag), httpEtag: etag, uploaded, customMetadata: {}, httpMetadata: {} };
      objects.push(size === 0 && options.include?.includes("customMetadata") ? ((await this.head(key)) ?? listed) : listed);
    }
    return { objects, truncated: /<IsTruncated>true<\/IsTruncated>/.test(text) };
  }

  async get(key: string, options: { range?: RangeOption } = {}): Promise<BodyObject | null> {
    const head = options.range ? await this.head(key) : null;
    if (options.range && !head) return null;
    const range = head ? resolveRange(head.size, options.range) : undefined;
    if (range && range.length === 0) return new BodyObject(head!, range, new Response(new Uint8Array(0)).body!);
    const res = await this.send(this.url(key), { headers: range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {} });
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new Error(`S3 GET ${key} answered ${res.status}`);
    }
    const size = head?.size ?? Number(res.headers.get("content-length") ?? 0);
    return new BodyObject(head ?? objectFrom(key, res.headers, size), range ?? { offset: 0, length: size }, res.body);
  }

  async put(key: string, value: PutBody, options: PutOptions = {}): Promise<StoredObject> {
    let bytes: Uint8Array<ArrayBuffer>;
    if (value instanceof ReadableStream) {
      const reader = new PieceReader(value.getReader());
      const first = await reader.next(STREAM_PART_BYTES);
      if (!first.done) return this.putStreamed(key, first.bytes, reader, options);
      bytes = first.bytes;
    } else {
      bytes = await bodyBytes(value);
    }
    verifyChecksum(bytes, options);
    const headers = putHeaders(options);
    const res = await this.send(this.url(key), { method: "PUT", headers, body: bytes });
    if (!res.ok) throw new Error(`S3 PUT ${key} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    await res.body?.cancel();
    return { key, size: bytes.byteLength, etag: unquote(res.headers.get("etag")), httpEtag: res.headers.get("etag") ?? "", uploaded: new Date(), customMetadata: options.customMetadata ?? {}, httpMetadata: options.httpMetadata ?? {} };
  }

  /** A stream longer than one part: multipart, hashed as it goes, completed only if the checksum holds. */
  private async putStreamed(key: string, first: Uint8Array, reader: PieceReader, options: PutOptions): Promise<StoredObject> {
    const checked = CHECKSUMS.find((name) => options[name] !== undefined);
    const hash = checked ? createHash(checked) : undefined;
    const upload = await this.startMultipart(key, putHeaders(options));
    const parts: { partNumber: number; etag: string }[] = [];
    try {
      let part = first;
      for (let done = false; part.byteLength > 0 || parts.length === 0; ) {
        hash?.update(part);
        parts.push(await upload.uploadPart(parts.length + 1, part));
        if (done) break;
        const next = await reader.next(STREAM_PART_BYTES);
        [part, done] = [next.bytes, next.done];
      }
      if (checked && hash!.digest("hex") !== options[checked]!.toLowerCase()) throw checksumMismatch(checked);
    } catch (error) {
      await reader.cancel(error).catch(() => undefined);
      await upload.abort().catch(() => undefined);
      throw error;
    }
    const object = await upload.complete(parts);
    return { ...object, customMetadata: options.customMetadata ?? {}, httpMetadata: options.httpMetadata ?? {} };
  }

  private async startMultipart(key: string, headers: Record<string, string>): Promise<S3MultipartUpload> {
    const res = await this.send(this.url(key, "?uploads"), { method: "POST", headers });
    const text = await res.text();
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(text)?.[1];
    if (!res.ok || !uploadId) throw new Error(`S3 could not start a multipart upload of ${key}: ${res.status} ${text.slice(0, 200)}`);
    return new S3MultipartUpload(this, key, uploadId);
  }

  async delete(keys: string | string[]): Promise<void> {
    for (const key of Array.isArray(keys) ? keys : [keys]) {
      const res = await this.send(this.url(key), { method: "DELETE" });
      await res.body?.cancel();
      if (!res.ok && res.status !== 404) throw new Error(`S3 DELETE ${key} answered ${res.status}`);
    }
  }

  createMultipartUpload(key: string): Promise<MultipartUpload> {
    return this.startMultipart(key, {});
  }

  resumeMultipartUpload(key: string, uploadId: string): MultipartUpload {
    return new S3MultipartUpload(this, key, uploadId);
  }
}

class S3MultipartUpload implements MultipartUpload {
  constructor(
    private readonly bucket: S3Bucket,
    readonly key: string,
    readonly uploadId: string,
  ) {}

  private query(extra = ""): string {
    return `?${extra}uploadId=${encodeURIComponent(this.uploadId)}`;
  }

  async uploadPart(partNumber: number, value: PutBody): Promise<{ partNumber: number; etag: string }> {
    const bytes = await bodyBytes(value);
    const res = await this.bucket.send(this.bucket.url(this.key, this.query(`partNumber=${partNumber}&`)), { method: "PUT", body: bytes });
    if (!res.ok) throw new Error(`S3 upload of part ${partNumber} of ${this.key} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    await res.body?.cancel();
    return { partNumber, etag: unquote(res.headers.get("etag")) };
  }

  async complete(parts: { partNumber: number; etag: string }[]): Promise<StoredObject> {
    const xml = `<CompleteMultipartUpload>${[...parts]
      .sort((a, b) => a.partNumber - b.partNumber)
      .map((p) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>"${p.etag}"</ETag></Part>`)
      .join("")}</CompleteMultipartUpload>`;
    const res = await this.bucket.send(this.bucket.url(this.key, this.query()), { method: "POST", headers: { "Content-Type": "application/xml" }, body: xml });
    const text = await res.text();
    // S3 may answer 200 with an error in the body.
    if (!res.ok || /<Error>/.test(text)) throw new Error(`S3 could not complete the multipart upload of ${this.key}: ${res.status} ${text.slice(0, 200)}`);
    const head = await this.bucket.head(this.key);
    if (!head) throw new Error(`S3 completed ${this.key} but does not have it`);
    return head;
  }

  async abort(): Promise<void> {
    const res = await this.bucket.send(this.bucket.url(this.key, this.query()), { method: "DELETE" });
    await res.body?.cancel();
  }
}

function putHeaders(options: PutOptions): Record<string, string> {
  const headers: Record<string, string> = { "Content-Type": options.httpMetadata?.contentType ?? "application/octet-stream" };
  for (const [name, metaValue] of Object.entries(options.customMetadata ?? {})) headers[`${META}${name.toLowerCase()}`] = metaValue;
  return headers;
}

function objectFrom(key: string, headers: Headers, size: number): StoredObject {
  const customMetadata: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (name.toLowerCase().startsWith(META)) customMetadata[name.slice(META.length).toLowerCase()] = value;
  });
  const etag = headers.get("etag") ?? "";
  return { key, size, etag: unquote(etag), httpEtag: etag, uploaded: new Date(headers.get("last-modified") ?? Date.now()), customMetadata, httpMetadata: {} };
}

function xmlText(text: string): string {
  return text.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function unquote(etag: string | null): string {
  return (etag ?? "").replace(/^"|"$/g, "");
}
