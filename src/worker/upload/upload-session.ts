import { DurableObject } from "cloudflare:workers";
import { OciError } from "../../shared/oci/errors.js";
import { DIGEST_ALGORITHMS, digestAlgorithm, toHex, type Digest } from "../../shared/oci/digest.js";
import { bufferSource } from "../../shared/bytes.js";
import { uploadRangeHeader } from "../../shared/oci/range.js";
import { concatBytes } from "../../shared/bytes.js";
import { R2BlobStore } from "../storage/blob-store.js";
import { MetainfoStore } from "../storage/metainfo-store.js";
import { BLOCK_BYTES, LEGACY_BLOCK_BYTES, blockHashes, buildMetainfo } from "../../shared/p2p/metainfo.js";
import { asRpcResult, type RpcResult } from "./rpc-result.js";
import { segmentKey, segmentsToMerge, tailLength, type TailSegment } from "./tail.js";
import type { Env } from "../env.js";

/**
 * R2 multipart parts must all be the same size (but the last) and at least 5 MiB; 16 MiB parts
 * allow blobs up to ~160 GiB within R2's 10,000 parts, and hold whole metainfo blocks.
 */
export const PART_BYTES = 16 * 1024 * 1024;
/** An upload nobody touched for this long is cancelled and its parts freed. */
export const UPLOAD_IDLE_MS = 24 * 60 * 60 * 1000;

/**
 * The durable state of one upload. Invariant: bytes [0, offset - offset % PART_BYTES) are in R2
 * multipart parts 1…n; the rest (the tail, under one part) is in the segments `tail`, in order.
 */
export interface UploadState {
  id: string;
  repository: string;
  offset: number;
  multipartId?: string;
  parts: R2UploadedPart[];
  tail?: TailSegment[];
  /**
   * Set once a chunk arrived while no live hash covered the bytes before it (the object was
   * restarted between chunks): the digest is then checked by hashing the assembled blob.
   */
  rehash?: boolean;
  /** Uploads begun by an older edge: one tail object, and a saved pure-JS hash state (ignored now). */
  tailKey?: string;
  hash?: unknown;
  /** Hex SHA-256 of each block in the uploaded parts (metainfo, hashed natively as parts fill). */
  blocks: string[];
  /** The blocks' length: absent in uploads begun before metainfo hashed BLOCK_BYTES (they hashed 4 MiB). */
  blockLength?: number;
  updatedAt: number;
}

export interface AppendRequest {
  repository: string;
  body: ReadableStream<Uint8Array> | null;
  /** Content-Range of the chunk, when the client sent one. */
  range: { start: number; end: number } | null;
  /** Largest body accepted (the edge's chunk limit). */
  limit: number;
}

export interface UploadStatus {
  repository: string;
  offset: number;
}

export interface FinishedBlob {
  digest: Digest;
  size: number;
}

function blockLengthOf(state: UploadState): number {
  return state.blockLength ?? LEGACY_BLOCK_BYTES;
}

/** A native SHA-256 of the upload's bytes [0, offset), alive as long as this object is. */
interface LiveHash {
  offset: number;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  digest: Promise<ArrayBuffer>;
}

/**
 * One blob upload (distribution-spec "Pushing blobs"), spanning any number of requests. Chunks
 * are streamed into R2 multipart parts. The blob's SHA-256 is computed natively as the bytes pass
 * (`crypto.DigestStream`, held by this object between chunks), so the digest is checked at the end
 * without reading the blob again; only when the object was restarted mid-upload (its native state
 * cannot be saved) is the assembled blob hashed once more. A thin shell: the byte handling is in
 * `appendChunk`, state in DO storage, expiry by alarm.
 */
export class UploadSession extends DurableObject<Env> {
  /** Chunks of one upload are applied one at a time, in arrival order. */
  private queue: Promise<unknown> = Promise.resolve();
  private live: LiveHash | undefined;

  private serial<T>(run: () => Promise<T>): Promise<T> {
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  async start(id: string, repository: string): Promise<UploadStatus> {
    return this.serial(async () => {
      const state: UploadState = {
        id,
        repository,
        offset: 0,
        parts: [],
        blocks: [],
        blockLength: BLOCK_BYTES,
        updatedAt: Date.now(),
      };
      this.dropLiveHash();
      await this.save(state);
      return { repository, offset: 0 };
    });
  }

  async status(repository: string): Promise<RpcResult<UploadStatus>> {
    return asRpcResult(async () => {
      const state = await this.load(repository);
      return { repository, offset: state.offset };
    });
  }

  async append(request: AppendRequest): Promise<RpcResult<UploadStatus>> {
    return asRpcResult(() =>
      this.serial(async () => {
        const state = await this.load(request.repository);
        await this.appendChunk(state, request);
        return { repository: state.repository, offset: state.offset };
      }),
    );
  }

  /** Appends a last chunk (if any), verifies the digest and makes the blob visible. */
  async finish(request: AppendRequest & { digest: Digest }): Promise<RpcResult<FinishedBlob>> {
    return asRpcResult(() =>
      this.serial(async () => {
        const state = await this.load(request.repository);
        if (request.body) await this.appendChunk(state, request);
        const live = this.live;
        this.live = undefined;
        if (digestAlgorithm(request.digest) === "sha256" && live && live.offset === state.offset && !state.rehash) {
          // The common case: the running hash already covers every byte.
          await live.writer.close();
          const actual = `sha256:${toHex(new Uint8Array(await live.digest))}` as Digest;
          if (actual !== request.digest) await this.refuse(state, request.digest, actual);
          await this.commit(state, actual);
        } else {
          // Another algorithm (sha512), or the live hash was lost: hash the stored bytes once, natively.
          await this.commitRehashed(state, request.digest);
        }
        return { digest: request.digest, size: state.offset };
      }),
    );
  }

  private async refuse(state: UploadState, expected: Digest, actual: Digest): Promise<never> {
    // distribution-spec: DIGEST_INVALID; like distribution, the failed upload is cancelled.
    await this.discard(state);
    throw new OciError("DIGEST_INVALID", `uploaded content has digest ${actual}, not ${expected}`, {
      detail: { expected, actual, size: state.offset },
    });
  }

  async cancel(repository: string): Promise<RpcResult<void>> {
    return asRpcResult(() =>
      this.serial(async () => {
        const state = await this.load(repository);
        await this.discard(state);
      }),
    );
  }

  /** Whether this upload is still open: the garbage collector leaves an open upload's objects alone. */
  async gcOpen(): Promise<boolean> {
    return (await this.ctx.storage.get<UploadState>("state")) !== undefined;
  }

  override async alarm(): Promise<void> {
    const state = await this.ctx.storage.get<UploadState>("state");
    if (!state) return;
    if (Date.now() - state.updatedAt >= UPLOAD_IDLE_MS) {
      await this.discard(state);
    } else {
      await this.ctx.storage.setAlarm(state.updatedAt + UPLOAD_IDLE_MS);
    }
  }

  private async load(repository: string): Promise<UploadState> {
    const state = await this.ctx.storage.get<UploadState>("state");
    // An upload is only reachable through the repository it was started in.
    if (!state || state.repository !== repository) {
      throw new OciError("BLOB_UPLOAD_UNKNOWN");
    }
    if (state.tailKey !== undefined || state.hash !== undefined) {
      // Begun by an older edge: its one tail object holds the bytes after the last full part.
      const length = state.offset % PART_BYTES;
      state.tail = state.tailKey && length > 0 ? [{ key: state.tailKey, start: state.offset - length, length }] : [];
      state.rehash = state.offset > 0;
      delete state.tailKey;
      delete state.hash;
    }
    return state;
  }

  /** The live hash for a chunk starting at `state.offset`, or none (then the digest is checked by rehashing). */
  private liveHashFor(state: UploadState): LiveHash | undefined {
    if (state.offset === 0) {
      this.dropLiveHash();
      const stream = new (workersCrypto().DigestStream)("SHA-256");
      this.live = { offset: 0, writer: stream.getWriter(), digest: stream.digest };
      state.rehash = false;
    } else if (!this.live || this.live.offset !== state.offset) {
      this.dropLiveHash();
      state.rehash = true;
    }
    return state.rehash ? undefined : this.live;
  }

  private dropLiveHash(): void {
    this.live?.writer.abort().catch(() => undefined);
    this.live = undefined;
  }

  private async save(state: UploadState): Promise<void> {
    state.updatedAt = Date.now();
    await this.ctx.storage.put("state", state);
    await this.ctx.storage.setAlarm(state.updatedAt + UPLOAD_IDLE_MS);
  }

  private async appendChunk(state: UploadState, request: AppendRequest): Promise<void> {
    const bucket = this.env.BLOBS;
    if (request.range && request.range.start !== state.offset) {
      // distribution-spec: a chunk that does not start where the last one ended gets 416.
      throw new OciError("BLOB_UPLOAD_INVALID", `chunk starts at ${request.range.start}, but the upload is at ${state.offset}`, {
        status: 416,
        headers: { Range: uploadRangeHeader(state.offset), Location: uploadLocation(state) },
      });
    }
    const expected = request.range ? request.range.end - request.range.start + 1 : null;
    if (expected !== null && expected > request.limit) throw chunkTooLarge(request.limit);

    const live = this.liveHashFor(state);
    try {
      await this.receive(state, request, expected, live);
    } catch (error) {
      // The live hash took bytes the state does not have: it no longer matches any offset.
      if (live) this.dropLiveHash();
      throw error;
    }
  }

  private async receive(state: UploadState, request: AppendRequest, expected: number | null, live: LiveHash | undefined): Promise<void> {
    const bucket = this.env.BLOBS;
    const tail = state.tail ?? [];
    const stored = tailLength(tail);
    /** Bytes not yet in a part: this chunk's, then (once a part fills) the stored tail before them. */
    const pending = new PartBuffer(PART_BYTES);
    let tailTaken = false;
    const consumed: string[] = [];
    let received = 0;
    let partBase = state.offset - (state.offset % PART_BYTES);
    const uploadFullParts = async () => {
      if (!tailTaken) {
        if (stored + pending.size < PART_BYTES) return;
        // A part fills: the stored tail goes first. Each tail byte is read back once.
        pending.prepend(await readSegments(bucket, tail, state.id));
        consumed.push(...tail.map((segment) => segment.key));
        tailTaken = true;
      }
      for (let part = pending.takePart(); part; part = pending.takePart()) {
        const partNumber = partBase / PART_BYTES + 1;
        const blockLength = blockLengthOf(state);
        const perPart = PART_BYTES / blockLength;
        state.blocks.splice((partNumber - 1) * perPart, perPart, ...(await blockHashes(part, blockLength)));
        const uploaded = await (await this.multipart(state)).uploadPart(partNumber, part);
        state.parts = state.parts.filter((p) => p.partNumber !== partNumber);
        state.parts.push(uploaded);
        partBase += PART_BYTES;
      }
    };
    if (request.body) {
      const reader = request.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += value.byteLength;
        if (received > request.limit) {
          await drain(reader);
          throw chunkTooLarge(request.limit);
        }
        if (expected !== null && received > expected) {
          await drain(reader);
          throw new OciError("SIZE_INVALID", `chunk is longer than its Content-Range (${expected} bytes)`, { status: 400 });
        }
        if (live) await live.writer.write(value);
        pending.push(value);
        await uploadFullParts();
      }
    }
    if (expected !== null && received !== expected) {
      throw new OciError("SIZE_INVALID", `chunk has ${received} bytes, its Content-Range says ${expected}`);
    }
    const end = state.offset + received;
    const rest = pending.drain();
    const segments = tailTaken ? [] : [...tail];
    if (rest.byteLength > 0) {
      // The bytes after the last part wait durably for the next chunk, in a segment of their own;
      // small segments at the end are merged (see segmentsToMerge).
      let bytes = rest;
      const merge = segmentsToMerge([...segments.map((segment) => segment.length), rest.byteLength]) - 1;
      const merged = segments.splice(segments.length - merge, merge);
      if (merged.length > 0) {
        bytes = concatBytes([await readSegments(bucket, merged, state.id), rest], tailLength(merged) + rest.byteLength);
        consumed.push(...merged.map((segment) => segment.key));
      }
      const start = end - bytes.byteLength;
      const segment = { key: segmentKey(state.id, start, bytes.byteLength), start, length: bytes.byteLength };
      await bucket.put(segment.key, bytes);
      segments.push(segment);
    }
    state.offset = end;
    state.tail = segments;
    if (live) live.offset = end;
    await this.save(state);
    if (consumed.length > 0) await bucket.delete(consumed);
  }

  private async multipart(state: UploadState): Promise<R2MultipartUpload> {
    const bucket = this.env.BLOBS;
    if (state.multipartId) return bucket.resumeMultipartUpload(contentKey(state), state.multipartId);
    const upload = await bucket.createMultipartUpload(contentKey(state));
    state.multipartId = upload.uploadId;
    // Saved at once so that a cancel or the idle alarm can always abort it.
    await this.ctx.storage.put("state", state);
    return upload;
  }

  private async commit(state: UploadState, digest: Digest): Promise<void> {
    const store = new R2BlobStore(this.env.BLOBS);
    if (await store.stat(digest)) {
      await this.discard(state); // already stored by another upload: nothing to keep.
      return;
    }
    const assembled = await this.assemble(state);
    if (assembled.kind === "bytes") {
      // Under one part: store the bytes under their digest (R2 checks the hash once more).
      if (!(await store.putVerified(digest, assembled.bytes, state.offset))) {
        throw new Error(`upload ${state.id}: R2 refused bytes whose digest was verified`);
      }
    } else {
      await store.putPointer(digest, assembled.key, state.offset);
    }
    await this.saveMetainfo(digest, state);
    await this.forget();
  }

  /** Metainfo from the block hashes gathered on the way: no second read of the blob. */
  private async saveMetainfo(digest: Digest, state: UploadState): Promise<void> {
    const metainfo = await buildMetainfo(digest, state.offset, state.blocks, blockLengthOf(state));
    await new MetainfoStore(this.env.BLOBS).put(metainfo);
  }

  private async commitRehashed(state: UploadState, digest: Digest): Promise<void> {
    const bucket = this.env.BLOBS;
    const store = new R2BlobStore(bucket);
    const assembled = await this.assemble(state);
    const webCrypto = DIGEST_ALGORITHMS[digestAlgorithm(digest)].webCrypto;
    let actual: Digest;
    if (assembled.kind === "bytes") {
      actual = `${digestAlgorithm(digest)}:${toHex(new Uint8Array(await crypto.subtle.digest(webCrypto, bufferSource(assembled.bytes))))}` as Digest;
    } else {
      const object = await bucket.get(assembled.key);
      if (!object) throw new Error(`upload ${state.id}: assembled object is missing`);
      const hasher = new (workersCrypto().DigestStream)(webCrypto);
      await object.body.pipeTo(hasher);
      actual = `${digestAlgorithm(digest)}:${toHex(new Uint8Array(await hasher.digest))}` as Digest;
    }
    if (actual !== digest) {
      if (assembled.kind === "object") await bucket.delete(assembled.key);
      await this.forget();
      throw new OciError("DIGEST_INVALID", `uploaded content has digest ${actual}, not ${digest}`, {
        detail: { expected: digest, actual, size: state.offset },
      });
    }
    if (await store.stat(digest)) {
      if (assembled.kind === "object") await bucket.delete(assembled.key);
    } else if (assembled.kind === "bytes") {
      await store.putVerified(digest, assembled.bytes, state.offset);
    } else {
      await store.putPointer(digest, assembled.key, state.offset);
    }
    await this.saveMetainfo(digest, state);
    await this.forget();
  }

  /**
   * Puts the upload's bytes together: in memory when they never filled a part, else by completing
   * the multipart upload (the tail becomes the last part). The tail object is freed either way.
   */
  private async assemble(state: UploadState): Promise<{ kind: "bytes"; bytes: Uint8Array } | { kind: "object"; key: string }> {
    const bucket = this.env.BLOBS;
    const tail = state.tail ?? [];
    const tailBytes = await readSegments(bucket, tail, state.id);
    const blockLength = blockLengthOf(state);
    const firstTailBlock = Math.floor((state.offset - tailBytes.byteLength) / blockLength);
    state.blocks.splice(firstTailBlock, state.blocks.length - firstTailBlock, ...(await blockHashes(tailBytes, blockLength)));
    let result: { kind: "bytes"; bytes: Uint8Array } | { kind: "object"; key: string };
    if (!state.multipartId) {
      result = { kind: "bytes", bytes: tailBytes };
    } else {
      const upload = bucket.resumeMultipartUpload(contentKey(state), state.multipartId);
      const parts = [...state.parts];
      if (tailBytes.byteLength > 0) {
        parts.push(await upload.uploadPart(Math.floor(state.offset / PART_BYTES) + 1, tailBytes));
      }
      parts.sort((a, b) => a.partNumber - b.partNumber);
      await upload.complete(parts);
      result = { kind: "object", key: contentKey(state) };
    }
    if (tail.length > 0) await bucket.delete(tail.map((segment) => segment.key));
    return result;
  }

  private async discard(state: UploadState): Promise<void> {
    const bucket = this.env.BLOBS;
    if (state.multipartId) {
      try {
        await bucket.resumeMultipartUpload(contentKey(state), state.multipartId).abort();
      } catch {
        // Already completed or aborted.
      }
    }
    const tail = state.tail ?? [];
    if (tail.length > 0) await bucket.delete(tail.map((segment) => segment.key));
    await this.forget();
  }

  private async forget(): Promise<void> {
    this.dropLiveHash();
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
  }
}

/**
 * Reads and drops what is left of a refused body before answering, so the client gets its error
 * response: workerd resets a connection whose request body is left unread (and cannot read it after
 * the response), and the reset loses the response.
 */
export async function drain(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  try {
    for (;;) if ((await reader.read()).done) return;
  } catch {
    // The client went away: nothing left to drain.
  }
}

function contentKey(state: UploadState): string {
  return `content/${state.id}`;
}

export function uploadLocation(state: { id: string; repository: string }): string {
  return `/v2/${state.repository}/blobs/uploads/${state.id}`;
}

function chunkTooLarge(limit: number): OciError {
  return new OciError("SIZE_INVALID", `a chunk may carry at most ${limit} bytes; send the blob in smaller PATCH chunks`, {
    status: 413,
    detail: { chunkMaxBytes: limit },
    headers: { "OCI-Chunk-Max-Length": String(limit) },
  });
}

/** The segments' bytes, in order, as one array. */
async function readSegments(bucket: R2Bucket, segments: readonly TailSegment[], id: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (const segment of segments) {
    const object = await bucket.get(segment.key);
    if (!object) throw new Error(`upload ${id}: tail segment ${segment.key} is missing`);
    parts.push(new Uint8Array(await object.arrayBuffer()));
  }
  return parts.length === 1 ? parts[0]! : concatBytes(parts, tailLength(segments));
}

/** Collects streamed bytes and hands them out in parts of exactly `partBytes`. */
class PartBuffer {
  private chunks: Uint8Array[] = [];
  private length = 0;

  constructor(private readonly partBytes: number) {}

  get size(): number {
    return this.length;
  }

  /** Puts bytes before everything held (the stored tail, once a part fills). */
  prepend(bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    this.chunks.unshift(bytes);
    this.length += bytes.byteLength;
  }

  push(bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    this.chunks.push(bytes);
    this.length += bytes.byteLength;
  }

  takePart(): Uint8Array | undefined {
    if (this.length < this.partBytes) return undefined;
    return this.take(this.partBytes);
  }

  drain(): Uint8Array {
    return this.take(this.length);
  }

  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const head = this.chunks[0]!;
      const need = n - filled;
      if (head.byteLength <= need) {
        out.set(head, filled);
        filled += head.byteLength;
        this.chunks.shift();
      } else {
        out.set(head.subarray(0, need), filled);
        this.chunks[0] = head.subarray(need);
        filled += need;
      }
    }
    this.length -= n;
    return out;
  }
}


/**
 * Workers' `crypto.DigestStream` (native hashing of a stream), typed here rather than through the
 * global: Deno's own Crypto type lacks it (its self-hosted edge installs the same class).
 */
function workersCrypto(): { DigestStream: new (algorithm: string) => WritableStream<Uint8Array> & { digest: Promise<ArrayBuffer> } } {
  return crypto as unknown as ReturnType<typeof workersCrypto>;
}
