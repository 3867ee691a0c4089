import { digestAlgorithm, digestHex, type Digest } from "../../shared/oci/digest.js";
import { concatBytes } from "../../shared/bytes.js";
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
}

export interface BlobRead {
  info: BlobInfo;
  body: ReadableStream<Uint8Array>;
  range?: ByteRange;
}

export interface BlobStore {
  stat(digest: Digest): Promise<BlobInfo | null>;
  read(digest: Digest, range?: ByteRange): Promise<BlobRead | null>;
  readBytes(digest: Digest): Promise<Uint8Array<ArrayBuffer> | null>;
  /** Stores bytes whose SHA-256 the backend verifies; false when they do not match the digest. */
  putVerified(digest: Digest, body: ReadableStream | Uint8Array, size: number): Promise<boolean>;
  /** Makes `digest` resolve to bytes already stored (and verified) under another key. */
  putPointer(digest: Digest, location: string, size: number): Promise<void>;
}

const LOCATION_META = "shoal-location";
/** Blob reads go to storage in ranged segments of this size (see `segmentedBody`). */
export const READ_SEGMENT_BYTES = 8 * 1024 * 1024;
/** Largest chunk a blob read passes on at once (small storage chunks are joined up to this). */
const ENQUEUE_BYTES = 1024 * 1024;
const SIZE_META = "shoal-size";

export function blobKey(digest: Digest): string {
  return `blobs/${digestAlgorithm(digest)}/${digestHex(digest)}`;
}

export class R2BlobStore implements BlobStore {
  constructor(private readonly bucket: R2Bucket) {}

  async stat(digest: Digest): Promise<BlobInfo | null> {
    const head = await this.bucket.head(blobKey(digest));
    if (!head) return null;
    return { digest, size: sizeOf(head) };
  }

  async read(digest: Digest, range?: ByteRange): Promise<BlobRead | null> {
    const head = await this.bucket.head(blobKey(digest));
    if (!head) return null;
    const location = head.customMetadata?.[LOCATION_META] ?? blobKey(digest);
    const info = { digest, size: sizeOf(head) };
    const start = range?.start ?? 0;
    const end = range?.end ?? info.size - 1;
    // A fixed length keeps Content-Length on the response (workerd would send a stream of unknown
    // length chunked, and drop the header).
    const body = end < start ? emptyStream() : this.segmentedBody(location, start, end).pipeThrough(new FixedLengthStream(end - start + 1));
    return range ? { info, body, range } : { info, body };
  }

  /**
   * Streams [start, end] as consecutive ranged reads of READ_SEGMENT_BYTES, each asked for only
   * when the client has taken the previous one. A single get of a big object can be buffered
   * whole when the client reads slower than storage (seen under miniflare); this bounds memory
   * to about one segment per reader, whatever the backend does.
   */
  private segmentedBody(location: string, start: number, end: number): ReadableStream<Uint8Array> {
    const bucket = this.bucket;
    let next = start;
    let current: ReadableStreamDefaultReader<Uint8Array> | undefined;
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          for (;;) {
            if (!current) {
              if (next > end) return controller.close();
              const length = Math.min(READ_SEGMENT_BYTES, end - next + 1);
              const object = await bucket.get(location, { range: { offset: next, length } });
              if (!object) return controller.error(new Error(`blob object ${location} disappeared`));
              next += length;
              current = object.body.getReader();
            }
            // Storage may hand out small chunks (4 KiB under miniflare: 19 MB/s); pass them on in
            // batches of up to ENQUEUE_BYTES, so per-chunk costs do not set the read speed.
            const batch = await readBatch(current, ENQUEUE_BYTES);
            if (batch.done) current = undefined;
            if (batch.bytes.length > 0) {
              controller.enqueue(batch.bytes);
              return;
            }
          }
        },
        async cancel(reason) {
          await current?.cancel(reason);
        },
      },
      { highWaterMark: 0 },
    );
  }

  async readBytes(digest: Digest): Promise<Uint8Array<ArrayBuffer> | null> {
    const read = await this.read(digest);
    if (!read) return null;
    return new Uint8Array(await new Response(read.body).arrayBuffer());
  }

  async putVerified(digest: Digest, body: ReadableStream | Uint8Array, size: number): Promise<boolean> {
    try {
      // R2 computes the hash natively and refuses the put on a mismatch: nothing is stored.
      // A streamed body must have a known length for R2.
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

/**
 * Reads chunks from `reader` until `max` bytes or the end, joined into one array. A chunk that
 * would overflow is still taken whole (the batch then exceeds `max` by less than one chunk).
 */
async function readBatch(reader: ReadableStreamDefaultReader<Uint8Array>, max: number): Promise<{ bytes: Uint8Array; done: boolean }> {
  const parts: Uint8Array[] = [];
  let length = 0;
  while (length < max) {
    const { done, value } = await reader.read();
    if (done) return { bytes: concatBytes(parts, length), done: true };
    parts.push(value);
    length += value.length;
  }
  return { bytes: concatBytes(parts, length), done: false };
}
