import { createHash } from "node:crypto";

/**
 * The part of R2's bucket API the edge's code uses (blob store, metainfo, upload sessions): what a
 * storage backend of the self-hosted edge implements, in one adapter file each — files
 * (file-bucket.ts), S3 (s3-bucket.ts), FTP (ftp-bucket.ts). test/edge-deno/bucket-contract.test.ts
 * holds every backend to the same behaviour.
 */
export interface StoredObject {
  readonly key: string;
  readonly size: number;
  readonly etag: string;
  readonly httpEtag: string;
  readonly uploaded: Date;
  readonly customMetadata: Record<string, string>;
  readonly httpMetadata: Record<string, string>;
}

export interface ObjectBody extends StoredObject {
  readonly range: { offset: number; length: number };
  readonly body: ReadableStream<Uint8Array>;
  arrayBuffer(): Promise<ArrayBuffer>;
  text(): Promise<string>;
  json<T>(): Promise<T>;
}

export interface MultipartUpload {
  readonly key: string;
  readonly uploadId: string;
  uploadPart(partNumber: number, value: PutBody): Promise<{ partNumber: number; etag: string }>;
  complete(parts: { partNumber: number; etag: string }[]): Promise<StoredObject>;
  abort(): Promise<void>;
}

export const CHECKSUMS = ["md5", "sha1", "sha256", "sha384", "sha512"] as const;
export type PutOptions = { customMetadata?: Record<string, string>; httpMetadata?: Record<string, string> } & { [K in (typeof CHECKSUMS)[number]]?: string };
export type PutBody = ReadableStream<Uint8Array> | ArrayBuffer | ArrayBufferView | string | null;
export type RangeOption = { offset?: number; length?: number; suffix?: number };

/** R2's list options, as far as the edge uses them: keys in order, after `startAfter`. */
export interface ListOptions {
  prefix?: string;
  startAfter?: string;
  limit?: number;
  /** R2 lists metadata only when asked ("customMetadata"); these backends always give it. */
  include?: string[];
}

export interface ListedObjects {
  objects: StoredObject[];
  truncated: boolean;
}

/** R2's most keys per list call (and its default). */
export const LIST_MAX_KEYS = 1000;

export interface ObjectBucket {
  head(key: string): Promise<StoredObject | null>;
  /** Keys in lexicographic order (the garbage collector walks storage with it). */
  list(options?: ListOptions): Promise<ListedObjects>;
  get(key: string, options?: { range?: RangeOption }): Promise<ObjectBody | null>;
  put(key: string, value: PutBody, options?: PutOptions): Promise<StoredObject>;
  delete(keys: string | string[]): Promise<void>;
  createMultipartUpload(key: string): Promise<MultipartUpload>;
  resumeMultipartUpload(key: string, uploadId: string): MultipartUpload;
}

/** One page of `keys` (any order) as R2 would list it: sorted, filtered, cut at the limit. */
export function pageOfKeys(keys: string[], options: ListOptions = {}): { keys: string[]; truncated: boolean } {
  const limit = Math.min(Math.max(1, options.limit ?? LIST_MAX_KEYS), LIST_MAX_KEYS);
  const prefix = options.prefix ?? "";
  const after = options.startAfter ?? "";
  const matching = keys.filter((k) => k.startsWith(prefix) && k > after).sort();
  return { keys: matching.slice(0, limit), truncated: matching.length > limit };
}

/** The byte range a ranged get asks for, within an object of `size` bytes. */
export function resolveRange(size: number, range: RangeOption | undefined): { offset: number; length: number } {
  let offset = range?.offset ?? 0;
  let length = range?.length ?? size - offset;
  if (range?.suffix !== undefined) {
    length = Math.min(size, range.suffix);
    offset = size - length;
  }
  offset = Math.max(0, Math.min(offset, size));
  return { offset, length: Math.max(0, Math.min(length, size - offset)) };
}

/**
 * A body in memory: for what is small or already bytes (manifests, metainfo, upload parts, whose
 * size the upload session bounds). Streams of any size go through `PieceReader` or a pipe instead.
 */
export async function bodyBytes(value: PutBody): Promise<Uint8Array<ArrayBuffer>> {
  if (value === null) return new Uint8Array(0);
  if (typeof value === "string") return new TextEncoder().encode(value) as Uint8Array<ArrayBuffer>;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return value.buffer instanceof ArrayBuffer ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : new Uint8Array(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  return new Uint8Array(await new Response(value).arrayBuffer());
}

/** R2 refuses a put whose named checksum does not match, in these words (the blob store knows them). */
export function verifyChecksum(bytes: Uint8Array, options: PutOptions): void {
  const checked = CHECKSUMS.find((name) => options[name] !== undefined);
  if (!checked) return;
  if (createHash(checked).update(bytes).digest("hex") !== options[checked]!.toLowerCase()) throw checksumMismatch(checked);
}

export function checksumMismatch(checked: (typeof CHECKSUMS)[number]): Error {
  return new Error(`put: The ${checked.toUpperCase()} checksum you specified did not match what we received.`);
}

/**
 * Reads a stream in pieces of `max` bytes (fewer only at its end), each in one buffer: how backends
 * that must know a request's length send a body of unknown length, a bounded piece at a time.
 */
export class PieceReader {
  private leftover: Uint8Array | undefined;

  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  async next(max: number): Promise<{ bytes: Uint8Array<ArrayBuffer>; done: boolean }> {
    const buffer = new Uint8Array(max);
    let filled = 0;
    while (filled < max) {
      let chunk = this.leftover;
      this.leftover = undefined;
      if (!chunk) {
        const { done, value } = await this.reader.read();
        if (done) return { bytes: buffer.subarray(0, filled), done: true };
        chunk = value;
      }
      const take = Math.min(chunk.byteLength, max - filled);
      buffer.set(chunk.subarray(0, take), filled);
      filled += take;
      if (take < chunk.byteLength) this.leftover = chunk.subarray(take);
    }
    return { bytes: buffer, done: false };
  }

  cancel(reason?: unknown): Promise<void> {
    return this.reader.cancel(reason);
  }
}

/** A stored object read into memory or streamed from a backend, with R2's accessors. */
export class BodyObject implements ObjectBody {
  constructor(
    private readonly meta: StoredObject,
    readonly range: { offset: number; length: number },
    readonly body: ReadableStream<Uint8Array>,
  ) {}

  get key() {
    return this.meta.key;
  }
  get size() {
    return this.meta.size;
  }
  get etag() {
    return this.meta.etag;
  }
  get httpEtag() {
    return this.meta.httpEtag;
  }
  get uploaded() {
    return this.meta.uploaded;
  }
  get customMetadata() {
    return this.meta.customMetadata;
  }
  get httpMetadata() {
    return this.meta.httpMetadata;
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return new Response(this.body).arrayBuffer();
  }

  text(): Promise<string> {
    return new Response(this.body).text();
  }

  async json<T>(): Promise<T> {
    return JSON.parse(await this.text()) as T;
  }
}
