import { createHash, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { BodyObject, CHECKSUMS, pageOfKeys, resolveRange, type ListOptions, type ListedObjects, type MultipartUpload, type ObjectBucket, type PutBody, type PutOptions, type RangeOption, type StoredObject } from "./bucket.js";

/**
 * The part of R2's bucket API the edge uses, on the local filesystem: objects with custom metadata,
 * ranged reads, SHA-256-checked puts and multipart uploads. What the self-hosted edge (Deno) gives
 * the Worker's code in place of its `BLOBS` binding, so uploads, blobs and metainfo behave the same.
 *
 * Layout under `dir`: `objects/<key as a file name>` and `<…>.meta.json` beside it; multipart parts
 * under `multipart/<upload id>/<part number>`. Every write goes to a temporary name first and is
 * renamed into place: an object is either absent or whole.
 */
export interface FileObjectMeta {
  key: string;
  size: number;
  etag: string;
  uploaded: string;
  customMetadata: Record<string, string>;
  httpMetadata: Record<string, string>;
}

type Body = PutBody;

export class FileBucket implements ObjectBucket {
  constructor(private readonly dir: string) {}

  private objectPath(key: string): string {
    // One flat folder: keys may hold "/" and "..", which must not become paths.
    return path.join(this.dir, "objects", encodeURIComponent(key));
  }

  private async tempPath(): Promise<string> {
    const folder = path.join(this.dir, "tmp");
    await mkdir(folder, { recursive: true });
    return path.join(folder, randomUUID());
  }

  async head(key: string): Promise<FileObject | null> {
    try {
      const meta = JSON.parse(await readFile(`${this.objectPath(key)}.meta.json`, "utf8")) as FileObjectMeta;
      return new FileObject(meta, this.objectPath(key));
    } catch {
      return null;
    }
  }

  async list(options: ListOptions = {}): Promise<ListedObjects> {
    const names = await readdir(path.join(this.dir, "objects")).catch(() => [] as string[]);
    const page = pageOfKeys(names.filter((n) => n.endsWith(".meta.json")).map((n) => decodeURIComponent(n.slice(0, -".meta.json".length))), options);
    const objects = (await Promise.all(page.keys.map((key) => this.head(key)))).filter((o): o is FileObject => o !== null);
    return { objects, truncated: page.truncated };
  }

  async get(key: string, options: { range?: RangeOption } = {}): Promise<BodyObject | null> {
    const object = await this.head(key);
    if (!object) return null;
    const range = resolveRange(object.size, options.range);
    const node = range.length === 0 ? Readable.from([]) : createReadStream(object.file, { start: range.offset, end: range.offset + range.length - 1, highWaterMark: 1 << 20 });
    return new BodyObject(object, range, Readable.toWeb(node) as unknown as ReadableStream<Uint8Array>);
  }

  async put(key: string, value: Body, options: PutOptions = {}): Promise<FileObject> {
    const temp = await this.tempPath();
    // R2 checks one checksum if the put names one (md5, sha1, sha256, sha384 or sha512).
    const checked = CHECKSUMS.find((name) => options[name] !== undefined);
    const verify = checked ? createHash(checked) : undefined;
    const hash = createHash("sha256");
    let size = 0;
    const sink = createWriteStream(temp);
    const meter = async function* (source: AsyncIterable<Uint8Array>) {
      for await (const chunk of source) {
        hash.update(chunk);
        verify?.update(chunk);
        size += chunk.byteLength;
        yield chunk;
      }
    };
    try {
      await pipeline(toNodeStream(value), meter, sink);
      const hex = hash.digest("hex");
      if (checked && verify && options[checked]!.toLowerCase() !== verify.digest("hex")) {
        // R2's words, which the blob store recognises as "digest does not match".
        throw new Error(`put: The ${checked.toUpperCase()} checksum you specified did not match what we received.`);
      }
      const meta: FileObjectMeta = {
        key,
        size,
        etag: hex.slice(0, 32),
        uploaded: new Date().toISOString(),
        customMetadata: options.customMetadata ?? {},
        httpMetadata: options.httpMetadata ?? {},
      };
      return await this.install(key, temp, meta);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  /** Data first, then its metadata (which is what makes the object exist). */
  private async install(key: string, temp: string, meta: FileObjectMeta): Promise<FileObject> {
    await mkdir(path.join(this.dir, "objects"), { recursive: true });
    const file = this.objectPath(key);
    await rename(temp, file);
    const metaTemp = await this.tempPath();
    await writeFile(metaTemp, JSON.stringify(meta));
    await rename(metaTemp, `${file}.meta.json`);
    return new FileObject(meta, file);
  }

  async delete(keys: string | string[]): Promise<void> {
    for (const key of Array.isArray(keys) ? keys : [keys]) {
      await rm(`${this.objectPath(key)}.meta.json`, { force: true });
      await rm(this.objectPath(key), { force: true });
    }
  }

  async createMultipartUpload(key: string): Promise<FileMultipartUpload> {
    const uploadId = randomUUID();
    await mkdir(path.join(this.dir, "multipart", uploadId), { recursive: true });
    return new FileMultipartUpload(this, key, uploadId, path.join(this.dir, "multipart", uploadId));
  }

  resumeMultipartUpload(key: string, uploadId: string): FileMultipartUpload {
    if (!/^[0-9a-f-]{36}$/.test(uploadId)) throw new Error(`no multipart upload ${uploadId}`);
    return new FileMultipartUpload(this, key, uploadId, path.join(this.dir, "multipart", uploadId));
  }

  /** Joins parts into the object (R2 keeps the parts; here they are concatenated once). */
  async assemble(key: string, files: string[]): Promise<FileObject> {
    const temp = await this.tempPath();
    const out = await open(temp, "w");
    const hash = createHash("sha256");
    let size = 0;
    try {
      for (const file of files) {
        const data = createReadStream(file, { highWaterMark: 1 << 20 });
        for await (const chunk of data) {
          hash.update(chunk as Buffer);
          await out.write(chunk as Buffer);
          size += (chunk as Buffer).length;
        }
      }
    } finally {
      await out.close();
    }
    const meta: FileObjectMeta = { key, size, etag: `${hash.digest("hex").slice(0, 32)}-${files.length}`, uploaded: new Date().toISOString(), customMetadata: {}, httpMetadata: {} };
    return this.install(key, temp, meta);
  }
}

export class FileMultipartUpload implements MultipartUpload {
  constructor(
    private readonly bucket: FileBucket,
    readonly key: string,
    readonly uploadId: string,
    private readonly dir: string,
  ) {}

  async uploadPart(partNumber: number, value: Body): Promise<{ partNumber: number; etag: string }> {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) throw new Error(`part number ${partNumber} out of range`);
    await stat(this.dir).catch(() => {
      throw new Error(`multipart upload ${this.uploadId} does not exist (completed or aborted)`);
    });
    const temp = path.join(this.dir, `.${partNumber}-${randomUUID()}`);
    const hash = createHash("md5");
    await pipeline(
      toNodeStream(value),
      async function* (source: AsyncIterable<Uint8Array>) {
        for await (const chunk of source) {
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(temp),
    );
    await rename(temp, path.join(this.dir, String(partNumber)));
    return { partNumber, etag: hash.digest("hex") };
  }

  async complete(parts: { partNumber: number; etag: string }[]): Promise<FileObject> {
    const files = [...parts].sort((a, b) => a.partNumber - b.partNumber).map((p) => path.join(this.dir, String(p.partNumber)));
    for (const file of files) await stat(file);
    const object = await this.bucket.assemble(this.key, files);
    await rm(this.dir, { recursive: true, force: true });
    return object;
  }

  async abort(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export class FileObject implements StoredObject {
  constructor(
    readonly meta: FileObjectMeta,
    readonly file: string,
  ) {}

  get key(): string {
    return this.meta.key;
  }
  get size(): number {
    return this.meta.size;
  }
  get etag(): string {
    return this.meta.etag;
  }
  get httpEtag(): string {
    return `"${this.meta.etag}"`;
  }
  get uploaded(): Date {
    return new Date(this.meta.uploaded);
  }
  get customMetadata(): Record<string, string> {
    return this.meta.customMetadata;
  }
  get httpMetadata(): Record<string, string> {
    return this.meta.httpMetadata;
  }
}

function toNodeStream(value: Body): Readable {
  if (value === null) return Readable.from([]);
  if (typeof value === "string") return Readable.from([Buffer.from(value)]);
  if (value instanceof ArrayBuffer) return Readable.from([Buffer.from(value)]);
  if (ArrayBuffer.isView(value)) return Readable.from([Buffer.from(value.buffer, value.byteOffset, value.byteLength)]);
  return Readable.fromWeb(value as import("node:stream/web").ReadableStream<Uint8Array>);
}

/** Objects left in `tmp/` by a crash: never visible, removed at start. */
export async function sweepTemp(dir: string): Promise<void> {
  await rm(path.join(dir, "tmp"), { recursive: true, force: true });
  await mkdir(path.join(dir, "tmp"), { recursive: true });
}
