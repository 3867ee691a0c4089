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
   * R2's own body, handed to the runtime as it is: workerd then sends the bytes natively (with
   * their Content-Length) instead of JavaScript pumping them, which in production is billed CPU
   * time. Backpressure is the runtime's: a slow client slows the read from storage.
   */
  async read(digest: Digest, range?: ByteRange, known?: BlobInfo): Promise<BlobRead | null> {
    const info = known?.location ? known : await this.stat(digest);
    if (!info) return null;
    if (range && range.end < range.start) return { info, body: emptyStream(), range };
    const object = await this.bucket.get(info.location ?? blobKey(digest), range ? { range: { offset: range.start, length: range.end - range.start + 1 } } : undefined);
    if (!object) return null;
    return range ? { info, body: object.body, range } : { info, body: object.body };
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
