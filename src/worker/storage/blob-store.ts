import { digestAlgorithm, digestHex, type Digest } from "../../shared/oci/digest.js";
import type { ByteRange } from "../../shared/oci/range.js";

/**
 * Content-addressed blob storage. A blob is visible only once its digest has been verified.
 * The R2 layout:
 *   blobs/<alg>/<hex>    the blob's bytes, or (for blobs assembled by multipart upload, which R2
 *                        cannot rename) an empty pointer whose metadata names the object holding them
 *   content/<upload id>  bytes of a blob assembled from upload parts
 *   uploads/<id>/…       in-flight upload state (see upload/upload-session.ts)
 */
export interface BlobInfo {
  digest: Digest;
  size: number;
  /** The storage key holding the bytes (a multipart-assembled blob's differs from its digest's key). */
  location?: string;
}

export interface BlobRead {
  info: BlobInfo;
  body: ReadableStream<Uint8Array>;
  range?: ByteRange;
}

export interface BlobStore {
  stat(digest: Digest): Promise<BlobInfo | null>;
  /** The blob's bytes (or a range), as storage hands them out; `known` (from `stat`) saves a lookup. */
  read(digest: Digest, range?: ByteRange, known?: BlobInfo): Promise<BlobRead | null>;
  readBytes(digest: Digest): Promise<Uint8Array<ArrayBuffer> | null>;
  /** Stores bytes whose SHA-256 the backend verifies; false when they do not match the digest. */
  putVerified(digest: Digest, body: ReadableStream | Uint8Array, size: number): Promise<boolean>;
  /** Makes `digest` resolve to bytes already stored (and verified) under another key. */
  putPointer(digest: Digest, location: string, size: number): Promise<void>;
}

const LOCATION_META = "shoal-location";
/** The most a read asks of storage at once (see read). */
export const READ_RANGE_BYTES = 16 * 1024 * 1024;
const SIZE_META = "shoal-size";

export function blobKey(digest: Digest): string {
  return `blobs/${digestAlgorithm(digest)}/${digestHex(digest)}`;
}

export class R2BlobStore implements BlobStore {
  constructor(private readonly bucket: R2Bucket) {}

  async stat(digest: Digest): Promise<BlobInfo | null> {
    const head = await this.bucket.head(blobKey(digest));
    if (!head) return null;
    return { digest, size: sizeOf(head), location: head.customMetadata?.[LOCATION_META] ?? blobKey(digest) };
  }

  /**
   * R2's own bodies, handed to the runtime: workerd sends the bytes natively (with their
   * Content-Length) instead of JavaScript pumping them, which in production is billed CPU time.
   * A read longer than READ_RANGE_BYTES is made of ranged reads of that size, each asked for when
   * the one before has been taken by the client: the runtime's storage reads run ahead of a slow
   * client (miniflare's held ~the whole object: a 256 MiB blob read at 30 MB/s grew workerd by
   * 230 MiB), so memory per reader is bounded by one range, whatever the storage does.
   */
  async read(digest: Digest, range?: ByteRange, known?: BlobInfo): Promise<BlobRead | null> {
    const info = known?.location ? known : await this.stat(digest);
    if (!info) return null;
    if (range && range.end < range.start) return { info, body: emptyStream(), range };
    const key = info.location ?? blobKey(digest);
    const start = range?.start ?? 0;
    const length = range ? range.end - range.start + 1 : info.size;
    const first = await this.bucket.get(key, range || length > READ_RANGE_BYTES ? { range: { offset: start, length: Math.min(length, READ_RANGE_BYTES) } } : undefined);
    if (!first) return null;
    const body = length > READ_RANGE_BYTES ? this.rangedBody(key, start, length, first.body) : first.body;
    return range ? { info, body, range } : { info, body };
  }

  /** `length` bytes from `start`, one READ_RANGE_BYTES read at a time, each piped natively. */
  private rangedBody(key: string, start: number, length: number, first: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const out = new FixedLengthStream(length);
    const pump = async () => {
      let body: ReadableStream<Uint8Array> | undefined = first;
      for (let at = start; at < start + length; at += READ_RANGE_BYTES) {
        if (!body) {
          const part = await this.bucket.get(key, { range: { offset: at, length: Math.min(READ_RANGE_BYTES, start + length - at) } });
          if (!part) throw new Error(`${key} went away while it was read`);
          body = part.body;
        }
        await body.pipeTo(out.writable, { preventClose: true });
        body = undefined;
      }
      await out.writable.close();
    };
    // A failed read (or a client gone away) ends the response early: the client sees a short body.
    pump().catch((error: unknown) => out.writable.abort(error).catch(() => undefined));
    return out.readable;
  }

  async readBytes(digest: Digest): Promise<Uint8Array<ArrayBuffer> | null> {
    const read = await this.read(digest);
    if (!read) return null;
    return new Uint8Array(await new Response(read.body).arrayBuffer());
  }

  async putVerified(digest: Digest, body: ReadableStream | Uint8Array, size: number): Promise<boolean> {
    try {
      // R2 computes the hash natively and refuses the put on a mismatch: nothing is stored.
      // A streamed body must have a known length for R2 (FixedLengthStream is native: no
      // JavaScript touches the bytes).
      const value = body instanceof Uint8Array ? body : body.pipeThrough(new FixedLengthStream(size));
      await this.bucket.put(blobKey(digest), value, { [digestAlgorithm(digest)]: digestHex(digest), customMetadata: { [SIZE_META]: String(size) } });
      return true;
    } catch (error) {
      if (isChecksumMismatch(error)) return false;
      throw error;
    }
  }

  async putPointer(digest: Digest, location: string, size: number): Promise<void> {
    await this.bucket.put(blobKey(digest), new Uint8Array(0), {
      customMetadata: { [LOCATION_META]: location, [SIZE_META]: String(size) },
    });
  }
}

function sizeOf(head: R2Object): number {
  const declared = head.customMetadata?.[SIZE_META];
  return declared !== undefined ? Number(declared) : head.size;
}

function isChecksumMismatch(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  // R2 answers "The SHA-256 checksum you specified did not match what we received." (code 10037).
  return /checksum|did not match|10037|BadDigest/i.test(message);
}

function emptyStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({ start: (controller) => controller.close() });
}
